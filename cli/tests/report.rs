//! `oracle report --state DIR`: a state folder rendered to one HTML page; the errors name the
//! folder or the file and line at fault (docs/report.md "A state folder").

#[path = "common/state_fixture.rs"]
mod state_fixture;

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_oracle");

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

fn report(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .arg("report")
        .args(args)
        .output()
        .expect("run oracle report")
}

#[test]
fn a_paper_state_folder_renders_its_fills_and_the_guard_day_by_day() {
    let d = tmpdir("paper");
    let state = d.join("state");
    state_fixture::write(&state);
    let page = d.join("out/report.html");
    let out = report(&[
        "--state".as_ref(),
        state.as_os_str(),
        "--out".as_ref(),
        page.as_os_str(),
        "--currency".as_ref(),
        "USD".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(
        html.contains("<h2 id=\"side-paper\">paper side</h2>"),
        "{html}"
    );
    assert!(
        !html.contains("id=\"side-live\""),
        "no live journal, no live side"
    );
    assert!(html.contains("<span class=\"fills\">2</span> fills, 1 closed trades"));
    assert!(!html.contains("no trades yet"));
    assert!(html.contains("<svg") && html.contains("drawdown (underwater)"));
    // Per model: 2 fills, 1 closed trade won, +10.00 (0.001 × 10,000 units).
    assert!(
        html.contains("<tr><td>EURUSD_M15</td><td>2</td><td>1</td><td>1</td><td>100.00</td><td class=\"pos\">10.00</td><td>4</td><td>0</td></tr>"),
        "{html}"
    );
    let guard = html
        .split("<table class=\"guard\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the guard's table");
    let rows: Vec<&str> = guard.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "one row per Prague day: {guard}");
    assert!(rows[0].starts_with("<td>2026-01-14</td><td>2026-01-13T23:00:00Z</td><td>100000.00</td><td>95000.00</td><td>95900.00</td><td>96500.00</td><td>96500.00</td><td class=\"pos\">900.00</td><td>0.90</td><td>HALTED_DAILY_LOSS</td>"), "{guard}");
    assert!(rows[1].starts_with("<td>2026-01-15</td><td>2026-01-14T23:00:00Z</td><td>96500.00</td><td>91500.00</td><td>96000.00</td><td>96800.00</td><td>open</td><td class=\"pos\">4500.00</td><td>4.50</td><td>none</td>"), "{guard}");
    // A person's command, with its origin (escaped).
    assert!(
        html.contains("<tr><td>2026-01-15T00:00:00Z</td><td>unix:alice&lt;ops&gt;</td><td>halt --flatten</td><td class=\"ok\">yes</td><td>halted; 0 positions to close</td></tr>"),
        "{html}"
    );
    // The operator journal's symbol switches (a status query is not one).
    let switches = html
        .split("<h2 id=\"switches\">")
        .nth(1)
        .expect("the switches");
    assert!(
        switches.contains("<tr><td>2026-01-15T01:00:00Z</td><td>unix:alice</td><td>disable EURUSD</td><td class=\"ok\">yes</td><td>EURUSD disabled</td></tr>"),
        "{switches}"
    );
    assert!(!switches.contains(">status<"), "{switches}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn money_is_in_the_deposit_currency_the_live_executor_recorded_unless_one_is_given() {
    let d = tmpdir("currency");
    let state = d.join("state");
    state_fixture::write(&state);
    let page = d.join("report.html");
    let args = [
        "--state".as_ref(),
        state.as_os_str(),
        "--out".as_ref(),
        page.as_os_str(),
    ];
    let render = |extra: &[&std::ffi::OsStr]| {
        let mut a = args.to_vec();
        a.extend_from_slice(extra);
        let out = report(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&page).expect("page")
    };
    // Nothing recorded (a paper-only folder): the generic name.
    assert!(render(&[]).contains("money in account currency"));
    // Recorded by the live executor at its start.
    std::fs::write(state.join("deposit-currency"), "EUR\n").expect("write");
    let html = render(&[]);
    assert!(html.contains("money in EUR;"), "{html}");
    // A name given wins.
    let html = render(&["--currency".as_ref(), "CHF".as_ref()]);
    assert!(html.contains("money in CHF;") && !html.contains("money in EUR"));
}

#[test]
fn a_missing_state_folder_is_an_error_naming_it() {
    let d = tmpdir("missing").join("no-such-state");
    let out = report(&["--state".as_ref(), d.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}: no such folder", d.display())),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_journal_line_is_an_error_naming_the_file_and_the_line() {
    let d = tmpdir("corrupt");
    state_fixture::write(&d);
    let j = d.join("paper-journal.jsonl");
    let text = std::fs::read_to_string(&j).expect("journal");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "{\"t\":\"intent\",\"ts\":");
    std::fs::write(&j, lines.join("\n") + "\n").expect("corrupt");
    let out = report(&["--state".as_ref(), d.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: line 4: not a journal record", j.display())),
        "{stderr}"
    );
    assert!(
        !d.join("report.html").exists(),
        "no page for a corrupt journal"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_empty_state_folder_is_a_report_saying_no_trades_yet() {
    let d = tmpdir("empty");
    let out = report(&["--state".as_ref(), d.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(d.join("report.html")).expect("DIR/report.html");
    assert!(html.contains("no trades yet"), "{html}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A free loopback port (bound, then released for the child).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the children on drop (a failed assertion leaves nothing running).
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_real_paper_run_over_a_bar_file_renders_its_fills_and_the_guard_across_a_prague_midnight() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let zip = repo.join("models/SYNIDX03_M5.zip");
    let d = tmpdir("paper-run");
    std::fs::create_dir_all(d.join("models")).expect("models");
    std::fs::copy(&zip, d.join("models/SYNIDX03_M5.zip")).expect("the bundled model");
    // 350 bars of HISTORY, then 100 live M5 bars from 2019-01-22T19:45Z to 03:00Z: across
    // Prague's midnight (23:00Z in winter).
    let text = std::fs::read_to_string(repo.join("data/SYNIDX03_M5.csv")).expect("bar file");
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("2019-01-23T03:00:00Z"))
        .expect("the bar at 03:00Z");
    let mut csv = format!("{}\n", lines[0]);
    for l in &lines[end + 1 - 450..=end] {
        csv.push_str(l);
        csv.push('\n');
    }
    std::fs::write(d.join("bars.csv"), csv).expect("bars");
    std::fs::write(
        d.join("executor_config.json"),
        r#"{"SYNIDX03": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}, "risk": {"preset": "ftmo-2step"}}"#,
    )
    .expect("config");
    let port = free_port();
    let spawn = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(&d)
            .env("ORACLE_IPC_TOKEN", "report-test-token")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let listen = format!("127.0.0.1:{port}");
    let mut kids = Children(vec![spawn(&[
        "executor",
        "--paper",
        "--json",
        "--feed-wait-client",
        "--feed-interval-ms",
        "30",
        "--config",
        "executor_config.json",
        "--state",
        "state",
        "--listen",
        &listen,
        "--models",
        "models",
        "--feed-csv",
        "SYNIDX03_M5=bars.csv",
    ])]);
    let ipc = format!("ws://{listen}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    kids.0.push(spawn(&[
        "predictor",
        "--models",
        "models",
        "--state",
        "pstate",
        "--ipc",
        &ipc,
        "--json",
    ]));
    let ledger = d.join("state/drift.jsonl");
    let rows = || {
        std::fs::read_to_string(&ledger)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while rows() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the paper run wrote {} ledger rows of 100 in 180 s",
            rows()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(kids);
    let out = report(&["--state".as_ref(), d.join("state").as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(d.join("state/report.html")).expect("DIR/report.html");
    let journal = std::fs::read_to_string(d.join("state/paper-journal.jsonl")).expect("journal");
    let filled = journal
        .lines()
        .filter(|l| l.contains(r#""t":"outcome""#) && l.contains(r#""result":"filled""#))
        .count();
    assert!(filled > 0, "the model traded: {journal}");
    assert!(
        html.contains(&format!("<span class=\"fills\">{filled}</span> fills")),
        "{filled} fills"
    );
    let fill_rows = html
        .split("<table class=\"trades\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .map_or(0, |t| t.matches("<tr>").count() - 1);
    assert_eq!(fill_rows, filled, "one row per filled outcome");
    let ledger_rows = rows();
    assert!(
        html.contains(&format!("<td>{ledger_rows}</td><td>")),
        "the model's ledger bars: {ledger_rows}"
    );
    // The guard (ftmo-2step; the replay's clock is its bars'): two Prague days, the first closed
    // by the guard with its `guard_day` record, the second open.
    assert_eq!(
        journal.matches(r#""t":"guard_day""#).count(),
        1,
        "{journal}"
    );
    let guard = html
        .split("<table class=\"guard\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the guard's table");
    let days: Vec<&str> = guard.split("<tr>").skip(2).collect();
    assert_eq!(days.len(), 2, "{guard}");
    assert!(
        days[0].starts_with("<td>2019-01-22</td><td>2019-01-21T23:00:00Z</td>"),
        "{guard}"
    );
    assert!(
        days[1].starts_with("<td>2019-01-23</td><td>2019-01-22T23:00:00Z</td>"),
        "{guard}"
    );
    assert!(!days[0].contains("<td>open</td>"), "closed: {guard}");
    assert!(days[1].contains("<td>open</td>"), "{guard}");
    assert!(
        !guard.contains("n/a"),
        "the config beside the folder gives the floor: {guard}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
