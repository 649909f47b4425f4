//! `oracle-dev`, the development harness binary: the bench and the chaos proof live here (the
//! product binary `oracle` has neither, `cli/tests/cli.rs`).

use std::process::Command;

#[test]
fn oracle_dev_runs_the_bench_and_the_chaos_proof() {
    for (sub, flag) in [("bench", "--sim-hours"), ("chaos", "--predictor-kills")] {
        let out = Command::new(env!("CARGO_BIN_EXE_oracle-dev"))
            .args([sub, "--help"])
            .output()
            .expect("run oracle-dev");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "oracle-dev {sub} --help: {text}");
        assert!(
            text.contains(flag),
            "oracle-dev {sub} --help shows {flag}:\n{text}"
        );
    }
}
