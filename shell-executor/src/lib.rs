//! The executor ("the hands"): the only process that talks to the broker.
//!
//! - [`policy`], [`risk`], [`volume`]: re-exported from `oracle-executor-core` (the sans-IO
//!   decisions: policy core, risk guard, lots → volume);
//! - [`config`] — `executor_config.json` on disk (the values: `oracle_executor_core::config`);
//! - [`journal`]: the append-only, fsynced order journal and client order ids;
//! - [`broker`]: the broker seam the engine drives ([`broker::Broker`]), and [`paper`], an
//!   internal simulated book that implements it (paper mode and tests);
//! - [`engine`]: the driver of the core's decisions (`oracle_executor_core::side`'s batch and
//!   reconciliation, `oracle_executor_core::answers`' verdicts) over a live and/or a paper book,
//!   the signals waiting together as one batch, and the drift ledger;
//! - [`funded`]: a funded account's optional rules, the shell's part (the news file, each
//!   symbol's weekend from the broker's calendar, `Timer::Weekend`'s closes);
//! - [`failpoint`]: `ORACLE_FAILPOINT` crash points for the chaos proof;
//! - the secrets file (name, mode rule, keys) is `oracle-secrets`, shared with `oracle doctor`;
//! - [`server`]: the IPC WebSocket server (127.0.0.1, token);
//! - [`alerting`]: the operator's alerts (Telegram, webhook) and the hooks of the loopback
//!   Prometheus endpoint (`oracle-metrics`);
//! - [`operator`]: the operator channel (`operator.sock`: `oracle status|halt|flatten|resume|
//!   enable|disable`);
//! - [`run`] / [`run_cli`]: the Tokio shell.
//!
//! **Architecture invariant:** only `broker` implementations know the wire protocol; the
//! decisions (`oracle-executor-core`) never read a clock nor do I/O: this crate does it for them.

pub mod alerting;
pub mod broker;
pub mod config;
pub mod drift;
pub mod engine;
pub mod failpoint;
pub mod funded;
pub mod journal;
#[cfg(feature = "live")]
pub mod live;
pub mod operator;
pub mod paper;
pub mod replay;
pub mod server;
pub mod shell;

pub use oracle_executor_core::{policy, risk, symbols, volume};

pub use shell::{RunConfig, run, run_cli};
