//! The `oracle-predictor` binary against a scripted executor (a real WebSocket on loopback), on
//! the bundled models and bars: a bad zip is skipped by name, the trace equals `oracle replay`
//! over the same bars, and a predictor restarted from its state file continues exactly.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

const TOKEN: &str = "test-token-0123";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-pred-proc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// Bar file lines (without the header).
fn bar_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(format!("data/{name}.csv"))).expect("bars");
    text.lines().skip(1).map(str::to_string).collect()
}

fn bar_msg(sym: &str, tf: &str, csv: &str, seq: usize, hist: bool) -> String {
    let f: Vec<&str> = csv.split(',').collect();
    format!(
        "BAR|{sym}|{tf}|{}|{}|{}|{}|{}|{}|SEQ:{seq}{}",
        f[0],
        f[1],
        f[2],
        f[3],
        f[4],
        f[5],
        if hist { "|HIST:1" } else { "" }
    )
}

/// Kills the child if the test fails half way.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Run {
    signals: Vec<String>,
    log: String,
}

/// Plays the executor for one session: answers HISTORY with `bars[..upto]`, then sends
/// `bars[upto..to]` live (all streams closing together), ACKs every signal, hangs up.
fn session(root: &Path, streams: &[(&str, &str)], upto: usize, to: usize) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let child = Command::new(env!("CARGO_BIN_EXE_oracle-predictor"))
        .args(["--models", &root.join("models").display().to_string()])
        .args(["--state", &root.join("state").display().to_string()])
        .args(["--trace", &root.join("trace").display().to_string()])
        .args([
            "--ipc",
            &format!("ws://127.0.0.1:{port}"),
            "--json",
            "--once",
        ])
        .env("ORACLE_IPC_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn predictor");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    let log_thread = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    listener.set_nonblocking(false).expect("blocking");
    let (tcp, _) = listener.accept().expect("accept");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut ws = tungstenite::accept(tcp).expect("ws handshake");
    let read = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>| -> String {
        loop {
            match ws.read().expect("read") {
                Message::Text(t) => return t.as_str().to_string(),
                Message::Close(_) => panic!("predictor closed"),
                _ => {}
            }
        }
    };
    assert_eq!(read(&mut ws), format!("HELLO|{TOKEN}"));
    ws.send(Message::text("WELCOME|V:1")).expect("send");
    let data: Vec<(String, String, Vec<String>)> = streams
        .iter()
        .map(|(s, t)| (s.to_string(), t.to_string(), bar_lines(&format!("{s}_{t}"))))
        .collect();
    for _ in streams {
        let req = read(&mut ws);
        let f: Vec<&str> = req.split('|').collect();
        assert_eq!(f[0], "HISTORY", "{req}");
        let count: usize = f[3].parse().expect("count");
        let (_, _, bars) = data
            .iter()
            .find(|(s, t, _)| s == f[1] && t == f[2])
            .expect("stream");
        let from = upto.saturating_sub(count);
        for (i, b) in bars[from..upto].iter().enumerate() {
            ws.send(Message::text(bar_msg(f[1], f[2], b, from + i, true)))
                .expect("send");
        }
        ws.send(Message::text(format!(
            "HISTORY_END|{}|{}|{}",
            f[1],
            f[2],
            upto - from
        )))
        .expect("send");
    }
    let mut signals = Vec::new();
    for i in upto..to {
        for (s, t, bars) in &data {
            ws.send(Message::text(bar_msg(s, t, &bars[i], i, false)))
                .expect("send");
        }
        for _ in &data {
            let sig = read(&mut ws);
            assert!(sig.starts_with("SIGNAL|"), "{sig}");
            let f: Vec<&str> = sig.split('|').collect();
            let tags = &f[5..];
            let bt = tags.iter().find(|x| x.starts_with("BT:")).expect("BT");
            let seq = tags.iter().find(|x| x.starts_with("SEQ:")).expect("SEQ");
            // Alternate OK and a refusal: neither may move a virtual position.
            let ack = if i % 2 == 0 {
                format!("ACK|{}|{}|OK|T:{i}|P:1.0|{bt}|{seq}", f[1], f[2])
            } else {
                format!("ACK|{}|{}|FAIL|MARGIN|{bt}|{seq}", f[1], f[2])
            };
            ws.send(Message::text(ack)).expect("send");
            signals.push(sig);
        }
    }
    // A duplicate of the last bar is ignored (no signal).
    let (s, t, bars) = &data[0];
    ws.send(Message::text(bar_msg(s, t, &bars[to - 1], to - 1, false)))
        .expect("send");
    ws.close(None).expect("close");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => panic!("unexpected after the duplicate bar: {t}"),
            Ok(_) => {}
            Err(_) => break,
        }
        assert!(Instant::now() < deadline, "predictor did not hang up");
    }
    loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            assert!(status.success(), "predictor exit {status}");
            break;
        }
        assert!(Instant::now() < deadline, "predictor did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = log_thread.join().expect("log");
    Run { signals, log }
}

fn replay_over(model: &str, lines: &[String]) -> String {
    let dir = tmpdir(&format!("replay-{model}"));
    let csv = dir.join("bars.csv");
    std::fs::write(
        &csv,
        format!("time,open,high,low,close,volume\n{}\n", lines.join("\n")),
    )
    .expect("write");
    let mut out = Vec::new();
    let mut err = Vec::new();
    oracle_model::replay(
        &repo().join(format!("models/{model}.zip")),
        &csv,
        &mut out,
        &mut err,
    )
    .expect("replay");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    String::from_utf8(out).expect("utf8")
}

fn setup(root: &Path, models: &[&str]) {
    std::fs::create_dir_all(root.join("models")).expect("dir");
    for m in models {
        std::fs::copy(
            repo().join(format!("models/{m}.zip")),
            root.join(format!("models/{m}.zip")),
        )
        .expect("copy model");
    }
}

const STREAMS: [(&str, &str); 2] = [("EURUSD", "H1"), ("SYNFX03", "H1")];

#[test]
fn bad_zip_skipped_and_trace_equals_replay() {
    let root = tmpdir("replay");
    setup(&root, &["EURUSD_H1", "SYNFX03_H1"]);
    std::fs::write(root.join("models/BROKEN_H1.zip"), b"PK\x03\x04 not a zip").expect("bad zip");
    let run = session(&root, &STREAMS, 400, 460);
    assert!(
        run.log.contains("model_refused") && run.log.contains("BROKEN_H1.zip"),
        "the bad zip is named in the log:\n{}",
        run.log
    );
    assert_eq!(
        run.signals.len(),
        2 * 60,
        "one SIGNAL per model per live bar"
    );
    for (sym, tf) in STREAMS {
        let name = format!("{sym}_{tf}");
        let trace = std::fs::read_to_string(root.join(format!("trace/{name}.csv"))).expect("trace");
        // A fresh twin warms up over the last `window` (350) history bars, then runs live.
        let expected = replay_over(&name, &bar_lines(&name)[50..460]);
        assert_eq!(trace, expected, "{name}: predictor trace = oracle replay");
    }
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn restart_from_state_continues_exactly() {
    let whole = tmpdir("whole");
    setup(&whole, &["EURUSD_H1", "SYNFX03_H1"]);
    let a = session(&whole, &STREAMS, 400, 470);

    let parts = tmpdir("parts");
    setup(&parts, &["EURUSD_H1", "SYNFX03_H1"]);
    let first = session(&parts, &STREAMS, 400, 430);
    // Down while bars 430..450 close; they come back as history and move the twins silently.
    let second = session(&parts, &STREAMS, 450, 470);
    assert!(
        second.log.contains("\"event\":\"restored\""),
        "{}",
        second.log
    );
    for (sym, tf) in STREAMS {
        let name = format!("{sym}_{tf}");
        let w = std::fs::read_to_string(whole.join(format!("trace/{name}.csv"))).expect("trace");
        let p = std::fs::read_to_string(parts.join(format!("trace/{name}.csv"))).expect("trace");
        assert_eq!(
            w, p,
            "{name}: the restarted trace equals the uninterrupted one"
        );
    }
    let tail = &a.signals[a.signals.len() - second.signals.len()..];
    assert_eq!(
        tail,
        second.signals.as_slice(),
        "same signals after the restart"
    );
    assert_eq!(&a.signals[..first.signals.len()], first.signals.as_slice());
    let sw = std::fs::read_to_string(whole.join("state/predictor-state.json")).expect("state");
    let sp = std::fs::read_to_string(parts.join("state/predictor-state.json")).expect("state");
    assert_eq!(sw, sp, "same final state file");
    std::fs::remove_dir_all(&whole).expect("cleanup");
    std::fs::remove_dir_all(&parts).expect("cleanup");
}
