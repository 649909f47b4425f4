//! The executor ("the hands"): the only process that talks to the broker.
//!
//! - [`policy`], [`risk`], [`volume`]: re-exported from `oracle-executor-core` (the sans-IO
//!   decisions: policy core, risk guard, lots → volume);
//! - [`config`] — `executor_config.json` on disk (the values: `oracle_executor_core::config`);
//! - [`journal`]: the append-only, fsynced order journal and client order ids;
//! - [`broker`], [`paper`], `live`, [`failpoint`]: re-exported from `oracle-executor-broker` (the
//!   broker seam the engine drives, [`broker::Broker`]; the paper book; the live broker over
//!   `oracle-ctrader`, feature `live`; the `ORACLE_FAILPOINT` crash points for the chaos proof);
//! - [`engine`]: the driver of the core's decisions (`oracle_executor_core::side`'s batch and
//!   reconciliation, `oracle_executor_core::answers`' verdicts) over a live and/or a paper book,
//!   the signals waiting together as one batch, and the drift ledger;
//! - [`funded`]: a funded account's optional rules, the shell's part (the news file, each
//!   symbol's weekend from the broker's calendar, `Timer::Weekend`'s closes);
//! - the secrets file (name, mode rule, keys) is `oracle-secrets`, shared with `oracle doctor`;
//! - [`server`]: the IPC WebSocket server (127.0.0.1, token), re-exported from
//!   `oracle-executor-server` (a transport: lines in, requests to the engine's loop);
//! - [`alerting`]: the operator's alerts (Telegram, webhook) and the hooks of the loopback
//!   Prometheus endpoint (`oracle-metrics`);
//! - [`operator`]: the operator channel (`operator.sock`: `oracle status|halt|flatten|resume|
//!   enable|disable`): its answers on the engine's task here, the socket `oracle-executor-server`'s;
//! - [`run`] / [`run_cli`]: the Tokio shell.
//!
//! **Architecture invariant:** only `broker` implementations know the wire protocol; the
//! decisions (`oracle-executor-core`) never read a clock nor do I/O: this crate does it for them.

pub mod alerting;
pub mod config;
pub mod drift;
pub mod engine;
pub mod funded;
pub mod journal;
pub mod operator;
pub mod shell;

#[cfg(feature = "live")]
pub use oracle_executor_broker::live;
pub use oracle_executor_broker::{broker, failpoint, paper, replay};
pub use oracle_executor_core::{policy, risk, symbols, volume};
pub use oracle_executor_server::server;

pub use shell::{RunConfig, run, run_cli};
