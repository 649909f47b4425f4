//! `--dry-run`: the executor on the live broker feed (the simulator, over TLS) trading the paper
//! book only. `cargo test -p oracle-executor --test dry_run`.
#![cfg(feature = "live")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    ack_of, free_port, kill_and_wait, next_text, signal_line, sim_executor_dir, spawn_on_sim,
    ws_connect,
};
use futures_util::SinkExt;
use oracle_executor::broker::{Broker, OrderReq, OrderResult};
use oracle_ipc::{Message, parse};
use oracle_sim::SimHandle;
use oracle_sim::config::DEFAULT_ACCOUNT_ID;
use tokio_tungstenite::tungstenite::Message as WsMsg;

const TOKEN: &str = "dry-run-token";
/// How long a bar or an ACK may take to come.
const WAIT: Duration = Duration::from_secs(60);

/// The runtime the tests drive the sim and the executor's WebSocket on.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt")
}

/// A config trading EURUSD at 0.01 / 0.03 / 0.05 lot with no stale or slippage limit in the
/// way.
const CONFIG: &str = r#"{"risk": {"stale_after_secs": 100000, "max_margin_use": 100, "slippage_points": 1000000}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#;

/// Runs the executor in `mode` on `s` over the folder `d`: answers `actions` in turn, each for
/// the next live (not history) EURUSD bar, then kills it (kill -9). Its ACKs and its log.
async fn run_executor(
    d: &Path,
    s: &SimHandle,
    mode: &str,
    actions: &[&str],
) -> (Vec<String>, String) {
    let port = free_port();
    let log = d.join(format!("executor-{port}.log"));
    let child = spawn_on_sim(d, s.addr.port(), port, TOKEN, &[mode], &log);
    let mut ws = ws_connect(port, 300)
        .await
        .expect("executor did not listen");
    ws.send(WsMsg::text(format!("HELLO|{TOKEN}")))
        .await
        .expect("send");
    let mut acks = Vec::new();
    for a in actions {
        let bar = loop {
            let t = next_text(&mut ws, WAIT).await.expect("no bar");
            if let Ok(Message::Bar(b)) = parse(&t)
                && !b.hist
                && b.symbol == "EURUSD"
            {
                break (b.time, b.seq);
            }
        };
        let line = signal_line(("EURUSD", "M1"), a, 0, bar);
        let ack = ack_of(&mut ws, line, WAIT).await;
        acks.push(ack.unwrap_or_else(|| panic!("no ACK for {a}")));
    }
    kill_and_wait(child);
    drop(ws);
    let log = std::fs::read_to_string(log).unwrap_or_default();
    (acks, log)
}

/// The journal's records of type `t`.
fn records(path: &Path, t: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["t"] == t)
        .collect()
}

/// A position opened on the sim account by hand (not the executor's): the dry run must list it
/// and leave it alone.
async fn manual_position(s: &SimHandle) -> u64 {
    let (mut b, _feed) = common::live_session(s, &["EURUSD"]).await;
    let mut ask = None;
    for _ in 0..200 {
        ask = b.quote("EURUSD").map(|q| q.ask);
        if ask.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = OrderReq {
        symbol: "EURUSD".into(),
        client_order_id: "manual-1".into(),
        label: "manual".into(),
        buy: true,
        volume: 100_000,
        base_price: ask.expect("a EURUSD quote"),
        slippage_points: 1_000_000,
    };
    match b.open(&req).await {
        OrderResult::Filled { position_id, .. } => position_id,
        other => panic!("manual order: {other:?}"),
    }
}

#[test]
fn a_dry_run_trades_the_paper_book_on_the_live_feed_sends_no_order_and_resumes_after_a_restart() {
    rt().block_on(async {
        let s = common::sim3(vec![]).await;
        let d = sim_executor_dir(&s, "dry-run", CONFIG);
        let manual = manual_position(&s).await;
        let before = s.trading_requests().await;
        assert_eq!(before, 1, "the manual order only");

        // First run: WAIT, then LONG_WEAK (an entry), then SHORT_WEAK (a reversal); then kill
        // -9: the paper book (in memory) is gone; its journal is not.
        let (acks, log1) =
            run_executor(&d, &s, "--dry-run", &["WAIT", "LONG_WEAK", "SHORT_WEAK"]).await;
        let ack = &acks[0];
        assert!(ack.starts_with("ACK|EURUSD|WAIT|"), "{ack}");
        let ack = &acks[1];
        assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{ack}");
        let ack = &acks[2];
        assert!(ack.starts_with("ACK|EURUSD|SHORT_WEAK|OK|T:"), "{ack}");
        let journal = d.join("state/paper-journal.jsonl");
        let filled = |j: &Path| {
            records(j, "outcome")
                .into_iter()
                .filter(|o| o["result"] == "filled")
                .count()
        };
        // The entry, then the reversal's close and entry: filled in the paper book.
        assert_eq!(filled(&journal), 3, "paper fills journaled");
        let short_pid = records(&journal, "outcome")
            .last()
            .and_then(|o| o["position_id"].as_u64())
            .expect("the short's position id");
        assert!(
            log1.contains("1 position(s) open on the broker account are left alone"),
            "the broker's open position is listed and left alone:\n{log1}"
        );

        // Restart: the paper book resumes the short from its journal; WAIT closes it there.
        let (acks, _) = run_executor(&d, &s, "--dry-run", &["WAIT"]).await;
        let ack = &acks[0];
        assert!(ack.starts_with("ACK|EURUSD|WAIT|OK|T:"), "{ack}");
        let closes: Vec<_> = records(&journal, "intent")
            .into_iter()
            .filter(|i| i["op"] == "close")
            .collect();
        assert_eq!(
            closes.last().and_then(|c| c["position_id"].as_u64()),
            Some(short_pid),
            "the resumed short is the one closed: {closes:?}"
        );
        assert_eq!(filled(&journal), 4, "the close filled in the paper book");

        // The ledger has the transitions' rows, on the paper side.
        let ledger = std::fs::read_to_string(d.join("state/drift.jsonl")).expect("drift ledger");
        let rows: Vec<serde_json::Value> = ledger
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &serde_json::Value| r["ack"] == "OK")
            .collect();
        assert_eq!(rows.len(), 3, "{ledger}");
        assert_eq!(rows[0]["paper_pos"], "LONG_WEAK", "{ledger}");
        assert_eq!(rows[1]["paper_pos"], "SHORT_WEAK", "{ledger}");
        assert_eq!(rows[2]["paper_pos"], "FLAT", "{ledger}");
        // The resumed book's balance carries the first run's closed trade: flat at the end, its
        // equity is the starting balance plus both trades' P&L (1,000 units each).
        let fills: Vec<(u64, f64)> = records(&journal, "outcome")
            .into_iter()
            .filter(|o| o["result"] == "filled")
            .map(|o| {
                (
                    o["position_id"].as_u64().expect("id"),
                    o["price"].as_f64().expect("price"),
                )
            })
            .collect();
        let prices =
            |pid: u64| -> Vec<f64> { fills.iter().filter(|f| f.0 == pid).map(|f| f.1).collect() };
        let long = prices(fills[0].0);
        let short = prices(short_pid);
        assert_ne!(
            fills[0].0, short_pid,
            "a resumed book does not reuse a position id"
        );
        assert_eq!((long.len(), short.len()), (2, 2), "{fills:?}");
        let want = 100_000.0 + (long[1] - long[0]) * 1000.0 + (short[0] - short[1]) * 1000.0;
        let got = rows[2]["paper_equity"].as_f64().expect("paper equity");
        assert!(
            (got - want).abs() < 1e-6,
            "paper equity {got}, want {want}: {ledger}"
        );

        // The broker got no order request of any kind, and its position is untouched.
        assert_eq!(
            s.trading_requests().await,
            before,
            "no NewOrderReq, ClosePositionReq or amend from the dry run"
        );
        assert_eq!(
            s.position_ids(DEFAULT_ACCOUNT_ID).await,
            vec![manual as i64]
        );
        s.shutdown().await;
    });
}

/// A dry run's state folder taken live (`--with-paper` in place of `--dry-run`, the runbook's
/// "go live"): the paper book is rebuilt from its journal at that start too, so the paper long
/// of the dry run is held beside live, no "closed outside" drift is reported for it, and the
/// next transition closes it in the paper book.
#[test]
fn a_dry_run_state_folder_started_with_paper_keeps_the_paper_positions_and_reports_no_closed_outside_drift()
 {
    rt().block_on(async {
        let s = common::sim3(vec![]).await;
        let d = sim_executor_dir(&s, "dry-then-live", CONFIG);

        // The dry run: WAIT, then LONG_WEAK: a long in the paper book.
        let (acks, _) = run_executor(&d, &s, "--dry-run", &["WAIT", "LONG_WEAK"]).await;
        let ack = &acks[0];
        assert!(ack.starts_with("ACK|EURUSD|WAIT|"), "{ack}");
        let ack = &acks[1];
        assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{ack}");
        let journal = d.join("state/paper-journal.jsonl");
        let long_pid = records(&journal, "outcome")
            .iter()
            .find(|o| o["result"] == "filled")
            .and_then(|o| o["position_id"].as_u64())
            .expect("the paper long's fill");

        // Live, with the paper book beside it: the model is flat live (nothing was sent), long
        // on paper. WAIT: live holds, the paper book closes its long.
        let (acks, log2) = run_executor(&d, &s, "--with-paper", &["WAIT"]).await;
        let ack = &acks[0];
        assert!(ack.starts_with("ACK|EURUSD|WAIT|"), "{ack}");
        assert!(
            !log2.contains("closed outside the executor"),
            "the dry run's paper long is not taken as closed outside:\n{log2}"
        );
        let ledger = std::fs::read_to_string(d.join("state/drift.jsonl")).expect("drift ledger");
        assert!(
            !ledger.contains("closed outside"),
            "no closed-outside drift for the paper book:\n{ledger}"
        );
        let closes: Vec<u64> = records(&journal, "intent")
            .into_iter()
            .filter(|i| i["op"] == "close")
            .filter_map(|i| i["position_id"].as_u64())
            .collect();
        assert_eq!(
            closes,
            vec![long_pid],
            "the paper book closes the dry run's long"
        );
        let filled = records(&journal, "outcome")
            .into_iter()
            .filter(|o| o["result"] == "filled")
            .count();
        assert_eq!(filled, 2, "the close filled in the paper book");
        s.shutdown().await;
    });
}

/// The `ExecStart=` command of a unit file (continuation lines joined; the empty reset of a
/// drop-in skipped), split into words.
fn exec_start(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .rfind(|v| !v.trim().is_empty())
        .expect("an ExecStart=")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The runbook's dry run is the deployed unit with `--dry-run` in place of `--with-paper`, and
/// nothing else changed: same binary, broker, config, models, state folder (the token file)
/// and listen address (the predictor unchanged).
#[test]
fn the_dry_run_drop_in_is_the_executor_unit_with_dry_run_in_place_of_with_paper() {
    use clap::Parser as _;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let unit = std::fs::read_to_string(dir.join("oracle-executor.service")).expect("unit");
    let drop_in = std::fs::read_to_string(dir.join("oracle-executor.service.d/dry-run.conf"))
        .expect("drop-in");
    assert!(
        drop_in.lines().any(|l| l.trim() == "ExecStart="),
        "a drop-in must reset ExecStart= before setting it"
    );
    let live = exec_start(&unit);
    let dry = exec_start(&drop_in);
    let want: Vec<String> = live
        .iter()
        .map(|w| {
            if w == "--with-paper" {
                "--dry-run".to_string()
            } else {
                w.clone()
            }
        })
        .collect();
    assert!(live.iter().any(|w| w == "--with-paper"), "{live:?}");
    assert_eq!(dry, want);
    // `oracle executor ARGS`: the executor's own parser takes them as a dry run.
    let args = std::iter::once("oracle executor".to_string()).chain(dry[2..].iter().cloned());
    let cli = oracle_executor::shell::Cli::try_parse_from(args).expect("the executor's flags");
    assert!(cli.dry_run && !cli.paper && !cli.with_paper);
    assert_eq!(cli.broker.as_deref(), Some("auto"));
}
