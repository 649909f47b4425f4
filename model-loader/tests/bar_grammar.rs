//! One bar-file grammar for Rust and Python (`docs/contract.md` §1 "Bar files"): a corpus of odd
//! spellings goes through `oracle_model::replay` (what `oracle replay` runs) and through the
//! Python reference replay (`oracle_training.reference.replay_trace`, what `python -m
//! oracle_training replay` runs); both must accept the same lines, print the same trace and
//! reject with the same messages. Each case also states how many bars the grammar accepts, so
//! the two cannot agree on a wrong answer.
//!
//! The Python side runs with the repository's `.venv`. Without it the test says so and passes,
//! except under CI (`CI` set), where a missing `.venv` is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use oracle_model::replay;
use serde_json::Value;

const H: &str = "time,open,high,low,close,volume";
const A: &str = "2021-03-01T00:00:00Z,1.1,1.2,1.0,1.15,10";
const C: &str = "2021-03-01T02:00:00Z,1.12,1.3,1.1,1.2,5";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file `H`, `A`, `odd`, `C` (LF line ends).
fn around(odd: &str) -> Vec<u8> {
    format!("{H}\n{A}\n{odd}\n{C}\n").into_bytes()
}

/// Each case: name, file bytes, and the bars the grammar accepts (`None`: the file is refused).
fn corpus() -> Vec<(&'static str, Vec<u8>, Option<usize>)> {
    let b = |s: &str| s.as_bytes().to_vec();
    let t = "2021-03-01T01:00:00Z";
    let row = |o: &str, h: &str, l: &str, c: &str, v: &str| format!("{t},{o},{h},{l},{c},{v}");
    let huge = format!("1{}", "0".repeat(400));
    vec![
        (
            "well-formed",
            around(&row("1.1", "1.2", "1.0", "1.1", "7")),
            Some(3),
        ),
        (
            "underscore",
            around(&row("1_1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "underscore-thousands",
            around(&row("1.1", "1.2", "1.0", "1.1", "1_000")),
            Some(2),
        ),
        (
            "full-width-digit-price",
            around(&row("\u{ff11}.1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "full-width-digit-time",
            around("\u{ff12}021-03-01T01:00:00Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "arabic-indic-digit",
            around(&row("\u{0661}.1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "bom",
            [
                b"\xef\xbb\xbf".as_slice(),
                &around(&row("1.1", "1.2", "1.0", "1.1", "7")),
            ]
            .concat(),
            None,
        ),
        (
            "space-after-time",
            around(&format!("{t} ,1.1,1.2,1.0,1.1,7")),
            Some(2),
        ),
        (
            "space-before-time",
            around(&format!(" {t},1.1,1.2,1.0,1.1,7")),
            Some(2),
        ),
        (
            "trailing-space",
            around(&format!("{} ", row("1.1", "1.2", "1.0", "1.1", "7"))),
            Some(2),
        ),
        (
            "space-in-field",
            around(&row(" 1.1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "tab",
            around(&row("1.1\t", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "crlf",
            format!(
                "{H}\r\n{A}\r\n{}\r\n{C}\r\n",
                row("1.1", "1.2", "1.0", "1.1", "7")
            )
            .into_bytes(),
            Some(3),
        ),
        (
            "lone-cr",
            around(&row("1.1", "1.2", "1.0", "1.1", "7\r8")),
            Some(2),
        ),
        (
            "cr-mid-line",
            around(&row("1.1\r", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "plus-sign",
            around(&row("+1.1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "exponent",
            around(&row("1.1", "1.2", "1.0", "1.1", "1e3")),
            Some(2),
        ),
        (
            "exponent-upper",
            around(&row("1.1E0", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "leading-dot",
            around(&row("1.1", "1.2", ".5", "1.1", "7")),
            Some(2),
        ),
        (
            "trailing-dot",
            around(&row("1.", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "nan",
            around(&row("1.1", "1.2", "1.0", "nan", "7")),
            Some(2),
        ),
        (
            "NaN",
            around(&row("NaN", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "inf",
            around(&row("1.1", "inf", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "minus-infinity",
            around(&row("1.1", "1.2", "1.0", "1.1", "-infinity")),
            Some(2),
        ),
        (
            "hex",
            around(&row("0x1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "empty-field",
            around(&row("1.1", "", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "extra-column",
            around(&format!("{},0", row("1.1", "1.2", "1.0", "1.1", "7"))),
            Some(2),
        ),
        (
            "trailing-comma",
            around(&format!("{},", row("1.1", "1.2", "1.0", "1.1", "7"))),
            Some(2),
        ),
        (
            "five-fields",
            around(&format!("{t},1.1,1.2,1.0,1.1")),
            Some(2),
        ),
        (
            "out-of-order",
            around("2021-02-28T23:00:00Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        ("duplicate", around(A), Some(2)),
        (
            "zero-price",
            around(&row("1.1", "1.2", "1.0", "0", "7")),
            Some(2),
        ),
        (
            "negative-price",
            around(&row("-1.1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "minus-zero-price",
            around(&row("1.1", "1.2", "-0.0", "1.1", "7")),
            Some(2),
        ),
        (
            "high-below-low",
            around(&row("1.1", "1.0", "1.2", "1.1", "7")),
            Some(2),
        ),
        (
            "negative-volume",
            around(&row("1.1", "1.2", "1.0", "1.1", "-3")),
            Some(2),
        ),
        (
            "minus-zero-volume",
            around(&row("1.1", "1.2", "1.0", "1.1", "-0")),
            Some(3),
        ),
        (
            "zero-volume",
            around(&row("1.1", "1.2", "1.0", "1.1", "0")),
            Some(3),
        ),
        (
            "fractional-volume",
            around(&row("1.1", "1.2", "1.0", "1.1", "2.5")),
            Some(3),
        ),
        (
            "overflowing-number",
            around(&row("1.1", &huge, "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "leading-zeros",
            around(&row("001.10", "1.2", "1.0", "1.1", "007")),
            Some(3),
        ),
        (
            "long-decimals",
            around(&row("1.1000000000000000000001", "1.2", "1.0", "1.1", "7")),
            Some(3),
        ),
        (
            "lowercase-t",
            around("2021-03-01t01:00:00Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "no-zulu",
            around("2021-03-01T01:00:00,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "offset",
            around("2021-03-01T01:00:00+00:00,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "fractional-seconds",
            around("2021-03-01T01:00:00.0Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "space-separator",
            around("2021-03-01 01:00:00Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "hour-24",
            around("2021-03-01T24:00:00Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "leap-second",
            around("2021-03-01T01:00:60Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "feb-29-not-leap",
            format!("{H}\n2021-02-29T00:00:00Z,1.1,1.2,1.0,1.1,7\n").into_bytes(),
            Some(0),
        ),
        (
            "feb-29-leap",
            format!("{H}\n2024-02-29T00:00:00Z,1.1,1.2,1.0,1.1,7\n").into_bytes(),
            Some(1),
        ),
        (
            "year-zero",
            format!("{H}\n0000-03-01T00:00:00Z,1.1,1.2,1.0,1.1,7\n").into_bytes(),
            Some(1),
        ),
        (
            "short-date",
            around("2021-3-01T01:00:00Z,1.1,1.2,1.0,1.1,7"),
            Some(2),
        ),
        (
            "quoted-field",
            around(&row("\"1.1\"", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "backslash",
            around(&row("1\\1", "1.2", "1.0", "1.1", "7")),
            Some(2),
        ),
        (
            "invalid-utf8",
            [
                format!("{H}\n{A}\n{t},1.1").as_bytes(),
                b"\xff\xfe",
                b",1.2,1.0,1.1,7\n",
                C.as_bytes(),
                b"\n",
            ]
            .concat(),
            Some(2),
        ),
        (
            "blank-line",
            format!("{H}\n{A}\n\n{C}\n").into_bytes(),
            Some(2),
        ),
        (
            "blank-crlf-line",
            format!("{H}\r\n{A}\r\n\r\n{C}\r\n").into_bytes(),
            Some(2),
        ),
        ("whitespace-line", around("   "), Some(2)),
        ("tab-line", around("\t"), Some(2)),
        (
            "no-final-newline",
            format!("{H}\n{A}\n{C}").into_bytes(),
            Some(2),
        ),
        ("header-only", b(&format!("{H}\n")), Some(0)),
        ("header-no-newline", b(H), Some(0)),
        ("empty-file", Vec::new(), None),
        (
            "header-trailing-space",
            format!("{H} \n{A}\n").into_bytes(),
            None,
        ),
        (
            "header-uppercase",
            format!("{}\n{A}\n", H.to_uppercase()).into_bytes(),
            None,
        ),
        (
            "header-extra-column",
            format!("{H},spread\n{A}\n").into_bytes(),
            None,
        ),
        (
            "header-tab",
            format!("{}\n{A}\n", H.replace(',', "\t")).into_bytes(),
            None,
        ),
        ("header-quote", format!("\"{H}\"\n{A}\n").into_bytes(), None),
    ]
}

/// What one side made of a file: the trace (None if refused), the rejections, the refusal.
#[derive(Debug, PartialEq)]
struct Outcome {
    trace: Option<String>,
    rejected: String,
    error: Option<String>,
}

fn rust_side(zip: &Path, csv: &Path) -> Outcome {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let r = replay(zip, csv, &mut out, &mut err);
    Outcome {
        trace: r.is_ok().then(|| String::from_utf8(out).unwrap()),
        rejected: String::from_utf8(err).unwrap(),
        error: r.err().map(|e| e.to_string()),
    }
}

const PYTHON: &str = r#"
import io, json, sys
from pathlib import Path
from oracle_training.bars import BarError
from oracle_training.reference import replay_trace

zip_path = Path(sys.argv[1])
results = []
for p in sys.argv[2:]:
    err = io.StringIO()
    try:
        trace, error = replay_trace(zip_path, Path(p), err=err), None
    except BarError as e:
        trace, error = None, str(e)
    results.append({"trace": trace, "rejected": err.getvalue(), "error": error})
print(json.dumps(results))
"#;

fn python_side(python: &Path, zip: &Path, files: &[PathBuf]) -> Vec<Outcome> {
    let out = Command::new(python)
        .arg("-c")
        .arg(PYTHON)
        .arg(zip)
        .args(files)
        .output()
        .expect("run the Python replay");
    assert!(
        out.status.success(),
        "the Python replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from the Python replay");
    let text = |x: &Value| x.as_str().map(str::to_owned);
    v.as_array()
        .expect("a list")
        .iter()
        .map(|r| Outcome {
            trace: text(&r["trace"]),
            rejected: text(&r["rejected"]).unwrap_or_default(),
            error: text(&r["error"]),
        })
        .collect()
}

#[test]
fn rust_and_python_read_every_odd_bar_file_alike() {
    let zip = repo().join("models/EURUSD_H1.zip");
    let python = repo().join(".venv/bin/python");
    let under_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    for (what, path) in [
        ("models/EURUSD_H1.zip", &zip),
        (".venv/bin/python", &python),
    ] {
        if !path.exists() {
            assert!(
                !under_ci,
                "{what} is missing: the bar-grammar differential test cannot run"
            );
            println!("no {what}: the bar-grammar differential test is skipped");
            return;
        }
    }
    let dir = std::env::temp_dir().join(format!("oracle-bar-grammar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cases = corpus();
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(name, bytes, _)| {
            let p = dir.join(format!("{name}.csv"));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();

    let py = python_side(&python, &zip, &files);
    assert_eq!(py.len(), cases.len());
    let mut problems = Vec::new();
    for (((name, _, accepted), file), py) in cases.iter().zip(&files).zip(&py) {
        let rs = rust_side(&zip, file);
        if rs != *py {
            problems.push(format!("{name}: Rust {rs:#?}\n    Python {py:#?}"));
            continue;
        }
        let bars = rs.trace.as_ref().map(|t| t.lines().count() - 1);
        if bars != *accepted {
            problems.push(format!(
                "{name}: both accept {bars:?} bars, the grammar {accepted:?}: {rs:#?}"
            ));
        }
        // Every rejection names the file and its line; a refusal names the file.
        for l in rs.rejected.lines() {
            if !l.starts_with(&format!("{}:", file.display())) || !l.contains(": bar rejected: ") {
                problems.push(format!("{name}: rejection {l:?}"));
            }
        }
        if let Some(e) = &rs.error
            && !e.starts_with(&format!("{}:1: header must be ", file.display()))
        {
            problems.push(format!("{name}: refusal {e:?}"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rejections_quote_the_field_and_print_iso_times() {
    let dir = std::env::temp_dir().join(format!("oracle-bar-messages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("b.csv");
    let t = "2021-03-01T01:00:00Z";
    let text = format!(
        "{H}\n{A}\n{t},1_1,1.2,1.0,1.1,7\n{t},1.1,1.2,1.0,1.1,7\t\n{A}\n\
         2021-02-01T00:00:00Z,1.1,1.2,1.0,1.1,7\n{t},1.1,1.0,1.2,1.1,7\n"
    );
    std::fs::write(&csv, text).unwrap();
    let Some(zip) = Some(repo().join("models/EURUSD_H1.zip")).filter(|p| p.exists()) else {
        println!("no models/EURUSD_H1.zip: skipped");
        return;
    };
    let rs = rust_side(&zip, &csv);
    let p = csv.display();
    assert_eq!(
        rs.rejected,
        format!(
            "{p}:3: bar rejected: open \"1_1\" is not a decimal number\n\
             {p}:4: bar rejected: volume \"7\\u{{9}}\" is not a decimal number\n\
             {p}:5: bar rejected: time 2021-03-01T00:00:00Z is not after the previous bar's time 2021-03-01T00:00:00Z\n\
             {p}:6: bar rejected: time 2021-02-01T00:00:00Z is not after the previous bar's time 2021-03-01T00:00:00Z\n\
             {p}:7: bar rejected: high \"1.0\" is below low \"1.2\"\n"
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
