//! # oracle-ctrader — the cTrader Open API client
//!
//! Layers, bottom up (each usable alone; the simulator `oracle-sim` uses the first three):
//!
//! | module | what | I/O |
//! |---|---|---|
//! | [`proto`] | prost types for the Open API messages (our `.proto` files in `ctrader/proto/`, identical in names/numbers/types/labels to Spotware's release 91), [`proto::OpenApiMessage`] (payload type of each message), [`proto::Payload`] (typed decode; unknown payload types → `Payload::Unknown`), [`proto::Envelope`], [`proto::ErrorCode`] | none |
//! | [`frame`] | 4-byte big-endian length + `ProtoMessage`; [`frame::FrameDecoder`] (feed bytes, pull frames, max frame size) and encoders | none |
//! | [`units`] | trendbar delta encoding ([`units::decode_trendbar`]/[`units::encode_trendbar`]), prices in 1e-5 units, volumes in cents ([`units::VolumeSpec`]), money with `moneyDigits` | none |
//! | [`creds`] | [`Secret`] / [`Credentials`]: `Debug`/`Display` print `<redacted>`; from the environment or a 0600 env file | env, file |
//! | [`calendar`] | [`TradingCalendar`]: a symbol's trading hours from `ProtoOASymbol` (`schedule`, `holiday[]`, `scheduleTimeZone`, over jiff's tzdb): `is_open`, `next_open`, `next_close` | none (time is a parameter) |
//! | [`session`] | the sans-IO [`Session`] (quinn-proto shape: `handle_*(now, …)`, `poll_transmit`, `poll_event`, `poll_timeout`): auth, heartbeats, dead peer, request matching/timeouts, rate limits, reconnect + backoff, resubscribe, bar streams with gap fill | none (time is a parameter) |
//! | [`driver`] | the Tokio shell: TLS socket + clock → session; [`driver::connect`] → ([`driver::Client`], event stream) | TCP/TLS |
//! | [`oauth`] | the OAuth authorization-code flow: the authorization URL, the code → token pair exchange and the refresh at the token endpoint (`oracle auth`) | HTTPS |
//! | [`tokenfile`] | the token pair with its expiry on disk: 0600, temp + fsync + rename; the newest pair of several | file |
//! | [`history`] | a symbol's closed bars over a span, paced at 5 history requests a second, as a bar file (`oracle history`) | TCP/TLS, file |
//! | [`accounts`] | the accounts an access token grants, with balance and currency (`oracle accounts`) | TCP/TLS |
//!
//! ## Using the client (executor)
//! ```text
//! let (client, mut events) = driver::connect(ClientConfig::new(Endpoint::demo(), TlsMode::WebPki,
//!                                            SessionConfig::new(Credentials::from_env()?, account_id)))?;
//! client.subscribe_bars(symbol_id, ProtoOaTrendbarPeriod::M15, last_closed_open_time).await?;
//! match client.request(ProtoOaNewOrderReq { .. }).await? {
//!     Outcome::Execution(ev) | Outcome::OrderError(..) | Outcome::Response(..) | Outcome::Error { .. } => …,
//!     Outcome::Unknown(_) => /* look it up: ReconcileReq / DealListReq — never resend */,
//!     Outcome::NotSent(_) => /* never reached the server: safe to retry */,
//! }
//! while let Some(ev) = events.recv().await { /* Ready, BarClosed, Spot, Execution, Disconnected, … */ }
//! ```
//! Every choice made where Spotware's documentation is silent (heartbeat and dead-peer timing,
//! request timeouts and the outcome-unknown rule, rate-limit windows, auth error handling, how a
//! bar is known closed and confirmed from history) is written in the [`session`] docs; the frame
//! size cap in [`frame`]; TLS modes in [`driver`].
//!
//! **Stable API promise (announced to the simulator engineer):** the items re-exported at the
//! crate root and everything in `proto`, `frame` and `units` keep their names and signatures;
//! additions only. `session` and `driver` are new and may still gain variants (their enums are
//! `#[non_exhaustive]` where callers match).
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
//! Release-91 look-ups added later (same check, identical facts): `ProtoOAExpectedMarginReq/Res`
//! (+ `ProtoOAExpectedMargin`), `ProtoOAOrderListReq/Res`, `ProtoOAOrderDetailsReq/Res`,
//! `ProtoOADealListByPositionIdReq/Res`, `ProtoOAAccountLogoutReq/Res`.
//!
//! ## Credentials
//! [`Credentials::from_env`] (`CTRADER_*`, else `ORACLE_CTRADER_*`) or [`Credentials::from_file`]
//! (an env file that must be mode 0600: a group/world-accessible file is refused, the error names
//! the path, never a value). The session logs frames at TRACE by payload type and id only; a test
//! captures TRACE output through auth + token refresh + re-auth and greps it for every secret.
//!
//! ## Closing bars by the clock
//! The session also closes a forming bar when its own clock passes the bar's end plus
//! `bar_close_grace`. Its clock is the wall clock (via `handle_utc`) or, when later, the
//! server's time as the latest spot `timestamp` shows it (the session subscribes with
//! timestamps): a tick stamped `t` exists, so the server's clock is at least `t`. The wall clock
//! alone keeps closing bars of a quiet market (no spots, which is exactly when the clock rule is
//! needed); the server's time closes them when a replay runs ahead of the wall clock, including
//! the last bar of a symbol whose ticks stopped while the connection was down (the gap fill
//! after a reconnect is bounded by the same clock). Against a replay in the past the wall clock
//! closes everything at once, so replays are rebased to now (`oracle-sim --rebase-now`).

#![warn(missing_docs)]

pub mod accounts;
pub mod calendar;
pub mod creds;
pub mod driver;
pub mod frame;
pub mod history;
pub mod oauth;
pub mod proto;
pub mod session;
pub mod tokenfile;
pub mod units;

pub use calendar::{CalendarError, Holiday, TradingCalendar};
pub use creds::{Credentials, Secret};
pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameDecoder, FrameError};
pub use proto::{Envelope, ErrorCode, OpenApiMessage, Payload};
pub use session::{Event, Session, SessionConfig, Transmit};
pub use units::{Bar, VolumeSpec};
