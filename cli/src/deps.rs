//! The seam to the crates `oracle` delegates to. Each function is what the subcommand calls.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `oracle sim …` → `oracle_sim::run_cli`.
pub fn sim(args: Vec<OsString>) -> ExitCode {
    ExitCode::from(u8::try_from(oracle_sim::run_cli(args)).unwrap_or(1))
}

/// `oracle executor …` → `oracle_executor::run_cli`.
pub fn executor(args: Vec<OsString>) -> ExitCode {
    oracle_executor::run_cli(args)
}

/// `oracle predictor …` → `oracle_predictor::run_cli`.
pub fn predictor(args: Vec<OsString>) -> ExitCode {
    ExitCode::from(u8::try_from(oracle_predictor::run_cli(args)).unwrap_or(1))
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
