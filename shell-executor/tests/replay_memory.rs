//! A paper replay (`--paper --feed-csv`) is read as the feed goes, not held in memory: the
//! executor started on long bar files is as big as on short ones (the bench's 3,300-bar replay of
//! 20 streams held ~3 MB of bars for the whole run, what a live run never holds).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_oracle-executor");
const SYMS: [&str; 4] = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD"];

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-exec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The resident set (kB) of an executor started with one `bars`-bar M15 replay per symbol of
/// [`SYMS`], once it listens (start-up done, the replay held back by `--feed-wait-client`).
fn rss_after_start(name: &str, bars: i64) -> u64 {
    let d = tmpdir(name);
    let mut cfg = String::from("{");
    for (i, s) in SYMS.iter().enumerate() {
        if i > 0 {
            cfg.push(',');
        }
        cfg.push_str(&format!(
            r#""{s}": {{"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#
        ));
    }
    cfg.push('}');
    std::fs::write(d.join("executor_config.json"), cfg).expect("config");
    let mut csv = String::from("time,open,high,low,close,volume\n");
    for i in 0..bars {
        let t = oracle_ipc::Iso(1_736_899_200 + i * 900);
        let c = 1.1 + (i % 7) as f64 * 0.0001;
        csv.push_str(&format!("{t},{c},{},{},{c},5\n", c + 0.0002, c - 0.0002));
    }
    std::fs::write(d.join("bars.csv"), csv).expect("csv");
    let mut cmd = Command::new(BIN);
    cmd.env("ORACLE_IPC_TOKEN", "replay-token")
        .env("RUST_LOG", "info")
        .env_remove("ORACLE_FAILPOINT")
        .args(["--paper", "--feed-wait-client", "--config"])
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for s in SYMS {
        cmd.arg("--feed-csv")
            .arg(format!("{s}_M15={}", d.join("bars.csv").display()));
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut log = String::new();
    let listening = loop {
        match lines.next() {
            Some(Ok(l)) => {
                log.push_str(&l);
                log.push('\n');
                if l.contains("IPC server listening") {
                    break true;
                }
            }
            _ => break false,
        }
    };
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&d);
    assert!(listening, "the executor did not start:\n{log}");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
#[cfg(target_os = "linux")]
fn a_long_replay_is_read_as_it_goes_not_held_in_memory() {
    // 4 × 40,000 bars of 48 bytes: 7.7 MB if held; the reader keeps one bar and its buffer.
    let short = rss_after_start("replay-short", 400);
    let long = rss_after_start("replay-long", 40_000);
    assert!(
        long < short + 2048,
        "an executor on 4 × 40,000-bar replays holds {long} kB, on 4 × 400-bar ones {short} kB"
    );
}
