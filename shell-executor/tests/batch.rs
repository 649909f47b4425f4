//! SIGNALs handled as one batch (`Engine::on_signals`): group commit of the intents, the
//! orders of all models in flight together, and answers exactly as one at a time.

mod common;

use common::*;
use oracle_executor::broker::Broker;
use oracle_executor::engine::{Engine, Side};
use oracle_executor::journal::{Journal, Op, client_order_id};
use oracle_executor::paper::{Fault, PaperBook};
use oracle_executor::policy::key_of;
use oracle_ipc::{Message, Signal, Timeframe, parse};

/// (symbol, action, bar index).
type Sig<'a> = (&'a str, &'a str, i64);

fn lines_of(sigs: &[Sig<'_>]) -> Vec<String> {
    sigs.iter().map(|(s, a, i)| sig(s, a, *i)).collect()
}

fn parsed(lines: &[String]) -> Vec<Signal<'_>> {
    lines
        .iter()
        .map(|l| match parse(l) {
            Ok(Message::Signal(s)) => s,
            other => panic!("bad test line {l}: {other:?}"),
        })
        .collect()
}

fn bars(e: &mut Engine<PaperBook>, sigs: &[Sig<'_>]) {
    for (s, _, i) in sigs {
        e.on_bar(&key_of(s, Timeframe::M15).unwrap(), T0 + i * M15, 1.0, 0.0);
    }
}

/// The signals as one batch (processed at `now(at)`).
async fn batch(e: &mut Engine<PaperBook>, at: i64, sigs: &[Sig<'_>]) -> Vec<String> {
    bars(e, sigs);
    let lines = lines_of(sigs);
    let s = parsed(&lines);
    e.on_signals(now(at), &s)
        .await
        .into_iter()
        .map(|a| a.line)
        .collect()
}

/// The same signals one at a time, in the same order.
async fn one_by_one(e: &mut Engine<PaperBook>, at: i64, sigs: &[Sig<'_>]) -> Vec<String> {
    bars(e, sigs);
    let lines = lines_of(sigs);
    let mut out = Vec::new();
    for s in parsed(&lines) {
        out.push(e.on_signal(now(at), &s).await.line);
    }
    out
}

fn book_of(e: &Engine<PaperBook>) -> &PaperBook {
    &e.live.as_ref().expect("live side").broker
}
fn book_mut(e: &mut Engine<PaperBook>) -> &mut PaperBook {
    &mut e.live.as_mut().expect("live side").broker
}
fn syncs(e: &Engine<PaperBook>) -> u64 {
    e.live.as_ref().expect("live side").journal_syncs()
}

#[tokio::test]
async fn a_batch_gives_the_same_acks_journal_and_book_as_one_at_a_time() {
    let (da, db) = (tmpdir("batch-seq"), tmpdir("batch-bat"));
    let mut seq = engine(&da, book());
    let mut bat = engine(&db, book());
    let script: Vec<(i64, Vec<Sig<'_>>)> = vec![
        (
            1,
            vec![
                ("EURUSD", "WAIT", 1),
                ("US500", "WAIT", 1),
                ("AAPL", "WAIT", 1),
            ],
        ),
        // Three entries.
        (
            2,
            vec![
                ("EURUSD", "LONG_WEAK", 2),
                ("US500", "SHORT_MODERATE", 2),
                ("AAPL", "LONG_STRONG", 2),
            ],
        ),
        // Exit + entry, hold, exit.
        (
            3,
            vec![
                ("EURUSD", "SHORT_WEAK", 3),
                ("US500", "SHORT_MODERATE", 3),
                ("AAPL", "WAIT", 3),
            ],
        ),
        // A re-send of a model already in the batch (it waits for the batch), then more.
        (
            4,
            vec![
                ("EURUSD", "LONG_STRONG", 4),
                ("US500", "WAIT", 4),
                ("EURUSD", "SHORT_WEAK", 3),
                ("AAPL", "LONG_WEAK", 4),
                ("GBPUSD", "WAIT", 4),
            ],
        ),
        // Two bars of one model in one batch, a conflicting duplicate, a disabled symbol.
        (
            5,
            vec![
                ("US500", "LONG_WEAK", 5),
                ("EURUSD", "WAIT", 5),
                ("US500", "SHORT_WEAK", 6),
                ("AAPL", "WAIT", 2),
                ("GBPUSD", "LONG_WEAK", 5),
                ("AAPL", "SHORT_WEAK", 5),
            ],
        ),
    ];
    let mut oks = 0;
    for (at, sigs) in &script {
        let a = one_by_one(&mut seq, *at, sigs).await;
        let b = batch(&mut bat, *at, sigs).await;
        assert_eq!(a, b, "bar {at}");
        oks += b.iter().filter(|l| l.contains("|OK|")).count();
    }
    assert!(oks >= 8, "the script trades ({oks} OKs)");
    assert_eq!(
        book_of(&seq).open_positions(),
        book_of(&bat).open_positions()
    );
    let (acc_a, acc_b) = (
        book_mut(&mut seq).account().await.expect("account"),
        book_mut(&mut bat).account().await.expect("account"),
    );
    assert_eq!(acc_a, acc_b);
    let mut oa: Vec<String> = book_of(&seq).orders_seen.iter().cloned().collect();
    let mut ob: Vec<String> = book_of(&bat).orders_seen.iter().cloned().collect();
    oa.sort();
    ob.sort();
    assert_eq!(oa, ob, "the same orders");
    assert_eq!(seq.counters, bat.counters);
    assert_eq!(
        seq.live.as_ref().expect("live").policy.models,
        bat.live.as_ref().expect("live").policy.models
    );
    // The same records (in another order: a batch's intents are written together).
    assert_eq!(
        sorted_lines(&da.join("journal.jsonl")),
        sorted_lines(&db.join("journal.jsonl"))
    );
    assert!(
        syncs(&bat) < syncs(&seq),
        "{} vs {}",
        syncs(&bat),
        syncs(&seq)
    );
    // And a restart from either journal is the same engine.
    drop((seq, bat));
    let (_, ra) = Journal::open(&da.join("journal.jsonl")).expect("journal");
    let (_, rb) = Journal::open(&db.join("journal.jsonl")).expect("journal");
    assert_eq!(ra.models, rb.models);
    assert_eq!(ra.acks, rb.acks);
    assert!(ra.pending.is_empty() && rb.pending.is_empty());
}

fn fleet_engine(dir: &std::path::Path) -> (Engine<PaperBook>, Vec<String>) {
    let (c, b, names) = fleet();
    let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
    let side = Side::new("live", &c, b, Some(j));
    (
        Engine::new(c, Some(side), None, Default::default(), None),
        names,
    )
}

fn fleet_sigs<'a>(names: &'a [String], action: &'a str, i: i64) -> Vec<Sig<'a>> {
    names.iter().map(|n| (n.as_str(), action, i)).collect()
}

/// Fsyncs per bar close of 20 models: 1 for a batch (all exits' and entries' intents in one
/// write), whatever the number of orders; one per signal one at a time (a reversal's exit and
/// entry together; the outcomes are not fsynced in either case, see `Journal::append_unsynced`).
#[tokio::test]
async fn one_fsync_per_batch_of_intents() {
    let (da, db) = (tmpdir("fsync-seq"), tmpdir("fsync-bat"));
    let (mut seq, names) = fleet_engine(&da);
    let (mut bat, _) = fleet_engine(&db);
    for (at, action) in [(1, "WAIT"), (2, "LONG_WEAK"), (3, "SHORT_WEAK")] {
        let sigs = fleet_sigs(&names, action, at);
        let (sa, sb) = (syncs(&seq), syncs(&bat));
        let a = one_by_one(&mut seq, at, &sigs).await;
        let b = batch(&mut bat, at, &sigs).await;
        assert_eq!(a, b);
        let (da_, db_) = (syncs(&seq) - sa, syncs(&bat) - sb);
        match at {
            // No order (the first call journals the risk anchors: one fsync either way).
            1 => assert_eq!((da_, db_), (1, 1)),
            // 20 entries.
            2 => {
                assert!(b.iter().all(|l| l.contains("|OK|")), "{b:?}");
                assert_eq!((da_, db_), (20, 1));
            }
            // 20 exits + 20 entries.
            _ => {
                assert!(b.iter().all(|l| l.contains("|OK|")), "{b:?}");
                assert_eq!((da_, db_), (20, 1));
            }
        }
    }
    assert_eq!(book_of(&bat).open_positions().len(), 20);
    // The batch's journal: the 20 exit intents and the 20 entry intents (one write, one fsync),
    // then the exits' 20 outcomes, then the entries'.
    let text = std::fs::read_to_string(db.join("journal.jsonl")).expect("journal");
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["t"] == "intent" || v["t"] == "outcome")
        .map(|v| {
            format!(
                "{}:{}",
                v["t"].as_str().unwrap_or(""),
                v["op"].as_str().unwrap_or("")
            )
        })
        .collect();
    let last: Vec<&str> = kinds[kinds.len() - 80..]
        .iter()
        .map(String::as_str)
        .collect();
    let want: Vec<&str> = std::iter::repeat_n("intent:close", 20)
        .chain(std::iter::repeat_n("intent:open", 20))
        .chain(std::iter::repeat_n("outcome:", 40))
        .collect();
    assert_eq!(last, want);
}

#[tokio::test]
async fn a_rejected_entry_in_the_middle_of_a_batch() {
    let (da, db) = (tmpdir("rej-seq"), tmpdir("rej-bat"));
    let mut seq = engine(&da, book());
    let mut bat = engine(&db, book());
    let wait = [
        ("EURUSD", "WAIT", 1),
        ("US500", "WAIT", 1),
        ("AAPL", "WAIT", 1),
    ];
    let enter = [
        ("EURUSD", "LONG_WEAK", 2),
        ("US500", "LONG_WEAK", 2),
        ("AAPL", "LONG_WEAK", 2),
    ];
    for e in [&mut seq, &mut bat] {
        book_mut(e).faults.extend([
            Fault::Pass,
            Fault::Reject("NOT_ENOUGH_MONEY".into()),
            Fault::Pass,
        ]);
    }
    assert_eq!(
        one_by_one(&mut seq, 1, &wait).await,
        batch(&mut bat, 1, &wait).await
    );
    let a = one_by_one(&mut seq, 2, &enter).await;
    let b = batch(&mut bat, 2, &enter).await;
    assert_eq!(a, b);
    assert!(b[0].contains("|OK|T:1|"), "{b:?}");
    assert!(b[1].contains("|FAIL|BROKER_NOT_ENOUGH_MONEY|"), "{b:?}");
    assert!(b[2].contains("|OK|T:2|"), "{b:?}");
    let pos: Vec<String> = book_of(&bat)
        .open_positions()
        .iter()
        .map(|p| p.symbol.clone())
        .collect();
    assert_eq!(pos, vec!["EURUSD", "AAPL"]);
    let text = std::fs::read_to_string(db.join("journal.jsonl")).expect("journal");
    let us = client_order_id(
        &key_of("US500", Timeframe::M15).unwrap(),
        T0 + 2 * M15,
        Op::Open,
    );
    assert!(
        text.lines().any(|l| l.contains(&us)
            && l.contains(r#""result":"rejected""#)
            && l.contains("BROKER_NOT_ENOUGH_MONEY")),
        "{text}"
    );
    assert_eq!(
        sorted_lines(&da.join("journal.jsonl")),
        sorted_lines(&db.join("journal.jsonl"))
    );
    // Not chased.
    let next = [("US500", "LONG_WEAK", 3)];
    let b = batch(&mut bat, 3, &next).await;
    assert!(b[0].contains("|WAIT_SYNC|MISSED_ENTRY|"), "{b:?}");
}

#[tokio::test]
async fn a_rejected_exit_in_the_middle_of_a_batch_holds_back_only_its_entry() {
    let d = tmpdir("rej-exit");
    let mut e = engine(&d, book());
    let syms = ["EURUSD", "US500", "AAPL"];
    let s1: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "WAIT", 1)).collect();
    let s2: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "LONG_WEAK", 2)).collect();
    let s3: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "SHORT_WEAK", 3)).collect();
    batch(&mut e, 1, &s1).await;
    assert!(
        batch(&mut e, 2, &s2)
            .await
            .iter()
            .all(|l| l.contains("|OK|"))
    );
    book_mut(&mut e).faults.extend([
        Fault::Pass,
        Fault::Reject("MARKET_CLOSED".into()),
        Fault::Pass,
    ]);
    let seen = book_of(&e).orders_seen.len();
    let b = batch(&mut e, 3, &s3).await;
    assert!(b[0].contains("|OK|"), "{b:?}");
    assert!(b[1].contains("|FAIL|MARKET_CLOSED|"), "{b:?}");
    assert!(b[2].contains("|OK|"), "{b:?}");
    // 3 exits, 2 entries: US500's entry was not sent (its long position is still open).
    let sent: Vec<&String> = book_of(&e).orders_seen.iter().skip(seen).collect();
    assert_eq!(sent.len(), 5, "{sent:?}");
    let us_open = client_order_id(
        &key_of("US500", Timeframe::M15).unwrap(),
        T0 + 3 * M15,
        Op::Open,
    );
    assert!(!sent.contains(&&us_open));
    let mut pos: Vec<(String, bool)> = book_of(&e)
        .open_positions()
        .iter()
        .map(|p| (p.symbol.clone(), p.buy))
        .collect();
    pos.sort();
    assert_eq!(
        pos,
        vec![
            ("AAPL".into(), false),
            ("EURUSD".into(), false),
            ("US500".into(), true)
        ]
    );
    // The failed exit is retried at the next signal.
    let b = batch(&mut e, 4, &[("US500", "SHORT_WEAK", 4)]).await;
    assert!(
        b[0].contains("|WAIT_SYNC|MISSED_ENTRY|"),
        "exit done, entry missed: {b:?}"
    );
    assert!(
        book_of(&e)
            .open_positions()
            .iter()
            .all(|p| !(p.symbol == "US500" && p.buy))
    );
}

#[tokio::test]
async fn a_lost_answer_in_a_batch_is_looked_up_not_resent() {
    let d = tmpdir("lost-batch");
    let mut e = engine(&d, book());
    let syms = ["EURUSD", "US500", "AAPL"];
    let s1: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "WAIT", 1)).collect();
    let s2: Vec<Sig<'_>> = syms.iter().map(|s| (*s, "SHORT_WEAK", 2)).collect();
    batch(&mut e, 1, &s1).await;
    book_mut(&mut e).faults.extend([
        Fault::Pass,
        Fault::Lost { executed: true },
        Fault::Lost { executed: false },
    ]);
    let b = batch(&mut e, 2, &s2).await;
    assert!(b[0].contains("|OK|T:1|"), "{b:?}");
    assert!(
        b[1].contains("|OK|T:2|"),
        "found by its client order id: {b:?}"
    );
    assert!(b[2].contains("|FAIL|BROKER_NO_ANSWER|"), "{b:?}");
    assert_eq!(book_of(&e).orders_seen.len(), 3, "nothing resent");
    assert_eq!(e.live.as_ref().expect("live").retained().pending, 0);
}

#[tokio::test]
async fn margin_counts_the_entries_before_it_in_the_batch() {
    let (da, db) = (tmpdir("margin-seq"), tmpdir("margin-bat"));
    let mut seq = engine(&da, book());
    let mut bat = engine(&db, book());
    for e in [&mut seq, &mut bat] {
        // Leverage 1: 300 lots AAPL and 12 lots US500 need about 60,000 each; 90 % of the
        // free 100,000 fits one of them, not both.
        book_mut(e).leverage = 1.0;
        e.cfg.symbols.get_mut("AAPL").expect("AAPL").lots = [300.0, 300.0, 300.0];
        e.cfg.symbols.get_mut("US500").expect("US500").lots = [12.0, 12.0, 12.0];
    }
    let wait = [("AAPL", "WAIT", 1), ("US500", "WAIT", 1)];
    let enter = [("AAPL", "LONG_WEAK", 2), ("US500", "LONG_WEAK", 2)];
    one_by_one(&mut seq, 1, &wait).await;
    batch(&mut bat, 1, &wait).await;
    let a = one_by_one(&mut seq, 2, &enter).await;
    let b = batch(&mut bat, 2, &enter).await;
    assert_eq!(a, b);
    assert!(b[0].contains("|OK|"), "{b:?}");
    assert!(b[1].contains("|FAIL|MARGIN|"), "{b:?}");
    assert_eq!(book_of(&bat).orders_seen.len(), 1);
}

#[tokio::test]
async fn halted_in_a_batch_refuses_every_entry_and_runs_every_exit() {
    let d = tmpdir("halt-batch");
    let mut e = engine(&d, book());
    batch(&mut e, 1, &[("EURUSD", "WAIT", 1), ("AAPL", "WAIT", 1)]).await;
    let b = batch(
        &mut e,
        2,
        &[("EURUSD", "LONG_WEAK", 2), ("AAPL", "WAIT", 2)],
    )
    .await;
    assert!(b[0].contains("|OK|"), "{b:?}");
    book_mut(&mut e).set_balance(94_000.0);
    let b = batch(
        &mut e,
        3,
        &[("EURUSD", "SHORT_WEAK", 3), ("AAPL", "LONG_WEAK", 3)],
    )
    .await;
    assert!(b[0].contains("|FAIL|HALTED_DAILY_LOSS|"), "{b:?}");
    assert!(b[1].contains("|FAIL|HALTED_DAILY_LOSS|"), "{b:?}");
    assert!(book_of(&e).open_positions().is_empty(), "the exit ran");
}
