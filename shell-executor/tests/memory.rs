//! Long runs keep the engine's heap flat: every per-bar / per-order structure is bounded, and
//! the behaviour that rests on them (a re-sent SIGNAL answered identically and never
//! re-executed, a stale re-send refused, a pending intent kept until resolved) holds.

mod common;

use common::*;
use oracle_executor::broker::{Broker, OrderLookup, OrderReq, OrderResult};
use oracle_executor::engine::Engine;
use oracle_executor::journal::{ACK_MEMORY, INTENT_MEMORY, Journal, Op, client_order_id};
use oracle_executor::paper::{DEAL_MEMORY, ORDERS_SEEN_MEMORY, PaperBook};
use oracle_executor::policy::key_of;
use oracle_ipc::{Message, Timeframe, parse};

const SYMS: [&str; 3] = ["EURUSD", "US500", "AAPL"];
/// Bars of the long run (each one a transition for every model: exit + entry).
const BARS: i64 = 300;

async fn step(e: &mut Engine<PaperBook>, sym: &str, action: &str, i: i64) -> String {
    e.on_bar(
        &key_of(sym, Timeframe::M15).unwrap(),
        T0 + i * M15,
        1.0,
        0.0,
    );
    let line = sig(sym, action, i);
    let Ok(Message::Signal(s)) = parse(&line) else {
        panic!("bad test line {line}")
    };
    e.on_signal(now(i), &s).await.line
}

fn action(i: i64) -> &'static str {
    ["LONG_WEAK", "SHORT_WEAK", "LONG_MODERATE", "WAIT"][(i % 4) as usize]
}

/// Runs `BARS` bars for the three models (trading at every bar); returns every ACK by (sym, i).
async fn long_run(e: &mut Engine<PaperBook>) -> std::collections::HashMap<(String, i64), String> {
    let mut acks = std::collections::HashMap::new();
    for i in 1..=BARS {
        for sym in SYMS {
            let a = step(e, sym, action(i), i).await;
            acks.insert((sym.to_string(), i), a);
        }
    }
    acks
}

fn book_of(e: &Engine<PaperBook>) -> &PaperBook {
    &e.live.as_ref().expect("live side").broker
}

#[tokio::test]
async fn acks_stay_bounded_recent_resends_are_answered_identically_old_ones_refused() {
    let d = tmpdir("mem-acks");
    let mut e = engine(&d, book());
    let acks = long_run(&mut e).await;
    assert!(acks.values().filter(|a| a.contains("|OK|")).count() > 600);
    assert!(
        e.acks_len() <= ACK_MEMORY * SYMS.len(),
        "{} ACKs kept",
        e.acks_len()
    );
    let orders = book_of(&e).orders_total;
    let positions = book_of(&e).open_positions();
    // A re-sent SIGNAL of a recent bar: the same ACK, not re-executed.
    for back in 0..ACK_MEMORY as i64 {
        let i = BARS - back;
        for sym in SYMS {
            let again = step(&mut e, sym, action(i), i).await;
            assert_eq!(again, acks[&(sym.to_string(), i)], "{sym} bar {i}");
        }
    }
    assert_eq!(book_of(&e).orders_total, orders, "no order for a re-send");
    // A re-send of a bar older than what is remembered: refused, changes nothing.
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let before = e.live.as_ref().expect("live").policy.models[&key].clone();
    let old = step(&mut e, "EURUSD", "WAIT", 10).await;
    assert!(old.contains("|FAIL|STALE_SIGNAL|"), "{old}");
    assert_eq!(e.live.as_ref().expect("live").policy.models[&key], before);
    assert_eq!(
        book_of(&e).orders_total,
        orders,
        "no order for a stale re-send"
    );
    assert_eq!(book_of(&e).open_positions(), positions);
    // After a restart: the journal's replay keeps as much, and answers the same.
    let b = std::mem::replace(&mut e.live.as_mut().expect("live").broker, book());
    drop(e);
    let mut e = engine(&d, b);
    e.reconcile(now(BARS) + 5).await.expect("reconcile");
    assert!(e.acks_len() <= ACK_MEMORY * SYMS.len());
    let i = BARS - 3;
    assert_eq!(
        step(&mut e, "US500", action(i), i).await,
        acks[&("US500".to_string(), i)]
    );
    assert!(
        step(&mut e, "US500", "WAIT", 20)
            .await
            .contains("|FAIL|STALE_SIGNAL|")
    );
    assert_eq!(book_of(&e).orders_total, orders);
    // The next bar trades as usual.
    let next = step(&mut e, "AAPL", "SHORT_STRONG", BARS + 1).await;
    assert!(next.contains("|OK|"), "{next}");
}

#[tokio::test]
async fn intents_filled_and_the_replayed_journal_stay_bounded() {
    let d = tmpdir("mem-intents");
    let mut e = engine(&d, book());
    long_run(&mut e).await;
    let r = e.live.as_ref().expect("live").retained();
    assert!(r.intents <= INTENT_MEMORY * SYMS.len(), "{r:?}");
    assert!(r.filled <= r.intents, "{r:?}");
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(r.models, SYMS.len());
    // The journal has every intent; its replay keeps what the engine keeps.
    let (_, rep) = Journal::open(&d.join("journal.jsonl")).expect("journal");
    assert!(rep.intents.len() <= INTENT_MEMORY * SYMS.len());
    assert!(rep.filled.len() <= rep.intents.len());
    assert!(rep.acks.len() <= ACK_MEMORY * SYMS.len());
    let text = std::fs::read_to_string(d.join("journal.jsonl")).expect("journal");
    assert!(text.matches(r#""t":"intent""#).count() > 1000);
    // The latest intents are among those kept (they explain positions at reconcile).
    let key = key_of("AAPL", Timeframe::M15).unwrap();
    // Bar BARS is a LONG_WEAK entry after a WAIT.
    let last = client_order_id(&key, T0 + BARS * M15, Op::Open);
    assert!(rep.intents.contains_key(&last));
    // And a restarted engine from it stays as small.
    let b = std::mem::replace(&mut e.live.as_mut().expect("live").broker, book());
    drop(e);
    let mut e = engine(&d, b);
    e.reconcile(now(BARS) + 5).await.expect("reconcile");
    let r = e.live.as_ref().expect("live").retained();
    assert!(r.intents <= INTENT_MEMORY * SYMS.len(), "{r:?}");
    assert!(
        e.live
            .as_ref()
            .expect("live")
            .policy
            .unreconciled
            .is_empty(),
        "every position still explained"
    );
}

/// An intent whose outcome is unknown is never forgotten, however many orders its model sends
/// afterwards, until reconciliation resolves it.
#[tokio::test]
async fn a_pending_intent_is_kept_until_resolved() {
    let d = tmpdir("mem-pending");
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let coid = client_order_id(&key, T0, Op::Open);
    {
        // A crash after the intent (no outcome).
        let (mut j, _) = Journal::open(&d.join("journal.jsonl")).expect("journal");
        j.append(&long_weak_intent(&key, T0, T0 + 901))
            .expect("append");
    }
    let mut b = book();
    b.up = false;
    let mut e = engine(&d, b);
    // The broker does not answer: the intent stays pending.
    assert!(e.reconcile(now(0)).await.is_err());
    e.live.as_mut().expect("live").broker.up = true;
    long_run(&mut e).await;
    let r = e.live.as_ref().expect("live").retained();
    assert_eq!(r.pending, 1, "{r:?}");
    assert!(r.intents <= INTENT_MEMORY * SYMS.len() + 1, "{r:?}");
    // Reconciliation resolves it (never executed in this book): then it may be forgotten.
    e.reconcile(now(BARS) + 5).await.expect("reconcile");
    assert_eq!(e.live.as_ref().expect("live").retained().pending, 0);
    let text = std::fs::read_to_string(d.join("journal.jsonl")).expect("journal");
    assert!(
        text.lines()
            .any(|l| l.contains(&coid) && l.contains("not_executed")),
        "looked up, not resent"
    );
    assert!(!book_of(&e).orders_seen.contains(&coid));
}

#[tokio::test]
async fn paper_deal_list_and_orders_seen_stay_bounded() {
    let mut b = book();
    let n = 3 * DEAL_MEMORY.max(ORDERS_SEEN_MEMORY) as u64;
    let mut last = String::new();
    for k in 0..n {
        last = format!("ot-EURUSD-M15-{k}-O");
        let r = b
            .open(&OrderReq {
                symbol: "EURUSD".into(),
                client_order_id: last.clone(),
                label: "oracle:EURUSD_M15".into(),
                buy: true,
                volume: 100_000,
                base_price: 1.10008,
                slippage_points: 20,
            })
            .await;
        let OrderResult::Filled { position_id, .. } = r else {
            panic!("{r:?}")
        };
        let c = b.close(position_id, 100_000, &format!("{last}-C")).await;
        assert!(matches!(c, OrderResult::Filled { .. }), "{c:?}");
    }
    assert!(b.deals_len() <= DEAL_MEMORY);
    assert!(b.orders_seen.len() <= ORDERS_SEEN_MEMORY);
    assert_eq!(b.orders_total, 2 * n);
    assert!(b.open_positions().is_empty());
    // The latest orders are still found by their client order id.
    let found = b
        .find_order(&OrderLookup {
            client_order_id: last.clone(),
            label: "oracle:EURUSD_M15".into(),
            symbol: "EURUSD".into(),
            buy: true,
            volume: 100_000,
            closes: None,
            since: 0,
        })
        .await
        .expect("lookup");
    assert!(
        matches!(found, Some(OrderResult::Filled { .. })),
        "{found:?}"
    );
}

#[tokio::test]
async fn drift_backlog_of_bars_without_signal_stays_bounded() {
    let d = tmpdir("mem-drift");
    let c = cfg();
    let j = Journal::open(&d.join("journal.jsonl")).expect("journal");
    let live = oracle_executor::engine::Side::new("live", &c, book(), Some(j));
    let drift = oracle_executor::drift::DriftLedger::open(&d.join("drift")).expect("drift");
    let mut e = Engine::new(c, Some(live), None, Default::default(), Some(drift));
    for i in 1..=BARS {
        for sym in SYMS {
            let key = key_of(sym, Timeframe::M15).unwrap();
            e.on_bar(&key, T0 + i * M15, 1.0, 0.0);
            e.bar_streamed(&key, T0 + i * M15);
        }
    }
    assert!(e.unexplained_len() <= 2 * SYMS.len());
    e.flush_unexplained();
    drop(e);
    let rows = std::fs::read_to_string(d.join("drift.jsonl")).expect("ledger");
    assert_eq!(
        rows.lines().count() as i64,
        BARS * SYMS.len() as i64,
        "one row per streamed bar"
    );
}
