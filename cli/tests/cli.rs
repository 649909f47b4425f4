//! The `oracle` command line a person relies on: `--version` on every subcommand, logs without
//! colour escapes when they go to a file or a pipe, one flat JSON line shape for the executor and
//! the predictor.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_oracle");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// `oracle ARGS` with stdout and stderr piped, colour hints removed from the environment.
fn oracle(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("ORACLE_IPC_TOKEN")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run oracle")
}

#[test]
fn every_subcommand_prints_its_version() {
    let v = env!("CARGO_PKG_VERSION");
    let top = oracle(&["--version"]);
    assert!(top.status.success());
    assert_eq!(
        String::from_utf8_lossy(&top.stdout).trim(),
        format!("oracle {v}")
    );
    for sub in [
        "demo",
        "sim",
        "executor",
        "predictor",
        "replay",
        "report",
        "doctor",
    ] {
        let out = oracle(&[sub, "--version"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "oracle {sub} --version: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        // One line: the program and the version.
        assert_eq!(text.lines().count(), 1, "oracle {sub} --version: {text}");
        assert!(
            text.starts_with("oracle") && text.trim().ends_with(&format!(" {v}")),
            "oracle {sub} --version: {text}"
        );
    }
}

/// The product binary is the product: the development harness (bench, chaos) is `oracle-dev`
/// (package `oracle-xtask`), not a subcommand of `oracle`.
#[test]
fn the_product_binary_has_no_bench_or_chaos_subcommand() {
    let help = oracle(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for sub in [
        "demo",
        "sim",
        "executor",
        "predictor",
        "replay",
        "backtest",
        "report",
        "doctor",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(sub)),
            "oracle --help lists {sub}:\n{text}"
        );
    }
    for sub in ["bench", "chaos"] {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with(sub)),
            "oracle --help lists no {sub}:\n{text}"
        );
        let out = oracle(&[sub, "--help"]);
        assert!(!out.status.success(), "oracle {sub} is not a subcommand");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("unrecognized subcommand '{sub}'")),
            "oracle {sub}: {err}"
        );
    }
}

/// Runs the three processes so that each writes a WARN/ERROR line, returning (name, stdout +
/// stderr).
fn some_logs(d: &Path, json: bool) -> Vec<(&'static str, String)> {
    let models = repo().join("models");
    let cfg = d.join("absent_config.json");
    let j = |mut v: Vec<String>| {
        if json {
            v.push("--json".into());
        }
        v
    };
    let runs: Vec<(&str, Vec<String>)> = vec![
        (
            "executor",
            j(vec![
                "executor".into(),
                "--check-config".into(),
                "--config".into(),
                cfg.display().to_string(),
                "--models".into(),
                models.display().to_string(),
            ]),
        ),
        (
            "predictor",
            j(vec![
                "predictor".into(),
                "--models".into(),
                d.join("models").display().to_string(),
                "--state".into(),
                d.join("state").display().to_string(),
            ]),
        ),
        (
            "sim",
            j(vec![
                "sim".into(),
                "--listen".into(),
                "192.0.2.1:5035".into(),
            ]),
        ),
    ];
    runs.into_iter()
        .map(|(name, args)| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = oracle(&args);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (name, text)
        })
        .collect()
}

#[test]
fn logs_to_a_file_or_pipe_have_no_ansi_escapes() {
    let d = tmpdir("ansi");
    for (name, text) in some_logs(&d, false) {
        assert!(
            text.contains("WARN") || text.contains("ERROR"),
            "{name} wrote no log line: {text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "{name}: ANSI escape in piped logs: {text:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn executor_json_lines_are_flat_like_the_predictors() {
    let d = tmpdir("json");
    let mut shapes = Vec::new();
    for (name, text) in some_logs(&d, true) {
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v.get("level").is_some())
            .collect();
        assert!(!lines.is_empty(), "{name}: no JSON log line: {text}");
        for v in &lines {
            let o = v.as_object().expect("object");
            let mut top: Vec<&str> = ["timestamp", "level", "message"]
                .into_iter()
                .filter(|k| o.contains_key(*k))
                .collect();
            top.extend(
                ["fields", "target", "span", "spans"]
                    .into_iter()
                    .filter(|k| o.contains_key(*k)),
            );
            shapes.push((name, top, v.to_string()));
        }
    }
    for (name, shape, line) in &shapes {
        assert_eq!(
            shape,
            &["timestamp", "level", "message"],
            "{name}: not the flat shape: {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The `--state` line of `oracle SUB --help` and the help text that follows it, up to the next
/// option.
fn state_help(sub: &str) -> String {
    let out = oracle(&[sub, "--help"]);
    assert!(out.status.success(), "oracle {sub} --help");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text
        .find("--state")
        .unwrap_or_else(|| panic!("oracle {sub} --help has no --state:\n{text}"));
    let rest = &text[start..];
    let end = rest[2..].find("\n  -").map_or(rest.len(), |i| i + 2);
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn state_has_the_same_default_everywhere() {
    for sub in ["executor", "predictor", "doctor"] {
        let h = state_help(sub);
        assert!(h.contains("[default: state]"), "oracle {sub}: {h}");
    }
}

#[test]
fn one_secrets_flag_for_executor_and_doctor() {
    for sub in ["executor", "doctor"] {
        let out = oracle(&[sub, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--secrets <"), "oracle {sub} --help: {text}");
    }
}
