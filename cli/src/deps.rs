//! The seam to the crates `oracle` delegates to. Each function is what the subcommand calls;
//! until the crate behind it is wired, it says so and fails (cli/NEEDS.md lists the exact calls).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

/// `oracle sim …` → `oracle_sim::run_cli`.
pub fn sim(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("oracle sim: the simulator (oracle-sim) is not wired into this build yet");
    1
}

/// `oracle executor …` → `oracle_executor::run_cli`.
pub fn executor(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("oracle executor: the executor (oracle-executor) is not wired into this build yet");
    1
}

/// `oracle predictor …` → `oracle_predictor::run_cli`.
pub fn predictor(args: Vec<OsString>) -> i32 {
    oracle_predictor::run_cli(args)
}

/// `oracle replay` → `oracle_model::replay`: the contract §8 trace of `bars` through `model`.
pub fn replay(
    model: &Path,
    bars: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    oracle_model::replay(model, bars, out, err)?;
    Ok(())
}
