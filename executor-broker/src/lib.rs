//! The executor's broker seam and its two implementations: "live and paper are two instances of
//! the same core behind one broker interface".
//!
//! - [`broker`]: the async [`broker::Broker`] trait the executor's engine drives;
//! - [`paper`]: [`paper::PaperBook`], an internal simulated book that implements it (paper mode,
//!   a dry run, tests);
//! - `live` (feature `live`): `LiveBroker`, the broker over `oracle-ctrader`'s Tokio driver and
//!   `oracle-executor-ctrader`'s translations, and [`feed::Feed`]'s source;
//! - [`replay`]: a bar file replayed into the paper book (`--feed-csv`), its bars sent as
//!   [`feed::Feed`]s;
//! - [`session`]: where and as whom the live broker connects ([`session::BrokerTarget`]; the
//!   credentials, the TLS mode and the host chosen, feature `live`);
//! - `beside` (feature `live`): the paper book over a live session (`--with-paper`, `--dry-run`);
//! - [`feed`]: the market-data events ([`feed::Feed`]) and the clock seam ([`feed::Clock`]);
//! - [`failpoint`]: `ORACLE_FAILPOINT` crash points for the chaos proof.
//!
//! The decisions are `oracle-executor-core`'s (sans-IO); the shell (`oracle-executor`) wires the
//! books to the engine, the journal and the IPC server.

#[cfg(feature = "live")]
pub mod beside;
pub mod broker;
pub mod failpoint;
pub mod feed;
#[cfg(feature = "live")]
pub mod live;
pub mod paper;
pub mod replay;
pub mod session;

#[cfg(feature = "live")]
use oracle_executor_core::{config, symbols};
use oracle_executor_core::{risk, volume};
