//! Backtest parity: `oracle backtest` (`oracle_model::backtest`) and `python -m oracle_training
//! backtest` (`oracle_training.backtest.run_backtest`, the Python twin of the training
//! environment) print the same summary and write the same trade list, byte for byte, for every
//! bundled model over its bundled bar file (docs/backtest.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use oracle_model::{DEFAULT_CAPITAL, backtest};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const PYTHON: &str = r#"
import io, json, sys
from pathlib import Path
from oracle_training.backtest import run_backtest

results = []
args = sys.argv[1:]
for zip_path, bars, capital in zip(args[0::3], args[1::3], args[2::3]):
    err = io.StringIO()
    b = run_backtest(Path(zip_path), Path(bars), float(capital), err=err)
    results.append({
        "summary": b.summary(), "trades": b.trades_csv(), "rejected": err.getvalue(),
        "json": b.to_json(),
    })
print(json.dumps(results))
"#;

/// Every bundled model with its bar file and the capital it is run with (two capitals, so the
/// per-capital figures are compared too); and EURUSD_H1 over a file shorter than its window
/// (nothing decided: every "n/a") and over a short tail with rejected lines, written to `tmp`.
fn cases(root: &Path, tmp: &Path) -> Vec<(PathBuf, PathBuf, f64)> {
    let mut zips: Vec<PathBuf> = std::fs::read_dir(root.join("models"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "zip"))
                .collect()
        })
        .unwrap_or_default();
    zips.sort();
    let mut extra = Vec::new();
    let eurusd = root.join("models/EURUSD_H1.zip");
    if let (true, Ok(text)) = (
        eurusd.exists(),
        std::fs::read_to_string(root.join("data/EURUSD_H1.csv")),
    ) {
        let lines: Vec<&str> = text.lines().collect();
        let short = tmp.join("short.csv");
        std::fs::write(&short, lines[..101].join("\n") + "\n").unwrap();
        let mut odd = vec![lines[0]];
        odd.extend(&lines[lines.len() - 420..lines.len() - 10]);
        odd.push("2030-01-01T00:00:00Z,1,1,1,x,1");
        odd.extend(&lines[lines.len() - 10..]);
        odd.push(lines[lines.len() - 3]);
        let rejects = tmp.join("rejects.csv");
        std::fs::write(&rejects, odd.join("\n") + "\n").unwrap();
        extra.push((eurusd.clone(), short, DEFAULT_CAPITAL));
        extra.push((eurusd, rejects, 1_000.0));
    }
    zips.into_iter()
        .enumerate()
        .map(|(i, z)| {
            let name = z.file_stem().unwrap().to_string_lossy().into_owned();
            let bars = root.join("data").join(format!("{name}.csv"));
            let capital = if i % 2 == 0 { DEFAULT_CAPITAL } else { 2_500.0 };
            (z, bars, capital)
        })
        .chain(extra)
        .collect()
}

#[test]
fn rust_and_python_backtests_print_the_same_figures_and_trades_for_every_bundled_model() {
    let root = repo();
    let python = root.join(".venv/bin/python");
    let under_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let tmp = std::env::temp_dir().join(format!("oracle-backtest-parity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let cases = cases(&root, &tmp);
    if cases.is_empty() || !python.exists() {
        assert!(
            !under_ci,
            "models/*.zip or .venv/bin/python is missing: the backtest parity test cannot run"
        );
        println!("no models or no .venv/bin/python: the backtest parity test is skipped");
        return;
    }
    let mut cmd = Command::new(&python);
    cmd.arg("-c").arg(PYTHON);
    for (z, b, c) in &cases {
        cmd.arg(z).arg(b).arg(c.to_string());
    }
    let out = cmd.output().expect("run the Python backtest");
    assert!(
        out.status.success(),
        "the Python backtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Value = serde_json::from_slice(&out.stdout).expect("JSON from the Python backtest");
    let py = py.as_array().expect("a list");
    assert_eq!(py.len(), cases.len());

    let mut problems = Vec::new();
    let mut trades = 0;
    for ((zip, bars, capital), p) in cases.iter().zip(py) {
        let mut err = Vec::new();
        let b = backtest(zip, bars, *capital, &mut err)
            .unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
        let name = format!(
            "{} over {}",
            b.name,
            bars.file_name().unwrap().to_string_lossy()
        );
        // Every bundled model trades over its file: a parity of empty lists would prove little.
        let short = bars.ends_with("short.csv");
        if short != (b.stats.trades == 0 || b.stats.sharpe.is_none()) {
            problems.push(format!("{name}: no trades or no Sharpe:\n{}", b.summary()));
        }
        if bars.ends_with("rejects.csv") && b.rejected != 2 {
            problems.push(format!("{name}: {} lines rejected, not 2", b.rejected));
        }
        trades += b.stats.trades;
        // The full-precision figures (JSON, parsed back exactly: serde_json's float_roundtrip)
        // are equal too, not only their printed decimals.
        if b.to_json() != p["json"] {
            problems.push(format!(
                "{name} ({capital}): the JSON figures differ: Rust {}, Python {}",
                b.to_json(),
                p["json"]
            ));
        }
        for (what, rust, python) in [
            ("summary", b.summary(), &p["summary"]),
            ("trade list", b.trades_csv(), &p["trades"]),
            (
                "rejected lines",
                String::from_utf8(err).unwrap(),
                &p["rejected"],
            ),
        ] {
            let python = python.as_str().unwrap_or_default();
            if rust != python {
                let first = rust
                    .lines()
                    .zip(python.lines())
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| format!("line {}: Rust {a:?}, Python {b:?}", i + 1))
                    .unwrap_or_else(|| {
                        format!(
                            "{} lines in Rust, {} in Python",
                            rust.lines().count(),
                            python.lines().count()
                        )
                    });
                problems.push(format!("{name} ({capital}): the {what} differs: {first}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!(
        "{} runs, {trades} closed trades: Rust and Python print the same backtest",
        cases.len()
    );
}
