//! The executor's two local listeners. Both are transports: a connection's lines become
//! requests on a channel to the engine's loop (the one task that touches the engine) and the
//! loop's answers go back; neither decides anything nor holds the engine.
//!
//! - [`server`]: the IPC WebSocket server (127.0.0.1 only, token on the first frame): SIGNAL and
//!   HISTORY lines in ([`server::Cmd`]), ACKs, BARs and ERRs out;
//! - [`operator`]: the operator channel's socket (`operator.sock`, own uid only): one JSON
//!   request line in ([`operator::OperatorCall`]), one answer line out; and the client
//!   `oracle status|halt|…` use ([`operator::request`]).
//!
//! `oracle-executor` serves them (its `shell`) and re-exports them under its old paths.

pub mod operator;
pub mod server;
