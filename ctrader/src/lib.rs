//! # oracle-ctrader — the cTrader Open API client
//!
//! Layers, bottom up (each usable alone; the simulator `oracle-sim` uses the first three):
//!
//! | module | what | I/O |
//! |---|---|---|
//! | [`proto`] | prost types for the Open API messages (our `.proto` files in `ctrader/proto/`, identical in names/numbers/types/labels to Spotware's release 91), [`proto::OpenApiMessage`] (payload type of each message), [`proto::Payload`] (typed decode; unknown payload types → `Payload::Unknown`), [`proto::Envelope`], [`proto::ErrorCode`] | none |
//! | [`frame`] | 4-byte big-endian length + `ProtoMessage`; [`frame::FrameDecoder`] (feed bytes, pull frames, max frame size) and encoders | none |
//! | [`units`] | trendbar delta encoding ([`units::decode_trendbar`]/[`units::encode_trendbar`]), prices in 1e-5 units, volumes in cents ([`units::VolumeSpec`]), money with `moneyDigits` | none |
//!
//! **Stable API promise (announced to the simulator engineer):** the items re-exported at the
//! crate root and everything in `proto`, `frame` and `units` keep their names and signatures;
//! additions only.
//!
//! ## Schema version
//! Our `.proto` files match Spotware's `openapi-proto-messages` **release 91** exactly for the
//! messages they define (checked with `tools/proto_facts.py`, which diffs the compiled
//! descriptors). The Python SDK `ctrader-open-api` 0.9.2 carries an older schema; the differences
//! that touch our messages are wire compatible except one that a server must respect:
//! `ProtoOAGetTrendbarsRes.timestamp` is `required` in 0.9.2 (deprecated optional in 91), so a
//! server (our simulator) must always set it. Also required in 0.9.2: `fromTimestamp`/`toTimestamp`
//! of `GetTrendbarsReq`, `GetTickDataReq`, `DealListReq` (this client always sends them). 0.9.2
//! lacks `GetTrendbarsRes.hasMore` (such a client sees one page), `ProtoOAErrorRes.retryAfter` and
//! a few newer optional fields; `ProtoOAPositionUnrealizedPnL.netUnrealizedPnL` is `int32` there
//! and `int64` here (same varint on the wire for values in `i32` range).

#![warn(missing_docs)]

pub mod creds;
pub mod frame;
pub mod proto;
pub mod session;
pub mod units;

pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameDecoder, FrameError};
pub use proto::{Envelope, ErrorCode, OpenApiMessage, Payload};
pub use creds::{Credentials, Secret};
pub use session::{Event, Session, SessionConfig, Transmit};
pub use units::{Bar, VolumeSpec};
