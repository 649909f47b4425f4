//! `ExecutorCore` driven with no runtime: the grouping of SIGNALs into batches, which side
//! answers, and the ACK values, with the sides' batch results scripted.

use std::collections::HashMap;

use oracle_executor_core::config::from_value;
use oracle_executor_core::exec::{
    Answered, BarAction, BatchResult, ExecAction, ExecutorCore, Reply, SideId, ack_line,
};
use oracle_executor_core::journal::Replayed;
use oracle_executor_core::key::{KeyText, key_of};
use oracle_executor_core::policy::{AckKind, Plan, Refusal};
use oracle_executor_core::side::{Item, SideCore};
use oracle_ipc::{Action, Cents, Signal, Timeframe};

/// A bar open time (a Monday, 2021-03-01 00:00 UTC); bars are M15.
const T0: i64 = 1_614_556_800;
const M15: i64 = 900;
const NOW: i64 = T0 + M15 + 1;

fn side(name: &'static str) -> SideCore {
    let cfg = from_value(&serde_json::json!({})).expect("config");
    let mut core = SideCore::new(name, &cfg, &Replayed::default());
    for sym in ["EURUSD", "GBPUSD"] {
        core.policy
            .handle_bar(&key_of(sym, Timeframe::M15).unwrap(), T0);
    }
    core
}

fn exec(live: bool, paper: bool) -> ExecutorCore {
    let cfg = from_value(&serde_json::json!({})).expect("config");
    ExecutorCore::new(
        cfg,
        live.then(|| side("live")),
        paper.then(|| side("paper")),
        HashMap::new(),
    )
}

fn signal(symbol: &'static str, action: Action) -> Signal<'static> {
    Signal {
        symbol,
        action,
        regime: 1,
        virtual_pnl: Cents(0),
        tf: Some(Timeframe::M15),
        bar_time: Some(T0),
        seq: Some(7),
    }
}

/// Every item answered `kind`.
fn answered(items: &[Item], kind: &AckKind) -> BatchResult {
    items
        .iter()
        .map(|it| (kind.clone(), Plan::nothing(&it.key, it.target, it.bt), None))
        .collect()
}

/// Drives the core: each batch is answered `live`/`paper` by the sides named; returns the
/// batches (their models), the signals answered by a batch, and the replies.
fn drive(
    core: &mut ExecutorCore,
    signals: &[Signal<'_>],
    live: &AckKind,
    paper: &AckKind,
) -> (Vec<Vec<String>>, Vec<Answered>, Vec<Reply>, usize) {
    core.handle_signals(signals.len());
    let (mut batches, mut done, mut prefetches) = (Vec::new(), Vec::new(), 0);
    while let Some(a) = core.poll_action(NOW, signals) {
        match a {
            ExecAction::RunBatch { items, sides } => {
                assert_eq!(sides, core.sides(), "the batch runs on the sides present");
                batches.push(
                    items
                        .iter()
                        .map(|it| it.key.model_name().to_string())
                        .collect(),
                );
                let l = sides
                    .contains(&SideId::Live)
                    .then(|| answered(&items, live));
                let p = sides
                    .contains(&SideId::Paper)
                    .then(|| answered(&items, paper));
                core.handle_batch_results(signals, l, p);
            }
            ExecAction::Answered(a) => done.push(a),
            ExecAction::PrefetchNextEntries { .. } => prefetches += 1,
        }
    }
    (batches, done, core.take_replies(signals), prefetches)
}

fn line(r: &Reply) -> &str {
    match r {
        Reply::Line { line, .. } => line,
        Reply::UnknownBar { .. } => panic!("an UNKNOWN_BAR reply: {r:?}"),
    }
}

#[test]
fn a_second_signal_of_a_model_waits_for_the_first_batch_and_is_then_a_duplicate() {
    let mut core = exec(true, false);
    let sigs = [
        signal("EURUSD", Action::LongWeak),
        signal("GBPUSD", Action::ShortWeak),
        signal("EURUSD", Action::LongWeak),
    ];
    let (batches, done, replies, _) = drive(&mut core, &sigs, &AckKind::Hold, &AckKind::Hold);
    // One batch: both models; the re-sent EURUSD signal is admitted after it and answered with
    // the first ACK, never executed.
    assert_eq!(batches, vec![vec!["EURUSD_M15", "GBPUSD_M15"]]);
    assert_eq!(done.iter().map(|a| a.index).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(replies.len(), 3);
    assert_eq!(line(&replies[2]), line(&replies[0]));
    assert!(matches!(
        replies[2],
        Reply::Line {
            duplicate: true,
            ..
        }
    ));
    assert!(matches!(
        replies[0],
        Reply::Line {
            duplicate: false,
            ..
        }
    ));
    assert_eq!(core.counters.signals, 3);
    assert_eq!(core.counters.duplicates, 1);
}

#[test]
fn two_signals_of_one_model_for_two_bars_run_as_two_batches_in_order() {
    let mut core = exec(true, false);
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    core.live
        .as_mut()
        .expect("live")
        .policy
        .handle_bar(&key, T0 + M15);
    let mut later = signal("EURUSD", Action::ShortWeak);
    later.bar_time = Some(T0 + M15);
    let sigs = [
        signal("EURUSD", Action::LongWeak),
        signal("GBPUSD", Action::LongWeak),
        later,
    ];
    let (batches, done, replies, prefetches) =
        drive(&mut core, &sigs, &AckKind::Hold, &AckKind::Hold);
    assert_eq!(
        batches,
        vec![vec!["EURUSD_M15", "GBPUSD_M15"], vec!["EURUSD_M15"]]
    );
    assert_eq!(
        done.iter().map(|a| a.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(prefetches, 2);
    assert_eq!(line(&replies[2]), ack_line(&sigs[2], &AckKind::Hold));
}

#[test]
fn the_live_side_answers_when_present_and_paper_alone_answers_otherwise() {
    let live_ack = AckKind::Ok {
        ticket: 42,
        price: 1.1,
    };
    let paper_ack = AckKind::Fail("SPREAD".into());
    let sigs = [signal("EURUSD", Action::LongWeak)];

    let mut both = exec(true, true);
    let (_, done, replies, prefetches) = drive(&mut both, &sigs, &live_ack, &paper_ack);
    assert_eq!(line(&replies[0]), ack_line(&sigs[0], &live_ack));
    assert_eq!(done[0].line, ack_line(&sigs[0], &live_ack));
    assert_eq!(both.answering_id(), Some(SideId::Live));
    assert_eq!(
        prefetches, 1,
        "the live side prefetches the next entries' margins"
    );

    let mut paper = exec(false, true);
    let (_, done, replies, prefetches) = drive(&mut paper, &sigs, &live_ack, &paper_ack);
    assert_eq!(line(&replies[0]), ack_line(&sigs[0], &paper_ack));
    assert_eq!(done[0].line, ack_line(&sigs[0], &paper_ack));
    assert_eq!(paper.answering_id(), Some(SideId::Paper));
    assert_eq!(prefetches, 0, "no live broker: nothing to prefetch");
}

#[test]
fn with_neither_side_no_bar_is_streamed_and_a_signal_is_refused_without_a_batch() {
    let mut none = exec(false, false);
    let sigs = [signal("EURUSD", Action::LongWeak)];
    let (batches, _, replies, _) = drive(&mut none, &sigs, &AckKind::Hold, &AckKind::Hold);
    assert!(batches.is_empty(), "{batches:?}");
    assert!(
        matches!(replies[0], Reply::UnknownBar { .. }),
        "{replies:?}"
    );
    assert_eq!(none.answering_id(), None);
    assert_eq!(none.counters.refusals, 1);
}

#[test]
fn a_refusal_is_counted_and_its_ack_remembered() {
    let mut core = exec(true, false);
    let sigs = [signal("EURUSD", Action::LongWeak)];
    core.handle_signals(1);
    let Some(ExecAction::RunBatch { items, .. }) = core.poll_action(NOW, &sigs) else {
        panic!("a batch");
    };
    assert_eq!(
        core.poll_action(NOW, &sigs),
        None,
        "waits for the batch's results"
    );
    let refused = vec![(
        AckKind::Fail("SPREAD".into()),
        Plan::nothing(&items[0].key, items[0].target, items[0].bt),
        Some(Refusal::Spread {
            points: 3.0,
            limit: 2.0,
        }),
    )];
    core.handle_batch_results(&sigs, Some(refused), None);
    assert!(matches!(
        core.poll_action(NOW, &sigs),
        Some(ExecAction::Answered(_))
    ));
    assert_eq!(core.counters.refusals, 1);
    assert_eq!(core.answers.acks_len(), 1);
}

#[test]
fn a_bar_not_streamed_is_replied_unknown_bar_without_a_batch() {
    let mut core = exec(true, false);
    let mut s = signal("EURUSD", Action::LongWeak);
    s.bar_time = Some(T0 + M15);
    let (batches, _, replies, _) = drive(&mut core, &[s], &AckKind::Hold, &AckKind::Hold);
    assert!(batches.is_empty());
    assert_eq!(
        replies,
        vec![Reply::UnknownBar {
            key: key_of("EURUSD", Timeframe::M15).unwrap(),
            bt: T0 + M15
        }]
    );
}

#[test]
fn a_bar_prices_the_paper_book_only_when_paper_is_alone_and_feeds_both_sides_freshness() {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let mut paper = exec(false, true);
    assert_eq!(
        paper.handle_bar(&key, T0 + M15, 1.1, 0.0002),
        Some(BarAction::PaperQuote {
            symbol: "EURUSD".into(),
            bid: 1.1,
            ask: 1.1 + 0.0002
        })
    );
    assert_eq!(
        paper.paper.as_ref().expect("paper").policy.last_bar(&key),
        Some(T0 + M15)
    );
    let mut both = exec(true, true);
    assert_eq!(both.handle_bar(&key, T0 + M15, 1.1, 0.0002), None);
    for side in [both.live.as_ref(), both.paper.as_ref()] {
        assert_eq!(side.expect("side").policy.last_bar(&key), Some(T0 + M15));
    }
}

#[test]
fn a_streamed_bar_with_no_signal_is_due_its_ledger_row_after_one_bar_of_grace() {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let mut core = exec(true, false);
    assert!(core.handle_bar_streamed(&key, T0, true).is_empty());
    assert!(core.handle_bar_streamed(&key, T0 + M15, true).is_empty());
    assert_eq!(
        core.handle_bar_streamed(&key, T0 + 2 * M15, true),
        vec![BarAction::LedgerRow { key, bt: T0 }]
    );
    // Without a ledger nothing is tracked.
    let mut bare = exec(true, false);
    for i in 0..4 {
        assert!(
            bare.handle_bar_streamed(&key, T0 + i * M15, false)
                .is_empty()
        );
    }
    assert_eq!(bare.answers.unexplained_len(), 0);
}
