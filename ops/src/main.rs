//! `oracle-ops doctor|bench|chaos`: the ops commands before (and beside) `oracle`'s wiring.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "oracle-ops",
    version,
    propagate_version = true,
    about = "Oracle Trader v2 operations: doctor, bench, chaos"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Deployment checks, one line each: OK/WARN/FAIL with the fix.
    Doctor(oracle_ops::DoctorArgs),
    /// The end-to-end benchmark (writes out/bench.json and out/bench.md).
    Bench(oracle_ops::BenchArgs),
    /// The kill -9 crash-recovery proof.
    Chaos(oracle_ops::ChaosArgs),
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Doctor(a) => oracle_ops::run_doctor(&a),
        Cmd::Bench(a) => oracle_ops::run_bench(&a),
        Cmd::Chaos(a) => oracle_ops::run_chaos(&a),
    }
}
