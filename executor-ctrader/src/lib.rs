//! `oracle-executor-ctrader`: the executor's side core ↔ the cTrader Open API, sans-IO.
//!
//! - [`wire`]: pure translations (orders → `NewOrderReq`/`ClosePositionReq`, execution and
//!   order-error events → order outcomes, symbols → specs, reconcile answers → positions, the
//!   account, margins, lookups, periods ↔ timeframes);
//! - [`link`]: [`link::Link`], one side's core driven against an `oracle_ctrader::Session`.
//!
//! **Invariant:** no I/O here: no sockets, no files, no clock reads, no runtime. The live shell
//! (`oracle_executor::live`) calls [`wire`]; the deterministic simulation (`oracle-dst`) drives
//! [`link::Link`].

#![warn(missing_docs)]

pub mod link;
pub mod wire;

pub use link::{JournalSink, Link, LinkCounters};
