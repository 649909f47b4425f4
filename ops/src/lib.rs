//! Operations for Oracle Trader v2: the proof and the deployment kit.
//!
//! - [`doctor`]: `oracle doctor`, deployment checks, one line each (`OK|WARN|FAIL <check>: … — fix: …`);
//! - [`bench`]: `oracle bench`, the end-to-end benchmark harness (bench.json + bench.md);
//! - [`chaos`]: `oracle chaos`, the kill -9 crash-recovery proof;
//! - [`market`]: a simulator market (bar files shifted to start live now) for whole-system runs;
//! - [`procs`]: child processes with kill-on-drop guards, `/proc` memory sampling, run inputs.
//!
//! Each command is a `clap::Args` struct plus a `run_*` function returning an `ExitCode`: the
//! `oracle` binary embeds them (`oracle doctor|bench|chaos`), and `oracle-ops` (this crate's
//! binary) runs the same code.

pub mod bench;
pub mod chaos;
pub mod doctor;
pub mod market;
pub mod procs;

pub use bench::{BenchArgs, run_bench};
pub use chaos::{ChaosArgs, run_chaos};
pub use doctor::{DoctorArgs, run_doctor};
