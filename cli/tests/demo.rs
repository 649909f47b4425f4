//! `oracle demo` end to end with a small bar count: the built binary, real child processes, real
//! TLS and WebSocket. Checks the summary (one signal per model per live bar; every trace equals
//! `oracle replay` over the same bars), the report, and that nothing is left running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Processes whose command line mentions `needle` (our out dir), other than this test.
fn leftovers(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

#[test]
fn demo_end_to_end_small() {
    let out = std::env::temp_dir().join(format!("oracle-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_oracle"))
        .arg("demo")
        // The market's tail after the 6 h span is not waited for: the run ends when its bars
        // are done (it used to time out at 90 s with every bar done, the simulator going on).
        .args(["--bars", "6", "--timeout", "90", "--plain"])
        .arg("--out")
        .arg(&out)
        .arg("--models")
        .arg(repo().join("models"))
        .arg("--data")
        .arg(repo().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oracle demo");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("oracle demo did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut stdout));
    let _ = child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut stderr));
    let needle = out.display().to_string();
    assert!(
        leftovers(&needle).is_empty(),
        "left running: {:?}",
        leftovers(&needle)
    );
    assert!(
        status.success(),
        "demo failed: {status}\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("report: "), "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary json");
    let models = summary["models"].as_object().expect("models");
    assert_eq!(models.len(), 20, "all bundled models ran: {stdout}");
    for (name, m) in models {
        let live = m["live_bars"].as_u64().unwrap_or(0);
        let expected = m["expected_bars"].as_u64().unwrap_or(0);
        assert_eq!(
            m["signals"].as_u64(),
            Some(live),
            "{name}: one signal per live bar"
        );
        assert_eq!(
            m["replay_match"].as_bool(),
            Some(true),
            "{name}: {}",
            m["replay_note"]
        );
        assert_eq!(
            m["span_bars"].as_u64(),
            Some(expected),
            "{name}: every bar of the span reached the predictor (no symbol ran out of data)"
        );
        let causes: u64 = m["drift_causes"]
            .as_object()
            .expect("drift causes")
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum();
        assert_eq!(
            Some(causes),
            m["drift_bars"].as_u64(),
            "{name}: every drift bar has its cause"
        );
        if expected >= 4 {
            assert!(
                live > 0,
                "{name}: no live bar of {expected} reached the predictor"
            );
        }
    }
    assert_eq!(summary["ok"].as_bool(), Some(true));
    assert!(
        summary["equity"].as_f64().is_some(),
        "the account equity from the ledger"
    );
    assert!(
        !stdout.contains("MARKET_CLOSED"),
        "no symbol runs out of data inside the run: {stdout}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("<svg") && html.contains("EURUSD_H1"));
    // The tearsheet part (docs/report.md): the account's drawdown, and per model a statistics
    // row and a tearsheet from `oracle backtest` over the bars its twin ran.
    assert!(html.contains("Account drawdown (underwater)"));
    let stats = html
        .split("<table class=\"stats\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the per-model statistics table");
    for name in models.keys() {
        assert!(
            stats.contains(&format!("<a href=\"#{name}\">{name}</a>")),
            "{name}: no statistics row"
        );
        assert!(
            html.contains(&format!("id=\"{name}-tearsheet\"")),
            "{name}: no tearsheet"
        );
    }
    assert!(
        !html.contains("no statistics:"),
        "every model's backtest ran"
    );
    state_report_of_the_run(&out);
    std::fs::remove_dir_all(&out).expect("cleanup");
}

/// `oracle report --state` over the executor's state folder of a demo run (live on the
/// simulator, with the paper book): both sides on the page, each with as many fills as its
/// journal has `filled` outcomes, and the account's equity charted from the drift ledger.
fn state_report_of_the_run(out: &std::path::Path) {
    let state = out.join("executor");
    let page = out.join("state-report.html");
    let r = Command::new(env!("CARGO_BIN_EXE_oracle"))
        .args(["report", "--state"])
        .arg(&state)
        .arg("--out")
        .arg(&page)
        .output()
        .expect("run oracle report");
    assert!(
        r.status.success(),
        "oracle report --state: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("the state report");
    for (side, file) in [("live", "journal.jsonl"), ("paper", "paper-journal.jsonl")] {
        let journal = std::fs::read_to_string(state.join(file)).expect(file);
        let filled = journal
            .lines()
            .filter(|l| l.contains(r#""t":"outcome""#) && l.contains(r#""result":"filled""#))
            .count();
        let part = html
            .split(&format!("<h2 id=\"side-{side}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {side} side on the page"));
        let part = part.split("<h2 ").next().unwrap_or(part);
        assert!(
            part.contains(&format!("<span class=\"fills\">{filled}</span> fills")),
            "{side}: {filled} fills in {file}"
        );
        let rows = part
            .split("<table class=\"trades\">")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .map_or(0, |t| t.matches("<tr>").count().saturating_sub(1));
        assert_eq!(rows, filled, "{side}: one fill row per filled outcome");
        assert!(
            part.contains("equity (drift ledger)") && part.contains("<svg"),
            "{side}: the equity chart"
        );
    }
}
