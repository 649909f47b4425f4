//! The operator channel end to end: a real `oracle-executor --paper` process, its
//! `operator.sock`, and (for the halt) the predictor's WebSocket. The uid rule is a pure function
//! (`operator::check_peer`, unit-tested): another uid cannot connect here without root.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tmpdir;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as WsMsg;

const BIN: &str = env!("CARGO_BIN_EXE_oracle-executor");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A paper executor on `d`'s config and state (with `feed`: a replay of `d/bars.csv` held until
/// the predictor had its HISTORY).
fn spawn(d: &Path, port: u16, feed: bool) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.env("ORACLE_IPC_TOKEN", "op-token")
        .env_remove("ORACLE_FAILPOINT")
        .args(["--paper", "--json", "--config"])
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if feed {
        cmd.args(["--feed-wait-client", "--feed-interval-ms", "1500"])
            .arg("--feed-csv")
            .arg(format!("EURUSD_M15={}", d.join("bars.csv").display()));
    }
    cmd.spawn().expect("spawn")
}

/// A connection to the executor's `operator.sock` (retried while it starts).
struct Channel {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Channel {
    fn open(state: &Path, child: &mut Child) -> Channel {
        let path = state.join("operator.sock");
        for _ in 0..300 {
            if let Ok(s) = UnixStream::connect(&path) {
                s.set_read_timeout(Some(Duration::from_secs(20)))
                    .expect("timeout");
                let r = BufReader::new(s.try_clone().expect("clone"));
                return Channel { w: s, r };
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("the executor exited ({st}) before its operator channel opened");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}: no operator channel", path.display());
    }

    /// Sends one line, returns the answer line as JSON.
    fn ask(&mut self, line: &str) -> Value {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .expect("send");
        let mut a = String::new();
        self.r.read_line(&mut a).expect("answer");
        serde_json::from_str(&a).unwrap_or_else(|e| panic!("answer {a:?}: {e}"))
    }
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(d: &Path) -> PathBuf {
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        r#"{"risk": {"daily_loss_pct": 4}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}, "US500": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5}}"#,
    )
    .expect("config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    cfg
}

fn enabled_in(status: &Value, symbol: &str) -> Option<bool> {
    status["status"]["symbols"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == symbol)?["enabled"]
        .as_bool()
}

#[test]
fn disable_over_the_socket_is_applied_written_journaled_and_survives_a_restart() {
    let d = tmpdir("op-enable");
    let cfg = write_config(&d);
    let state = d.join("state");
    let mut child = spawn(&d, free_port(), false);
    let mut ch = Channel::open(&state, &mut child);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("operator.sock")), 0o600, "socket 0600");
    assert_eq!(mode(&state), 0o700, "state folder 0700");

    // A malformed line: an error naming it, and the executor goes on (same connection).
    let a = ch.ask("disable EURUSD please");
    assert_eq!(a["ok"], false, "{a}");
    let e = a["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("malformed operator request") && e.contains("disable EURUSD please"),
        "{e}"
    );
    let a = ch.ask(r#"{"cmd":"status"}"#);
    assert_eq!(
        a["ok"], true,
        "the executor goes on after a malformed line: {a}"
    );
    assert_eq!(enabled_in(&a, "EURUSD"), Some(true));
    // The plain risk guard's headroom (the core's, at the account just read): the day's floor
    // 4% and the drawdown's 10% below the paper book's 100 000.00.
    let g = &a["status"]["guard"];
    assert_eq!(g["preset"], Value::Null, "{g}");
    assert_eq!(g["daily"]["floor"], 96_000.0, "{g}");
    assert_eq!(g["max_loss"]["floor"], 90_000.0, "{g}");
    assert_eq!(g["balance"], 100_000.0, "{g}");

    // An unknown symbol: named, with the configured ones.
    let a = ch.ask(r#"{"cmd":"disable","symbol":"GBPUSD"}"#);
    assert_eq!(a["ok"], false, "{a}");
    let e = a["error"].as_str().unwrap_or_default();
    assert!(e.contains("GBPUSD") && e.contains("EURUSD, US500"), "{e}");

    // Disable: running now and in the file (same mode, the rest kept).
    let a = ch.ask(r#"{"cmd":"disable","symbol":"EURUSD"}"#);
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(
        enabled_in(&ch.ask(r#"{"cmd":"status"}"#), "EURUSD"),
        Some(false)
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).expect("read")).expect("json");
    assert_eq!(file["EURUSD"]["enabled"], false);
    assert_eq!(file["US500"]["enabled"], true);
    assert_eq!(file["risk"]["daily_loss_pct"], 4);
    assert_eq!(mode(&cfg), 0o640, "the config keeps its mode");

    // Journaled with its origin.
    let journal =
        std::fs::read_to_string(state.join("operator-journal.jsonl")).expect("operator journal");
    let recs: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect();
    let dis = recs
        .iter()
        .find(|r| r["request"]["cmd"] == "disable" && r["ok"] == true)
        .unwrap_or_else(|| panic!("no disable record: {journal}"));
    let origin = dis["origin"].as_str().unwrap_or_default();
    let uid = std::fs::metadata(&state).expect("meta");
    assert!(
        origin.starts_with(&format!(
            "operator uid={} ",
            std::os::unix::fs::MetadataExt::uid(&uid)
        )) && origin.ends_with("via socket"),
        "{origin}"
    );
    assert!(
        recs.iter()
            .any(|r| r["request"]["symbol"] == "GBPUSD" && r["ok"] == false),
        "refusals are journaled too: {journal}"
    );
    drop(ch);
    let logs = stop(child);

    // Restart: the file was rewritten, so EURUSD stays disabled.
    let mut child = spawn(&d, free_port(), false);
    let mut ch = Channel::open(&state, &mut child);
    let a = ch.ask(r#"{"cmd":"status"}"#);
    assert_eq!(enabled_in(&a, "EURUSD"), Some(false), "{a}\n{logs}");
    let a = ch.ask(r#"{"cmd":"enable","symbol":"EURUSD"}"#);
    assert_eq!(a["ok"], true, "{a}");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).expect("read")).expect("json");
    assert_eq!(file["EURUSD"]["enabled"], true);
    drop(ch);
    stop(child);
}

/// 352 M15 bars from Monday 2025-01-13 00:00 UTC to Thursday 15:45 (all in a trading week):
/// 350 serve HISTORY, 2 are replayed live.
fn write_bars(d: &Path) {
    let mut csv = String::from("time,open,high,low,close,volume\n");
    for i in 0..352i64 {
        let t = oracle_ipc::Iso(1_736_726_400 + i * 900);
        let c = 1.1 + (i % 7) as f64 * 0.0001;
        csv.push_str(&format!("{t},{c},{},{},{c},5\n", c + 0.0002, c - 0.0002));
    }
    std::fs::write(d.join("bars.csv"), csv).expect("csv");
}

/// The predictor's side over the WebSocket on `port`: HISTORY, then WAIT on the last history
/// bar and LONG_WEAK (a transition: an entry) on the first live bar, `between` called before
/// the second. Returns the two ACKs.
fn predict(port: u16, mut between: impl FnMut()) -> Result<Vec<String>, &'static str> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut ws = None;
        for _ in 0..100 {
            if let Ok((w, _)) =
                tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}")).await
            {
                ws = Some(w);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ws = ws.ok_or("no server")?;
        let next =
            async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> Result<String, &'static str> {
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(WsMsg::Text(t)))) => Ok(t.to_string()),
                    _ => Err("no frame"),
                }
            };
        ws.send(WsMsg::text("HELLO|op-token"))
            .await
            .map_err(|_| "send")?;
        ws.send(WsMsg::text("HISTORY|EURUSD|M15|350"))
            .await
            .map_err(|_| "send")?;
        let mut last_hist = None;
        loop {
            let l = next(&mut ws).await?;
            if l.starts_with("HISTORY_END") {
                break;
            }
            if l.ends_with("|HIST:1") {
                last_hist = Some(l);
            }
        }
        let mut bars = vec![last_hist.ok_or("no history")?];
        loop {
            let l = next(&mut ws).await?;
            if l.starts_with("BAR|") {
                bars.push(l);
                break;
            }
        }
        let mut acks = Vec::new();
        for (i, (l, a)) in bars.iter().zip(["WAIT", "LONG_WEAK"]).enumerate() {
            let Ok(oracle_ipc::Message::Bar(b)) = oracle_ipc::parse(l) else {
                return Err("bad bar");
            };
            if i == 1 {
                between();
            }
            // The virtual P&L: 12.50 on the entry's SIGNAL.
            let pnl = if i == 1 { "12.50" } else { "0.00" };
            let s = format!(
                "SIGNAL|EURUSD|{a}|1|{pnl}|TF:M15|BT:{}|SEQ:{}",
                oracle_ipc::Iso(b.time),
                b.seq
            );
            ws.send(WsMsg::text(s)).await.map_err(|_| "send")?;
            loop {
                let l = next(&mut ws).await?;
                if l.starts_with("ACK|") {
                    acks.push(l);
                    break;
                }
            }
        }
        Ok(acks)
    })
}

fn model_row<'a>(status: &'a Value, model: &str) -> &'a Value {
    status["status"]["models"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["model"] == model))
        .unwrap_or_else(|| panic!("no {model} row: {status}"))
}

#[test]
fn a_halt_over_the_socket_refuses_the_next_entry_until_resume() {
    let d = tmpdir("op-halt");
    write_config(&d);
    write_bars(&d);
    let state = d.join("state");
    let port = free_port();
    let mut child = spawn(&d, port, true);
    let mut ch = Channel::open(&state, &mut child);
    // WAIT; the halt; LONG_WEAK (an entry).
    let result = predict(port, || {
        let h = ch.ask(r#"{"cmd":"halt"}"#);
        assert_eq!(h["ok"], true, "halt refused: {h}");
    });
    let status = ch.ask(r#"{"cmd":"status"}"#);
    let resumed = ch.ask(r#"{"cmd":"resume"}"#);
    let again = ch.ask(r#"{"cmd":"resume"}"#);
    drop(ch);
    let logs = stop(child);
    let acks = result.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(acks[0].starts_with("ACK|EURUSD|WAIT|HOLD"), "{acks:?}");
    assert!(
        acks[1].starts_with("ACK|EURUSD|LONG_WEAK|FAIL|HALTED_OPERATOR"),
        "the entry after the halt is refused: {acks:?}\n{logs}"
    );
    assert_eq!(
        status["status"]["guard"]["halted"]["reason"], "HALTED_OPERATOR",
        "{status}"
    );
    assert_eq!(resumed["ok"], true, "{resumed}");
    assert_eq!(again["ok"], false, "nothing is halted any more: {again}");
    // The halt is in the order journal with its origin (the core's record).
    let journal = std::fs::read_to_string(state.join("paper-journal.jsonl")).expect("journal");
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"t\":\"operator\"") && l.contains("operator uid=")),
        "{journal}"
    );
}

#[test]
fn a_flatten_over_the_socket_closes_the_position_and_the_status_shows_it() {
    let d = tmpdir("op-flatten");
    write_config(&d);
    write_bars(&d);
    let state = d.join("state");
    let port = free_port();
    let mut child = spawn(&d, port, true);
    let mut ch = Channel::open(&state, &mut child);
    let result = predict(port, || {});
    let before = ch.ask(r#"{"cmd":"status"}"#);
    let unknown = ch.ask(r#"{"cmd":"flatten","symbol":"GBPUSD"}"#);
    let flat = ch.ask(r#"{"cmd":"flatten","symbol":"all"}"#);
    // Answered once done: the close is journaled and filled before the answer (nothing else
    // asked the engine anything since).
    let journal = std::fs::read_to_string(state.join("paper-journal.jsonl")).expect("journal");
    let after = ch.ask(r#"{"cmd":"status"}"#);
    drop(ch);
    let logs = stop(child);
    let acks = result.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(
        acks[1].starts_with("ACK|EURUSD|LONG_WEAK|OK|"),
        "{acks:?}\n{logs}"
    );
    let row = model_row(&before, "EURUSD_M15");
    assert_eq!(row["virtual_position"], "LONG_WEAK", "{before}");
    assert_eq!(row["virtual_pnl"], 12.5, "{before}");
    assert_eq!(row["paper_position"], "LONG_WEAK", "{before}");
    assert_eq!(row["state"], "in_sync", "{before}");
    assert_eq!(before["status"]["guard"]["open_positions"], 1, "{before}");
    assert_eq!(unknown["ok"], false, "{unknown}");
    assert_eq!(flat["ok"], true, "{flat}\n{logs}");
    let close = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["t"] == "intent" && r["op"] == "close")
        .unwrap_or_else(|| panic!("no close intent before the answer: {journal}"));
    let coid = close["coid"].as_str().unwrap_or_default();
    assert!(coid.ends_with("-F"), "a flatten's order id: {coid}");
    assert!(
        journal
            .lines()
            .any(|l| l.contains(coid) && l.contains("\"filled\"")),
        "{journal}"
    );
    let row = model_row(&after, "EURUSD_M15");
    assert_eq!(row["paper_position"], "FLAT", "{after}\n{logs}");
    assert_eq!(
        row["virtual_position"], "LONG_WEAK",
        "the twin's is unchanged: {after}"
    );
    assert_ne!(row["state"], "in_sync", "{after}");
    assert_eq!(after["status"]["guard"]["open_positions"], 0, "{after}");
}

#[test]
fn a_disable_over_the_socket_refuses_the_next_entry_without_a_restart() {
    let d = tmpdir("op-disable-entry");
    write_config(&d);
    write_bars(&d);
    let state = d.join("state");
    let port = free_port();
    let mut child = spawn(&d, port, true);
    let mut ch = Channel::open(&state, &mut child);
    // WAIT; EURUSD disabled; LONG_WEAK (an entry).
    let result = predict(port, || {
        let a = ch.ask(r#"{"cmd":"disable","symbol":"EURUSD"}"#);
        assert_eq!(a["ok"], true, "disable refused: {a}");
    });
    drop(ch);
    let logs = stop(child);
    let acks = result.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(
        acks[1].starts_with("ACK|EURUSD|LONG_WEAK|FAIL|SYMBOL_DISABLED"),
        "the entry after the disable is refused: {acks:?}\n{logs}"
    );
}
