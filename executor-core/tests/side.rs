//! The side core driven with no runtime at all: a scripted book answers its actions on a plain
//! integer clock, and the trace of actions is what the tests check.

mod common;

use common::{
    Book, M15, T0, eurusd, held, item_for as item, key_on as key, plain_cfg as cfg, side_at_t0,
};

use oracle_executor_core::broker::{BrokerPosition, OrderResult};
use oracle_executor_core::journal::{Op, Record, Replayed, encode_lines};
use oracle_executor_core::key::KeyText;
use oracle_executor_core::policy::{
    AckKind, ActionName, ModelState, Plan, RealPos, Refusal, StreamKey,
};
use oracle_executor_core::side::{BatchResult, SideCore};
use oracle_ipc::{Action, Timeframe};

/// The scripted book of `tests/common` (what it was asked, in order, and the journal bytes it
/// wrote): 10 000 of balance, fills of 100 000 units at 1.1, a batch answered as the shell's
/// driver does.
fn side_book() -> Book {
    let mut b = Book::new(cfg());
    b.account = common::account(10_000.0, 10_000.0);
    b.fill_volume = 100_000;
    b
}

/// Long 100 000 units at 1.1, the last signal for the bar `last_bt`.
fn long_held(position_id: u64, last_bt: i64) -> ModelState {
    ModelState {
        last_bt: Some(last_bt),
        ..held(position_id, Action::LongWeak, Action::LongWeak, 100_000)
    }
}

/// A core whose models are `states`, with bars `T0` and `T0 + M15` streamed on each.
fn core_with(states: &[(StreamKey, ModelState)]) -> SideCore {
    let mut rep = Replayed::default();
    for (k, s) in states {
        rep.models.insert(*k, s.clone());
    }
    core_from(&rep, states.iter().map(|(k, _)| *k).collect())
}

fn core_from(rep: &Replayed, keys: Vec<StreamKey>) -> SideCore {
    side_at_t0(&cfg(), rep, &keys)
}

/// Executor time just after the signal's bar closed.
fn now_for(bt: i64) -> i64 {
    bt + M15 + 2
}

fn pos(trace: &[String], what: &str) -> usize {
    trace
        .iter()
        .position(|t| t == what)
        .unwrap_or_else(|| panic!("{what:?} not in {trace:?}"))
}

#[test]
fn a_reversal_batch_syncs_all_its_intents_once_before_submitting_and_enters_only_after_every_exit_answered()
 {
    // Two models (two timeframes of one symbol), each long, both reversing to short.
    let (m1, m2) = (key(Timeframe::M15), key(Timeframe::H1));
    let bt = T0 + M15;
    let mut core = core_with(&[(m1, long_held(7, T0)), (m2, long_held(8, T0))]);
    // H1 bars: the model's last bar is T0, the signal's is the next streamed one.
    let mut book = side_book();
    let out = book.batch(
        &mut core,
        now_for(bt),
        &[
            item(&m1, Action::ShortWeak, bt),
            item(&m2, Action::ShortWeak, bt),
        ],
    );
    let t = &book.trace;
    let (c1, c2) = (
        format!("ot-EURUSD-M15-{bt}-C"),
        format!("ot-EURUSD-H1-{bt}-C"),
    );
    let (o1, o2) = (
        format!("ot-EURUSD-M15-{bt}-O"),
        format!("ot-EURUSD-H1-{bt}-O"),
    );
    // The exits' and the entries' intents: one synced write for all four, before any order is
    // on the wire, and no second one.
    let sync = pos(t, &format!("sync {c1},{c2},{o1},{o2}"));
    assert!(sync < pos(t, &format!("submit {c1}")), "{t:?}");
    assert!(sync < pos(t, &format!("submit {c2}")), "{t:?}");
    assert_eq!(
        t.iter().filter(|l| l.starts_with("sync ")).count(),
        1,
        "{t:?}"
    );
    // Both exits answered before the entries are sent.
    let awaited = pos(t, "await");
    assert!(pos(t, &format!("submit {c2}")) < awaited, "{t:?}");
    assert!(awaited < pos(t, &format!("submit {o1}")), "{t:?}");
    assert!(awaited < pos(t, &format!("submit {o2}")), "{t:?}");
    // The entries' margins were asked while the exits were on the wire.
    assert!(pos(t, "margins 2") < awaited, "{t:?}");
    for (ack, _, refusal) in &out {
        assert!(matches!(ack, AckKind::Ok { .. }), "{out:?}");
        assert_eq!(refusal, &None);
    }
    for m in [&m1, &m2] {
        let real = core.policy.models[m].real.clone().expect("entered");
        assert_eq!(real.action.0, Action::ShortWeak);
    }
    assert_eq!(core.retained().pending, 0);
}

#[test]
fn an_entry_written_with_its_exit_and_not_sent_is_closed_withdrawn_and_never_looked_up() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, long_held(7, T0))]);
    let mut book = side_book();
    // The broker refuses the exit: the entry, written with it, must not go out.
    book.refuse_closes = true;
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::ShortWeak, bt)]);
    let (close, open) = (
        format!("ot-EURUSD-M15-{bt}-C"),
        format!("ot-EURUSD-M15-{bt}-O"),
    );
    let t = &book.trace;
    assert!(pos(t, &format!("sync {close},{open}")) < pos(t, &format!("submit {close}")));
    assert_eq!(book.submitted, vec![close.clone()], "the exit only: {t:?}");
    assert_eq!(
        out[0].2.as_ref().map(Refusal::code).as_deref(),
        Some("BROKER_MARKET_MOVED"),
        "{out:?}"
    );
    let withdrawn: Vec<Record> = book
        .records()
        .into_iter()
        .filter(|r| matches!(r, Record::Outcome { result, .. } if result == "withdrawn"))
        .collect();
    assert_eq!(
        withdrawn,
        vec![Record::Outcome {
            coid: open.clone(),
            result: "withdrawn".into(),
            position_id: None,
            price: None,
            volume: None,
            code: Some("EXIT_FAILED".into()),
        }],
        "{:?}",
        book.records()
    );
    assert_eq!(core.retained().pending, 0, "nothing in flight");
    // What a restart reads: the exit settled, the entry neither pending nor an intent that could
    // explain a position.
    let rep = Replayed::from_bytes(&book.journal);
    assert!(rep.pending.is_empty(), "{rep:?}");
    assert!(rep.intents.contains_key(&close), "{rep:?}");
    assert!(!rep.intents.contains_key(&open), "{rep:?}");
    // Killed after the write, before the exit's answer: both are looked up at the restart (the
    // entry was written, its order was not sent; never resent blindly).
    let text = String::from_utf8(book.journal.clone()).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let k = lines
        .iter()
        .position(|l| l.contains(r#""t":"intent""#))
        .expect("an intent");
    assert!(
        lines[k].contains(&close) && lines[k + 1].contains(&open),
        "one write, the exit's then the entry's intent: {text}"
    );
    let first_write: usize = lines[..k + 2].iter().map(|l| l.len() + 1).sum();
    let rep = Replayed::from_bytes(&book.journal[..first_write]);
    assert_eq!(
        rep.pending.keys().cloned().collect::<Vec<_>>(),
        vec![close, open]
    );
}

#[test]
fn an_entry_written_with_its_exit_whose_margin_no_longer_fits_is_withdrawn_with_the_refusal() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, long_held(7, T0))]);
    let mut book = side_book();
    let now = now_for(bt);
    core.handle_signals(now, &book.cfg, &[item(&m, Action::ShortWeak, bt)]);
    // The account read after the exit filled has 10 of free margin: the entry's 50 does not fit.
    book.drive_with(&mut core, now, &mut |_, acc| acc.free_margin = 10.0);
    let out = core.take_batch_result().expect("the batch completes");
    let (close, open) = (
        format!("ot-EURUSD-M15-{bt}-C"),
        format!("ot-EURUSD-M15-{bt}-O"),
    );
    let t = &book.trace;
    assert!(pos(t, &format!("sync {close},{open}")) < pos(t, &format!("submit {close}")));
    assert_eq!(book.submitted, vec![close], "the exit only: {t:?}");
    let refusal = out[0].2.as_ref().map(Refusal::code).expect("refused");
    assert!(refusal.contains("MARGIN"), "{out:?}");
    let codes: Vec<Option<String>> = book
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::Outcome {
                coid, result, code, ..
            } if result == "withdrawn" => {
                assert_eq!(coid, open);
                Some(code)
            }
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![Some(refusal)]);
    assert!(Replayed::from_bytes(&book.journal).pending.is_empty());
}

#[test]
fn an_unknown_outcome_is_looked_up_and_never_submitted_twice() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, long_held(7, T0))]);
    let mut book = side_book();
    let close = format!("ot-EURUSD-M15-{bt}-C");
    book.silent.insert(close.clone());
    book.found = Some(OrderResult::Filled {
        position_id: 7,
        price: 1.1,
        volume: 100_000,
    });
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::ShortWeak, bt)]);
    let t = &book.trace;
    assert!(
        pos(t, "await") < pos(t, &format!("lookup {close}")),
        "{t:?}"
    );
    let sent: Vec<_> = book.submitted.iter().filter(|c| **c == close).collect();
    assert_eq!(sent.len(), 1, "submitted once: {t:?}");
    // The exit was found filled: the entry goes on.
    assert!(pos(t, &format!("lookup {close}")) < pos(t, &format!("submit ot-EURUSD-M15-{bt}-O")));
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
    // The journal says: unknown first, then filled (what a restart reads).
    let rep = Replayed::from_bytes(&book.journal);
    assert!(rep.filled.contains(&close), "{rep:?}");
    assert!(rep.pending.is_empty(), "{rep:?}");
    let text = String::from_utf8(book.journal.clone()).expect("utf8");
    let unknown = text
        .find("\"result\":\"unknown\"")
        .expect("unknown outcome journaled");
    assert!(unknown < text.find("\"result\":\"filled\"").expect("filled"));

    // No trace at the broker either: not executed, and still never resent.
    let m = key(Timeframe::M15);
    let mut core = core_with(&[(m, long_held(7, T0))]);
    let mut book = side_book();
    book.silent.insert(close.clone());
    book.found = None;
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::ShortWeak, bt)]);
    assert_eq!(book.submitted, vec![close.clone()], "{:?}", book.trace);
    assert_eq!(
        out[0].2.as_ref().map(Refusal::code).as_deref(),
        Some("BROKER_NO_ANSWER")
    );
}

#[test]
fn exits_are_never_refused_while_halted_and_entries_are() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, long_held(7, T0))]);
    let mut book = side_book();
    // 20 % below the initial balance: the drawdown limit (10 %) halts trading.
    let mut rep = Replayed {
        risk: Some((12_500.0, T0 - 3_600, 12_500.0)),
        ..Replayed::default()
    };
    rep.models.insert(m, long_held(7, T0));
    let mut core_halted = core_from(&rep, vec![m]);
    let out = book.batch(
        &mut core_halted,
        now_for(bt),
        &[item(&m, Action::ShortWeak, bt)],
    );
    assert!(core_halted.risk.halt().is_some(), "halted");
    let t = &book.trace;
    let close = format!("ot-EURUSD-M15-{bt}-C");
    assert!(pos(t, &format!("sync {close}")) < pos(t, &format!("submit {close}")));
    assert_eq!(book.submitted, vec![close], "the exit only: {t:?}");
    assert_eq!(
        out[0].2.as_ref().map(Refusal::code).as_deref(),
        Some("HALTED_MAX_DRAWDOWN")
    );
    assert!(core_halted.policy.models[&m].real.is_none(), "closed");
    // The same signal, not halted, enters.
    let out = side_book().batch(&mut core, now_for(bt), &[item(&m, Action::ShortWeak, bt)]);
    assert!(matches!(out[0].0, AckKind::Ok { .. }), "{out:?}");
}

#[test]
fn a_missed_entry_is_never_chased() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    // The entry at the transition to SHORT was missed: flat, waiting for the next transition.
    let missed = ModelState {
        target: Some(ActionName(Action::ShortWeak)),
        last_bt: Some(T0),
        real: None,
        missed: true,
    };
    let mut core = core_with(&[(m, missed)]);
    let mut book = side_book();
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::ShortWeak, bt)]);
    assert!(book.submitted.is_empty(), "{:?}", book.trace);
    assert!(matches!(out[0].0, AckKind::WaitSync(_)), "{out:?}");
    // A model seen for the first time on a non-WAIT target: the transition was not seen.
    let fresh = key(Timeframe::H1);
    let mut core = core_with(&[]);
    core.policy.handle_bar(&fresh, T0);
    let out = book.batch(
        &mut core,
        now_for(T0),
        &[item(&fresh, Action::LongStrong, T0)],
    );
    assert!(book.submitted.is_empty(), "{:?}", book.trace);
    assert!(matches!(out[0].0, AckKind::WaitSync(_)), "{out:?}");
}

#[test]
fn a_failed_journal_write_sends_nothing() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, long_held(7, T0))]);
    let mut book = side_book();
    book.journal_broken = true;
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::ShortWeak, bt)]);
    assert!(book.submitted.is_empty(), "{:?}", book.trace);
    assert_eq!(
        out[0].2.as_ref().map(Refusal::code).as_deref(),
        Some("BROKER_JOURNAL")
    );
    assert!(core.policy.models[&m].real.is_some(), "still held");
}

/// Two batches on one core, or the first batch, a restart from the journal's bytes, and the
/// second: the second batch's I/O and answers are the same.
#[test]
fn a_restart_from_the_journal_bytes_resumes_the_same_decisions() {
    let m = key(Timeframe::M15);
    let (bt1, bt2) = (T0 + M15, T0 + 2 * M15);
    let start = [(m, long_held(7, T0))];
    let second = |core: &mut SideCore, book: &mut Book| {
        core.policy.handle_bar(&m, bt2);
        book.trace.clear();
        book.submitted.clear();
        let out = book.batch(core, now_for(bt2), &[item(&m, Action::LongStrong, bt2)]);
        (book.trace.clone(), out)
    };
    let mut on = core_with(&start);
    let mut book = side_book();
    book.batch(&mut on, now_for(bt1), &[item(&m, Action::ShortWeak, bt1)]);
    let journal = book.journal.clone();
    let uninterrupted = second(&mut on, &mut book);

    let mut restarted = core_from(&Replayed::from_bytes(&journal), vec![m]);
    let mut book2 = side_book();
    book2.next_position = 102;
    let resumed = second(&mut restarted, &mut book2);
    // Symbol facts are not journaled: the restarted core asks them once more, nothing else.
    let resumed_io: Vec<&String> = resumed
        .0
        .iter()
        .filter(|t| !t.starts_with("spec"))
        .collect();
    assert_eq!(uninterrupted.0.iter().collect::<Vec<_>>(), resumed_io);
    let acks = |o: &BatchResult| o.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    let plans = |o: &BatchResult| o.iter().map(|x| x.1.clone()).collect::<Vec<Plan>>();
    assert_eq!(acks(&uninterrupted.1), acks(&resumed.1));
    assert_eq!(plans(&uninterrupted.1), plans(&resumed.1));
    assert_eq!(on.policy.models, restarted.policy.models);
}

impl Book {
    /// Reconciles: the broker holds `positions`.
    fn reconcile(&mut self, core: &mut SideCore, positions: Vec<BrokerPosition>) {
        core.handle_reconciled(positions);
        let (mut wire, mut answers) = (Vec::new(), Vec::new());
        while let Some(a) = core.poll_action() {
            self.perform(core, T0, a, &mut wire, &mut answers);
        }
        assert!(!core.reconciling(), "done: {:?}", self.trace);
    }
}

/// The journal of an executor killed after its entry's intent was synced, before any answer.
fn killed_after_intent(m: &StreamKey, bt: i64) -> Vec<u8> {
    let intent = Record::Intent {
        ts: now_for(bt),
        coid: format!("ot-EURUSD-M15-{bt}-O"),
        model: *m,
        op: Op::Open,
        symbol: "EURUSD".into(),
        buy: true,
        action: ActionName(Action::LongWeak),
        volume: 100_000,
        position_id: None,
        bt,
    };
    let model = Record::Model {
        model: *m,
        state: ModelState {
            target: Some(ActionName(Action::Wait)),
            last_bt: Some(T0),
            real: None,
            missed: false,
        },
    };
    encode_lines(&[model, intent]).expect("encodable")
}

#[test]
fn a_restart_looks_up_the_order_in_flight_adopts_its_fill_and_never_resends_it() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let coid = format!("ot-EURUSD-M15-{bt}-O");
    let rep = Replayed::from_bytes(&killed_after_intent(&m, bt));
    assert!(rep.pending.contains_key(&coid), "{rep:?}");
    let mut core = core_from(&rep, vec![m]);
    let mut book = side_book();
    book.found = Some(OrderResult::Filled {
        position_id: 55,
        price: 1.1,
        volume: 100_000,
    });
    let held = BrokerPosition {
        position_id: 55,
        symbol: "EURUSD".into(),
        label: m.label(),
        client_order_id: coid.clone(),
        buy: true,
        volume: 100_000,
        price: 1.1,
    };
    book.reconcile(&mut core, vec![held]);
    assert_eq!(book.trace, vec![format!("lookup {coid}")]);
    assert_eq!(core.retained().pending, 0);
    assert_eq!(
        core.policy.models[&m].real.as_ref().map(|r| r.position_id),
        Some(55)
    );
    assert!(core.policy.unreconciled.is_empty());
    // The re-sent SIGNAL for the same bar holds the adopted position: nothing is resent.
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::LongWeak, bt)]);
    assert!(book.submitted.is_empty(), "{:?}", book.trace);
    assert!(matches!(out[0].0, AckKind::Hold), "{out:?}");
    // The restart's findings are in the journal: a second restart finds nothing pending.
    let mut bytes = killed_after_intent(&m, bt);
    bytes.extend(&book.journal);
    assert!(Replayed::from_bytes(&bytes).pending.is_empty());
}

#[test]
fn a_labelled_position_nothing_explains_stops_entries_on_its_symbol() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let flat = ModelState {
        target: Some(ActionName(Action::Wait)),
        last_bt: Some(T0),
        real: None,
        missed: false,
    };
    let mut core = core_with(&[(m, flat)]);
    let mut book = side_book();
    let stranger = BrokerPosition {
        position_id: 9,
        symbol: "EURUSD".into(),
        label: m.label(),
        client_order_id: "someone-else".into(),
        buy: false,
        volume: 300_000,
        price: 1.2,
    };
    book.reconcile(&mut core, vec![stranger]);
    assert!(core.policy.unreconciled.contains_key("EURUSD"));
    let out = book.batch(&mut core, now_for(bt), &[item(&m, Action::LongWeak, bt)]);
    assert!(book.submitted.is_empty(), "{:?}", book.trace);
    assert_eq!(
        out[0].2.as_ref().map(Refusal::code).as_deref(),
        Some("SYMBOL_UNRECONCILED")
    );
}

#[test]
fn the_next_transitions_margins_cover_every_intensity_and_side_once_per_symbol() {
    let (m1, m2) = (key(Timeframe::M15), key(Timeframe::H1));
    let mut core = core_with(&[]);
    let items = [item(&m1, Action::LongWeak, T0), item(&m2, Action::Wait, T0)];
    // Symbol facts not known yet: nothing to ask.
    assert!(core.next_entry_asks(&cfg(), &items).is_empty());
    core.handle_spec("EURUSD", Some(eurusd()));
    let asks = core.next_entry_asks(&cfg(), &items);
    // 0.01, 0.03, 0.05 lots → 100,000, 300,000, 500,000 cents; buy and sell; both models
    // share the symbol's asks.
    let want: Vec<(String, i64, bool)> = [100_000, 300_000, 500_000]
        .into_iter()
        .flat_map(|v| {
            [
                ("EURUSD".to_string(), v, true),
                ("EURUSD".to_string(), v, false),
            ]
        })
        .collect();
    assert_eq!(asks, want);
}

proptest::proptest! {
    /// Any batch of models (held long, short or flat, reversing or not) with any answers
    /// (filled, rejected, unknown then found or not): every order is submitted at most once and
    /// only after a confirmed sync holding its intent, and no entry goes out before every exit
    /// of its batch was answered.
    #[test]
    fn every_order_is_synced_before_it_is_submitted_and_submitted_once(
        models in proptest::collection::vec((0usize..3, 0usize..4, 0usize..3), 1..5),
        found in proptest::option::of(proptest::bool::ANY),
    ) {
        let tfs = [Timeframe::M1, Timeframe::M5, Timeframe::M15, Timeframe::H1, Timeframe::H4];
        let actions = [Action::LongWeak, Action::ShortModerate, Action::Wait, Action::LongStrong];
        let mut states = Vec::new();
        let mut items = Vec::new();
        let mut book = side_book();
        for (k, (held, target, answer)) in models.iter().enumerate() {
            let m = key(tfs[k]);
            let st = match held {
                0 => long_held(10 + k as u64, T0),
                1 => ModelState {
                    target: Some(ActionName(Action::ShortWeak)),
                    last_bt: Some(T0),
                    real: Some(RealPos {
                        position_id: 10 + k as u64,
                        action: ActionName(Action::ShortWeak),
                        volume: 100_000,
                        price: 1.1,
                    }),
                    missed: false,
                },
                _ => ModelState {
                    target: Some(ActionName(Action::Wait)),
                    last_bt: Some(T0),
                    real: None,
                    missed: false,
                },
            };
            states.push((m, st));
            items.push(item(&m, actions[*target], T0 + M15));
            if *answer == 1 {
                for op in ["C", "O"] {
                    book.silent.insert(format!("ot-{}-{}-{}-{op}", m.symbol, m.timeframe, T0 + M15));
                }
            }
        }
        book.found = found.map(|f| if f {
            OrderResult::Filled { position_id: 99, price: 1.1, volume: 100_000 }
        } else {
            OrderResult::Rejected { code: "X".into(), msg: "no".into() }
        });
        let mut core = core_with(&states);
        let out = book.batch(&mut core, now_for(T0 + M15), &items);
        proptest::prop_assert_eq!(out.len(), items.len());
        let t = &book.trace;
        let mut synced: Vec<String> = Vec::new();
        let mut sent: Vec<String> = Vec::new();
        let mut exits_awaited = false;
        let mut exits_out = 0;
        for line in t {
            if let Some(c) = line.strip_prefix("sync ") {
                synced.extend(c.split(',').map(str::to_string));
            } else if let Some(c) = line.strip_prefix("submit ") {
                proptest::prop_assert!(synced.iter().any(|s| s == c), "{c} not synced first: {t:?}");
                proptest::prop_assert!(!sent.iter().any(|s| s == c), "{c} submitted twice: {t:?}");
                sent.push(c.to_string());
                if c.ends_with("-C") {
                    exits_out += 1;
                    proptest::prop_assert!(!exits_awaited, "an exit after the exits' answers: {t:?}");
                } else {
                    proptest::prop_assert!(exits_out == 0 || exits_awaited, "an entry before the exits were answered: {t:?}");
                }
            } else if line == "await" && exits_out > 0 {
                exits_awaited = true;
            }
        }
        // Whatever happened, nothing stays in flight once the batch is over, unless its lookup
        // found nothing certain.
        if found.is_some() {
            proptest::prop_assert_eq!(core.retained().pending, 0);
        }
    }
}

/// Flat, its last signal `WAIT` for the bar `last_bt`: a `LONG_WEAK` after it enters.
fn flat_waiting(last_bt: i64) -> ModelState {
    ModelState {
        target: Some(ActionName(Action::Wait)),
        last_bt: Some(last_bt),
        real: None,
        missed: false,
    }
}

#[test]
fn an_account_read_started_at_the_bar_out_is_the_batchs_read_and_is_asked_once_per_close() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, flat_waiting(T0))]);
    let mut book = side_book();
    // The bar goes out at `out`; the read starts then, while the predictor answers.
    let out = now_for(bt);
    let ahead = core
        .account_ahead(out)
        .expect("no read cached: one is started");
    assert!(core.handle_account_ahead(ahead, Some(book.account)));
    // The other streams of the close instant start none (a read of this instant is held).
    assert_eq!(core.account_ahead(out), None);
    // The SIGNAL comes in within the read's life: the batch asks no account of its own.
    let res = book.batch(
        &mut core,
        out + oracle_executor_core::side::ACCOUNT_TTL,
        &[item(&m, Action::LongWeak, bt)],
    );
    assert!(matches!(res[0].0, AckKind::Ok { .. }), "{res:?}");
    assert!(
        !book.trace.iter().any(|t| t == "account"),
        "{:?}",
        book.trace
    );
    assert!(
        pos(&book.trace, "margins 1") < pos(&book.trace, &format!("sync ot-EURUSD-M15-{bt}-O"))
    );
}

#[test]
fn an_account_read_started_before_an_order_filled_is_not_kept_and_the_batch_asks_again() {
    let (m1, m2) = (key(Timeframe::M15), key(Timeframe::H1));
    let bt = T0 + M15;
    let mut core = core_with(&[(m1, flat_waiting(T0)), (m2, flat_waiting(T0))]);
    let mut book = side_book();
    let out = now_for(bt);
    let ahead = core.account_ahead(out).expect("started");
    // An order fills before the read's answer is taken (m1's entry, from another batch).
    let first = book.batch(&mut core, out, &[item(&m1, Action::LongWeak, bt)]);
    assert!(matches!(first[0].0, AckKind::Ok { .. }), "{first:?}");
    assert!(
        !core.handle_account_ahead(ahead, Some(book.account)),
        "a read that may not show the fill is dropped"
    );
    book.trace.clear();
    book.batch(&mut core, out, &[item(&m2, Action::LongWeak, bt)]);
    assert_eq!(pos(&book.trace, "account"), 0, "{:?}", book.trace);
}

#[test]
fn an_account_read_ahead_older_than_its_life_is_read_again_by_the_batch() {
    let m = key(Timeframe::M15);
    let bt = T0 + M15;
    let mut core = core_with(&[(m, flat_waiting(T0))]);
    let mut book = side_book();
    let out = now_for(bt);
    let ahead = core.account_ahead(out).expect("started");
    assert!(core.handle_account_ahead(ahead, Some(book.account)));
    // The SIGNAL comes in after the read's life (the predictor slow): the batch reads again.
    book.batch(
        &mut core,
        out + oracle_executor_core::side::ACCOUNT_TTL + 1,
        &[item(&m, Action::LongWeak, bt)],
    );
    assert_eq!(pos(&book.trace, "account"), 0, "{:?}", book.trace);
    // A failed read ahead keeps nothing either.
    let mut core = core_with(&[(m, flat_waiting(T0))]);
    let ahead = core.account_ahead(out).expect("started");
    assert!(!core.handle_account_ahead(ahead, None));
    assert!(core.account_ahead(out).is_some());
}
