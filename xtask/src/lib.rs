//! The development harness of Oracle Trader v2, kept out of the product binary (`oracle`): what
//! measures and proves the system rather than runs it. `cargo tree -p oracle` does not contain
//! this crate (`scripts/test` checks it).
//!
//! - [`bench`]: `oracle-dev bench`, the end-to-end benchmark (bench.json + bench.md);
//! - [`chaos`]: `oracle-dev chaos`, the kill -9 crash-recovery proof;
//! - [`soak`]: `oracle-dev soak`, the 30-day soak (the DST's virtual clock, then real processes);
//! - [`run`]: where the system's binaries are, the processes of a run (under the one supervisor,
//!   `oracle_procs::supervisor`, which `oracle demo` uses too), the inputs of a paper run.
//!
//! Each command is a `clap::Args` struct plus a `run_*` function returning an `ExitCode`; the
//! `oracle-dev` binary (`src/main.rs`) dispatches to them.

pub mod bench;
pub mod chaos;
pub mod run;
pub mod soak;

pub use bench::{BenchArgs, run_bench};
pub use chaos::{ChaosArgs, run_chaos};
pub use soak::{SoakArgs, run_soak};
