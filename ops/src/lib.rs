//! Operations for Oracle Trader v2, part of the product binary:
//!
//! - [`doctor`]: `oracle doctor`, deployment checks, one line each (`OK|WARN|FAIL <check>: … — fix: …`).
//! - [`login`]: `oracle doctor --broker`'s login (application, account, symbols, token expiry).
//!
//! A command is a `clap::Args` struct plus a `run_*` function returning an `ExitCode`; the
//! `oracle` binary embeds it. The development harness (bench, chaos) is `oracle-xtask`
//! (`oracle-dev`), which the product binary does not depend on.

pub mod doctor;
pub mod login;

pub use doctor::{DoctorArgs, run_doctor};
