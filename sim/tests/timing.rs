//! The timing hook (`SimConfig::timing_out`, `--timing-out`) over real TLS: the lines the
//! end-to-end benchmark and the chaos proof read. No durations are asserted, only what each line
//! says and that its wall clock lies within the test's.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use oracle_ctrader::proto::{self as pb, Payload};
use oracle_sim::bars::{Period, PeriodExt};
use oracle_sim::config::Fault;
use serde_json::Value;
use support::*;
use tokio::io::AsyncWriteExt as _;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn timing_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oracle-sim-timing-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("timing.jsonl") // the folder is created by the sim
}

fn read_lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Every line has `ev` and `t_us` within [from, to]; per `ev`, `t_us` never goes back.
fn check_clock(lines: &[Value], from: i64, to: i64) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for l in lines {
        let ev = l["ev"].as_str().unwrap().to_string();
        let t = l["t_us"].as_i64().unwrap();
        assert!(from <= t && t <= to, "{l} outside [{from}, {to}]");
        if let Some(prev) = last.insert(ev, t) {
            assert!(prev <= t, "t_us went back at {l}");
        }
    }
}

fn of<'a>(lines: &'a [Value], ev: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["ev"] == ev).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_hook_stamps_bar_closes_and_new_orders() {
    let path = timing_path("bars");
    let from = now_us();
    let mut cfg = config();
    cfg.timing_out = Some(path.clone());
    let sim = start(cfg).await;
    assert!(path.exists(), "created at start");
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let r = c
        .request(pb::ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: ACC,
            symbol_id: vec![1],
            subscribe_to_spot_timestamp: Some(true),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::SubscribeSpotsRes(_)), "{r:?}");
    let r = c
        .request(pb::ProtoOaSubscribeLiveTrendbarReq {
            ctid_trader_account_id: ACC,
            period: Period::M15.number(),
            symbol_id: 1,
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::SubscribeLiveTrendbarRes(_)), "{r:?}");
    // the bars the client sees close: its forming M15 bar moves to a new open time
    let mut forming: Option<i64> = None;
    let mut seen_closed: Vec<i64> = Vec::new();
    while seen_closed.len() < 3 {
        let e = c.next().await;
        let Payload::SpotEvent(s) = e.payload else {
            continue;
        };
        for tb in &s.trendbar {
            assert_eq!(tb.period, Some(Period::M15.number()));
            let t = decode(tb).time_ms;
            if let Some(prev) = forming.replace(t) {
                if prev != t {
                    seen_closed.push(prev / 1000);
                }
            }
        }
    }
    let coid = "ot-EURUSD-M15-1704067200-O";
    let order = pb::ProtoOaNewOrderReq {
        client_order_id: Some(coid.into()),
        ..market_order(1, 1, 100_000)
    };
    let r = c.request(order).await;
    // filled, or MARKET_CLOSED when the fast replay already ran out: decoded either way
    assert!(
        matches!(r, Payload::ExecutionEvent(_) | Payload::OrderErrorEvent(_)),
        "{r:?}"
    );
    assert_eq!(sim.new_orders_with_client_id(coid).await, 1);
    let by_coid = sim.new_orders_by_client_id().await;
    assert_eq!(by_coid.get(coid), Some(&1), "{by_coid:?}");
    // An exit: its request line names the position it closes (the position just opened, or a
    // made-up one when the order was refused: the line is written when the request is decoded,
    // whatever the answer).
    let position_id = match &r {
        Payload::ExecutionEvent(e) => e.position.as_ref().map_or(4242, |p| p.position_id),
        _ => 4242,
    };
    let _ = c
        .request(pb::ProtoOaClosePositionReq {
            ctid_trader_account_id: ACC,
            position_id,
            volume: 100_000,
            ..Default::default()
        })
        .await;
    assert_eq!(sim.fault_disconnects().await, 0);
    drop(c);
    sim.shutdown().await;
    let to = now_us();

    let lines = read_lines(&path);
    check_clock(&lines, from, to);
    let closes = of(&lines, "bar_close");
    assert!(!closes.is_empty(), "{lines:?}");
    for l in &closes {
        assert_eq!(l["symbol"], "EURUSD", "{l}");
        assert_eq!(l["period"], "M15", "{l}");
        assert!(l["conn"].as_u64().is_some(), "{l}");
    }
    let stamped: Vec<i64> = closes
        .iter()
        .map(|l| l["bar_time"].as_i64().unwrap())
        .collect();
    // one line per closed bar, in order; every bar the client saw close is among them
    assert!(stamped.windows(2).all(|w| w[0] < w[1]), "{stamped:?}");
    for t in &seen_closed {
        assert!(
            stamped.contains(t),
            "bar {t} seen closed, not stamped: {stamped:?}"
        );
    }
    let orders = of(&lines, "new_order");
    assert_eq!(orders.len(), 1, "{lines:?}");
    let o = orders[0];
    assert_eq!(o["client_order_id"], coid);
    assert_eq!(o["symbol"], "EURUSD");
    assert_eq!(o["side"], "BUY");
    assert_eq!(o["volume"], 100_000);
    assert_eq!(o["conn"], closes[0]["conn"]);
    // the order was decoded after the bars the client had seen close were written
    let last_seen = closes
        .iter()
        .find(|l| l["bar_time"] == *seen_closed.last().unwrap())
        .unwrap();
    assert!(last_seen["t_us"].as_i64() <= o["t_us"].as_i64());
    // every other request is a `request` line naming its kind, in the order sent (the login's
    // application and account auth first, then the two subscriptions, before the order and the
    // exit); no heartbeats
    let kinds: Vec<&str> = of(&lines, "request")
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .filter(|k| *k != "ClosePositionReq")
        .collect();
    assert_eq!(
        kinds
            .iter()
            .rev()
            .take(2)
            .rev()
            .copied()
            .collect::<Vec<_>>(),
        ["SubscribeSpotsReq", "SubscribeLiveTrendbarReq"],
        "{kinds:?}"
    );
    assert!(kinds.contains(&"ApplicationAuthReq"), "{kinds:?}");
    assert!(kinds.contains(&"AccountAuthReq"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k.contains("Heartbeat")), "{kinds:?}");
    let exits: Vec<&Value> = of(&lines, "request")
        .into_iter()
        .filter(|l| l["kind"] == "ClosePositionReq")
        .collect();
    assert_eq!(exits.len(), 1, "{lines:?}");
    assert_eq!(exits[0]["position_id"], position_id, "{}", exits[0]);
    assert!(o["t_us"].as_i64() <= exits[0]["t_us"].as_i64());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A simulator with `fault` and the timing hook on: (sim, timing file, the instant before).
async fn with_fault(name: &str, fault: Fault) -> (oracle_sim::SimHandle, PathBuf, i64) {
    let path = timing_path(name);
    let from = now_us();
    let mut cfg = config();
    cfg.broker.faults = vec![fault];
    cfg.timing_out = Some(path.clone());
    (start(cfg).await, path, from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_hook_records_fault_disconnects() {
    let (sim, path, from) = with_fault(
        "drop",
        Fault::DropAfter {
            after: 4,
            times: Some(1),
        },
    )
    .await;
    let mut c = Client::connect(&sim).await;
    c.login().await; // 2 frames
    c.request(pb::ProtoOaVersionReq::default()).await; // 3
    c.send(pb::ProtoOaVersionReq::default()).await; // 4 → then reset
    assert!(matches!(c.recv_raw(WAIT).await, Recv::Msg(_)));
    let r = c.recv_raw(WAIT).await;
    assert!(matches!(r, Recv::Eof | Recv::Err(_)), "{r:?}");
    assert_eq!(sim.fault_disconnects().await, 1);
    // times=1: the next connection lives, then the client leaves
    let mut c = Client::connect(&sim).await;
    c.login().await;
    let _ = c.stream.shutdown().await;
    drop(c);
    // the server sees the peer go
    let deadline = std::time::Instant::now() + WAIT;
    while sim.connections().await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(sim.fault_disconnects().await, 1);
    sim.shutdown().await;
    let to = now_us();

    let lines = read_lines(&path);
    check_clock(&lines, from, to);
    let disc = of(&lines, "disconnect");
    assert_eq!(disc.len(), 2, "{lines:?}");
    let reason = disc[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("fault") && reason.contains("drop"),
        "{reason}"
    );
    assert!(disc[0]["conn"].as_u64().is_some());
    assert_ne!(disc[0]["conn"], disc[1]["conn"]);
    assert!(of(&lines, "new_order").is_empty());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_hook_records_a_silence_fault() {
    let (sim, path, from) = with_fault(
        "silence",
        Fault::Silence {
            after: 2,
            times: Some(1),
        },
    )
    .await;
    let mut c = Client::connect(&sim).await;
    c.login().await; // 2 frames, then nothing more
    c.send(pb::ProtoOaVersionReq::default()).await;
    let r = c.recv_raw(std::time::Duration::from_millis(200)).await;
    assert!(matches!(r, Recv::Timeout), "{r:?}");
    assert_eq!(sim.fault_disconnects().await, 1);
    sim.shutdown().await;
    let to = now_us();
    let lines = read_lines(&path);
    check_clock(&lines, from, to);
    let disc = of(&lines, "disconnect");
    assert_eq!(disc.len(), 1, "{lines:?}");
    let reason = disc[0]["reason"].as_str().unwrap();
    assert!(reason.contains("silence"), "{reason}");
    drop(c);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn timing_hook_is_off_by_default() {
    let cfg = config();
    assert!(cfg.timing_out.is_none());
    let args = oracle_sim::cli::Args::try_parse_from([
        "oracle-sim",
        "--synthetic",
        "10",
        "--timing-out",
        "out/t.jsonl",
    ])
    .unwrap();
    let sc = oracle_sim::cli::sim_config(&args).unwrap();
    assert_eq!(sc.timing_out, Some(PathBuf::from("out/t.jsonl")));
}
