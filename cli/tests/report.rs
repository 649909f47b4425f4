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
    let _ = std::fs::remove_dir_all(&d);
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
