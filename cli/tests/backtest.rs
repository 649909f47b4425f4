//! `oracle backtest` (docs/backtest.md): the summary on stdout, the trade list in
//! `out/backtest/SYM_TF.trades.csv` by default (or `--trades FILE`), `--json`, and one-line
//! refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_oracle");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-backtest-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn oracle(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run oracle")
}

/// The model and the last `n` bars of its file (plus one bad line) in `dir`; `None` when the
/// models are not built.
fn inputs(dir: &Path, n: usize) -> Option<(PathBuf, PathBuf)> {
    let zip = repo().join("models/EURUSD_H1.zip");
    if !zip.exists() {
        println!("no models/EURUSD_H1.zip: skipped");
        return None;
    }
    let text = std::fs::read_to_string(repo().join("data/EURUSD_H1.csv")).expect("bar file");
    let lines: Vec<&str> = text.lines().collect();
    let mut csv = format!("{}\n", lines[0]);
    for l in &lines[lines.len() - n..] {
        csv.push_str(l);
        csv.push('\n');
    }
    csv.push_str("2030-01-01T00:00:00Z,1,1,1,x,1\n");
    let bars = dir.join("bars.csv");
    std::fs::write(&bars, csv).unwrap();
    Some((zip, bars))
}

#[test]
fn backtest_prints_the_summary_and_writes_the_trade_list_under_out_by_default() {
    let dir = tmpdir("default");
    let Some((zip, bars)) = inputs(&dir, 1000) else {
        return;
    };
    let out = oracle(
        &dir,
        &[
            "backtest",
            "--model",
            zip.to_str().unwrap(),
            "--bars",
            "bars.csv",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = oracle_model::backtest(&zip, &bars, oracle_model::DEFAULT_CAPITAL, &mut Vec::new())
        .expect("backtest");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want.summary());
    assert!(want.stats.trades > 0);
    let trades = std::fs::read_to_string(dir.join("out/backtest/EURUSD_H1.trades.csv"))
        .expect("the trade list in out/backtest/");
    assert_eq!(trades, want.trades_csv());
    assert!(
        stderr.contains("bars.csv:1002: bar rejected: close \"x\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "trade list: out/backtest/EURUSD_H1.trades.csv ({} closed trades)",
            want.stats.trades
        )),
        "{stderr}"
    );
}

#[test]
fn backtest_json_and_trades_file_and_capital() {
    let dir = tmpdir("json");
    let Some((zip, bars)) = inputs(&dir, 600) else {
        return;
    };
    let out = oracle(
        &dir,
        &[
            "backtest",
            "--model",
            zip.to_str().unwrap(),
            "--bars",
            "bars.csv",
            "--capital",
            "2500",
            "--trades",
            "t/list.csv",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let want = oracle_model::backtest(&zip, &bars, 2500.0, &mut Vec::new()).expect("backtest");
    assert_eq!(json, want.to_json());
    assert_eq!(json["capital"], 2500.0);
    assert_eq!(json["bars"], 600);
    let list = std::fs::read_to_string(dir.join("t/list.csv")).expect("--trades file");
    assert_eq!(list, want.trades_csv());
    assert!(
        !dir.join("out").exists(),
        "--trades given: nothing under out/"
    );
}

#[test]
fn a_capital_that_is_not_positive_is_one_line_naming_it() {
    let dir = tmpdir("capital");
    let Some((zip, _)) = inputs(&dir, 400) else {
        return;
    };
    for bad in ["0", "-5", "NaN"] {
        let out = oracle(
            &dir,
            &[
                "backtest",
                "--model",
                zip.to_str().unwrap(),
                "--bars",
                "bars.csv",
                &format!("--capital={bad}"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("oracle backtest: --capital ")
                && stderr.contains("must be a positive amount"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_missing_bar_file_is_one_line_naming_it() {
    let dir = tmpdir("missing");
    let Some((zip, _)) = inputs(&dir, 400) else {
        return;
    };
    let out = oracle(
        &dir,
        &[
            "backtest",
            "--model",
            zip.to_str().unwrap(),
            "--bars",
            "nope.csv",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("oracle backtest: nope.csv: cannot open"),
        "{stderr}"
    );
}

#[test]
fn backtest_prints_its_version() {
    let out = oracle(Path::new("."), &["backtest", "--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("oracle")
            && text
                .trim()
                .ends_with(&format!(" {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn html_writes_the_tearsheet_of_the_same_run_and_an_unwritable_page_is_one_line_naming_it() {
    let dir = tmpdir("html");
    let Some((zip, bars)) = inputs(&dir, 600) else {
        return;
    };
    let model = zip.to_str().unwrap();
    let out = oracle(
        &dir,
        &[
            "backtest",
            "--model",
            model,
            "--bars",
            "bars.csv",
            "--html",
            "pages/t.html",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tearsheet: pages/t.html"), "{stderr}");
    let page = std::fs::read_to_string(dir.join("pages/t.html")).expect("the tearsheet");
    let want = oracle_model::backtest(&zip, &bars, oracle_model::DEFAULT_CAPITAL, &mut Vec::new())
        .expect("backtest");
    assert_eq!(
        page,
        oracle_report::page(&want, model, "bars.csv", "account currency"),
        "the page of the run the summary printed, money named 'account currency' by default"
    );
    // The summary on stdout is unchanged by --html.
    assert_eq!(String::from_utf8_lossy(&out.stdout), want.summary());
    // A page whose folder cannot be made (bars.csv is a file): one line naming it, exit 1.
    let out = oracle(
        &dir,
        &[
            "backtest",
            "--model",
            model,
            "--bars",
            "bars.csv",
            "--html",
            "bars.csv/t.html",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Two lines: the bad bar line of the input (reported and skipped), then the refusal.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[1].starts_with("oracle backtest: bars.csv: cannot create the folder"),
        "{stderr}"
    );
}
