//! The `oracle-executor` binary: refuses a bad config by key, adds new models' symbols disabled,
//! and runs `--paper` end to end over the WebSocket (replayed bars → BAR → SIGNAL → ACK).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    Ws, ack_of, executor_in, free_port, kill_and_wait, model_zip, next_text, signal_line, tmpdir,
    ws_connect,
};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMsg;

const BIN: &str = env!("CARGO_BIN_EXE_oracle-executor");
/// EURUSD enabled at 0.01 / 0.03 / 0.05 lot.
const EURUSD_CFG: &str =
    r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#;
/// How long the replay's next frame (a bar, an ACK) may take.
const TEN_S: Duration = Duration::from_secs(10);
/// The EURUSD M15 replay the predictors here trade.
const EURUSD_M15: (&str, &str) = ("EURUSD", "M15");

/// `d/bars.csv`: `n` M15 bars from 2025-01-15 00:00 UTC, the replay of `--feed-csv`.
fn write_bars(d: &std::path::Path, n: i64) {
    let mut csv = String::from("time,open,high,low,close,volume\n");
    for i in 0..n {
        let t = oracle_ipc::Iso(1_736_899_200 + i * 900);
        let c = 1.1 + (i % 7) as f64 * 0.0001;
        csv.push_str(&format!("{t},{c},{},{},{c},5\n", c + 0.0002, c - 0.0002));
    }
    std::fs::write(d.join("bars.csv"), csv).expect("csv");
}

/// The runtime a test's predictor runs on.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
}

/// Waits (15 s at most) for `child` to exit by itself (an `ORACLE_FAILPOINT` abort), then kills
/// it if it has not: its exit status and stderr.
fn exit_of(mut child: Child) -> (std::process::ExitStatus, String) {
    for _ in 0..300 {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_and_wait(child)
}

#[test]
fn bad_config_refuses_to_start_naming_the_keys() {
    let d = tmpdir("cli-bad");
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        r#"{"EURUSD": {"lot_weak": 0.05, "lot_moderate": 0.03, "lot_strong": -1, "lots": 1}}"#,
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EURUSD.lot_strong: must be > 0 lots"), "{err}");
    assert!(err.contains("EURUSD.lots: unknown key"), "{err}");
}

/// A models folder with EURUSD and US500 and a config naming US500 only.
fn models_and_config(d: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let models = d.join("models");
    std::fs::create_dir_all(&models).expect("dir");
    model_zip(&models.join("EURUSD_M15.zip"), "EURUSD", "M15");
    model_zip(&models.join("US500_H1.zip"), "US500", "H1");
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        r#"{"US500": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5}}"#,
    )
    .expect("write");
    (models, cfg)
}

#[test]
fn models_folder_symbols_are_added_disabled() {
    // A start adds them (here a start that then stops for want of an IPC token: the
    // configuration step has run). `--check-config` does not: see `check_config_writes_nothing`.
    let d = tmpdir("cli-models");
    let (models, cfg) = models_and_config(&d);
    let out = executor_in(&d, "127.0.0.1:1")
        .env_remove("ORACLE_IPC_TOKEN")
        .arg("--paper")
        .arg("--models")
        .arg(&models)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("ORACLE_IPC_TOKEN"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).expect("read")).expect("json");
    assert_eq!(
        v["EURUSD"],
        serde_json::json!({"enabled": false, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05})
    );
    assert_eq!(v["US500"]["enabled"], serde_json::json!(true));
}

#[test]
fn check_config_writes_nothing() {
    let d = tmpdir("cli-check");
    let (models, cfg) = models_and_config(&d);
    let before = std::fs::read(&cfg).expect("read");
    let mtime = std::fs::metadata(&cfg)
        .and_then(|m| m.modified())
        .expect("mtime");
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .arg("--models")
        .arg(&models)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // It says what a start would add…
    assert!(
        err.contains("EURUSD") && err.contains("a start adds it"),
        "{err}"
    );
    // …and writes nothing: same bytes, same mtime, no new file beside it.
    assert_eq!(std::fs::read(&cfg).expect("read"), before);
    assert_eq!(
        std::fs::metadata(&cfg)
            .and_then(|m| m.modified())
            .expect("mtime"),
        mtime
    );
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["executor_config.json", "models"]);
    // An absent file stays absent.
    let absent = d.join("absent.json");
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&absent)
        .arg("--models")
        .arg(&models)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(!absent.exists());
}

#[test]
fn logs_to_a_file_or_pipe_have_no_ansi_escapes() {
    let d = tmpdir("cli-ansi");
    let (models, cfg) = models_and_config(&d);
    let log = d.join("executor.log");
    // stderr to a file, stdout to a pipe; a WARN and an INFO line at least.
    let status = Command::new(BIN)
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .arg("--models")
        .arg(&models)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .status()
        .expect("run");
    assert!(status.success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("WARN") && text.contains("INFO"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in a log file: {text:?}"
    );
}

#[test]
fn executor_json_lines_are_flat_like_the_predictors() {
    let d = tmpdir("cli-json");
    let (models, cfg) = models_and_config(&d);
    let out = Command::new(BIN)
        .args(["--check-config", "--json", "--log", "info", "--config"])
        .arg(&cfg)
        .arg("--models")
        .arg(&models)
        .output()
        .expect("run");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    for v in &lines {
        let o = v.as_object().expect("object");
        // The predictor's shape: timestamp, level, message and the fields at the top level.
        for k in ["timestamp", "level", "message"] {
            assert!(o.contains_key(k), "{k} missing: {v}");
        }
        for k in ["fields", "target", "span", "spans"] {
            assert!(!o.contains_key(k), "nested/extra {k}: {v}");
        }
    }
    let warn = lines
        .iter()
        .find(|v| v["level"] == "WARN")
        .expect("a WARN line");
    assert_eq!(warn["symbol"], "EURUSD", "{warn}");
    let done = lines
        .iter()
        .find(|v| v["message"] == "configuration valid")
        .expect("the summary line");
    assert_eq!(done["would_add"], 1, "{done}");
}

#[test]
fn log_flag_sets_the_filter_and_a_bad_one_is_refused() {
    let d = tmpdir("cli-log");
    let (models, cfg) = models_and_config(&d);
    let run = |log: &str| {
        Command::new(BIN)
            .env("RUST_LOG", "info")
            .args(["--check-config", "--log", log, "--config"])
            .arg(&cfg)
            .arg("--models")
            .arg(&models)
            .output()
            .expect("run")
    };
    // --log wins over RUST_LOG: `error` hides the WARN and INFO lines.
    let out = run("error");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let out = run("info");
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration valid"));
    let out = run("info,[=");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log") && err.lines().count() == 1, "{err}");
}

#[test]
fn executor_prints_its_version() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oracle-executor {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn secrets_file_0640_gives_the_executor_its_token_and_account() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmpdir("cli-secrets");
    let f = d.join("secrets.env");
    std::fs::write(
        &f,
        "ORACLE_IPC_TOKEN=tok-SECRET\nCTRADER_CLIENT_ID=id-SECRET\nORACLE_CTRADER_ACCOUNT_ID=4242\n",
    )
    .expect("write");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let cli = <oracle_executor::shell::Cli as clap::Parser>::try_parse_from([
        "oracle-executor".as_ref(),
        "--broker".as_ref(),
        "127.0.0.1:1".as_ref(),
        "--secrets".as_ref(),
        f.as_os_str(),
    ])
    .expect("parses");
    let rc = cli.run_config().expect("0640 is accepted");
    assert_eq!(rc.broker.as_ref().map(|b| b.account_id), Some(4242));
    assert!(!format!("{rc:?}").contains("SECRET"), "{rc:?}");
    // The binary takes the IPC token from it: with none in the environment it goes past the
    // token to the listen address (taken here, so it stops there).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    std::fs::write(
        d.join("executor_config.json"),
        r#"{"EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("write");
    let out = executor_in(&d, &format!("127.0.0.1:{port}"))
        .env_remove("ORACLE_IPC_TOKEN")
        .args(["--paper", "--secrets"])
        .arg(&f)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("bind 127.0.0.1:{port}")) && !err.contains("token"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
    drop(taken);
    // Readable by others: refused, naming the file and the fix, never a value.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = cli.run_config().expect_err("0644 is refused").to_string();
    assert!(e.contains("secrets.env") && e.contains("chmod 0600"), "{e}");
    assert!(!e.contains("SECRET"), "{e}");
}

#[test]
fn paper_mode_end_to_end_over_websocket() {
    let d = tmpdir("cli-paper");
    let cfg = d.join("executor_config.json");
    std::fs::write(&cfg, EURUSD_CFG).expect("write");
    // 352 bars: 350 serve HISTORY, 2 are replayed live.
    write_bars(&d, 352);
    let tokf = d.join("token");
    std::fs::write(&tokf, "paper-token-xyz").expect("token");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokf, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let port = free_port();
    let child = executor_in(&d, &format!("127.0.0.1:{port}"))
        .env_remove("ORACLE_IPC_TOKEN")
        .args(["--paper", "--json", "--feed-interval-ms", "1500"])
        .arg("--token-file")
        .arg(&tokf)
        .arg("--feed-csv")
        .arg(format!("EURUSD_M15={}", d.join("bars.csv").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let result = rt().block_on(async {
        let mut ws = ws_connect(port, 50).await.ok_or("no server")?;
        let next = async |ws: &mut Ws| next_text(ws, TEN_S).await.ok_or("no frame");
        ws.send(WsMsg::text("HELLO|paper-token-xyz"))
            .await
            .map_err(|_| "send")?;
        assert_eq!(next(&mut ws).await?, "WELCOME|V:1");
        ws.send(WsMsg::text("HISTORY|EURUSD|M15|350"))
            .await
            .map_err(|_| "send")?;
        // The replay's first live bar may go out before we connect; it is then the last
        // history bar. Take the last history bar and the next live one.
        let mut hist = Vec::new();
        let mut live = Vec::new();
        loop {
            let l = next(&mut ws).await?;
            if l.starts_with("HISTORY_END") {
                break;
            }
            if l.ends_with("|HIST:1") {
                hist.push(l)
            } else {
                live.push(l)
            }
        }
        assert_eq!(hist.len(), 350);
        let time = |l: &str| match oracle_ipc::parse(l) {
            Ok(oracle_ipc::Message::Bar(b)) => b.time,
            _ => 0,
        };
        let last_hist = hist.last().map_or(0, |l| time(l));
        live.retain(|l| time(l) > last_hist);
        if live.is_empty() {
            live.push(next(&mut ws).await?);
        }
        let live = [hist.pop().ok_or("no history")?, live.remove(0)];
        // Signal for each live bar: WAIT then LONG_WEAK (a fresh transition).
        let mut acks = Vec::new();
        for (l, a) in live.iter().zip(["WAIT", "LONG_WEAK"]) {
            let Ok(oracle_ipc::Message::Bar(b)) = oracle_ipc::parse(l) else {
                return Err("bad bar");
            };
            let s = signal_line(EURUSD_M15, a, 1, (b.time, b.seq));
            acks.push(ack_of(&mut ws, s, TEN_S).await.ok_or("no ACK")?);
        }
        Ok::<_, &'static str>(acks)
    });
    let (_, logs) = kill_and_wait(child);
    let acks = result.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(acks[0].starts_with("ACK|EURUSD|WAIT|HOLD|"), "{acks:?}");
    assert!(
        acks[1].starts_with("ACK|EURUSD|LONG_WEAK|OK|T:1|P:"),
        "{acks:?}\n{logs}"
    );
    assert!(!logs.contains("paper-token-xyz"));
    assert!(
        logs.lines().all(|l| l.starts_with('{')),
        "--json gives JSON lines:\n{logs}"
    );
    let drift = std::fs::read_to_string(d.join("state/drift.csv")).expect("drift");
    assert_eq!(drift.lines().count(), 3, "{drift}");
}

/// A paper executor over 353 replayed bars (350 history), replay held until the predictor has
/// its HISTORY (`--feed-wait-client`).
fn spawn_paper(d: &std::path::Path, port: u16, failpoint: Option<&str>) -> std::process::Child {
    spawn_paper_on(d, port, failpoint, &["EURUSD"])
}

/// [`spawn_paper`] with one M15 replay of the same bars per symbol in `syms` (all closing at the
/// same times).
fn spawn_paper_on(
    d: &std::path::Path,
    port: u16,
    failpoint: Option<&str>,
    syms: &[&str],
) -> std::process::Child {
    let mut cmd = executor_in(d, &format!("127.0.0.1:{port}"));
    cmd.env("ORACLE_IPC_TOKEN", "fp-token")
        .env_remove("ORACLE_FAILPOINT")
        .args([
            "--paper",
            "--json",
            "--feed-wait-client",
            "--feed-interval-ms",
            "1500",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for s in syms {
        cmd.arg("--feed-csv")
            .arg(format!("{s}_M15={}", d.join("bars.csv").display()));
    }
    if let Some(f) = failpoint {
        cmd.env("ORACLE_FAILPOINT", f);
    }
    cmd.spawn().expect("spawn")
}

/// Connects, asks HISTORY, and answers WAIT for the last history bar and LONG_WEAK for the
/// first live one (a seen transition: an entry). Returns the ACKs received (fewer when the
/// executor died).
async fn predictor_once(port: u16) -> Vec<String> {
    let Some(mut ws) = ws_connect(port, 100).await else {
        return vec![];
    };
    let next = async |ws: &mut Ws| next_text(ws, TEN_S).await;
    let mut acks = Vec::new();
    let _ = ws.send(WsMsg::text("HELLO|fp-token")).await;
    let _ = ws.send(WsMsg::text("HISTORY|EURUSD|M15|350")).await;
    let mut last_hist = None;
    while let Some(l) = next(&mut ws).await {
        if l.starts_with("HISTORY_END") {
            break;
        }
        if l.ends_with("|HIST:1") {
            last_hist = Some(l);
        }
    }
    let mut bars = vec![last_hist.unwrap_or_default()];
    while let Some(l) = next(&mut ws).await {
        if l.starts_with("BAR|") {
            bars.push(l);
            break;
        }
    }
    for (l, a) in bars.iter().zip(["WAIT", "LONG_WEAK"]) {
        let Ok(oracle_ipc::Message::Bar(b)) = oracle_ipc::parse(l) else {
            return acks;
        };
        match ack_of(
            &mut ws,
            signal_line(EURUSD_M15, a, 1, (b.time, b.seq)),
            TEN_S,
        )
        .await
        {
            Some(l) => acks.push(l),
            None => return acks,
        }
    }
    acks
}

/// `ORACLE_FAILPOINT`: the executor aborts exactly between the journal and the execution event;
/// after a restart the same SIGNAL again is never a second order (the intent is looked up, the
/// entry counts as missed, not chased).
#[test]
fn failpoint_kill_then_restart_sends_no_duplicate_order() {
    for fp in ["after_intent:1", "after_fill:1"] {
        let d = tmpdir(&format!("cli-fp-{}", fp.replace(':', "-")));
        std::fs::write(d.join("executor_config.json"), EURUSD_CFG).expect("write");
        write_bars(&d, 353);
        let port = free_port();
        let rt = rt();
        // Run 1: dies at the failpoint while entering. (The state folder is removed before the
        // spawn: removed after it, it raced the executor creating its journal there.)
        let _ = std::fs::remove_dir_all(d.join("state"));
        let child = spawn_paper(&d, port, Some(fp));
        let acks1 = rt.block_on(predictor_once(port));
        let (status, logs1) = exit_of(child);
        assert!(!status.success(), "{fp}: aborted\n{logs1}");
        assert!(logs1.contains("ORACLE_FAILPOINT: aborting"), "{logs1}");
        assert_eq!(
            acks1.len(),
            1,
            "{fp}: only the WAIT was answered: {acks1:?}"
        );
        // Run 2: same signals again.
        let child = spawn_paper(&d, port, None);
        let acks2 = rt.block_on(predictor_once(port));
        let (_, logs2) = kill_and_wait(child);
        assert_eq!(acks2.len(), 2, "{fp}: {acks2:?}\n{logs2}");
        assert_eq!(
            acks2[0], acks1[0],
            "duplicate WAIT answered from the journal"
        );
        // The paper book dies with the process, so run 1's order (never sent, or filled in a
        // book that no longer exists) is looked up at the restart, found not executed, and the
        // re-sent SIGNAL is executed once: exactly one fill is journaled for its client id.
        let journal =
            std::fs::read_to_string(d.join("state/paper-journal.jsonl")).expect("journal");
        let coid = journal
            .lines()
            .find(|l| l.contains(r#""t":"intent""#) && l.contains("-O\""))
            .and_then(|l| l.split(r#""coid":""#).nth(1))
            .and_then(|r| r.split('"').next())
            .expect("an entry intent")
            .to_string();
        let fills = journal
            .lines()
            .filter(|l| l.contains(&coid) && l.contains(r#""result":"filled""#))
            .count();
        assert_eq!(fills, 1, "{fp}: one fill for {coid}:\n{journal}");
        assert!(
            journal
                .lines()
                .any(|l| l.contains(&coid) && l.contains("not_executed")),
            "{fp}: the crashed order was looked up, not blindly resent:\n{journal}"
        );
        assert!(acks2[1].contains("|OK|"), "{fp}: {acks2:?}");
    }
}

const FP_SYMS: [&str; 3] = ["EURUSD", "GBPUSD", "AUDUSD"];

/// The predictor of `FP_SYMS`: HISTORY for each, then (once the first live bars are out) the
/// three WAITs for the last history bars in one write, their ACKs, and the three LONG_WEAKs for
/// the live bars in one write (so the executor takes them as one batch). Returns the ACKs
/// received (fewer when the executor died).
async fn predictor3(port: u16) -> Vec<String> {
    let Some(mut ws) = ws_connect(port, 100).await else {
        return vec![];
    };
    let next = async |ws: &mut Ws| next_text(ws, TEN_S).await;
    let bar = |l: &str| match oracle_ipc::parse(l) {
        Ok(oracle_ipc::Message::Bar(b)) => Some((b.symbol.to_string(), b.time, b.seq, b.hist)),
        _ => None,
    };
    let _ = ws.send(WsMsg::text("HELLO|fp-token")).await;
    let mut last_hist = std::collections::HashMap::new();
    let mut live = std::collections::HashMap::new();
    for s in FP_SYMS {
        let _ = ws.send(WsMsg::text(format!("HISTORY|{s}|M15|350"))).await;
        while let Some(l) = next(&mut ws).await {
            if l.starts_with("HISTORY_END") {
                break;
            }
            if let Some((sym, t, q, hist)) = bar(&l) {
                if hist {
                    last_hist.insert(sym, (t, q));
                } else {
                    live.insert(sym, (t, q));
                }
            }
        }
    }
    while live.len() < FP_SYMS.len() {
        let Some(l) = next(&mut ws).await else {
            return vec![];
        };
        if let Some((sym, t, q, false)) = bar(&l) {
            live.insert(sym, (t, q));
        }
    }
    let mut acks = Vec::new();
    for (bars, a) in [(&last_hist, "WAIT"), (&live, "LONG_WEAK")] {
        for s in FP_SYMS {
            let Some((t, q)) = bars.get(s) else {
                return acks;
            };
            let line = signal_line((s, "M15"), a, 1, (*t, *q));
            if ws.feed(WsMsg::text(line)).await.is_err() {
                return acks;
            }
        }
        if ws.flush().await.is_err() {
            return acks;
        }
        let mut got = 0;
        while got < FP_SYMS.len() {
            match next(&mut ws).await {
                Some(l) if l.starts_with("ACK|") => {
                    acks.push(l);
                    got += 1;
                }
                Some(_) => continue,
                None => return acks,
            }
        }
    }
    acks
}

/// `ORACLE_FAILPOINT=after_intent:2` inside a batch of three entries: the three intents are
/// durable together (one write, one fsync) before the first order is on the wire, and the
/// executor dies after the first order went out and before the second did. After a restart
/// every one of them is looked up (never resent blindly); the re-sent SIGNALs execute each
/// entry once.
#[test]
fn failpoint_inside_a_batch_then_restart_sends_no_duplicate_order() {
    let d = tmpdir("cli-fp-batch");
    let mut cfg = serde_json::Map::new();
    for s in FP_SYMS {
        cfg.insert(
            s.into(),
            serde_json::json!({"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}),
        );
    }
    std::fs::write(
        d.join("executor_config.json"),
        serde_json::Value::Object(cfg).to_string(),
    )
    .expect("write");
    write_bars(&d, 353);
    let port = free_port();
    let rt = rt();
    let _ = std::fs::remove_dir_all(d.join("state"));
    let child = spawn_paper_on(&d, port, Some("after_intent:2"), &FP_SYMS);
    let acks1 = rt.block_on(predictor3(port));
    let (status, logs1) = exit_of(child);
    assert!(!status.success(), "aborted\n{logs1}");
    assert!(
        logs1.contains("ORACLE_FAILPOINT: aborting at AfterIntent #2"),
        "{logs1}"
    );
    assert_eq!(acks1.len(), 3, "only the WAITs were answered: {acks1:?}");
    let journal_path = d.join("state/paper-journal.jsonl");
    let journal = std::fs::read_to_string(&journal_path).expect("journal");
    let records: Vec<serde_json::Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .filter_map(|v| v["t"].as_str())
        .filter(|t| *t == "intent" || *t == "outcome")
        .collect();
    assert_eq!(
        kinds,
        vec!["intent"; 3],
        "the batch's three intents, durable before its first order, no outcome:\n{journal}"
    );
    let coids: Vec<String> = records
        .iter()
        .filter(|v| v["t"] == "intent")
        .filter_map(|v| v["coid"].as_str().map(str::to_string))
        .collect();
    assert!(
        logs1.contains("order sent") && logs1.matches("\"event\":\"order_sent\"").count() == 1,
        "one order on the wire before the abort:\n{logs1}"
    );
    // Run 2: the same signals again.
    let child = spawn_paper_on(&d, port, None, &FP_SYMS);
    let acks2 = rt.block_on(predictor3(port));
    let (_, logs2) = kill_and_wait(child);
    assert_eq!(acks2.len(), 6, "{acks2:?}\n{logs2}");
    assert_eq!(
        acks2[..3],
        acks1[..],
        "duplicate WAITs answered from the journal"
    );
    for a in &acks2[3..] {
        assert!(a.contains("|LONG_WEAK|OK|"), "{acks2:?}\n{logs2}");
    }
    let journal = std::fs::read_to_string(&journal_path).expect("journal");
    for coid in &coids {
        let of = |what: &str| {
            journal
                .lines()
                .filter(|l| l.contains(coid.as_str()) && l.contains(what))
                .count()
        };
        assert_eq!(
            of(r#""result":"filled""#),
            1,
            "one fill for {coid}:\n{journal}"
        );
        assert_eq!(
            of("not_executed"),
            1,
            "the crashed order {coid} was looked up, not blindly resent:\n{journal}"
        );
    }
}

/// The first `n` live (not history) bars of EURUSD M15 after a HISTORY request, as (time, seq).
async fn live_bars(ws: &mut Ws, n: usize) -> Vec<(i64, u64)> {
    let _ = ws.send(WsMsg::text("HELLO|fp-token")).await;
    let _ = ws.send(WsMsg::text("HISTORY|EURUSD|M15|350")).await;
    let mut out: Vec<(i64, u64)> = Vec::new();
    let mut last_hist = 0;
    while out.len() < n {
        let Some(t) = next_text(ws, TEN_S).await else {
            break;
        };
        if let Ok(oracle_ipc::Message::Bar(b)) = oracle_ipc::parse(&t) {
            if b.hist {
                last_hist = last_hist.max(b.time);
            } else if b.time > last_hist && !out.iter().any(|o| o.0 == b.time) {
                out.push((b.time, b.seq));
            }
        }
    }
    out
}

/// Sends one EURUSD M15 SIGNAL and returns its ACK (`None`: no answer in 10 s).
async fn signal_ack(ws: &mut Ws, action: &str, bar: (i64, u64)) -> Option<String> {
    ack_of(ws, signal_line(EURUSD_M15, action, 1, bar), TEN_S).await
}

/// `--paper` keeps its book across a kill -9: the restart rebuilds it from the paper journal
/// (as `--dry-run` and `--with-paper` do), so the position opened before the kill is held, not
/// taken as closed outside, and the next transition closes that very position.
#[test]
fn a_paper_run_killed_with_an_open_position_restarts_holding_it() {
    let d = tmpdir("cli-paper-resume");
    std::fs::write(d.join("executor_config.json"), EURUSD_CFG).expect("write");
    write_bars(&d, 354);
    let port = free_port();
    let rt = rt();
    let _ = std::fs::remove_dir_all(d.join("state"));
    // Run 1: WAIT, then LONG_WEAK: a long in the paper book; then kill -9.
    let child = spawn_paper(&d, port, None);
    let (bars, acks) = rt.block_on(async {
        let mut ws = ws_connect(port, 100).await.expect("executor listening");
        let bars = live_bars(&mut ws, 2).await;
        let mut acks = Vec::new();
        for (b, a) in bars.iter().zip(["WAIT", "LONG_WEAK"]) {
            acks.push(signal_ack(&mut ws, a, *b).await);
        }
        (bars, acks)
    });
    let (_, logs1) = kill_and_wait(child);
    assert_eq!(bars.len(), 2, "two live bars:\n{logs1}");
    assert!(
        acks[1]
            .as_deref()
            .is_some_and(|a| a.starts_with("ACK|EURUSD|LONG_WEAK|OK|")),
        "{acks:?}\n{logs1}"
    );
    let journal_path = d.join("state/paper-journal.jsonl");
    let outcome = |j: &str| -> Vec<serde_json::Value> {
        j.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["t"] == "outcome" && v["result"] == "filled")
            .collect()
    };
    let journal = std::fs::read_to_string(&journal_path).expect("journal");
    let long_pid = outcome(&journal)
        .first()
        .and_then(|o| o["position_id"].as_u64())
        .expect("the long's fill journaled");

    // Run 2 (same replay): the third live bar's WAIT closes the long held since run 1.
    let child = spawn_paper(&d, port, None);
    let ack = rt.block_on(async {
        let mut ws = ws_connect(port, 100).await.expect("executor listening");
        let bars = live_bars(&mut ws, 3).await;
        match bars.get(2) {
            Some(b) => signal_ack(&mut ws, "WAIT", *b).await,
            None => None,
        }
    });
    let (_, logs2) = kill_and_wait(child);
    assert!(
        !logs2.contains("closed outside the executor"),
        "the resumed long is not taken as closed outside:\n{logs2}"
    );
    assert!(
        ack.as_deref()
            .is_some_and(|a| a.starts_with("ACK|EURUSD|WAIT|OK|")),
        "the WAIT closes the long: {ack:?}\n{logs2}"
    );
    let journal = std::fs::read_to_string(&journal_path).expect("journal");
    let closed: Vec<u64> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["t"] == "intent" && v["op"] == "close")
        .filter_map(|v| v["position_id"].as_u64())
        .collect();
    assert_eq!(closed, vec![long_pid], "{journal}");
    assert_eq!(outcome(&journal).len(), 2, "the close filled:\n{journal}");
}
