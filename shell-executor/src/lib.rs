//! The executor ("the hands"): the only process that talks to the broker.
//!
//! - [`policy`]: the sans-IO policy core (virtual target vs real position, transitions, no
//!   chasing), tested without sockets;
//! - [`risk`]: the risk guard (daily loss / drawdown, broker day), sans-IO;
//! - [`volume`]: lots → cTrader volume in cents;
//! - [`config`] — `executor_config.json`;
//! - [`journal`]: the append-only, fsynced order journal and client order ids;
//! - [`broker`]: the broker seam the engine drives ([`broker::Broker`]), and [`paper`], an
//!   internal simulated book that implements it (paper mode and tests);
//! - [`engine`]: policy + risk + journal + broker + drift ledger, the signals waiting together as
//!   one batch;
//! - [`failpoint`]: `ORACLE_FAILPOINT` crash points for the chaos proof;
//! - [`secrets`]: the secrets file (name, mode rule, keys) shared with `oracle doctor`;
//! - [`server`]: the IPC WebSocket server (127.0.0.1, token);
//! - [`run`] / [`run_cli`]: the Tokio shell.
//!
//! **Architecture invariant:** only `broker` implementations know the wire protocol; the policy
//! and the risk guard never read a clock.

pub mod broker;
pub mod config;
pub mod drift;
pub mod engine;
pub mod failpoint;
pub mod journal;
#[cfg(feature = "live")]
pub mod live;
pub mod paper;
pub mod policy;
pub mod risk;
pub mod secrets;
pub mod server;
pub mod shell;
pub mod volume;

pub use shell::{RunConfig, run, run_cli};
