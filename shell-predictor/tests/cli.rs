//! The `oracle-predictor` command line: `--version`, `--log` (then RUST_LOG, then `info`), and
//! logs without colour escapes when stdout is a pipe.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_oracle-predictor");

/// Runs the predictor with no IPC token, so it logs one error line and stops.
fn run_without_token(args: &[&str]) -> Output {
    let d = std::env::temp_dir().join(format!("oracle-pred-cli-{}", std::process::id()));
    Command::new(BIN)
        .args(args)
        .arg("--models")
        .arg(d.join("models"))
        .arg("--state")
        .arg(d.join("state"))
        .env_remove("ORACLE_IPC_TOKEN")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .expect("run")
}

#[test]
fn predictor_prints_its_version() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oracle-predictor {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn predictor_logs_to_a_pipe_have_no_ansi_escapes() {
    let out = run_without_token(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ERROR") && text.contains("ORACLE_IPC_TOKEN"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in piped logs: {text:?}"
    );
}

#[test]
fn predictor_log_flag_wins_over_rust_log_and_a_bad_one_is_refused() {
    // `--log off` silences the error line that RUST_LOG=info would show.
    let out = run_without_token(&["--log", "off"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = run_without_token(&["--log", "info,[="]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log") && err.lines().count() == 1, "{err}");
}
