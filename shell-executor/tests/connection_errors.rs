//! An IPC connection that ends on an error (here a port probe that is no WebSocket) costs no
//! backtrace: with `RUST_BACKTRACE=1` in the environment, each such end captured one (an
//! `anyhow::Error`), which walked the unwind tables and left them resident (+1.3 MB of the
//! executor's RSS in the bench, whose port probe is such a connection). Measured as the growth
//! over the probe with `RUST_BACKTRACE=1` against the same without it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_oracle-executor");

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// How much (kB) an executor started with `RUST_BACKTRACE=backtrace` grows over a probe's
/// connection (its first: the code that handles it is paged in too).
fn probe_growth(backtrace: &str) -> i64 {
    let d = std::env::temp_dir().join(format!(
        "oracle-exec-probe-{backtrace}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    std::fs::write(
        d.join("executor_config.json"),
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(BIN)
        .env("ORACLE_IPC_TOKEN", "probe-token")
        .env("RUST_LOG", "info")
        .env("RUST_BACKTRACE", backtrace)
        .env_remove("ORACLE_FAILPOINT")
        .args(["--paper", "--config"])
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The log, line by line, on a channel (so the test can wait for a given line).
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let mut wait_for = |what: &str| -> bool {
        while let Ok(l) = rx.recv() {
            log.push_str(&l);
            log.push('\n');
            if l.contains(what) {
                return true;
            }
        }
        false
    };
    let started = wait_for("IPC server listening");
    let pid = child.id();
    let result = started.then(|| {
        let before = rss_kb(pid);
        // A probe: connects, says something that is no WebSocket handshake, and goes.
        {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let _ = s.write_all(b"PING\r\n\r\n");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        let closed = wait_for("IPC connection closed");
        (before, rss_kb(pid), closed)
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&d);
    let (before, after, closed) = result.unwrap_or_else(|| panic!("no start:\n{log}"));
    assert!(closed, "the probe's end was not logged:\n{log}");
    after as i64 - before as i64
}

#[test]
#[cfg(target_os = "linux")]
fn a_connection_that_is_no_websocket_costs_no_backtrace() {
    // The least growth of three executors each: RSS also moves with what else the machine
    // pages at that moment (one lone reading grew by over 512 kB under a loaded test run),
    // while a backtrace's unwind tables cost ~1.3 MB on every try.
    let least = |backtrace: &str| {
        (0..3)
            .map(|_| probe_growth(backtrace))
            .min()
            .expect("3 tries")
    };
    let without = least("0");
    let with = least("1");
    assert!(
        with < without + 512,
        "a probe grew the executor by {with} kB with RUST_BACKTRACE=1, by {without} kB without"
    );
}
