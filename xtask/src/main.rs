//! `oracle-dev bench|chaos`: the development harness (`cargo run --release -p oracle-xtask -- …`).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "oracle-dev",
    version,
    propagate_version = true,
    about = "Oracle Trader v2 development harness: bench, chaos (not part of the oracle binary)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The end-to-end benchmark (writes out/bench.json and out/bench.md).
    Bench(oracle_xtask::BenchArgs),
    /// The kill -9 crash-recovery proof.
    Chaos(oracle_xtask::ChaosArgs),
    /// The 30-day soak: the DST's virtual clock, then real processes over TLS.
    Soak(oracle_xtask::SoakArgs),
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Bench(a) => oracle_xtask::run_bench(&a),
        Cmd::Chaos(a) => oracle_xtask::run_chaos(&a),
        Cmd::Soak(a) => oracle_xtask::run_soak(&a),
    }
}
