//! The engine against the paper book as broker: no sockets, virtual clock.

mod common;

use common::*;
use oracle_executor::broker::Broker;
use oracle_executor::engine::Engine;
use oracle_executor::journal::{Journal, Op, client_order_id};
use oracle_executor::paper::{Fault, PaperBook};
use oracle_executor::policy::{KeyText, key_of};
use oracle_ipc::{Message, Timeframe, parse};

/// Feeds bar i to the engine (freshness), then the signal; returns the ACK line.
async fn step(e: &mut Engine<PaperBook>, sym: &str, action: &str, i: i64) -> String {
    let key = key_of(sym, Timeframe::M15).unwrap();
    e.on_bar(&key, T0 + i * M15, 1.0, 0.0);
    let line = sig(sym, action, i);
    let Ok(Message::Signal(s)) = parse(&line) else {
        panic!("bad test line {line}")
    };
    e.on_signal(now(i), &s).await.line
}

fn book_of(e: &Engine<PaperBook>) -> &PaperBook {
    &e.live.as_ref().expect("live side").broker
}
fn book_mut(e: &mut Engine<PaperBook>) -> &mut PaperBook {
    &mut e.live.as_mut().expect("live side").broker
}

#[tokio::test]
async fn signal_to_order_to_ack_ok_with_ticket_and_price() {
    let d = tmpdir("ok");
    let mut e = engine(&d, book());
    assert_eq!(
        step(&mut e, "EURUSD", "WAIT", 1).await,
        format!(
            "ACK|EURUSD|WAIT|HOLD|TF:M15|BT:{}|SEQ:1",
            oracle_ipc::Iso(T0 + 900)
        )
    );
    let ack = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:1|P:1.10008|TF:M15|BT:"),
        "{ack}"
    );
    let pos = book_of(&e).open_positions();
    assert_eq!(pos.len(), 1);
    assert_eq!(pos[0].volume, 100_000);
    assert_eq!(pos[0].label, "oracle:EURUSD_M15");
    assert_eq!(
        pos[0].client_order_id,
        client_order_id(
            &key_of("EURUSD", Timeframe::M15).unwrap(),
            T0 + 2 * M15,
            Op::Open
        )
    );
    // Exit: OK with the closed ticket and the close price (bid).
    let ack = step(&mut e, "EURUSD", "WAIT", 3).await;
    assert!(ack.starts_with("ACK|EURUSD|WAIT|OK|T:1|P:1.1|"), "{ack}");
    assert!(book_of(&e).open_positions().is_empty());
}

#[tokio::test]
async fn lot_mapping_and_rounding_for_the_seed_symbols() {
    let d = tmpdir("lots");
    let mut e = engine(&d, book());
    for (sym, want) in [
        ("EURUSD", [100_000, 300_000, 500_000]),
        ("US500", [10, 30, 50]),
        ("AAPL", [100, 300, 500]),
    ] {
        step(&mut e, sym, "WAIT", 1).await;
        for (i, a) in ["LONG_WEAK", "LONG_MODERATE", "LONG_STRONG"]
            .iter()
            .enumerate()
        {
            let ack = step(&mut e, sym, a, 2 + i as i64).await;
            assert!(ack.contains("|OK|"), "{ack}");
            let v: Vec<i64> = book_of(&e)
                .open_positions()
                .iter()
                .filter(|p| p.symbol == sym)
                .map(|p| p.volume)
                .collect();
            assert_eq!(v, vec![want[i]], "{sym} {a}");
        }
        step(&mut e, sym, "WAIT", 5).await;
    }
    // Rounding down to the step: 0.029 lots EURUSD → 0.02 lots; 0.25 US500 → 0.2 (20).
    e.cfg.symbols.get_mut("EURUSD").expect("EURUSD").lots = [0.029, 0.03, 0.05];
    e.cfg.symbols.get_mut("US500").expect("US500").lots = [0.25, 0.3, 0.5];
    step(&mut e, "EURUSD", "SHORT_WEAK", 6).await;
    step(&mut e, "US500", "SHORT_WEAK", 6).await;
    let mut v: Vec<(String, i64)> = book_of(&e)
        .open_positions()
        .iter()
        .map(|p| (p.symbol.clone(), p.volume))
        .collect();
    v.sort();
    assert_eq!(v, vec![("EURUSD".into(), 200_000), ("US500".into(), 20)]);
    // Below the minimum: refused with a reason.
    e.cfg.symbols.get_mut("AAPL").expect("AAPL").lots = [0.5, 3.0, 5.0];
    step(&mut e, "AAPL", "WAIT", 6).await;
    assert!(
        step(&mut e, "AAPL", "SHORT_WEAK", 7)
            .await
            .contains("|FAIL|VOLUME_BELOW_MIN|")
    );
}

#[tokio::test]
async fn each_risk_refusal_has_its_reason() {
    let d = tmpdir("refusals");
    let mut e = engine(&d, book());
    // Disabled symbol.
    step(&mut e, "GBPUSD", "WAIT", 1).await;
    assert!(
        step(&mut e, "GBPUSD", "LONG_WEAK", 2)
            .await
            .contains("|FAIL|SYMBOL_DISABLED|")
    );
    // Spread: 20 points allowed, 50 now.
    step(&mut e, "EURUSD", "WAIT", 1).await;
    book_mut(&mut e).set_quote("EURUSD", 1.10000, 1.10050);
    assert!(
        step(&mut e, "EURUSD", "LONG_WEAK", 2)
            .await
            .contains("|FAIL|SPREAD|")
    );
    book_mut(&mut e).set_quote("EURUSD", 1.10000, 1.10008);
    // Margin: leverage 1 makes 5 lots AAPL (500 × 200) fine but 50,000 lots not.
    step(&mut e, "AAPL", "WAIT", 1).await;
    e.cfg.symbols.get_mut("AAPL").expect("AAPL").lots = [1.0, 3.0, 4_999.0];
    book_mut(&mut e).leverage = 1.0;
    assert!(
        step(&mut e, "AAPL", "LONG_STRONG", 2)
            .await
            .contains("|FAIL|MARGIN|")
    );
    // Stale: processed 10 minutes after the bar closed.
    step(&mut e, "US500", "WAIT", 1).await;
    let key = key_of("US500", Timeframe::M15).unwrap();
    e.on_bar(&key, T0 + 2 * M15, 1.0, 0.0);
    let l = sig("US500", "LONG_WEAK", 2);
    let Ok(Message::Signal(s)) = parse(&l) else {
        panic!()
    };
    assert!(
        e.on_signal(now(2) + 600, &s)
            .await
            .line
            .contains("|FAIL|STALE_SIGNAL|")
    );
    // Slippage bound: the broker refuses a MARKET_RANGE order beyond slippageInPoints.
    step(&mut e, "EURUSD", "WAIT", 3).await;
    book_mut(&mut e)
        .faults
        .push_back(Fault::Reject("MARKET_RANGE_EXCEEDED".into()));
    assert!(
        step(&mut e, "EURUSD", "SHORT_WEAK", 4)
            .await
            .contains("|FAIL|BROKER_MARKET_RANGE_EXCEEDED|")
    );
    assert_eq!(e.counters.refusals, 5);
}

#[tokio::test]
async fn halted_refuses_entries_but_lets_exits_through() {
    let d = tmpdir("halt");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    assert!(
        step(&mut e, "EURUSD", "LONG_STRONG", 2)
            .await
            .contains("|OK|")
    );
    step(&mut e, "AAPL", "WAIT", 2).await;
    // Equity falls 6% of the initial balance within the day.
    book_mut(&mut e).set_balance(94_000.0);
    let ack = step(&mut e, "AAPL", "LONG_WEAK", 3).await;
    assert!(ack.contains("|FAIL|HALTED_DAILY_LOSS|"), "{ack}");
    // Exit allowed while halted.
    let ack = step(&mut e, "EURUSD", "WAIT", 3).await;
    assert!(ack.contains("|OK|T:1|"), "{ack}");
    assert!(book_of(&e).open_positions().is_empty());
    // Static max drawdown.
    book_mut(&mut e).set_balance(89_000.0);
    let ack = step(&mut e, "EURUSD", "SHORT_WEAK", 4).await;
    assert!(ack.contains("|FAIL|HALTED_MAX_DRAWDOWN|"), "{ack}");
}

#[tokio::test]
async fn missed_entry_waits_and_is_never_chased() {
    let d = tmpdir("nochase");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    book_mut(&mut e).set_quote("EURUSD", 1.10000, 1.10050);
    assert!(
        step(&mut e, "EURUSD", "LONG_MODERATE", 2)
            .await
            .contains("|FAIL|SPREAD|")
    );
    book_mut(&mut e).set_quote("EURUSD", 1.10000, 1.10008);
    for i in 3..8 {
        let ack = step(&mut e, "EURUSD", "LONG_MODERATE", i).await;
        assert!(ack.contains("|WAIT_SYNC|MISSED_ENTRY|"), "{ack}");
    }
    assert!(book_of(&e).open_positions().is_empty());
    assert_eq!(book_of(&e).orders_seen.len(), 0);
    // A restart does not chase either (state from the journal).
    drop(e);
    let mut e = engine(&d, book());
    e.reconcile(now(8)).await.expect("reconcile");
    assert!(
        step(&mut e, "EURUSD", "LONG_MODERATE", 8)
            .await
            .contains("|WAIT_SYNC|MISSED_ENTRY|")
    );
    assert_eq!(book_of(&e).orders_seen.len(), 0);
    // The next transition trades.
    assert!(
        step(&mut e, "EURUSD", "SHORT_WEAK", 9)
            .await
            .contains("|OK|")
    );
}

#[tokio::test]
async fn duplicate_signal_same_ack_not_re_executed() {
    let d = tmpdir("dup");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    let a1 = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    let a2 = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert_eq!(a1, a2);
    assert_eq!(book_of(&e).orders_seen.len(), 1);
    assert_eq!(e.counters.duplicates, 1);
    // Also after a restart (ACKs are journaled).
    let b = std::mem::replace(book_mut(&mut e), book());
    drop(e);
    let mut e = engine(&d, b);
    e.reconcile(now(3)).await.expect("reconcile");
    assert_eq!(step(&mut e, "EURUSD", "LONG_WEAK", 2).await, a1);
    assert_eq!(book_of(&e).orders_seen.len(), 1);
}

#[tokio::test]
async fn lost_answer_is_looked_up_not_resent() {
    let d = tmpdir("lost");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    book_mut(&mut e)
        .faults
        .push_back(Fault::Lost { executed: true });
    let ack = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert!(ack.contains("|OK|T:1|"), "{ack}");
    assert_eq!(book_of(&e).orders_seen.len(), 1);
    // Lost and never executed: FAIL, not resent, not chased.
    step(&mut e, "EURUSD", "WAIT", 3).await;
    book_mut(&mut e)
        .faults
        .push_back(Fault::Lost { executed: false });
    let ack = step(&mut e, "EURUSD", "SHORT_WEAK", 4).await;
    assert!(ack.contains("|FAIL|BROKER_NO_ANSWER|"), "{ack}");
    assert!(
        step(&mut e, "EURUSD", "SHORT_WEAK", 5)
            .await
            .contains("|WAIT_SYNC|MISSED_ENTRY|")
    );
    assert_eq!(book_of(&e).orders_seen.len(), 3);
}

/// The crash window: the intent is journaled (fsync), the order reaches the broker and fills,
/// and the process dies before the outcome is written. The restarted executor adopts the
/// position from the broker and sends nothing again.
#[tokio::test]
async fn crash_between_order_and_execution_then_restart_no_duplicate() {
    let d = tmpdir("crash");
    let mut b = book();
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let bt = T0 + 2 * M15;
    {
        let mut e = engine(&d, book());
        step(&mut e, "EURUSD", "WAIT", 1).await;
    }
    let coid = client_order_id(&key, bt, Op::Open);
    {
        let (mut j, _) = Journal::open(&d.join("journal.jsonl")).expect("journal");
        j.append(&long_weak_intent(&key, bt, now(2)))
            .expect("append");
        let req = oracle_executor::broker::OrderReq {
            symbol: "EURUSD".into(),
            client_order_id: coid.clone(),
            label: key.label(),
            buy: true,
            volume: 100_000,
            base_price: 1.10008,
            slippage_points: 20,
        };
        assert!(matches!(
            b.open(&req).await,
            oracle_executor::broker::OrderResult::Filled { .. }
        ));
        // kill -9 here: no outcome, no ACK, no model state.
    }
    let mut e = engine(&d, b);
    e.reconcile(now(2) + 5).await.expect("reconcile");
    let st = &e.live.as_ref().expect("live").policy.models[&key];
    assert_eq!(st.real.as_ref().map(|r| r.position_id), Some(1));
    assert!(
        e.live
            .as_ref()
            .expect("live")
            .policy
            .unreconciled
            .is_empty()
    );
    // The predictor resends its signal for bar 2 (never answered): no second order.
    let ack = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert!(ack.contains("|HOLD|"), "{ack}");
    assert_eq!(book_of(&e).orders_seen, vec![coid]);
    assert_eq!(book_of(&e).open_positions().len(), 1);
}

/// Same crash, against a broker that does not link positions to client order ids: the position
/// is explained by its label, side and volume.
///
/// The crash window: the intent is journaled (fsync), the order reaches the broker and fills,
/// and the process dies before the outcome is written. The restarted executor adopts the
/// position from the broker and sends nothing again.
#[tokio::test]
async fn crash_then_restart_adopts_by_label_when_coid_is_not_echoed() {
    let d = tmpdir("crash-label");
    let mut b = book();
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let bt = T0 + 2 * M15;
    {
        let mut e = engine(&d, book());
        step(&mut e, "EURUSD", "WAIT", 1).await;
    }
    let coid = client_order_id(&key, bt, Op::Open);
    {
        let (mut j, _) = Journal::open(&d.join("journal.jsonl")).expect("journal");
        j.append(&long_weak_intent(&key, bt, now(2)))
            .expect("append");
        let req = oracle_executor::broker::OrderReq {
            symbol: "EURUSD".into(),
            client_order_id: coid.clone(),
            label: key.label(),
            buy: true,
            volume: 100_000,
            base_price: 1.10008,
            slippage_points: 20,
        };
        assert!(matches!(
            b.open(&req).await,
            oracle_executor::broker::OrderResult::Filled { .. }
        ));
        // kill -9 here: no outcome, no ACK, no model state.
    }
    b.echo_client_order_id = false;
    let mut e = engine(&d, b);
    e.reconcile(now(2) + 5).await.expect("reconcile");
    let st = &e.live.as_ref().expect("live").policy.models[&key];
    assert_eq!(st.real.as_ref().map(|r| r.position_id), Some(1));
    assert!(
        e.live
            .as_ref()
            .expect("live")
            .policy
            .unreconciled
            .is_empty()
    );
    // The predictor resends its signal for bar 2 (never answered): no second order.
    let ack = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert!(ack.contains("|HOLD|"), "{ack}");
    assert_eq!(book_of(&e).orders_seen, vec![coid]);
    assert_eq!(book_of(&e).open_positions().len(), 1);
}

#[tokio::test]
async fn unexplained_position_blocks_only_its_symbol() {
    let d = tmpdir("unexplained");
    let mut b = book();
    b.inject_position(oracle_executor::broker::BrokerPosition {
        position_id: 77,
        symbol: "US500".into(),
        label: "oracle:US500_M15".into(),
        client_order_id: "someone-else".into(),
        buy: true,
        volume: 10,
        price: 5000.0,
    });
    // A manual trade without our label is ignored.
    b.inject_position(oracle_executor::broker::BrokerPosition {
        position_id: 78,
        symbol: "EURUSD".into(),
        label: "".into(),
        client_order_id: "".into(),
        buy: true,
        volume: 100_000,
        price: 1.1,
    });
    let mut e = engine(&d, b);
    e.reconcile(now(0)).await.expect("reconcile");
    step(&mut e, "US500", "WAIT", 1).await;
    assert!(
        step(&mut e, "US500", "LONG_WEAK", 2)
            .await
            .contains("|FAIL|SYMBOL_UNRECONCILED|")
    );
    step(&mut e, "EURUSD", "WAIT", 1).await;
    assert!(
        step(&mut e, "EURUSD", "LONG_WEAK", 2)
            .await
            .contains("|OK|")
    );
}

#[tokio::test]
async fn position_closed_outside_goes_flat_and_waits() {
    let d = tmpdir("external");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    assert!(
        step(&mut e, "EURUSD", "LONG_WEAK", 2)
            .await
            .contains("|OK|T:1|")
    );
    book_mut(&mut e).external_close(1);
    e.reconcile(now(3)).await.expect("reconcile");
    assert!(
        step(&mut e, "EURUSD", "LONG_WEAK", 3)
            .await
            .contains("|WAIT_SYNC|MISSED_ENTRY|")
    );
    assert_eq!(book_of(&e).orders_seen.len(), 1);
}

#[tokio::test]
async fn paper_beside_live_writes_the_drift_ledger() {
    let d = tmpdir("drift");
    let c = cfg();
    let j = Journal::open(&d.join("journal.jsonl")).expect("journal");
    let live = oracle_executor::engine::Side::new("live", &c, book(), Some(j));
    let paper = oracle_executor::engine::Side::new("paper", &c, book(), None);
    let drift = oracle_executor::drift::DriftLedger::open(&d.join("drift")).expect("drift");
    let mut e = Engine::new(c, Some(live), Some(paper), Default::default(), Some(drift));
    step(&mut e, "EURUSD", "WAIT", 1).await;
    // Live refuses (broker error), paper fills: the drift shows it.
    book_mut(&mut e)
        .faults
        .push_back(Fault::Reject("NOT_ENOUGH_MONEY".into()));
    let ack = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert!(ack.contains("|FAIL|BROKER_NOT_ENOUGH_MONEY|"), "{ack}");
    drop(e);
    let csv = std::fs::read_to_string(d.join("drift.csv")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], oracle_executor::drift::CSV_HEADER);
    assert!(
        lines[2].contains(",EURUSD_M15,LONG_WEAK,0.00,FLAT,0.00,LONG_WEAK,"),
        "{csv}"
    );
    assert!(lines[2].contains(",FAIL|BROKER_NOT_ENOUGH_MONEY,"), "{csv}");
    let jsonl = std::fs::read_to_string(d.join("drift.jsonl")).expect("jsonl");
    assert_eq!(jsonl.lines().count(), 2);
    // Equity after the bar: the answering (live) side's account, and the paper book's.
    let row: serde_json::Value =
        serde_json::from_str(jsonl.lines().nth(1).expect("row")).expect("json");
    assert!(row["equity"].as_f64().is_some_and(|e| e > 0.0), "{row}");
    assert!(
        row["paper_equity"].as_f64().is_some_and(|e| e > 0.0),
        "{row}"
    );
}

fn parsed(line: &str) -> oracle_ipc::Signal<'_> {
    let Ok(Message::Signal(s)) = parse(line) else {
        panic!("bad test line {line}")
    };
    s
}

fn journal_text(d: &std::path::Path) -> String {
    std::fs::read_to_string(d.join("journal.jsonl")).expect("journal")
}

/// A transition signalled for bar 3 before bar 3 was streamed (one period after the model's
/// last bar, so the old "one period later" guess called it fresh): `ERR|UNKNOWN_BAR`, no order,
/// nothing journaled; once bar 3 is streamed the same SIGNAL is handled.
#[tokio::test]
async fn a_signal_for_a_bar_not_streamed_gets_an_error_no_order_and_no_journal_line() {
    let d = tmpdir("unstreamed");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    let ack = step(&mut e, "EURUSD", "LONG_WEAK", 2).await;
    assert!(ack.contains("|OK|T:1|"), "{ack}");
    let orders = book_of(&e).orders_total;
    let journal = journal_text(&d);
    let line = sig("EURUSD", "SHORT_WEAK", 3);
    let got = e.on_signal(now(3), &parsed(&line)).await.line;
    assert_eq!(
        got,
        format!(
            "ERR|UNKNOWN_BAR|EURUSD_M15|{}",
            oracle_ipc::Iso(T0 + 3 * M15)
        )
    );
    assert_eq!(book_of(&e).orders_total, orders, "no order");
    assert_eq!(book_of(&e).open_positions().len(), 1);
    assert_eq!(journal_text(&d), journal, "nothing journaled");
    // Streamed now: handled (exit and entry), not answered from a cache.
    let ack = step(&mut e, "EURUSD", "SHORT_WEAK", 3).await;
    assert!(ack.contains("|SHORT_WEAK|OK|"), "{ack}");
}

/// `BT:9999-12-31T23:00:00Z` is refused and leaves the model as it was: the next bar's exit
/// and the next transition run. A journal in which an older executor recorded such a bar as the
/// model's last one does not block it after a restart either (exits are never refused).
#[tokio::test]
async fn a_future_dated_signal_never_blocks_later_exits_even_from_an_older_journal() {
    use oracle_executor::journal::Record;
    let d = tmpdir("future");
    let mut e = engine(&d, book());
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    step(&mut e, "EURUSD", "WAIT", 1).await;
    assert!(
        step(&mut e, "EURUSD", "LONG_WEAK", 2)
            .await
            .contains("|OK|")
    );
    let future = sig("EURUSD", "LONG_WEAK", 2).replace(
        &oracle_ipc::Iso(T0 + 2 * M15).to_string(),
        "9999-12-31T23:00:00Z",
    );
    let got = e.on_signal(now(2), &parsed(&future)).await.line;
    assert!(got.starts_with("ERR|UNKNOWN_BAR|EURUSD_M15|9999-"), "{got}");
    let ack = step(&mut e, "EURUSD", "WAIT", 3).await;
    assert!(ack.contains("|WAIT|OK|T:1|"), "{ack}");
    let ack = step(&mut e, "EURUSD", "SHORT_WEAK", 4).await;
    assert!(ack.contains("|SHORT_WEAK|OK|"), "{ack}");
    // An older executor journaled the future bar as the model's last one.
    let mut state = e.live.as_ref().expect("live").policy.models[&key].clone();
    state.last_bt = oracle_ipc::parse_time("9999-12-31T23:00:00Z");
    let b = std::mem::replace(&mut e.live.as_mut().expect("live").broker, book());
    drop(e);
    {
        let (mut j, _) = Journal::open(&d.join("journal.jsonl")).expect("journal");
        j.append(&Record::Model { model: key, state })
            .expect("append");
    }
    let mut e = engine(&d, b);
    e.reconcile(now(4) + 5).await.expect("reconcile");
    let ack = step(&mut e, "EURUSD", "WAIT", 5).await;
    assert!(ack.contains("|WAIT|OK|"), "the exit runs: {ack}");
    assert!(book_of(&e).open_positions().is_empty());
}

#[tokio::test]
async fn an_exit_the_broker_refuses_market_closed_in_open_hours_is_tried_again_by_the_timer_not_left_for_the_next_signal()
 {
    // A broker a moment behind our calendar at the open refuses the exit MARKET_CLOSED while
    // every calendar says open: the exit is held and must go by the held exits' timer (at once,
    // then once a minute), not wait for the model's next SIGNAL (a D1 model's is a day away).
    let d = tmpdir("held-retry-open");
    let mut e = engine(&d, book());
    step(&mut e, "EURUSD", "WAIT", 1).await;
    assert!(
        step(&mut e, "EURUSD", "LONG_WEAK", 2)
            .await
            .contains("|OK|")
    );
    book_mut(&mut e)
        .faults
        .push_back(Fault::Reject("MARKET_CLOSED".into()));
    let ack = step(&mut e, "EURUSD", "WAIT", 3).await;
    assert!(ack.contains("MARKET_CLOSED"), "{ack}");
    assert_eq!(book_of(&e).open_positions().len(), 1);
    assert_eq!(e.core.held_symbols(), ["EURUSD"]);
    // Open by the calendar: the timer is armed for now.
    e.arm_held_exits(now(3), 0);
    assert_eq!(e.core.poll_timeout(), Some(0), "armed for the open market");
    // Refused again: tried again a retry delay later.
    book_mut(&mut e)
        .faults
        .push_back(Fault::Reject("MARKET_CLOSED".into()));
    assert!(
        e.core
            .handle_timeout(0)
            .contains(&oracle_executor_core::gather::Timer::HeldExit)
    );
    e.release_held_exits(now(3), 0).await;
    assert_eq!(book_of(&e).open_positions().len(), 1);
    e.arm_held_exits(now(3), 0);
    let retry = oracle_executor_core::exec::HELD_EXIT_RETRY_MS;
    assert_eq!(e.core.poll_timeout(), Some(retry));
    assert!(
        e.core
            .handle_timeout(retry)
            .contains(&oracle_executor_core::gather::Timer::HeldExit)
    );
    e.release_held_exits(now(3) + 60, retry).await;
    assert!(book_of(&e).open_positions().is_empty(), "the exit went");
    assert!(e.core.held_symbols().is_empty());
}
