//! `oracle-sim`: a protocol-faithful cTrader Open API server for tests, the demo and paper
//! trading. It speaks the real wire protocol (TLS, 4-byte big-endian length + `ProtoMessage`,
//! Spotware's payload types and error codes, via `oracle-ctrader`'s generated messages), so a
//! client tested against it works against cTrader.
//!
//! ## Layout (quinn-style)
//! - [`broker`]: the deterministic, sans-IO core — accounts, tokens, symbols, fills, positions,
//!   history, rate limits, heartbeats and fault injection. Time is a parameter; no sockets.
//!   Its docs list every behaviour we chose where Spotware's documentation is silent.
//! - [`market`]: bar replay (four ticks per bar), forming bars of every period, closed history.
//! - [`msg`]: the core's own request/event types (serialization lives at the edge).
//! - [`wire`]: protobuf ⇄ [`msg`] at the edge.
//! - [`server`]: the thin Tokio/rustls shell; [`spawn`] starts an in-process sim on an ephemeral
//!   loopback port and returns its address and CA PEM.
//! - [`oauth`]: the OAuth authorization page and token endpoint (`/apps/auth`, `/apps/token`)
//!   on the same TLS listener: a connection that starts with an HTTP request line is HTTP.
//! - [`cli`]: the `oracle-sim` command ([`run_cli`] is what `oracle sim` calls).
//! - `timing`: the `--timing-out` JSONL hook ([`SimConfig::timing_out`]), shell only.
//!
//! ## In-process use
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let mut cfg = oracle_sim::SimConfig::default(); // 127.0.0.1:0, default credentials
//! cfg.symbols.push(oracle_sim::symbols::synthetic(
//!     "EURUSD", oracle_sim::bars::Period::M15, 1000, 1_704_067_200_000, 1));
//! let sim = oracle_sim::spawn(cfg).await?;
//! println!("{} trusts {} bytes of CA PEM", sim.addr, sim.ca_pem.len());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod bars;
pub mod broker;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod market;
pub mod msg;
pub mod oauth;
pub mod server;
pub mod symbols;
mod timing;
pub mod tls;
pub mod wire;

pub use broker::{Broker, Output};
pub use cli::run_cli;
pub use config::{BrokerConfig, Fault, Speed};
pub use server::{SimConfig, SimHandle, spawn};
