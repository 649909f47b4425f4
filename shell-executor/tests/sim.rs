//! The executor against `oracle-sim` over real TLS (needs the default `live` feature):
//! `cargo test -p oracle-executor --test sim`.
#![cfg(feature = "live")]

mod common;

use std::time::Duration;

use common::{signal_live as signal, tmpdir};
use oracle_executor::broker::Broker;
use oracle_executor::config::{ExecutorConfig, from_value};
use oracle_executor::engine::{Engine, Side};
use oracle_executor::live::LiveBroker;
use oracle_executor::policy::key_of;
use oracle_executor::shell::Feed;
use oracle_ipc::{Message, Timeframe, parse};
use oracle_sim::bars::Period;
use oracle_sim::config::DEFAULT_ACCOUNT_ID;
use oracle_sim::{BrokerConfig, Fault, SimConfig, SimHandle, Speed};
use tokio::sync::mpsc;

const SYMS: [&str; 3] = common::SIM_SYMS;

thread_local! {
    static LAST: std::cell::RefCell<std::collections::HashMap<String, i64>> = Default::default();
}

async fn sim(faults: Vec<Fault>) -> SimHandle {
    common::sim3(faults).await
}

fn cfg() -> ExecutorConfig {
    common::sim3_cfg()
}

async fn live(s: &SimHandle) -> (LiveBroker, mpsc::Receiver<Feed>) {
    common::live_session(s, &SYMS).await
}

fn engine(dir: &std::path::Path, b: LiveBroker) -> Engine<LiveBroker> {
    common::engine_with(dir, cfg(), b)
}

/// Waits for the next closed bar of `sym` after `last`, feeding every bar to the engine (the
/// shell's `Streams` does this dedup in production: a new session re-sends recent bars).
async fn next_bar(
    e: &mut Engine<LiveBroker>,
    feed: &mut mpsc::Receiver<Feed>,
    sym: &str,
) -> (i64, u64) {
    let mut seq = 0;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), feed.recv())
            .await
            .expect("a bar in time")
            .expect("feed open");
        if ev == Feed::Reconcile {
            // As `serve` does: the broker reported a change nobody asked for.
            let now = e.live.as_ref().expect("live").broker.clock()();
            e.reconcile(now).await.expect("reconcile");
            continue;
        }
        if let Feed::Bar {
            symbol, tf, bar, ..
        } = ev
        {
            e.on_bar(&key_of(&symbol, tf).unwrap(), bar.time, bar.close, 0.0);
            seq += 1;
            let last = LAST.with(|l| l.borrow().get(&symbol).copied());
            if last.is_some_and(|t| bar.time <= t) {
                continue;
            }
            LAST.with(|l| l.borrow_mut().insert(symbol.clone(), bar.time));
            if symbol == sym {
                return (bar.time, seq);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_order_ack_lots_and_restart_without_duplicate() {
    let s = sim(vec![]).await;
    let d = tmpdir("sim-main");
    let (b, mut feed) = live(&s).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    let mut volumes = Vec::new();
    for (sym, want) in [("EURUSD", 500_000i64), ("US500", 50), ("AAPL", 500)] {
        let (t0, q0) = next_bar(&mut e, &mut feed, sym).await;
        assert!(signal(&mut e, sym, "WAIT", t0, q0).await.contains("|HOLD|"));
        let (t1, q1) = next_bar(&mut e, &mut feed, sym).await;
        let ack = signal(&mut e, sym, "LONG_STRONG", t1, q1).await;
        assert!(
            ack.starts_with(&format!("ACK|{sym}|LONG_STRONG|OK|T:")) && ack.contains("|P:"),
            "{ack}"
        );
        volumes.push(want);
    }
    let pos = e
        .live
        .as_mut()
        .expect("live")
        .broker
        .reconcile()
        .await
        .expect("positions");
    let mut got: Vec<(String, i64)> = pos.iter().map(|p| (p.symbol.clone(), p.volume)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("AAPL".into(), 500),
            ("EURUSD".into(), 500_000),
            ("US500".into(), 50)
        ]
    );
    assert!(pos.iter().all(|p| p.label.starts_with("oracle:")));
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 3);
    // Restart: a new session and engine from the same journal; reconciled, nothing resent.
    drop(e);
    drop(feed);
    let (b, mut feed) = live(&s).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    assert!(
        e.live
            .as_ref()
            .expect("live")
            .policy
            .unreconciled
            .is_empty()
    );
    let (t, q) = next_bar(&mut e, &mut feed, "EURUSD").await;
    let ack = signal(&mut e, "EURUSD", "LONG_STRONG", t, q).await;
    assert!(ack.contains("|HOLD|"), "{ack}");
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 3);
    // Exit.
    let (t, q) = next_bar(&mut e, &mut feed, "EURUSD").await;
    let ack = signal(&mut e, "EURUSD", "WAIT", t, q).await;
    assert!(ack.contains("|OK|T:"), "{ack}");
    assert_eq!(
        s.account(DEFAULT_ACCOUNT_ID)
            .await
            .expect("account")
            .open_positions,
        2
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_rejection_names_its_code_and_is_not_chased() {
    let s = sim(vec![Fault::Reject {
        code: oracle_sim::msg::ErrorCode::NotEnoughMoney,
        every: 1,
        symbol: Some("AAPL".into()),
        times: Some(1),
        via_error_res: false,
    }])
    .await;
    let d = tmpdir("sim-reject");
    let (b, mut feed) = live(&s).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    let (t0, q0) = next_bar(&mut e, &mut feed, "AAPL").await;
    signal(&mut e, "AAPL", "WAIT", t0, q0).await;
    let (t1, q1) = next_bar(&mut e, &mut feed, "AAPL").await;
    let ack = signal(&mut e, "AAPL", "SHORT_WEAK", t1, q1).await;
    assert!(ack.contains("|FAIL|BROKER_NOT_ENOUGH_MONEY|"), "{ack}");
    let (t2, q2) = next_bar(&mut e, &mut feed, "AAPL").await;
    let ack = signal(&mut e, "AAPL", "SHORT_WEAK", t2, q2).await;
    assert!(ack.contains("|WAIT_SYNC|MISSED_ENTRY|"), "{ack}");
    assert_eq!(
        s.account(DEFAULT_ACCOUNT_ID)
            .await
            .expect("account")
            .open_positions,
        0
    );
    s.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Through the IPC server: a broker reconnect in the middle of the bar stream.
// ---------------------------------------------------------------------------------------------

#[test]
fn broker_reconnect_mid_stream_no_missed_or_duplicated_bar() {
    use futures_util::{SinkExt, StreamExt};
    use oracle_executor::server::Metrics;
    use oracle_secrets::Secret;
    use tokio_tungstenite::tungstenite::Message as WsMsg;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        // The sim drops the connection once, after its 400th frame.
        let s = sim(vec![Fault::DropAfter {
            after: 400,
            times: Some(1),
        }])
        .await;
        let d = tmpdir("sim-reconnect");
        let (b, feed) = live(&s).await;
        let mut e = engine(&d, b);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clock = e.live.as_ref().expect("live").broker.clock();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let metrics = std::sync::Arc::new(Metrics::default());
        let m = metrics.clone();
        tokio::task::spawn_local(async move {
            let preload = [("EURUSD".to_string(), Timeframe::M1)];
            let _ = oracle_executor::shell::serve(
                &mut e,
                &preload,
                listener,
                Secret::new("tok"),
                feed,
                clock,
                m,
                async {
                    let _ = stop_rx.await;
                },
            )
            .await;
        });
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .expect("ws");
        ws.send(WsMsg::text("HELLO|tok")).await.expect("send");
        let mut times = Vec::new();
        let mut seqs = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while times.len() < 60 && tokio::time::Instant::now() < deadline {
            let Ok(Some(Ok(WsMsg::Text(t)))) =
                tokio::time::timeout(Duration::from_secs(20), ws.next()).await
            else {
                break;
            };
            if let Ok(Message::Bar(b)) = parse(&t)
                && b.symbol == "EURUSD"
            {
                times.push(b.time);
                seqs.push(b.seq);
            }
        }
        assert!(times.len() >= 60, "only {} bars", times.len());
        assert_eq!(
            Metrics::get(&metrics.reconnects),
            1,
            "the sim dropped the session once"
        );
        for w in times.windows(2) {
            assert_eq!(
                w[1] - w[0],
                60,
                "a missed or duplicated bar around {}",
                oracle_ipc::Iso(w[0])
            );
        }
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let _ = stop_tx.send(());
        s.shutdown().await;
    });
}

// ---------------------------------------------------------------------------------------------
// kill -9 of the executor process between the order and its execution event.
// ---------------------------------------------------------------------------------------------

#[test]
fn kill_9_between_order_and_execution_then_restart_reconciles_without_duplicate() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMsg;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        // The first order executes at the sim but its ExecutionEvents are never sent
        // (`lose-exec`): the executor waits for them (fill timeout 10 s) and is killed meanwhile.
        let s = sim(vec![Fault::LoseExec {
            every: 1,
            times: Some(1),
            filled_only: false,
        }])
        .await;
        let d = common::sim_executor_dir(
            &s,
            "sim-kill9",
            r#"{"risk": {"stale_after_secs": 100000, "max_margin_use": 100, "slippage_points": 1000000}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
        );
        let spawn = |port: u16| {
            let log = d.join(format!("executor-{port}.log"));
            common::spawn_on_sim(&d, s.addr.port(), port, "kill9-token", &[], &log)
        };
        let port = common::free_port;
        type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
        async fn attach(port: u16) -> Ws {
            for _ in 0..200 {
                if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}")).await {
                    ws.send(WsMsg::text("HELLO|kill9-token")).await.expect("send");
                    return ws;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("executor did not listen");
        }
        async fn next_live_bar(ws: &mut Ws) -> (i64, u64) {
            loop {
                let Ok(Some(Ok(WsMsg::Text(t)))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await else {
                    panic!("no bar")
                };
                if let Ok(Message::Bar(b)) = parse(&t)
                    && !b.hist
                {
                    return (b.time, b.seq);
                }
            }
        }
        let sig = |a: &str, t: i64, q: u64| format!("SIGNAL|EURUSD|{a}|0|0.00|TF:M1|BT:{}|SEQ:{q}", oracle_ipc::Iso(t));

        let p1 = port();
        let mut child = spawn(p1);
        let mut ws = attach(p1).await;
        let (t0, q0) = next_live_bar(&mut ws).await;
        ws.send(WsMsg::text(sig("WAIT", t0, q0))).await.expect("send");
        let (t1, q1) = next_live_bar(&mut ws).await;
        ws.send(WsMsg::text(sig("LONG_WEAK", t1, q1))).await.expect("send");
        // Wait until the order's intent is journaled (fsynced before the wire) and the sim has
        // executed it, then kill -9: its execution event never came.
        let journal = d.join("state/journal.jsonl");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            let filled = s.account(DEFAULT_ACCOUNT_ID).await.is_some_and(|a| a.open_positions == 1);
            if text.contains("\"t\":\"intent\"") && filled {
                assert!(!text.contains("\"t\":\"outcome\""), "answer came before the kill");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no intent journaled / order not executed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().expect("kill -9"); // SIGKILL
        let _ = child.wait();
        drop(ws);
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        assert!(!text.contains("\"t\":\"outcome\""), "killed between order and execution event");
        let coid = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["t"] == "intent")
            .and_then(|v| v["coid"].as_str().map(str::to_string))
            .expect("intent coid");
        assert_eq!(s.new_orders_with_client_id(&coid).await, 1);

        // Restart: reconciles (adopts the position), and the predictor's resent SIGNAL is a HOLD.
        let p2 = port();
        let mut child = spawn(p2);
        let mut ws = attach(p2).await;
        ws.send(WsMsg::text(sig("LONG_WEAK", t1, q1))).await.expect("send");
        let ack = loop {
            let Ok(Some(Ok(WsMsg::Text(t)))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await else {
                panic!("no ACK")
            };
            if t.starts_with("ACK|") {
                break t.to_string();
            }
        };
        assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|HOLD|"), "{ack}");
        let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
        assert_eq!((acc.open_positions, acc.deals), (1, 1), "no duplicate order");
        assert_eq!(s.new_orders_with_client_id(&coid).await, 1, "never resent: one NewOrderReq for {coid}");
        let log = std::fs::read_to_string(d.join(format!("executor-{p2}.log"))).unwrap_or_default();
        assert!(
            log.contains("unknown order found by its client order id") && log.contains("position adopted"),
            "looked up by clientOrderId (OrderListReq) and adopted:\n{log}"
        );
        let _ = child.kill();
        let _ = child.wait();
        s.shutdown().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Risk over TLS, driven by the sim's hooks and faults.
// ---------------------------------------------------------------------------------------------

/// Opens EURUSD LONG_WEAK (WAIT, then the transition); returns the next bar's (time, seq).
async fn open_long(e: &mut Engine<LiveBroker>, feed: &mut mpsc::Receiver<Feed>) {
    let (t0, q0) = next_bar(e, feed, "EURUSD").await;
    assert!(signal(e, "EURUSD", "WAIT", t0, q0).await.contains("|HOLD|"));
    let (t1, q1) = next_bar(e, feed, "EURUSD").await;
    let ack = signal(e, "EURUSD", "LONG_WEAK", t1, q1).await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{ack}");
}

async fn halted_by_balance(balance_cents: i64, reason: &str) {
    let s = sim(vec![]).await;
    let d = tmpdir(&format!("sim-halt-{reason}"));
    let (b, mut feed) = live(&s).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    open_long(&mut e, &mut feed).await;
    assert!(s.set_balance(DEFAULT_ACCOUNT_ID, balance_cents).await);
    // The transition to SHORT: the exit runs although HALTED, the entry is refused.
    let (t2, q2) = next_bar(&mut e, &mut feed, "EURUSD").await;
    let ack = signal(&mut e, "EURUSD", "SHORT_WEAK", t2, q2).await;
    assert!(ack.contains(&format!("|FAIL|{reason}|")), "{ack}");
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 0, "the exit ran while halted");
    assert_eq!(acc.deals, 2, "open + close, no new entry");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halted_daily_loss_over_tls_refuses_entries_exits_run() {
    // Day anchor 100,000.00 (the balance at the first start): 5 % floor = 95,000.00.
    halted_by_balance(9_400_000, "HALTED_DAILY_LOSS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halted_max_drawdown_over_tls_refuses_entries_exits_run() {
    // Initial 100,000.00: 10 % drawdown floor = 90,000.00.
    halted_by_balance(8_900_000, "HALTED_MAX_DRAWDOWN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_fault_refuses_the_entry_with_spread() {
    let s = sim(vec![Fault::Spread {
        symbol: "EURUSD".into(),
        points: 500,
        after: 0,
    }])
    .await;
    let _d = tmpdir("sim-spread");
    let (b, mut feed) = live(&s).await;
    let c = from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 100000, "max_margin_use": 100},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05,
                   "max_spread_points": 20}
    }))
    .expect("config");
    let side = Side::new("live", &c, b, None);
    let mut e = Engine::new(c, Some(side), None, Default::default(), None);
    e.reconcile(0).await.expect("reconcile");
    let (t0, q0) = next_bar(&mut e, &mut feed, "EURUSD").await;
    signal(&mut e, "EURUSD", "WAIT", t0, q0).await;
    let (t1, q1) = next_bar(&mut e, &mut feed, "EURUSD").await;
    let ack = signal(&mut e, "EURUSD", "LONG_WEAK", t1, q1).await;
    assert!(ack.contains("|FAIL|SPREAD|"), "{ack}");
    assert_eq!(
        s.account(DEFAULT_ACCOUNT_ID).await.expect("account").deals,
        0
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_close_is_not_taken_for_a_close_outside() {
    // The fill of our ClosePositionReq arrives after its ORDER_ACCEPTED completed the request,
    // so without a request id: the close waiting for it makes it ours (no reconcile, no
    // "closed outside" note).
    let s = sim(vec![]).await;
    let d = tmpdir("sim-own-close");
    let (b, mut feed) = live(&s).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    open_long(&mut e, &mut feed).await;
    let (t2, q2) = next_bar(&mut e, &mut feed, "EURUSD").await;
    let ack = signal(&mut e, "EURUSD", "WAIT", t2, q2).await;
    assert!(ack.starts_with("ACK|EURUSD|WAIT|OK|"), "{ack}");
    assert!(s.position_ids(DEFAULT_ACCOUNT_ID).await.is_empty());
    // Everything the session reports until the next EURUSD bar: no Reconcile among it.
    let mut reconciles = 0;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), feed.recv())
            .await
            .expect("a bar in time")
            .expect("feed open");
        match ev {
            Feed::Reconcile => reconciles += 1,
            Feed::Bar { symbol, .. } if symbol == "EURUSD" => break,
            _ => {}
        }
    }
    assert_eq!(reconciles, 0, "our own close was taken for one outside");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_closed_outside_goes_flat_and_the_drift_ledger_says_why() {
    let s = sim(vec![]).await;
    let d = tmpdir("sim-stopout");
    let (b, mut feed) = live(&s).await;
    let c = cfg();
    let side = Side::new("live", &c, b, None);
    let drift = oracle_executor::drift::DriftLedger::open(&d.join("drift")).expect("drift");
    let mut e = Engine::new(c, Some(side), None, Default::default(), Some(drift));
    e.reconcile(0).await.expect("reconcile");
    // The broker's expected margin (ExpectedMarginReq) for 0.01 lot EURUSD.
    let want = e
        .live
        .as_mut()
        .expect("live")
        .broker
        .expected_margin("EURUSD", 100_000, true)
        .await
        .expect("expected margin");
    open_long(&mut e, &mut feed).await;
    let used = s
        .account(DEFAULT_ACCOUNT_ID)
        .await
        .expect("account")
        .used_margin as f64
        / 100.0;
    assert!(
        want > 0.0 && (used - want).abs() <= want * 0.05,
        "expected {want}, used {used}"
    );
    let pid = s.position_ids(DEFAULT_ACCOUNT_ID).await;
    assert_eq!(pid.len(), 1);
    assert!(s.close_position_outside(DEFAULT_ACCOUNT_ID, pid[0]).await);
    // The close arrives as an execution event nobody asked for: the engine reconciles.
    let (t2, q2) = next_bar(&mut e, &mut feed, "EURUSD").await;
    let ack = signal(&mut e, "EURUSD", "LONG_WEAK", t2, q2).await;
    assert!(
        ack.contains("|WAIT_SYNC|MISSED_ENTRY|"),
        "never chased: {ack}"
    );
    assert_eq!(
        s.account(DEFAULT_ACCOUNT_ID)
            .await
            .expect("account")
            .open_positions,
        0
    );
    drop(e);
    let jsonl = std::fs::read_to_string(d.join("drift.jsonl")).expect("ledger");
    let last: serde_json::Value =
        serde_json::from_str(jsonl.lines().last().expect("row")).expect("json");
    assert_eq!(last["virtual_pos"], "LONG_WEAK");
    assert_eq!(last["real_pos"], "FLAT");
    assert!(
        last["note"]
            .as_str()
            .is_some_and(|n| n.contains(&format!("position {} closed outside", pid[0]))),
        "{last}"
    );
    assert!(last["equity"].as_f64().is_some_and(|e| e > 0.0), "{last}");
    s.shutdown().await;
}

/// `--hold-market-until-predictor` against the sim in `fast` speed (the market steps as fast as
/// the client reads): a slow predictor still gets every live bar in order, the next one only
/// after its SIGNAL was answered, and no signal is STALE.
#[test]
fn hold_market_paces_a_fast_sim_by_a_slow_predictor() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMsg;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let start_ms = common::weekday_minutes_before(now_ms, 5);
        let s = oracle_sim::spawn(SimConfig {
            broker: BrokerConfig {
                speed: Speed::Fast,
                ..BrokerConfig::default()
            },
            symbols: vec![oracle_sim::symbols::synthetic(
                "EURUSD",
                Period::M1,
                3000,
                start_ms,
                7,
            )],
            ..SimConfig::default()
        })
        .await
        .expect("sim");
        let d = common::sim_executor_dir(
            &s,
            "sim-hold",
            r#"{"risk": {"stale_after_secs": 60, "max_margin_use": 100, "slippage_points": 1000000}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
        );
        let port = common::free_port();
        let args = [
            "--hold-market-until-predictor",
            "--hold-timeout-ms",
            "5000",
            "--json",
        ];
        let log = d.join("executor.log");
        let mut child = common::spawn_on_sim(&d, s.addr.port(), port, "hold-token", &args, &log);
        let mut ws = None;
        for _ in 0..200 {
            if let Ok((w, _)) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}")).await {
                ws = Some(w);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ws = ws.expect("executor listens");
        async fn next_text(
            ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
        ) -> String {
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(WsMsg::Text(t)))) => t.to_string(),
                other => panic!("no line: {other:?}"),
            }
        }
        ws.send(WsMsg::text("HELLO|hold-token")).await.expect("send");
        assert_eq!(next_text(&mut ws).await, "WELCOME|V:1");
        // The predictor takes its time before asking HISTORY: the market waits.
        tokio::time::sleep(Duration::from_millis(500)).await;
        ws.send(WsMsg::text("HISTORY|EURUSD|M1|20")).await.expect("send");
        loop {
            let l = next_text(&mut ws).await;
            if l.starts_with("HISTORY_END") {
                break;
            }
            assert!(l.contains("|HIST:1"), "only history before HISTORY_END: {l}");
        }
        let mut last: Option<(i64, u64)> = None;
        let actions = ["WAIT", "LONG_WEAK", "LONG_WEAK", "WAIT", "SHORT_WEAK", "SHORT_WEAK"];
        for action in actions {
            let l = next_text(&mut ws).await;
            let Ok(Message::Bar(b)) = parse(&l) else { panic!("expected a live BAR, got {l}") };
            assert!(!b.hist, "{l}");
            if let Some((t, q)) = last {
                assert_eq!((b.time, b.seq), (t + 60, q + 1), "consecutive, none skipped: {l}");
            }
            last = Some((b.time, b.seq));
            // A slow predictor: nothing else may arrive meanwhile.
            let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
            assert!(quiet.is_err(), "the next bar waits for this bar's SIGNAL: {quiet:?}");
            let sig = format!(
                "SIGNAL|EURUSD|{action}|0|0.00|TF:M1|BT:{}|SEQ:{}",
                oracle_ipc::Iso(b.time),
                b.seq
            );
            ws.send(WsMsg::text(sig)).await.expect("send");
            let ack = next_text(&mut ws).await;
            assert!(ack.starts_with(&format!("ACK|EURUSD|{action}|")), "{ack}");
            assert!(!ack.contains("STALE_SIGNAL"), "{ack}");
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(d.join("executor.log")).unwrap_or_default();
        assert!(log.contains("market_released"), "{log}");
        assert!(!log.contains("STALE_SIGNAL"), "{log}");
        s.shutdown().await;
    });
}

// ---------------------------------------------------------------------------------------------
// A batch of SIGNALs: the orders of all models in flight together over TLS.
// ---------------------------------------------------------------------------------------------

/// Bars fed to the engine, per symbol, and the bar each symbol's last signal was for.
#[derive(Default)]
struct Bars {
    seen: std::collections::HashMap<String, std::collections::BTreeSet<i64>>,
    signaled: std::collections::HashMap<String, i64>,
}

impl Bars {
    /// For every symbol, the first streamed bar after the one its last signal was for (the
    /// latest streamed one before any signal), waiting for the market where needed.
    async fn next(
        &mut self,
        e: &mut Engine<LiveBroker>,
        feed: &mut mpsc::Receiver<Feed>,
    ) -> Vec<i64> {
        loop {
            let pick: Vec<Option<i64>> = SYMS
                .iter()
                .map(|s| {
                    let seen = self.seen.get(*s)?;
                    match self.signaled.get(*s) {
                        Some(l) => seen.range(l + 1..).next().copied(),
                        None => seen.last().copied(),
                    }
                })
                .collect();
            if pick.iter().all(Option::is_some) {
                let v: Vec<i64> = pick.into_iter().flatten().collect();
                for (s, t) in SYMS.iter().zip(&v) {
                    self.signaled.insert(s.to_string(), *t);
                }
                return v;
            }
            let ev = tokio::time::timeout(Duration::from_secs(20), feed.recv())
                .await
                .expect("a bar in time")
                .expect("feed open");
            match ev {
                Feed::Reconcile => {
                    let now = e.live.as_ref().expect("live").broker.clock()();
                    e.reconcile(now).await.expect("reconcile");
                }
                Feed::Bar {
                    symbol, tf, bar, ..
                } => {
                    e.on_bar(&key_of(&symbol, tf).unwrap(), bar.time, bar.close, 0.0);
                    self.seen.entry(symbol).or_default().insert(bar.time);
                }
                Feed::Reconnected | Feed::BarRevised { .. } | Feed::Quote { .. } => {}
            }
        }
    }
}

/// One SIGNAL per symbol of `SYMS` (bar times `bts`), handled as one batch.
async fn batch_of(e: &mut Engine<LiveBroker>, action: &str, bts: &[i64]) -> Vec<String> {
    let lines: Vec<String> = SYMS
        .iter()
        .zip(bts)
        .enumerate()
        .map(|(k, (sym, bt))| {
            format!(
                "SIGNAL|{sym}|{action}|0|0.00|TF:M1|BT:{}|SEQ:{k}",
                oracle_ipc::Iso(*bt)
            )
        })
        .collect();
    let sigs: Vec<oracle_ipc::Signal<'_>> = lines
        .iter()
        .map(|l| match parse(l) {
            Ok(Message::Signal(s)) => s,
            _ => panic!("{l}"),
        })
        .collect();
    let now = e.live.as_ref().expect("live").broker.clock()();
    e.on_signals(now, &sigs)
        .await
        .into_iter()
        .map(|a| a.line)
        .collect()
}

fn ticket(ack: &str) -> u64 {
    ack.split('|')
        .find_map(|f| f.strip_prefix("T:"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no ticket in {ack}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_orders_over_the_sim_is_filled_and_correlated_with_a_rejection_inside() {
    // The first US500 order is refused: the middle one of the first batch.
    let s = sim(vec![Fault::Reject {
        code: oracle_sim::msg::ErrorCode::NotEnoughMoney,
        every: 1,
        symbol: Some("US500".into()),
        times: Some(1),
        via_error_res: false,
    }])
    .await;
    let d = tmpdir("sim-batch");
    let (b, mut feed) = live(&s).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    let mut bars = Bars::default();
    let t0 = bars.next(&mut e, &mut feed).await;
    let acks = batch_of(&mut e, "WAIT", &t0).await;
    assert!(acks.iter().all(|a| a.contains("|HOLD|")), "{acks:?}");
    // Three entries at once.
    let t1 = bars.next(&mut e, &mut feed).await;
    let acks = batch_of(&mut e, "LONG_STRONG", &t1).await;
    assert!(
        acks[0].starts_with("ACK|EURUSD|LONG_STRONG|OK|T:"),
        "{acks:?}"
    );
    assert!(
        acks[1].starts_with("ACK|US500|LONG_STRONG|FAIL|BROKER_NOT_ENOUGH_MONEY|"),
        "{acks:?}"
    );
    assert!(
        acks[2].starts_with("ACK|AAPL|LONG_STRONG|OK|T:"),
        "{acks:?}"
    );
    let pos = positions(&mut e).await;
    assert_eq!(pos.len(), 2);
    for (ack, sym, vol) in [(&acks[0], "EURUSD", 500_000), (&acks[2], "AAPL", 500)] {
        let p = pos
            .iter()
            .find(|p| p.position_id == ticket(ack))
            .unwrap_or_else(|| panic!("no position for {ack}"));
        assert_eq!(
            (p.symbol.as_str(), p.volume, p.buy),
            (sym, vol, true),
            "{ack}"
        );
    }
    // Exits and entries at once: EURUSD and AAPL close and reverse, US500 enters.
    let t2 = bars.next(&mut e, &mut feed).await;
    let acks = batch_of(&mut e, "SHORT_WEAK", &t2).await;
    assert!(acks.iter().all(|a| a.contains("|OK|T:")), "{acks:?}");
    let pos = positions(&mut e).await;
    assert_eq!(pos.len(), 3);
    let mut tickets = std::collections::HashSet::new();
    for ((ack, sym), vol) in acks.iter().zip(SYMS).zip([100_000, 10, 100]) {
        let t = ticket(ack);
        assert!(tickets.insert(t), "distinct tickets: {acks:?}");
        let p = pos
            .iter()
            .find(|p| p.position_id == t)
            .unwrap_or_else(|| panic!("no position for {ack}"));
        assert_eq!(
            (p.symbol.as_str(), p.volume, p.buy),
            (sym, vol, false),
            "{ack}"
        );
    }
    // Each order reached the broker once.
    for (sym, bt) in SYMS.iter().zip(&t2) {
        let key = key_of(sym, Timeframe::M1).unwrap();
        let coid = oracle_executor::journal::client_order_id(
            &key,
            *bt,
            oracle_executor::journal::Op::Open,
        );
        assert_eq!(s.new_orders_with_client_id(&coid).await, 1, "{coid}");
    }
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 3);
    assert_eq!(
        acc.deals,
        2 + 2 + 3,
        "2 entries, then 2 exits and 3 entries"
    );
    s.shutdown().await;
}

async fn positions(e: &mut Engine<LiveBroker>) -> Vec<oracle_executor::broker::BrokerPosition> {
    let b = &mut e.live.as_mut().expect("live").broker;
    b.reconcile().await.expect("positions")
}

/// `--bar-close live` against a broker whose history differs from its live stream (the known
/// server bug: a bar closing at its low comes back from history with its high at
/// max(open, close)): every bar sent from the live stream's final snapshot that history
/// contradicts comes back as `Feed::BarRevised` carrying history's bar, and never a bar that
/// history confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_that_differs_from_a_live_bar_comes_back_as_a_revision() {
    let mut data =
        oracle_sim::symbols::synthetic("EURUSD", Period::M1, 3000, common::market_start_ms(), 11);
    // Every other bar closes at its low with its high above its open: history (with the bug)
    // says high = open for those.
    for (i, b) in data.bars.iter_mut().enumerate() {
        if i % 2 == 0 {
            b.close = b.low;
            b.high = b.high.max(b.open + 5);
        }
    }
    let sim = common::spawn_sim(vec![data], vec![Fault::DeltaHighBug]).await;
    let (_b, mut feed) = common::live_session_with(&sim, &["EURUSD"], true).await;
    let mut sent: std::collections::HashMap<i64, oracle_executor::broker::Bar> = Default::default();
    let mut revised = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while revised.len() < 4 && tokio::time::Instant::now() < until {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await else {
            break;
        };
        match ev {
            Feed::Bar { bar, .. } => {
                sent.insert(bar.time, bar);
            }
            Feed::BarRevised {
                symbol,
                tf,
                bar,
                sent: was,
            } => {
                assert_eq!((symbol.as_str(), tf), ("EURUSD", Timeframe::M1));
                // It revises a bar that went out, as it went out.
                assert_eq!(sent.get(&bar.time), Some(&was), "{bar:?}");
                // History's version: the bug's shape, everything else the same.
                assert_eq!(was.close, was.low, "{was:?}");
                assert!(was.high > was.open.max(was.close), "{was:?}");
                assert_eq!(bar.high, bar.open.max(bar.close), "{bar:?}");
                assert_eq!(
                    (bar.time, bar.open, bar.low, bar.close, bar.volume),
                    (was.time, was.open, was.low, was.close, was.volume)
                );
                revised.push(bar.time);
            }
            _ => {}
        }
    }
    assert!(
        revised.len() >= 4,
        "revisions {revised:?} of {} bars sent",
        sent.len()
    );
    // Bars that history confirms are never revised.
    for t in &revised {
        let b = sent[t];
        assert!(b.close == b.low && b.high > b.open, "{b:?}");
    }
}

/// Nobody reads the broker feed (its receiver dropped) while bars keep closing: the event task
/// goes on, so quotes still move and an order still gets its fill (before: the first bar it
/// could not hand over ended the event task, and with it the cTrader driver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_bar_feed_leaves_quotes_and_fills_flowing() {
    use oracle_executor::broker::{OrderReq, OrderResult};
    let s = sim(vec![]).await;
    let (mut b, feed) = live(&s).await;
    drop(feed);
    // At 240x an M1 bar closes every 250 ms: let several go by with nobody to take them.
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while b.quote("EURUSD").is_none() {
        assert!(tokio::time::Instant::now() < until, "no quote");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = b.quote("EURUSD").expect("quote");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut moved = false;
    while tokio::time::Instant::now() < until {
        if b.quote("EURUSD").expect("quote") != first {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(moved, "quotes stopped once nobody read the bars");
    assert!(
        b.connected(),
        "the session went down with the feed's reader"
    );
    let q = b.quote("EURUSD").expect("quote");
    let r = b
        .open(&OrderReq {
            symbol: "EURUSD".into(),
            client_order_id: "feed-gone-1".into(),
            label: "EURUSD_M1".into(),
            buy: true,
            volume: 100_000,
            base_price: q.ask,
            slippage_points: 1000,
        })
        .await;
    assert!(matches!(r, OrderResult::Filled { .. }), "{r:?}");
    s.shutdown().await;
}
