//! The executor against `oracle-sim` over real TLS (needs the default `live` feature):
//! `cargo test -p oracle-executor --test sim`.
#![cfg(feature = "live")]

mod common;

use std::time::Duration;

use common::tmpdir;
use oracle_ctrader::driver::{ClientConfig, Endpoint, TlsMode};
use oracle_ctrader::{Credentials, SessionConfig};
use oracle_executor::broker::Broker;
use oracle_executor::config::{ExecutorConfig, from_value};
use oracle_executor::engine::{Engine, Side};
use oracle_executor::journal::Journal;
use oracle_executor::live::{LiveBroker, LiveConfig, connect};
use oracle_executor::policy::ModelKey;
use oracle_executor::shell::Feed;
use oracle_ipc::{Message, Timeframe, parse};
use oracle_sim::bars::Period;
use oracle_sim::config::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use oracle_sim::{BrokerConfig, Fault, SimConfig, SimHandle, Speed};
use tokio::sync::mpsc;

const SYMS: [&str; 3] = ["EURUSD", "US500", "AAPL"];

thread_local! {
    static LAST: std::cell::RefCell<std::collections::HashMap<String, i64>> = Default::default();
}

async fn sim(faults: Vec<Fault>) -> SimHandle {
    // Market time near the wall clock (the session closes bars by the live stream and the clock).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let start_ms = (now_ms / 60_000 - 500) * 60_000;
    let symbols = SYMS
        .iter()
        .enumerate()
        .map(|(i, s)| oracle_sim::symbols::synthetic(s, Period::M1, 3000, start_ms, 7 + i as u64))
        .collect();
    let broker = BrokerConfig {
        speed: Speed::Times(240.0),
        faults,
        ..BrokerConfig::default()
    };
    oracle_sim::spawn(SimConfig {
        broker,
        symbols,
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

fn cfg() -> ExecutorConfig {
    from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 100000, "max_margin_use": 100},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
        "US500": {"enabled": true, "lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50},
        "AAPL": {"enabled": true, "lot_weak": 1, "lot_moderate": 3, "lot_strong": 5}
    }))
    .expect("config")
}

async fn live(s: &SimHandle) -> (LiveBroker, mpsc::Receiver<Feed>) {
    let creds = Credentials {
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
        access_token: DEFAULT_ACCESS_TOKEN.into(),
        refresh_token: None,
    };
    let session = SessionConfig::new(creds, DEFAULT_ACCOUNT_ID);
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: s.addr.port(),
    };
    let client = ClientConfig::new(
        ep,
        TlsMode::CustomCa(s.ca_pem.clone().into_bytes()),
        session,
    );
    connect(LiveConfig {
        client,
        symbols: SYMS.iter().map(|s| s.to_string()).collect(),
        streams: SYMS
            .iter()
            .map(|s| (s.to_string(), Timeframe::M1))
            .collect(),
        fill_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(10),
    })
    .await
    .expect("live session")
}

fn engine(dir: &std::path::Path, b: LiveBroker) -> Engine<LiveBroker> {
    let c = cfg();
    let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
    let acks = j.1.acks.clone();
    let side = Side::new("live", &c, b, Some(j));
    Engine::new(c, Some(side), None, acks, None)
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
        if let Feed::Bar {
            symbol, tf, bar, ..
        } = ev
        {
            e.on_bar(&ModelKey::new(&symbol, tf), bar.time, bar.close, 0.0);
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

async fn signal(e: &mut Engine<LiveBroker>, sym: &str, action: &str, bt: i64, seq: u64) -> String {
    let l = format!(
        "SIGNAL|{sym}|{action}|0|0.00|TF:M1|BT:{}|SEQ:{seq}",
        oracle_ipc::Iso(bt)
    );
    let Ok(Message::Signal(s)) = parse(&l) else {
        panic!("{l}")
    };
    let now = e.live.as_ref().expect("live").broker.clock()();
    e.on_signal(now, &s).await.line
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
    use oracle_executor::server::{Metrics, Secret};
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

fn model_zip(path: &std::path::Path, symbol: &str, tf: &str) {
    use std::io::Write as _;
    let f = std::fs::File::create(path).expect("zip file");
    let mut z = zip::ZipWriter::new(f);
    z.set_comment(format!(r#"{{"format_version":"2.0","symbol":{{"name":"{symbol}","clean":"{symbol}","timeframe":"{tf}"}}}}"#));
    z.start_file("x.txt", zip::write::SimpleFileOptions::default())
        .expect("member");
    z.write_all(b"x").expect("write");
    z.finish().expect("finish");
}

#[test]
fn kill_9_between_order_and_execution_then_restart_reconciles_without_duplicate() {
    use futures_util::{SinkExt, StreamExt};
    use std::process::{Command, Stdio};
    use tokio_tungstenite::tungstenite::Message as WsMsg;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        // Every response is delayed: the order executes at once, its answer comes 0.8 s later.
        let s = sim(vec![Fault::Delay { ms: 800 }]).await;
        let d = tmpdir("sim-kill9");
        let models = d.join("models");
        std::fs::create_dir_all(&models).expect("models");
        model_zip(&models.join("EURUSD_M1.zip"), "EURUSD", "M1");
        std::fs::write(d.join("ca.pem"), &s.ca_pem).expect("ca");
        std::fs::write(
            d.join("executor_config.json"),
            r#"{"risk": {"stale_after_secs": 100000, "max_margin_use": 100, "slippage_points": 1000000}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
        )
        .expect("config");
        let spawn = |port: u16| {
            Command::new(env!("CARGO_BIN_EXE_oracle-executor"))
                .env("ORACLE_IPC_TOKEN", "kill9-token")
                .env("CTRADER_CLIENT_ID", DEFAULT_CLIENT_ID)
                .env("CTRADER_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
                .env("CTRADER_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN)
                .env_remove("CTRADER_REFRESH_TOKEN")
                .arg("--config").arg(d.join("executor_config.json"))
                .arg("--models").arg(&models)
                .arg("--state").arg(d.join("state"))
                .arg("--listen").arg(format!("127.0.0.1:{port}"))
                .arg("--broker").arg(format!("127.0.0.1:{}", s.addr.port()))
                .arg("--account-id").arg(DEFAULT_ACCOUNT_ID.to_string())
                .arg("--ca").arg(d.join("ca.pem"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn executor")
        };
        let port = || std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
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
        // executed it, then kill -9 before its answer (delayed 0.8 s) reaches the executor.
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
        let _ = child.kill();
        let _ = child.wait();
        s.shutdown().await;
    });
}
