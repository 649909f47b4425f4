//! The Open API session as a sans-IO state machine, in the shape of `quinn-proto`.
//!
//! The session is fully deterministic: it has no socket, reads no clock and spawns nothing. Time is
//! always a parameter (`now: Instant` for timers; wall-clock UTC is given once to
//! [`Session::new`] and re-anchored with [`Session::handle_utc`]). A driver (see
//! [`crate::driver`]) or a test shuttles bytes and time:
//!
//! - inputs: [`Session::start`], [`Session::handle_connected`], [`Session::handle_connect_failed`],
//!   [`Session::handle_bytes`] / [`Session::handle_message`], [`Session::handle_disconnected`],
//!   [`Session::handle_timeout`], and the caller's commands [`Session::send_request`],
//!   [`Session::subscribe_bars`], [`Session::unsubscribe_bars`], [`Session::close`];
//! - outputs: [`Session::poll_transmit`] ([`Transmit::Connect`], frame bytes, [`Transmit::Close`]),
//!   [`Session::poll_event`] ([`Event`]), [`Session::poll_timeout`] (when to call
//!   `handle_timeout` next).
//!
//! ## States
//! `Disconnected → Connecting → AppAuth → AccountAuth → Ready`, plus `Failed` (fatal: wrong client
//! secret, an access token that cannot be refreshed) and `Closed` (after [`Session::close`]). Any
//! connection loss goes back to `Disconnected` with a reconnect timer (exponential backoff from
//! [`SessionConfig::backoff_initial`] doubling up to [`SessionConfig::backoff_max`], reset when
//! `Ready` is reached). After reconnect: application auth, account auth, `Ready`, resubscribe spots
//! then live trendbars (live trendbars need spots first), then the bar gap fill.
//!
//! ## Choices where Spotware's documentation is silent
//! - **Heartbeat**: a `ProtoHeartbeatEvent` after [`SessionConfig::heartbeat_interval`] (10 s) with
//!   nothing sent. **Dead peer**: no inbound message for [`SessionConfig::dead_peer_timeout`]
//!   (default 30 s, three server heartbeat periods) → drop and reconnect.
//! - **Requests**: each request gets a `clientMsgId` (`"c<n>"`, unique per session). Requests
//!   submitted while not `Ready` or over the rate limit wait in a queue; one still unsent after its
//!   timeout is dropped with [`Event::RequestNotSent`] (it never reached the server: safe to
//!   retry). The session's own subscriptions are asked again instead (a dropped one would leave
//!   a stream without live bars until the next reconnect). A request sent without a response within its timeout, or in flight when the connection
//!   drops, yields [`Event::RequestOutcomeUnknown`]: the caller must look the outcome up
//!   (reconcile, deal list) and never blindly resend. A response that arrives after that is
//!   delivered as [`Event::LateResponse`].
//! - **Order responses**: a `ProtoOAExecutionEvent` or `ProtoOAOrderErrorEvent` whose `clientMsgId`
//!   matches a pending request completes it and is delivered as [`Event::Execution`] /
//!   [`Event::OrderError`] with `request: Some(id)` (never also as a `Response`).
//! - **Rate limits**: at most [`SessionConfig::max_requests_per_window`] (50) requests and
//!   [`SessionConfig::max_history_per_window`] (5) history requests (`GetTrendbars`, `GetTickData`,
//!   `DealList`) in any sliding [`SessionConfig::rate_window`] (1 s + [`RATE_MARGIN`]; heartbeats do not count; a
//!   history request counts in both). A `REQUEST_FREQUENCY_EXCEEDED` or `BLOCKED_PAYLOAD_TYPE`
//!   error for a request means it was refused, not executed, so the session re-queues it after
//!   `retryAfter` (or 1 s) — the only case where a request is resent.
//! - **Maintenance**: `SERVER_IS_UNDER_MAINTENANCE` for any request (application auth included)
//!   ends the connection until its `maintenanceEndTimestamp` (the backoff when it has none):
//!   [`DisconnectReason::Maintenance`]; a caller's request gets [`Event::RequestError`] (refused,
//!   not executed, never resent). `CONNECTIONS_LIMIT_EXCEEDED` at application auth is logged as
//!   such and retried after the backoff. `ProtoOAClientDisconnectEvent` → reconnect.
//! - **Auth errors**: `CH_CLIENT_AUTH_FAILURE` (wrong id/secret) is fatal ([`Event::AuthFailed`],
//!   state `Failed`, no reconnect loop). `OA_AUTH_TOKEN_EXPIRED`/`CH_ACCESS_TOKEN_INVALID` at account
//!   auth, or `ProtoOAAccountsTokenInvalidatedEvent` for our account, → `RefreshTokenReq` when a
//!   refresh token is held ([`Event::TokensRefreshed`] carries both new tokens: persist them
//!   atomically), then account auth again; with no refresh token, or if the refresh fails, fatal.
//!   With [`SessionConfig::confirm_token_store`] the new access token is not used (account auth
//!   waits, across reconnects too) until [`Session::handle_tokens_stored`]: store before use.
//!   `ALREADY_LOGGED_IN` at account auth counts as success.
//! - **Bars**: one stream per (symbol, period) however many models use it (reference counted).
//!   A bar is *known closed* when the live trendbar of its stream moves to a later open time, when
//!   the session's clock passes its end plus [`SessionConfig::bar_close_grace`] (so a quiet market
//!   does not delay the close; also the bar after the last emitted one when no live snapshot of
//!   it came, e.g. the market's last bar after a reconnect), or, after a (re)connect, when it
//!   ended before "now". The session's
//!   clock is the wall clock, or the latest spot `timestamp` when that is later (a replay ahead of
//!   the wall clock). Closed bars are taken from history (`GetTrendbarsReq`), or with
//!   [`SessionConfig::live_close`] from the live stream's final snapshot when nothing can have been
//!   missed, history confirming it afterwards ([`Event::BarRevised`] on a difference); either way
//!   emitted in open-time order, each exactly
//!   once ([`Event::BarClosed`]; the stream's watermark only moves forward). If history does not
//!   yet hold a bar the live stream showed, the session retries
//!   ([`SessionConfig::history_retries`] × [`SessionConfig::history_retry_delay`]) and then emits
//!   the last live snapshot with [`BarSource::LiveUnconfirmed`]. `MN1` streams are refused (no
//!   fixed length).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::creds::{Credentials, Secret};
use crate::frame::{DEFAULT_MAX_FRAME_LEN, FrameDecoder, FrameError, encode_frame};
use crate::proto::{
    DecodeError, Envelope, ErrorCode, Payload, ProtoErrorCode, ProtoHeartbeatEvent,
    ProtoOaAccountAuthReq, ProtoOaApplicationAuthReq, ProtoOaErrorCode, ProtoOaExecutionEvent,
    ProtoOaGetTrendbarsReq, ProtoOaOrderErrorEvent, ProtoOaRefreshTokenReq,
    ProtoOaSubscribeLiveTrendbarReq, ProtoOaSubscribeSpotsReq, ProtoOaTrendbarPeriod,
    ProtoOaUnsubscribeLiveTrendbarReq, ProtoOaUnsubscribeSpotsReq,
};
use crate::units::{Bar, decode_trendbar};

/// Tunables of a [`Session`]. `Default` gives the documented values.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Application and account credentials.
    pub credentials: Credentials,
    /// The trading account (`ctidTraderAccountId`) this session authorizes.
    pub account_id: i64,
    /// Send a heartbeat after this long without sending anything (Spotware: at least every 10 s).
    pub heartbeat_interval: Duration,
    /// Reconnect when nothing at all was received for this long.
    pub dead_peer_timeout: Duration,
    /// Default time a request may wait (queued, then for its response).
    pub request_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Requests allowed per [`Self::rate_window`].
    pub max_requests_per_window: usize,
    /// History requests allowed per [`Self::rate_window`].
    pub max_history_per_window: usize,
    /// The sliding rate-limit window: the server's one second plus [`RATE_MARGIN`] by default.
    pub rate_window: Duration,
    /// A bar is closed by the clock this long after its end (clock-skew margin).
    pub bar_close_grace: Duration,
    /// How many times to re-ask history for a bar the live stream showed but history lacks.
    pub history_retries: u32,
    /// Delay between those retries.
    pub history_retry_delay: Duration,
    /// Emit a closed bar from the live stream's last snapshot the moment it is known closed
    /// (the stream moved into the next period, or the clock passed its end), instead of after
    /// `GetTrendbarsReq` returns it; history confirms it afterwards ([`Event::BarRevised`] when
    /// it differs). Only for a stream whose every earlier bar is accounted for and whose last
    /// snapshot came on the current connection; otherwise history, as without this option.
    /// With K streams closing together, history alone brings the last of them ⌈K/5⌉ − 1 s late
    /// (5 historical requests a second).
    pub live_close: bool,
    /// With [`Self::live_close`]: how long after a live bar goes out history is asked to confirm
    /// it. Off the bar's path either way; waiting keeps the confirmations out of the request
    /// burst of the orders the bar causes (they share the 50 requests a second) and gives the
    /// server's history time to hold the bar.
    pub confirm_delay: Duration,
    /// Maximum frame body accepted from the server.
    pub max_frame_len: usize,
    /// Store before use: after `RefreshTokenRes` the new access token is not sent (no account
    /// auth, on this connection or a later one) until the caller has stored the pair
    /// ([`Event::TokensRefreshed`], then [`Session::handle_tokens_stored`]; a failed store is
    /// [`Session::handle_tokens_store_failed`]). A refresh token works once, so a process that
    /// rotates the pair must have it on disk before anything depends on it. Default `false`:
    /// the new token is used at once (the caller persists it afterwards, or not at all).
    pub confirm_token_store: bool,
    /// When the access token expires (Unix ms), when known (the token file's `expires_at_ms`):
    /// the session refreshes [`Self::refresh_margin`] before it, while `Ready` and holding a
    /// refresh token, instead of waiting for the server to refuse the token. After each
    /// refresh the expiry is the answer's `expiresIn`. `None` (default): no refresh ahead of
    /// time until a refresh has told the lifetime.
    pub access_expires_at_ms: Option<i64>,
    /// How long before the access token's expiry the session refreshes (at most half the
    /// lifetime a refresh reported, so a short-lived token is not refreshed in a loop).
    /// Default 1 day (tokens live about 30 days).
    pub refresh_margin: Duration,
    /// Called just before a `RefreshTokenReq` is queued, before anything of it is on the wire
    /// (the executor's `before_refresh_request` crash failpoint). `None` (default): nothing.
    pub before_refresh_request: Option<fn()>,
}

/// What the session's rate window adds to the server's one second. The server counts a request
/// when it handles it, the session when it sends it: a session that sent the next five history
/// requests the instant its own one-second window freed had them counted in the server's second
/// whenever the previous five were delayed on the way or at the server, and refused
/// (`REQUEST_FREQUENCY_EXCEEDED`; the simulator's timing file showed five sent 1.000 s after five,
/// four refused). A tenth of a second costs a burst of history requests 10 %.
pub const RATE_MARGIN: Duration = Duration::from_millis(100);

impl SessionConfig {
    /// Documented defaults for `account_id` with `credentials`.
    pub fn new(credentials: Credentials, account_id: i64) -> Self {
        Self {
            credentials,
            account_id,
            heartbeat_interval: Duration::from_secs(10),
            dead_peer_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_requests_per_window: 50,
            max_history_per_window: 5,
            rate_window: Duration::from_secs(1) + RATE_MARGIN,
            bar_close_grace: Duration::from_secs(2),
            history_retries: 3,
            history_retry_delay: Duration::from_secs(1),
            live_close: false,
            confirm_delay: Duration::from_secs(2),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            confirm_token_store: false,
            access_expires_at_ms: None,
            refresh_margin: Duration::from_secs(86_400),
            before_refresh_request: None,
        }
    }
}

/// Where the session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not connected (before [`Session::start`] or waiting for the reconnect timer).
    Disconnected,
    /// Waiting for the driver to open the connection.
    Connecting,
    /// `ApplicationAuthReq` sent.
    AppAuth,
    /// `AccountAuthReq` (or `RefreshTokenReq`) sent.
    AccountAuth,
    /// Account authorized; requests flow.
    Ready,
    /// A fatal error; the session does nothing more.
    Failed,
    /// Closed by [`Session::close`].
    Closed,
}

/// What the driver must do.
#[derive(Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Open a new connection, then call [`Session::handle_connected`] or
    /// [`Session::handle_connect_failed`].
    Connect,
    /// Write these bytes (one or more whole frames) to the current connection.
    Bytes(Vec<u8>),
    /// Close the current connection (the session already considers it gone; do not report it).
    Close,
}

impl std::fmt::Debug for Transmit {
    // Frames may carry secrets: show only their length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transmit::Connect => f.write_str("Connect"),
            Transmit::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Transmit::Close => f.write_str("Close"),
        }
    }
}

/// Identifies a request; its string form is the `clientMsgId` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl RequestId {
    /// The `clientMsgId` sent for this request.
    pub fn client_msg_id(self) -> String {
        format!("c{}", self.0)
    }

    fn parse(s: &str) -> Option<Self> {
        s.strip_prefix('c')?.parse().ok().map(RequestId)
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The driver reported the socket closed or failed (its text).
    Io(String),
    /// The connection could not be opened (the driver's text).
    ConnectFailed(String),
    /// Nothing received for the dead-peer timeout.
    DeadPeer,
    /// Invalid framing (e.g. a frame over the maximum).
    Frame(FrameError),
    /// A frame that is not a valid message.
    Decode(String),
    /// The server sent `ProtoOAClientDisconnectEvent`.
    ServerDisconnect(Option<String>),
    /// An auth request got no answer in time.
    AuthTimeout,
    /// The server refused to continue (error code during auth, not fatal).
    AuthError(ErrorCode),
    /// `SERVER_IS_UNDER_MAINTENANCE`: the session reconnects when the maintenance ends
    /// (`maintenanceEndTimestamp`, Unix ms), or after its backoff when the server gave no end.
    Maintenance {
        /// The end the server announced (Unix ms).
        until_ms: Option<i64>,
    },
}

/// Where an emitted closed bar comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarSource {
    /// From `GetTrendbarsRes` (the normal case).
    History,
    /// History never returned it; the last live snapshot (its final ticks may be missing).
    LiveUnconfirmed,
    /// The live stream's final snapshot ([`SessionConfig::live_close`]); history confirms it
    /// afterwards.
    Live,
}

/// Why a request never reached the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotSentReason {
    /// It waited in the queue (not `Ready`, or rate limited) past its timeout.
    QueueTimeout,
    /// The session failed or was closed.
    SessionEnded,
}

/// Why the outcome of a sent request is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownReason {
    /// No response within the request's timeout.
    Timeout,
    /// The connection dropped before a response came.
    Disconnected,
}

/// What the session reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A connection attempt begins (`attempt` counts from 1 since the last `Ready`).
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// Application and account authorized; requests flow.
    Ready,
    /// The connection ended; the session reconnects after `reconnect_in` (None: it will not).
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// Delay before the next attempt.
        reconnect_in: Option<Duration>,
    },
    /// Fatal authentication failure (wrong client secret, token that cannot be refreshed).
    AuthFailed {
        /// The server's code.
        code: ErrorCode,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// New tokens from `RefreshTokenRes`: persist both atomically (the old refresh token is spent).
    TokensRefreshed {
        /// New access token.
        access_token: Secret,
        /// New refresh token.
        refresh_token: Secret,
        /// Access token lifetime, seconds.
        expires_in: i64,
    },
    /// The answer to a request.
    Response {
        /// The request.
        id: RequestId,
        /// The response message.
        payload: Payload,
    },
    /// The server answered a request with an error (`ProtoErrorRes`/`ProtoOAErrorRes`).
    RequestError {
        /// The request.
        id: RequestId,
        /// The error code.
        code: ErrorCode,
        /// The description, if any.
        description: Option<String>,
    },
    /// A request was sent but whether the server executed it is unknown: look it up.
    RequestOutcomeUnknown {
        /// The request.
        id: RequestId,
        /// Its payload type.
        payload_type: u32,
        /// Why.
        reason: UnknownReason,
    },
    /// A request was never sent (safe to retry).
    RequestNotSent {
        /// The request.
        id: RequestId,
        /// Why.
        reason: NotSentReason,
    },
    /// A response for a request already reported as outcome-unknown.
    LateResponse {
        /// The request.
        id: RequestId,
        /// The response message.
        payload: Payload,
    },
    /// A closed bar, exactly once per (symbol, period, open time), in order.
    BarClosed {
        /// Symbol id.
        symbol_id: i64,
        /// Period.
        period: ProtoOaTrendbarPeriod,
        /// The bar.
        bar: Bar,
        /// History or the live fallback.
        source: BarSource,
    },
    /// A bar emitted from the live stream ([`BarSource::Live`]) differs from what history
    /// returned for it afterwards (the caller already acted on `live`).
    BarRevised {
        /// Symbol id.
        symbol_id: i64,
        /// Period.
        period: ProtoOaTrendbarPeriod,
        /// The bar as emitted.
        live: Bar,
        /// The bar as history has it.
        history: Bar,
    },
    /// A subscription was refused by the server.
    SubscriptionFailed {
        /// Symbol id.
        symbol_id: i64,
        /// Period (None: the spot subscription).
        period: Option<ProtoOaTrendbarPeriod>,
        /// The error code.
        code: ErrorCode,
    },
    /// A spot quote (prices in 1e-5 units; a side absent when unchanged).
    Spot {
        /// Symbol id.
        symbol_id: i64,
        /// Bid.
        bid: Option<u64>,
        /// Ask.
        ask: Option<u64>,
        /// Server time, Unix ms, when the server sends it.
        timestamp: Option<i64>,
    },
    /// An execution event (`request` when its `clientMsgId` matched one of ours).
    Execution {
        /// The matched request.
        request: Option<RequestId>,
        /// The event.
        event: ProtoOaExecutionEvent,
    },
    /// An order error event (`request` when its `clientMsgId` matched one of ours).
    OrderError {
        /// The matched request.
        request: Option<RequestId>,
        /// The event.
        event: ProtoOaOrderErrorEvent,
    },
    /// Any other unsolicited message (trader updates, margin changes, unknown payloads, …).
    Message(Payload),
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session failed or was closed.
    #[error("session has ended")]
    Ended,
    /// Auth and subscription messages are the session's own.
    #[error("payload type {0} is managed by the session")]
    Reserved(u32),
    /// `MN1` has no fixed length, so its bars cannot be tracked.
    #[error("period {0:?} is not supported for bar streams")]
    UnsupportedPeriod(ProtoOaTrendbarPeriod),
    /// Unsubscribing a stream that has no subscribers.
    #[error("no bar stream for symbol {0} period {1:?}")]
    NoSuchStream(i64, ProtoOaTrendbarPeriod),
}

// --------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Purpose {
    User,
    AppAuth,
    AccountAuth,
    /// Holds the refresh token sent, restored if the outcome is unknown (a retry with a spent
    /// token fails cleanly; one not spent works).
    Refresh(Secret),
    SubscribeSpots(Vec<i64>),
    SubscribeTrendbar(i64, ProtoOaTrendbarPeriod),
    Unsubscribe,
    History(StreamKey),
    /// History confirming live-emitted bars.
    Confirm(StreamKey),
}

#[derive(Debug)]
struct Queued {
    id: RequestId,
    payload: Payload,
    purpose: Purpose,
    deadline: Instant,
    timeout: Duration,
    not_before: Option<Instant>,
}

#[derive(Debug)]
struct InFlight {
    payload_type: u32,
    purpose: Purpose,
    deadline: Instant,
    /// Kept for a resend after a rate-limit refusal.
    payload: Payload,
    timeout: Duration,
}

type StreamKey = (i64, ProtoOaTrendbarPeriod);

#[derive(Debug)]
struct BarStream {
    secs: i64,
    refs: usize,
    /// Exclusive lower bound: the next emitted bar has `open_time > emit_after`.
    emit_after: i64,
    /// Exclusive upper bound of bars known closed.
    bound: i64,
    /// History has been checked up to here (exclusive).
    checked_until: i64,
    /// Latest live snapshot of the forming bar.
    forming: Option<Bar>,
    /// Clock close already triggered for `forming`.
    clock_closed: bool,
    fetching: bool,
    /// The upper bound (exclusive) the history request in flight asked for: what its answer
    /// covers (`bound` may move on meanwhile).
    fetch_to: i64,
    page_from: Option<i64>,
    retries: u32,
    retry_at: Option<Instant>,
    live_subscribed: bool,
    /// `forming` was last updated on the current connection (no tick of it can have been missed
    /// in an outage).
    fresh: bool,
    /// Live-emitted bars waiting for history's confirmation (oldest first).
    unconfirmed: VecDeque<Bar>,
    confirming: bool,
    confirm_retries: u32,
    confirm_at: Option<Instant>,
}

/// Live-emitted bars kept for confirmation per stream, at most.
const UNCONFIRMED_MAX: usize = 64;

impl BarStream {
    /// With no live snapshot: the end (Unix s) of the first bar after the last emitted one not
    /// yet known closed, which the clock closes; `None` once the bound is past that bar (so a
    /// quiet market asks history once, not at every bar of a weekend). Only on the grid of
    /// a bar already emitted (periods up to D1, which open on multiples of their length).
    fn unseen_close(&self) -> Option<i64> {
        if self.bound > self.emit_after + self.secs
            || self.secs > 86_400
            || self.emit_after.rem_euclid(self.secs) != 0
        {
            return None;
        }
        // The first bar on the grid not yet known closed opens at or after `bound`.
        let first = (self.bound - self.emit_after + self.secs - 1).div_euclid(self.secs);
        Some(self.emit_after + (first + 1) * self.secs)
    }

    /// [`SessionConfig::live_close`]: `f`, the last snapshot of a bar now known closed, is
    /// emitted at once when it is final as far as this connection can tell (updated on it, the
    /// stream's every earlier bar accounted for) and not emitted yet. No bar can lie between `f`
    /// and `next_open` (a tick would have shown it on this connection), so history is known up
    /// to there. Returns the bar to emit; history is asked to confirm it at `confirm_at` (not at
    /// once), unless a confirmation is already in flight or scheduled.
    fn close_live(&mut self, f: Bar, next_open: i64, confirm_at: Instant) -> Option<Bar> {
        if !self.fresh || self.checked_until < f.open_time {
            tracing::debug!(
                open_time = f.open_time,
                fresh = self.fresh,
                checked_until = self.checked_until,
                emit_after = self.emit_after,
                "closed bar not sent from the live stream: history first"
            );
            return None;
        }
        self.checked_until = self.checked_until.max(next_open);
        if f.open_time <= self.emit_after {
            return None;
        }
        self.emit_after = f.open_time;
        self.retries = 0;
        if self.unconfirmed.len() >= UNCONFIRMED_MAX {
            if let Some(old) = self.unconfirmed.pop_front() {
                tracing::warn!(
                    open_time = old.open_time,
                    "live bar dropped from history confirmation (too many waiting)"
                );
            }
        }
        self.unconfirmed.push_back(f);
        if !self.confirming && self.confirm_at.is_none() {
            self.confirm_at = Some(confirm_at);
        }
        Some(f)
    }
}

/// The sans-IO Open API session. See the module documentation.
pub struct Session {
    cfg: SessionConfig,
    state: State,
    utc_anchor: (Instant, i64),
    next_id: u64,
    decoder: FrameDecoder,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    queue: VecDeque<Queued>,
    history_queue: VecDeque<Queued>,
    in_flight: HashMap<RequestId, InFlight>,
    unknown: VecDeque<RequestId>,
    sent_times: VecDeque<Instant>,
    history_sent_times: VecDeque<Instant>,
    last_send: Instant,
    last_recv: Instant,
    reconnect_at: Option<Instant>,
    attempt: u32,
    backoff: Duration,
    streams: BTreeMap<StreamKey, BarStream>,
    spot_subscribed: HashMap<i64, bool>,
    /// The latest spot `timestamp` seen (Unix ms): a lower bound of the server's clock.
    server_ms: i64,
    /// With [`SessionConfig::confirm_token_store`]: a refreshed pair the caller has not yet
    /// said is stored (its access token is not used meanwhile).
    tokens_unstored: bool,
    /// Account auth is due on this connection once the pair is stored.
    account_auth_held: bool,
    /// When to refresh ahead of the access token's expiry (Unix ms), when known.
    refresh_due_ms: Option<i64>,
}

const HISTORY_TYPES: [u32; 3] = [2137, 2145, 2133];
const UNKNOWN_MEMORY: usize = 1024;

impl Session {
    /// A new session, `Disconnected`. `utc_ms` is the wall-clock time (Unix ms) at `now`.
    pub fn new(cfg: SessionConfig, now: Instant, utc_ms: i64) -> Self {
        let decoder = FrameDecoder::new(cfg.max_frame_len);
        let backoff = cfg.backoff_initial;
        let margin_ms = cfg.refresh_margin.as_millis() as i64;
        let refresh_due_ms = cfg
            .access_expires_at_ms
            .map(|e| e.saturating_sub(margin_ms));
        Self {
            cfg,
            state: State::Disconnected,
            utc_anchor: (now, utc_ms),
            next_id: 1,
            decoder,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            queue: VecDeque::new(),
            history_queue: VecDeque::new(),
            in_flight: HashMap::new(),
            unknown: VecDeque::new(),
            sent_times: VecDeque::new(),
            history_sent_times: VecDeque::new(),
            last_send: now,
            last_recv: now,
            reconnect_at: None,
            attempt: 0,
            backoff,
            streams: BTreeMap::new(),
            spot_subscribed: HashMap::new(),
            server_ms: 0,
            tokens_unstored: false,
            account_auth_held: false,
            refresh_due_ms,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The account this session authorizes.
    pub fn account_id(&self) -> i64 {
        self.cfg.account_id
    }

    /// The access token currently held (after refreshes).
    pub fn credentials(&self) -> &Credentials {
        &self.cfg.credentials
    }

    /// Whether a refreshed pair waits for [`Self::handle_tokens_stored`] (only with
    /// [`SessionConfig::confirm_token_store`]).
    pub fn tokens_unstored(&self) -> bool {
        self.tokens_unstored
    }

    /// The caller stored the pair of the last [`Event::TokensRefreshed`] durably: the new access
    /// token may be used now (account auth goes out if it was waiting for this).
    pub fn handle_tokens_stored(&mut self, now: Instant) {
        if !self.tokens_unstored {
            return;
        }
        self.tokens_unstored = false;
        if std::mem::take(&mut self.account_auth_held) && self.state == State::AccountAuth {
            self.send_account_auth(now);
        }
    }

    /// The caller could not store the refreshed pair: fatal ([`Event::AuthFailed`] with
    /// [`ErrorCode::Other`]`("TOKEN_STORE_FAILED")` and `reason`), since the old refresh token
    /// is spent and the new pair would be lost at the next restart.
    pub fn handle_tokens_store_failed(&mut self, now: Instant, reason: String) {
        if !self.tokens_unstored {
            return;
        }
        self.tokens_unstored = false;
        self.account_auth_held = false;
        self.fail(
            now,
            ErrorCode::Other("TOKEN_STORE_FAILED".into()),
            Some(reason),
        );
    }

    /// Begins connecting (emits [`Transmit::Connect`]).
    pub fn start(&mut self, now: Instant) {
        if self.state == State::Disconnected {
            self.begin_connect(now);
        }
    }

    /// Stops for good: in-flight requests become outcome-unknown, queued ones not-sent.
    pub fn close(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::Failed) {
            return;
        }
        let connected = !matches!(self.state, State::Disconnected);
        self.end_connection(now, connected);
        self.state = State::Closed;
        self.reconnect_at = None;
        self.drop_queued(NotSentReason::SessionEnded);
    }

    /// Re-anchors wall-clock time: `utc_ms` (Unix ms) is the time at `now`.
    pub fn handle_utc(&mut self, now: Instant, utc_ms: i64) {
        self.utc_anchor = (now, utc_ms);
    }

    /// The driver opened the connection.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        self.decoder = FrameDecoder::new(self.cfg.max_frame_len);
        self.last_recv = now;
        self.last_send = now;
        self.account_auth_held = false;
        self.state = State::AppAuth;
        let req = ProtoOaApplicationAuthReq {
            payload_type: None,
            client_id: self.cfg.credentials.client_id.expose().to_owned(),
            client_secret: self.cfg.credentials.client_secret.expose().to_owned(),
        };
        self.send_now(now, req.into(), Purpose::AppAuth, self.cfg.request_timeout);
    }

    /// The driver could not open the connection.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: String) {
        if self.state == State::Connecting {
            self.state = State::Disconnected;
            self.schedule_reconnect(now, DisconnectReason::ConnectFailed(reason));
        }
    }

    /// The connection closed or failed (reported by the driver).
    pub fn handle_disconnected(&mut self, now: Instant, reason: String) {
        if matches!(
            self.state,
            State::AppAuth | State::AccountAuth | State::Ready | State::Connecting
        ) {
            self.lose_connection(now, DisconnectReason::Io(reason), false);
        }
    }

    /// Bytes received on the current connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if !self.is_connected() {
            return;
        }
        self.decoder.feed(bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => match Envelope::decode(&frame) {
                    Ok(env) => self.handle_message(now, env),
                    Err(e) => {
                        self.lose_connection(
                            now,
                            DisconnectReason::Decode(decode_reason(&e)),
                            true,
                        );
                        return;
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    self.lose_connection(now, DisconnectReason::Frame(e), true);
                    return;
                }
            }
            if !self.is_connected() {
                return;
            }
        }
    }

    /// One decoded message received on the current connection.
    pub fn handle_message(&mut self, now: Instant, env: Envelope) {
        if !self.is_connected() {
            return;
        }
        self.last_recv = now;
        // Payload type and id only: a payload may carry secrets (tokens in RefreshTokenRes).
        tracing::trace!(payload_type = env.payload.payload_type(), client_msg_id = ?env.client_msg_id, "frame in");
        let id = env.client_msg_id.as_deref().and_then(RequestId::parse);
        let pending = id.and_then(|id| self.in_flight.remove(&id).map(|f| (id, f)));
        match env.payload {
            Payload::HeartbeatEvent(_) => {}
            Payload::ExecutionEvent(event) => {
                let request = pending
                    .map(|(id, _)| id)
                    .or_else(|| id.filter(|i| self.was_unknown(*i)));
                self.events.push_back(Event::Execution { request, event });
            }
            Payload::OrderErrorEvent(event) => {
                let request = pending
                    .map(|(id, _)| id)
                    .or_else(|| id.filter(|i| self.was_unknown(*i)));
                self.events.push_back(Event::OrderError { request, event });
            }
            payload => {
                if let Some((id, f)) = pending {
                    self.on_response(now, id, f, payload);
                } else if let Some(id) = id.filter(|i| self.was_unknown(*i)) {
                    self.events.push_back(Event::LateResponse { id, payload });
                } else {
                    self.on_unsolicited(now, payload);
                }
            }
        }
        self.pump(now);
    }

    /// Timers: heartbeat, dead peer, request timeouts, reconnect, rate-limit slots, bar closes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.reconnect_at
            && now >= at
            && self.state == State::Disconnected
        {
            self.reconnect_at = None;
            self.begin_connect(now);
        }
        if self.is_connected() {
            if now.saturating_duration_since(self.last_recv) >= self.cfg.dead_peer_timeout {
                self.lose_connection(now, DisconnectReason::DeadPeer, true);
            } else {
                // Request timeouts.
                let mut expired: Vec<RequestId> = self
                    .in_flight
                    .iter()
                    .filter(|(_, f)| now >= f.deadline)
                    .map(|(id, _)| *id)
                    .collect();
                expired.sort();
                for id in expired {
                    if let Some(f) = self.in_flight.remove(&id) {
                        self.on_timeout(now, id, f);
                        if !self.is_connected() {
                            break;
                        }
                    }
                }
            }
        }
        self.expire_queued(now);
        // A retry time reached is spent: the request waits for a rate slot or the connection
        // from now on, and a past `not_before` must not hold `poll_timeout` at it.
        for q in self.queue.iter_mut().chain(self.history_queue.iter_mut()) {
            if q.not_before.is_some_and(|t| now >= t) {
                q.not_before = None;
            }
        }
        if self.refresh_ahead_due(now) {
            tracing::info!("access token expires within the refresh margin; refreshing ahead");
            let code = ErrorCode::Other("ACCESS_TOKEN_EXPIRING".into());
            self.requeue_for_reauth();
            self.refresh_or_fail(now, code, None);
        }
        if self.state == State::Ready {
            self.clock_bar_closes(now);
            for s in self.streams.values_mut() {
                if s.retry_at.is_some_and(|t| now >= t) {
                    s.retry_at = None;
                }
                if s.confirm_at.is_some_and(|t| now >= t) {
                    s.confirm_at = None;
                }
            }
        }
        self.pump(now);
        if self.is_connected()
            && now.saturating_duration_since(self.last_send) >= self.cfg.heartbeat_interval
        {
            self.write(
                now,
                Envelope::new(ProtoHeartbeatEvent { payload_type: None }, None),
            );
        }
    }

    /// When [`Session::handle_timeout`] must be called next (None: nothing pending).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(r) = self.reconnect_at {
            at(r);
        }
        if self.is_connected() {
            at(self.last_send + self.cfg.heartbeat_interval);
            at(self.last_recv + self.cfg.dead_peer_timeout);
            for f in self.in_flight.values() {
                at(f.deadline);
            }
        }
        for q in self.queue.iter().chain(self.history_queue.iter()) {
            at(q.deadline);
            if let Some(nb) = q.not_before {
                at(nb);
            }
        }
        if self.state == State::Ready
            && !self.tokens_unstored
            && self.cfg.credentials.refresh_token.is_some()
            && let Some(due) = self.refresh_due_ms
        {
            at(self.instant_of_wall(due));
        }
        if self.state == State::Ready {
            if !self.queue.is_empty()
                && let Some(s) = self.next_slot(&self.sent_times, self.cfg.max_requests_per_window)
            {
                at(s);
            }
            if !self.history_queue.is_empty() {
                if let Some(s) =
                    self.next_slot(&self.history_sent_times, self.cfg.max_history_per_window)
                {
                    at(s);
                }
                if let Some(s) = self.next_slot(&self.sent_times, self.cfg.max_requests_per_window)
                {
                    at(s);
                }
            }
            let grace = self.cfg.bar_close_grace;
            for s in self.streams.values() {
                if let Some(r) = s.retry_at {
                    at(r);
                }
                if let Some(r) = s.confirm_at {
                    at(r);
                }
                if let Some(f) = s.forming
                    && !s.clock_closed
                {
                    at(self.instant_at_utc(f.open_time + s.secs) + grace);
                } else if s.forming.is_none()
                    && let Some(end) = s.unseen_close()
                {
                    at(self.instant_at_utc(end) + grace);
                }
            }
        }
        t
    }

    /// The next thing for the driver to do.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues a request with the default timeout. See [`Session::send_request_with_timeout`].
    pub fn send_request(
        &mut self,
        now: Instant,
        payload: impl Into<Payload>,
    ) -> Result<RequestId, SessionError> {
        let t = self.cfg.request_timeout;
        self.send_request_with_timeout(now, payload, t)
    }

    /// Queues a request; it is sent when the session is `Ready` and the rate limits allow. Exactly
    /// one of `Response`, `RequestError`, `Execution`/`OrderError` (with `request`),
    /// `RequestOutcomeUnknown` or `RequestNotSent` follows for the returned id. `timeout` bounds
    /// the time in the queue and, separately, the wait for the response once sent.
    pub fn send_request_with_timeout(
        &mut self,
        now: Instant,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<RequestId, SessionError> {
        if matches!(self.state, State::Failed | State::Closed) {
            return Err(SessionError::Ended);
        }
        let payload = payload.into();
        let pt = payload.payload_type();
        if matches!(pt, 2100 | 2102 | 2173 | 2127 | 2129 | 2135 | 2136 | 50 | 51) {
            return Err(SessionError::Reserved(pt));
        }
        let id = self.alloc_id();
        self.enqueue(now, id, payload, Purpose::User, timeout);
        self.pump(now);
        Ok(id)
    }

    /// Adds a subscriber to the bar stream of (`symbol_id`, `period`), creating it on first use
    /// (spot + live trendbar subscriptions). `last_closed` is the open time (Unix s) of the last
    /// closed bar the caller already has: bars after it are emitted (gap fill). `None`: start with
    /// the bar forming now. A second subscriber shares the stream (its `last_closed` is ignored).
    pub fn subscribe_bars(
        &mut self,
        now: Instant,
        symbol_id: i64,
        period: ProtoOaTrendbarPeriod,
        last_closed: Option<i64>,
    ) -> Result<(), SessionError> {
        if matches!(self.state, State::Failed | State::Closed) {
            return Err(SessionError::Ended);
        }
        let secs = period
            .seconds()
            .ok_or(SessionError::UnsupportedPeriod(period))?;
        let key = (symbol_id, period);
        if let Some(s) = self.streams.get_mut(&key) {
            s.refs += 1;
            return Ok(());
        }
        let utc_s = self.utc_s(now) - self.cfg.bar_close_grace.as_secs() as i64;
        let emit_after = last_closed.unwrap_or(utc_s - secs);
        let bound = utc_s - secs + 1;
        self.streams.insert(
            key,
            BarStream {
                secs,
                refs: 1,
                emit_after,
                bound: if last_closed.is_some() {
                    bound
                } else {
                    emit_after + 1
                },
                checked_until: emit_after + 1,
                forming: None,
                clock_closed: false,
                fetching: false,
                fetch_to: 0,
                page_from: None,
                retries: 0,
                retry_at: None,
                live_subscribed: false,
                fresh: false,
                unconfirmed: VecDeque::new(),
                confirming: false,
                confirm_retries: 0,
                confirm_at: None,
            },
        );
        if self.state == State::Ready {
            self.resubscribe(now);
        }
        self.pump(now);
        Ok(())
    }

    /// Removes a subscriber; the last one unsubscribes live trendbars (and spots when no period of
    /// the symbol remains).
    pub fn unsubscribe_bars(
        &mut self,
        now: Instant,
        symbol_id: i64,
        period: ProtoOaTrendbarPeriod,
    ) -> Result<(), SessionError> {
        let key = (symbol_id, period);
        let s = self
            .streams
            .get_mut(&key)
            .ok_or(SessionError::NoSuchStream(symbol_id, period))?;
        s.refs -= 1;
        if s.refs > 0 {
            return Ok(());
        }
        let live = s.live_subscribed;
        self.streams.remove(&key);
        if self.state == State::Ready {
            let acc = self.cfg.account_id;
            if live {
                let req = ProtoOaUnsubscribeLiveTrendbarReq {
                    payload_type: None,
                    ctid_trader_account_id: acc,
                    period: period as i32,
                    symbol_id,
                };
                let id = self.alloc_id();
                self.enqueue(
                    now,
                    id,
                    req.into(),
                    Purpose::Unsubscribe,
                    self.cfg.request_timeout,
                );
            }
            if !self.streams.keys().any(|(sym, _)| *sym == symbol_id)
                && self.spot_subscribed.remove(&symbol_id).is_some()
            {
                let req = ProtoOaUnsubscribeSpotsReq {
                    payload_type: None,
                    ctid_trader_account_id: acc,
                    symbol_id: vec![symbol_id],
                };
                let id = self.alloc_id();
                self.enqueue(
                    now,
                    id,
                    req.into(),
                    Purpose::Unsubscribe,
                    self.cfg.request_timeout,
                );
            }
        } else if !self.streams.keys().any(|(sym, _)| *sym == symbol_id) {
            self.spot_subscribed.remove(&symbol_id);
        }
        self.pump(now);
        Ok(())
    }

    /// The open time (Unix s) of the last bar emitted for a stream (its watermark), if it exists.
    pub fn last_closed_bar(&self, symbol_id: i64, period: ProtoOaTrendbarPeriod) -> Option<i64> {
        self.streams.get(&(symbol_id, period)).map(|s| s.emit_after)
    }

    // ---------------------------------------------------------------------------------------

    fn is_connected(&self) -> bool {
        matches!(
            self.state,
            State::AppAuth | State::AccountAuth | State::Ready
        )
    }

    /// The session's UTC (Unix s): the wall clock, or the server's time when a spot timestamp
    /// showed it to be later (a replay running ahead of the wall clock): a tick stamped `t`
    /// exists, so the server's clock is at least `t`.
    fn utc_s(&self, now: Instant) -> i64 {
        let (i, ms) = self.utc_anchor;
        let delta = if now >= i {
            now.duration_since(i).as_millis() as i64
        } else {
            -(i.duration_since(now).as_millis() as i64)
        };
        (ms + delta).max(self.server_ms).div_euclid(1000)
    }

    /// The wall clock (Unix ms) at `now`, from the anchor (not the server's spot time).
    /// Whether it is time to refresh ahead of the access token's expiry.
    fn refresh_ahead_due(&self, now: Instant) -> bool {
        self.state == State::Ready
            && !self.tokens_unstored
            && self.cfg.credentials.refresh_token.is_some()
            && self
                .refresh_due_ms
                .is_some_and(|due| self.wall_ms(now) >= due)
    }

    /// The instant the wall clock reads `ms` (now-ish when that is past).
    fn instant_of_wall(&self, ms: i64) -> Instant {
        let (i, at) = self.utc_anchor;
        if ms > at {
            i + Duration::from_millis((ms - at) as u64)
        } else {
            i
        }
    }

    fn wall_ms(&self, now: Instant) -> i64 {
        let (i, ms) = self.utc_anchor;
        if now >= i {
            ms + now.duration_since(i).as_millis() as i64
        } else {
            ms - i.duration_since(now).as_millis() as i64
        }
    }

    fn instant_at_utc(&self, utc_s: i64) -> Instant {
        let (i, ms) = self.utc_anchor;
        let d = utc_s * 1000 - ms;
        if d >= 0 {
            i + Duration::from_millis(d as u64)
        } else {
            i.checked_sub(Duration::from_millis((-d) as u64))
                .unwrap_or(i)
        }
    }

    fn alloc_id(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    fn was_unknown(&self, id: RequestId) -> bool {
        self.unknown.contains(&id)
    }

    fn remember_unknown(&mut self, id: RequestId) {
        if self.unknown.len() >= UNKNOWN_MEMORY {
            self.unknown.pop_front();
        }
        self.unknown.push_back(id);
    }

    fn begin_connect(&mut self, _now: Instant) {
        self.attempt += 1;
        self.state = State::Connecting;
        self.transmits.push_back(Transmit::Connect);
        self.events.push_back(Event::Connecting {
            attempt: self.attempt,
        });
    }

    fn write(&mut self, now: Instant, env: Envelope) {
        self.last_send = now;
        // Payload type and id only: auth and refresh payloads carry secrets.
        tracing::trace!(payload_type = env.payload.payload_type(), client_msg_id = ?env.client_msg_id, "frame out");
        self.transmits
            .push_back(Transmit::Bytes(encode_frame(&env.encode_to_vec())));
    }

    /// Sends immediately (auth messages), bypassing the queue but counting in the rate window.
    fn send_now(&mut self, now: Instant, payload: Payload, purpose: Purpose, timeout: Duration) {
        let id = self.alloc_id();
        self.record_send(now, payload.payload_type());
        self.write(
            now,
            Envelope::new(payload.clone(), Some(id.client_msg_id())),
        );
        self.in_flight.insert(
            id,
            InFlight {
                payload_type: payload.payload_type(),
                purpose,
                deadline: now + timeout,
                payload,
                timeout,
            },
        );
    }

    fn record_send(&mut self, now: Instant, payload_type: u32) {
        self.sent_times.push_back(now);
        if HISTORY_TYPES.contains(&payload_type) {
            self.history_sent_times.push_back(now);
        }
    }

    fn enqueue(
        &mut self,
        now: Instant,
        id: RequestId,
        payload: Payload,
        purpose: Purpose,
        timeout: Duration,
    ) {
        let q = Queued {
            id,
            deadline: now + timeout,
            timeout,
            payload,
            purpose,
            not_before: None,
        };
        if HISTORY_TYPES.contains(&q.payload.payload_type()) {
            self.history_queue.push_back(q);
        } else {
            self.queue.push_back(q);
        }
    }

    fn next_slot(&self, times: &VecDeque<Instant>, max: usize) -> Option<Instant> {
        if times.len() < max {
            return None;
        }
        // The oldest send that must leave the window before another is allowed.
        times
            .get(times.len() - max)
            .map(|t| *t + self.cfg.rate_window)
    }

    fn prune_windows(&mut self, now: Instant) {
        let w = self.cfg.rate_window;
        while self
            .sent_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= w)
        {
            self.sent_times.pop_front();
        }
        while self
            .history_sent_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= w)
        {
            self.history_sent_times.pop_front();
        }
    }

    /// Sends what the state and the rate limits allow, then starts pending bar fetches.
    fn pump(&mut self, now: Instant) {
        if self.state != State::Ready {
            return;
        }
        self.start_fetches(now);
        self.prune_windows(now);
        loop {
            let general_ok = self.sent_times.len() < self.cfg.max_requests_per_window;
            if !general_ok {
                break;
            }
            // History first when its own (smaller) limit allows: it cannot starve the rest, and
            // the rest must not starve it.
            let history_ok = self.history_sent_times.len() < self.cfg.max_history_per_window;
            let ready =
                |q: Option<&Queued>| q.is_some_and(|q| q.not_before.is_none_or(|t| now >= t));
            let q = if history_ok && ready(self.history_queue.front()) {
                self.history_queue.pop_front()
            } else if ready(self.queue.front()) {
                self.queue.pop_front()
            } else {
                None
            };
            let Some(q) = q else { break };
            let pt = q.payload.payload_type();
            self.record_send(now, pt);
            self.write(
                now,
                Envelope::new(q.payload.clone(), Some(q.id.client_msg_id())),
            );
            self.in_flight.insert(
                q.id,
                InFlight {
                    payload_type: pt,
                    purpose: q.purpose,
                    deadline: now + q.timeout,
                    payload: q.payload,
                    timeout: q.timeout,
                },
            );
        }
    }

    fn expire_queued(&mut self, now: Instant) {
        let mut resubscribe = false;
        for hist in [false, true] {
            let queue = if hist {
                &mut self.history_queue
            } else {
                &mut self.queue
            };
            let mut keep = VecDeque::with_capacity(queue.len());
            let mut expired = Vec::new();
            for q in queue.drain(..) {
                if now >= q.deadline {
                    expired.push(q)
                } else {
                    keep.push_back(q)
                }
            }
            *queue = keep;
            for q in expired {
                match q.purpose {
                    Purpose::User => self.events.push_back(Event::RequestNotSent {
                        id: q.id,
                        reason: NotSentReason::QueueTimeout,
                    }),
                    Purpose::History(key) => {
                        if let Some(s) = self.streams.get_mut(&key) {
                            s.fetching = false;
                        }
                    }
                    Purpose::Confirm(key) => {
                        if let Some(s) = self.streams.get_mut(&key) {
                            s.confirming = false;
                        }
                    }
                    // A subscription that waited in the queue past its timeout was never sent:
                    // ask again (dropping it would leave the stream without live bars until
                    // the next reconnect).
                    Purpose::SubscribeSpots(symbols) => {
                        tracing::warn!(
                            ?symbols,
                            "spot subscription waited too long in the queue; asking again"
                        );
                        for s in symbols {
                            self.spot_subscribed.remove(&s);
                        }
                        resubscribe = true;
                    }
                    Purpose::SubscribeTrendbar(sym, period) => {
                        tracing::warn!(
                            symbol_id = sym,
                            ?period,
                            "live trendbar subscription waited too long in the queue; asking again"
                        );
                        if let Some(s) = self.streams.get_mut(&(sym, period)) {
                            s.live_subscribed = false;
                        }
                        resubscribe = true;
                    }
                    _ => {}
                }
            }
        }
        if resubscribe && self.state == State::Ready {
            self.resubscribe(now);
        }
    }

    fn drop_queued(&mut self, reason: NotSentReason) {
        let all: Vec<Queued> = self
            .queue
            .drain(..)
            .chain(self.history_queue.drain(..))
            .collect();
        for q in all {
            if matches!(q.purpose, Purpose::User) {
                self.events.push_back(Event::RequestNotSent {
                    id: q.id,
                    reason: reason.clone(),
                });
            }
        }
    }

    /// Tears down the current connection: in-flight user requests → outcome unknown; internal
    /// queued requests are dropped (they are re-issued after reconnect); user queued requests wait.
    fn end_connection(&mut self, _now: Instant, send_close: bool) {
        self.transmits.retain(|t| matches!(t, Transmit::Connect));
        if send_close {
            self.transmits.push_back(Transmit::Close);
        }
        let mut ids: Vec<RequestId> = self.in_flight.keys().copied().collect();
        ids.sort();
        for id in ids {
            let Some(f) = self.in_flight.remove(&id) else {
                continue;
            };
            if let Purpose::Refresh(rt) = f.purpose {
                self.restore_refresh(rt);
                continue;
            }
            if matches!(f.purpose, Purpose::User) {
                self.remember_unknown(id);
                self.events.push_back(Event::RequestOutcomeUnknown {
                    id,
                    payload_type: f.payload_type,
                    reason: UnknownReason::Disconnected,
                });
            }
        }
        self.queue.retain(|q| matches!(q.purpose, Purpose::User));
        self.history_queue
            .retain(|q| matches!(q.purpose, Purpose::User));
        for s in self.streams.values_mut() {
            s.fetching = false;
            s.page_from = None;
            s.live_subscribed = false;
            s.retry_at = None;
            s.fresh = false;
            s.confirming = false;
            s.confirm_at = None;
        }
        // Subscriptions die with the connection; `resubscribe` rebuilds them from the streams.
        self.spot_subscribed.clear();
    }

    fn lose_connection(&mut self, now: Instant, reason: DisconnectReason, send_close: bool) {
        self.end_connection(now, send_close);
        self.state = State::Disconnected;
        self.schedule_reconnect(now, reason);
    }

    fn schedule_reconnect(&mut self, now: Instant, reason: DisconnectReason) {
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
        self.reconnect_at = Some(now + delay);
        tracing::warn!(
            ?reason,
            delay_ms = delay.as_millis() as u64,
            "ctrader connection lost; reconnecting"
        );
        self.events.push_back(Event::Disconnected {
            reason,
            reconnect_in: Some(delay),
        });
    }

    fn fail(&mut self, now: Instant, code: ErrorCode, description: Option<String>) {
        tracing::error!(%code, "ctrader authentication failed");
        self.end_connection(now, true);
        self.state = State::Failed;
        self.reconnect_at = None;
        self.events
            .push_back(Event::AuthFailed { code, description });
        self.drop_queued(NotSentReason::SessionEnded);
    }

    fn send_account_auth(&mut self, now: Instant) {
        self.state = State::AccountAuth;
        if self.tokens_unstored {
            // Store before use: the new access token goes out once the caller stored it.
            self.account_auth_held = true;
            return;
        }
        let req = ProtoOaAccountAuthReq {
            payload_type: None,
            ctid_trader_account_id: self.cfg.account_id,
            access_token: self.cfg.credentials.access_token.expose().to_owned(),
        };
        self.send_now(
            now,
            req.into(),
            Purpose::AccountAuth,
            self.cfg.request_timeout,
        );
    }

    /// Refreshes the access token if a refresh token is held; otherwise fails.
    fn refresh_or_fail(&mut self, now: Instant, code: ErrorCode, description: Option<String>) {
        match self.cfg.credentials.refresh_token.take() {
            Some(rt) => {
                if let Some(hook) = self.cfg.before_refresh_request {
                    hook();
                }
                self.state = State::AccountAuth;
                let req = ProtoOaRefreshTokenReq {
                    payload_type: None,
                    refresh_token: rt.expose().to_owned(),
                };
                self.send_now(
                    now,
                    req.into(),
                    Purpose::Refresh(rt),
                    self.cfg.request_timeout,
                );
            }
            None => self.fail(now, code, description),
        }
    }

    fn restore_refresh(&mut self, rt: Secret) {
        if self.cfg.credentials.refresh_token.is_none() {
            self.cfg.credentials.refresh_token = Some(rt);
        }
    }

    fn on_ready(&mut self, now: Instant) {
        self.state = State::Ready;
        self.attempt = 0;
        self.backoff = self.cfg.backoff_initial;
        self.events.push_back(Event::Ready);
        // Everything that ended before now (minus the grace) is closed: gap fill.
        let utc = self.utc_s(now) - self.cfg.bar_close_grace.as_secs() as i64;
        for s in self.streams.values_mut() {
            s.bound = s.bound.max(utc - s.secs + 1);
        }
        self.resubscribe(now);
    }

    fn resubscribe(&mut self, now: Instant) {
        let acc = self.cfg.account_id;
        let mut symbols: Vec<i64> = self.streams.keys().map(|(s, _)| *s).collect();
        symbols.dedup();
        let need: Vec<i64> = symbols
            .into_iter()
            .filter(|s| !self.spot_subscribed.contains_key(s))
            .collect();
        if !need.is_empty() {
            for s in &need {
                self.spot_subscribed.insert(*s, false);
            }
            let req = ProtoOaSubscribeSpotsReq {
                payload_type: None,
                ctid_trader_account_id: acc,
                symbol_id: need.clone(),
                subscribe_to_spot_timestamp: Some(true),
            };
            let id = self.alloc_id();
            self.enqueue(
                now,
                id,
                req.into(),
                Purpose::SubscribeSpots(need),
                self.cfg.request_timeout,
            );
        }
        // Spots already confirmed on this connection: subscribe missing live trendbars now.
        let confirmed: Vec<i64> = self
            .spot_subscribed
            .iter()
            .filter(|(_, ok)| **ok)
            .map(|(s, _)| *s)
            .collect();
        for s in confirmed {
            self.subscribe_live(now, s);
        }
    }

    fn subscribe_live(&mut self, now: Instant, symbol_id: i64) {
        let acc = self.cfg.account_id;
        let keys: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|((s, _), st)| *s == symbol_id && !st.live_subscribed)
            .map(|(k, _)| *k)
            .collect();
        for (sym, period) in keys {
            if let Some(st) = self.streams.get_mut(&(sym, period)) {
                st.live_subscribed = true;
            }
            let req = ProtoOaSubscribeLiveTrendbarReq {
                payload_type: None,
                ctid_trader_account_id: acc,
                period: period as i32,
                symbol_id: sym,
            };
            let id = self.alloc_id();
            self.enqueue(
                now,
                id,
                req.into(),
                Purpose::SubscribeTrendbar(sym, period),
                self.cfg.request_timeout,
            );
        }
    }

    fn on_response(&mut self, now: Instant, id: RequestId, f: InFlight, payload: Payload) {
        if let Some(code) = payload.error_code() {
            let (description, retry_after, maintenance_end) = match &payload {
                Payload::ErrorRes(e) => (
                    e.description.clone(),
                    None,
                    e.maintenance_end_timestamp
                        .and_then(|t| i64::try_from(t).ok()),
                ),
                Payload::OaErrorRes(e) => (
                    e.description.clone(),
                    e.retry_after,
                    e.maintenance_end_timestamp,
                ),
                _ => (None, None, None),
            };
            if matches!(
                code,
                ErrorCode::OpenApi(ProtoOaErrorCode::ServerIsUnderMaintenance)
            ) {
                self.on_maintenance(now, id, f, code, description, maintenance_end);
                return;
            }
            self.on_error_response(now, id, f, code, description, retry_after);
            return;
        }
        match f.purpose {
            Purpose::User => self.events.push_back(Event::Response { id, payload }),
            Purpose::AppAuth => {
                if matches!(payload, Payload::ApplicationAuthRes(_)) {
                    self.send_account_auth(now);
                }
            }
            Purpose::AccountAuth => {
                if matches!(payload, Payload::AccountAuthRes(_)) {
                    self.on_ready(now);
                }
            }
            Purpose::Refresh(_) => {
                if let Payload::RefreshTokenRes(r) = payload {
                    let access = Secret::new(r.access_token);
                    let refresh = Secret::new(r.refresh_token);
                    self.cfg.credentials.access_token = access.clone();
                    self.cfg.credentials.refresh_token = Some(refresh.clone());
                    self.tokens_unstored = self.cfg.confirm_token_store;
                    let life_ms = r.expires_in.max(0).saturating_mul(1000);
                    let margin_ms = (self.cfg.refresh_margin.as_millis() as i64).min(life_ms / 2);
                    self.refresh_due_ms = Some(
                        self.wall_ms(now)
                            .saturating_add(life_ms)
                            .saturating_sub(margin_ms),
                    );
                    self.events.push_back(Event::TokensRefreshed {
                        access_token: access,
                        refresh_token: refresh,
                        expires_in: r.expires_in,
                    });
                    self.send_account_auth(now);
                }
            }
            Purpose::SubscribeSpots(symbols) => {
                for s in &symbols {
                    if let Some(v) = self.spot_subscribed.get_mut(s) {
                        *v = true;
                    }
                }
                for s in symbols {
                    self.subscribe_live(now, s);
                }
            }
            Purpose::SubscribeTrendbar(..) | Purpose::Unsubscribe => {}
            Purpose::History(key) => {
                if let Payload::GetTrendbarsRes(res) = payload {
                    self.on_history(now, key, res.trendbar, res.has_more.unwrap_or(false));
                }
            }
            Purpose::Confirm(key) => {
                if let Payload::GetTrendbarsRes(res) = payload {
                    self.on_confirm(now, key, &res.trendbar);
                }
            }
        }
    }

    /// `SERVER_IS_UNDER_MAINTENANCE` for any request: it was refused, not executed (a caller's
    /// request gets [`Event::RequestError`], never a resend), and the connection is given up
    /// until the announced end (the wall clock's reading of `maintenanceEndTimestamp`), or
    /// the backoff when no end came. Queued requests wait (their own timeouts apply).
    fn on_maintenance(
        &mut self,
        now: Instant,
        id: RequestId,
        f: InFlight,
        code: ErrorCode,
        description: Option<String>,
        until_ms: Option<i64>,
    ) {
        match f.purpose {
            Purpose::User => self.events.push_back(Event::RequestError {
                id,
                code,
                description,
            }),
            Purpose::Refresh(rt) => self.restore_refresh(rt),
            _ => {}
        }
        let wall_ms = self.wall_ms(now);
        let delay = match until_ms {
            Some(end) if end > wall_ms => Duration::from_millis((end - wall_ms) as u64),
            _ => self.backoff,
        };
        tracing::warn!(
            maintenance_end_ms = ?until_ms,
            delay_ms = delay.as_millis() as u64,
            "ctrader server under maintenance (SERVER_IS_UNDER_MAINTENANCE); reconnecting when it ends"
        );
        self.end_connection(now, true);
        self.state = State::Disconnected;
        self.reconnect_at = Some(now + delay);
        self.events.push_back(Event::Disconnected {
            reason: DisconnectReason::Maintenance { until_ms },
            reconnect_in: Some(delay),
        });
    }

    fn on_error_response(
        &mut self,
        now: Instant,
        id: RequestId,
        f: InFlight,
        code: ErrorCode,
        description: Option<String>,
        retry_after: Option<u64>,
    ) {
        use ProtoOaErrorCode as E;
        let refused = matches!(
            code,
            ErrorCode::OpenApi(E::RequestFrequencyExceeded)
                | ErrorCode::Common(ProtoErrorCode::BlockedPayloadType)
        );
        if refused
            && !matches!(
                f.purpose,
                Purpose::AppAuth | Purpose::AccountAuth | Purpose::Refresh(_)
            )
        {
            // Refused, not executed: resend after retryAfter (or 1 s), at the head of its queue.
            let wait = Duration::from_secs(retry_after.unwrap_or(1).max(1));
            tracing::warn!(%code, client_msg_id = %id.client_msg_id(), "request refused by rate limit; re-queued");
            let q = Queued {
                id,
                deadline: now + wait + f.timeout,
                timeout: f.timeout,
                payload: f.payload,
                purpose: f.purpose,
                not_before: Some(now + wait),
            };
            if HISTORY_TYPES.contains(&f.payload_type) {
                self.history_queue.push_front(q);
            } else {
                self.queue.push_front(q);
            }
            return;
        }
        match f.purpose {
            Purpose::User => self.events.push_back(Event::RequestError {
                id,
                code,
                description,
            }),
            Purpose::AppAuth => match code {
                ErrorCode::OpenApi(E::ChClientAlreadyAuthenticated) => self.send_account_auth(now),
                ErrorCode::OpenApi(E::ChClientAuthFailure | E::ChOaClientNotFound) => {
                    self.fail(now, code, description)
                }
                ErrorCode::OpenApi(E::ConnectionsLimitExceeded) => {
                    tracing::warn!(
                        %code,
                        "ctrader refused the connection: too many open connections for this application (another process of it still connected?); reconnecting after the backoff"
                    );
                    self.lose_connection(now, DisconnectReason::AuthError(code), true)
                }
                other => self.lose_connection(now, DisconnectReason::AuthError(other), true),
            },
            Purpose::AccountAuth => match code {
                ErrorCode::OpenApi(E::AlreadyLoggedIn) => self.on_ready(now),
                ErrorCode::OpenApi(E::OaAuthTokenExpired | E::ChAccessTokenInvalid) => {
                    self.refresh_or_fail(now, code, description)
                }
                ErrorCode::OpenApi(E::ChCtidTraderAccountNotFound | E::ChClientAuthFailure) => {
                    self.fail(now, code, description)
                }
                other => self.lose_connection(now, DisconnectReason::AuthError(other), true),
            },
            Purpose::Refresh(_) => self.fail(now, code, description),
            Purpose::SubscribeSpots(symbols) => {
                if matches!(code, ErrorCode::OpenApi(E::AlreadySubscribed)) {
                    for s in &symbols {
                        self.spot_subscribed.insert(*s, true);
                    }
                    for s in symbols {
                        self.subscribe_live(now, s);
                    }
                } else {
                    tracing::warn!(%code, ?symbols, ?description, "spot subscription refused");
                    for s in symbols {
                        self.spot_subscribed.remove(&s);
                        self.events.push_back(Event::SubscriptionFailed {
                            symbol_id: s,
                            period: None,
                            code: code.clone(),
                        });
                    }
                }
            }
            Purpose::SubscribeTrendbar(sym, period) => {
                if !matches!(code, ErrorCode::OpenApi(E::AlreadySubscribed)) {
                    tracing::warn!(%code, symbol_id = sym, ?period, ?description, "live trendbar subscription refused");
                    if let Some(s) = self.streams.get_mut(&(sym, period)) {
                        s.live_subscribed = false;
                    }
                    self.events.push_back(Event::SubscriptionFailed {
                        symbol_id: sym,
                        period: Some(period),
                        code,
                    });
                }
            }
            Purpose::Unsubscribe => {}
            Purpose::History(key) => {
                tracing::warn!(%code, symbol_id = key.0, period = ?key.1, "trendbar history request failed; will retry");
                if let Some(s) = self.streams.get_mut(&key) {
                    s.fetching = false;
                    s.retry_at = Some(now + self.cfg.history_retry_delay);
                }
            }
            Purpose::Confirm(key) => {
                tracing::warn!(%code, symbol_id = key.0, period = ?key.1, "trendbar history request (confirming live bars) failed; will retry");
                if let Some(s) = self.streams.get_mut(&key) {
                    s.confirming = false;
                    s.confirm_at = Some(now + self.cfg.history_retry_delay);
                }
            }
        }
    }

    fn on_timeout(&mut self, now: Instant, id: RequestId, f: InFlight) {
        match f.purpose {
            Purpose::User => {
                self.remember_unknown(id);
                self.events.push_back(Event::RequestOutcomeUnknown {
                    id,
                    payload_type: f.payload_type,
                    reason: UnknownReason::Timeout,
                });
            }
            Purpose::Refresh(rt) => {
                self.restore_refresh(rt);
                self.lose_connection(now, DisconnectReason::AuthTimeout, true);
            }
            Purpose::AppAuth | Purpose::AccountAuth => {
                self.lose_connection(now, DisconnectReason::AuthTimeout, true);
            }
            Purpose::SubscribeSpots(symbols) => {
                // Ask again (subscriptions are idempotent: ALREADY_SUBSCRIBED counts as success).
                for s in symbols {
                    self.spot_subscribed.remove(&s);
                }
                self.resubscribe(now);
            }
            Purpose::SubscribeTrendbar(sym, period) => {
                if let Some(s) = self.streams.get_mut(&(sym, period)) {
                    s.live_subscribed = false;
                }
                self.subscribe_live(now, sym);
            }
            Purpose::Unsubscribe => {}
            Purpose::History(key) => {
                if let Some(s) = self.streams.get_mut(&key) {
                    s.fetching = false;
                }
            }
            Purpose::Confirm(key) => {
                if let Some(s) = self.streams.get_mut(&key) {
                    s.confirming = false;
                }
            }
        }
    }

    fn on_unsolicited(&mut self, now: Instant, payload: Payload) {
        match payload {
            Payload::SpotEvent(ev) => {
                if ev.ctid_trader_account_id != self.cfg.account_id {
                    return;
                }
                for tb in &ev.trendbar {
                    self.on_live_bar(now, ev.symbol_id, tb);
                }
                if let Some(t) = ev.timestamp
                    && t > self.server_ms
                {
                    self.server_ms = t;
                    if self.state == State::Ready {
                        // The server's time moved: bars it ended are closed (also those of a
                        // symbol whose own ticks stopped).
                        self.clock_bar_closes(now);
                    }
                }
                self.events.push_back(Event::Spot {
                    symbol_id: ev.symbol_id,
                    bid: ev.bid,
                    ask: ev.ask,
                    timestamp: ev.timestamp,
                });
            }
            Payload::ClientDisconnectEvent(ev) => {
                self.lose_connection(now, DisconnectReason::ServerDisconnect(ev.reason), true);
            }
            Payload::AccountsTokenInvalidatedEvent(ev) => {
                if ev.ctid_trader_account_ids.contains(&self.cfg.account_id)
                    && self.state == State::Ready
                {
                    tracing::warn!("access token invalidated by the server; refreshing");
                    let code = ErrorCode::OpenApi(ProtoOaErrorCode::ChAccessTokenInvalid);
                    self.requeue_for_reauth();
                    self.refresh_or_fail(now, code, ev.reason);
                } else {
                    self.events
                        .push_back(Event::Message(Payload::AccountsTokenInvalidatedEvent(ev)));
                }
            }
            Payload::AccountDisconnectEvent(ev) => {
                if ev.ctid_trader_account_id == self.cfg.account_id && self.state == State::Ready {
                    tracing::warn!("account disconnected by the server; re-authorizing");
                    self.requeue_for_reauth();
                    self.send_account_auth(now);
                } else {
                    self.events
                        .push_back(Event::Message(Payload::AccountDisconnectEvent(ev)));
                }
            }
            Payload::ErrorRes(e) => {
                // An error without a matching clientMsgId (e.g. before the server closes the
                // connection). During application auth it answers our auth request.
                let code = ErrorCode::parse(&e.error_code);
                if self.state == State::AppAuth
                    && matches!(
                        code,
                        ErrorCode::OpenApi(ProtoOaErrorCode::ChClientAuthFailure)
                    )
                {
                    self.fail(now, code, e.description);
                } else {
                    self.events.push_back(Event::Message(Payload::ErrorRes(e)));
                }
            }
            other => self.events.push_back(Event::Message(other)),
        }
    }

    /// After the account lost its authorization on a live connection: subscriptions are gone too.
    fn requeue_for_reauth(&mut self) {
        self.state = State::AccountAuth;
        for s in self.streams.values_mut() {
            s.live_subscribed = false;
            s.fetching = false;
            s.page_from = None;
        }
        self.spot_subscribed.clear();
        self.queue.retain(|q| matches!(q.purpose, Purpose::User));
        self.history_queue
            .retain(|q| matches!(q.purpose, Purpose::User));
        // In-flight internal requests will be answered with errors or time out harmlessly.
    }

    fn on_live_bar(&mut self, now: Instant, symbol_id: i64, tb: &crate::proto::ProtoOaTrendbar) {
        // An absent `period` is the schema default (M1); an unknown value is skipped.
        let Some(period) =
            ProtoOaTrendbarPeriod::try_from(tb.period.unwrap_or(ProtoOaTrendbarPeriod::M1 as i32))
                .ok()
        else {
            return;
        };
        let Ok(bar) = decode_trendbar(tb) else { return };
        let live_close = self.cfg.live_close;
        let confirm_at = now + self.cfg.confirm_delay;
        let Some(s) = self.streams.get_mut(&(symbol_id, period)) else {
            return;
        };
        if bar.open_time <= s.emit_after {
            return; // A bar already emitted: late update, ignore.
        }
        let mut emitted = None;
        match s.forming {
            Some(f) if bar.open_time < f.open_time => {}
            Some(f) if bar.open_time == f.open_time => {
                s.forming = Some(bar);
                s.fresh = true;
            }
            Some(f) => {
                // The stream moved into a new period: everything before it is closed.
                s.bound = s.bound.max(bar.open_time);
                if live_close {
                    emitted = s.close_live(f, bar.open_time, confirm_at);
                }
                s.forming = Some(bar);
                s.fresh = true;
                s.clock_closed = false;
            }
            None => {
                if bar.open_time - s.secs <= s.emit_after {
                    // The bar before this one is at or before the last emitted one (or the
                    // subscription's start): no bar lies between, history has nothing to add.
                    s.checked_until = s.checked_until.max(bar.open_time);
                } else {
                    // Bars may have closed between the last emitted one and this one (a
                    // server clock ahead of ours, a subscription answered late): they are
                    // closed, so fetch them now, not when this bar closes; once history has
                    // them, this bar is accounted for and can go out live at its close.
                    s.bound = s.bound.max(bar.open_time);
                }
                s.forming = Some(bar);
                s.fresh = true;
                s.clock_closed = false;
            }
        }
        if let Some(b) = emitted {
            self.events.push_back(Event::BarClosed {
                symbol_id,
                period,
                bar: b,
                source: BarSource::Live,
            });
        }
    }

    fn clock_bar_closes(&mut self, now: Instant) {
        let utc = self.utc_s(now) - self.cfg.bar_close_grace.as_secs() as i64;
        let live_close = self.cfg.live_close;
        let confirm_delay = self.cfg.confirm_delay;
        let mut emitted = Vec::new();
        for (key, s) in self.streams.iter_mut() {
            if let Some(f) = s.forming
                && !s.clock_closed
                && f.open_time + s.secs <= utc
            {
                s.clock_closed = true;
                s.bound = s.bound.max(f.open_time + s.secs);
                if live_close
                    && let Some(b) = s.close_live(f, f.open_time + s.secs, now + confirm_delay)
                {
                    emitted.push((*key, b));
                }
            } else if s.forming.is_none()
                && let Some(end) = s.unseen_close()
                && end <= utc
            {
                // No live snapshot of the bar after the last emitted one (a reconnect whose
                // live trendbars never came before the market went quiet): the clock closes
                // it all the same; history brings it.
                s.bound = s
                    .bound
                    .max(s.emit_after + s.secs * ((utc - s.emit_after) / s.secs));
            }
        }
        for ((symbol_id, period), bar) in emitted {
            self.events.push_back(Event::BarClosed {
                symbol_id,
                period,
                bar,
                source: BarSource::Live,
            });
        }
    }

    fn start_fetches(&mut self, now: Instant) {
        let keys: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                !s.fetching
                    && s.retry_at.is_none()
                    && s.bound > s.checked_until.max(s.emit_after + 1)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(s) = self.streams.get_mut(&key) else {
                continue;
            };
            s.fetching = true;
            s.fetch_to = s.bound;
            let from = s.page_from.unwrap_or(s.emit_after + 1);
            let to = s.bound;
            self.ask_trendbars(now, key, from, to, Purpose::History(key));
        }
        // Confirmation of live-emitted bars (off the bars' path: they are out already).
        let keys: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.confirming && s.confirm_at.is_none() && !s.unconfirmed.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(s) = self.streams.get_mut(&key) else {
                continue;
            };
            let (Some(first), Some(last)) = (s.unconfirmed.front(), s.unconfirmed.back()) else {
                continue;
            };
            let (from, to) = (first.open_time, last.open_time + s.secs);
            s.confirming = true;
            self.ask_trendbars(now, key, from, to, Purpose::Confirm(key));
        }
    }

    /// Queues a `GetTrendbarsReq` for `key`'s bars opening in `[from, to)` (Unix s).
    fn ask_trendbars(
        &mut self,
        now: Instant,
        key: StreamKey,
        from: i64,
        to: i64,
        purpose: Purpose,
    ) {
        let req = ProtoOaGetTrendbarsReq {
            payload_type: None,
            ctid_trader_account_id: self.cfg.account_id,
            from_timestamp: Some(from * 1000),
            to_timestamp: Some(to * 1000),
            period: key.1 as i32,
            symbol_id: key.0,
            count: None,
        };
        let id = self.alloc_id();
        self.enqueue(now, id, req.into(), purpose, self.cfg.request_timeout);
    }

    /// History's answer for live-emitted bars: equal → confirmed; different →
    /// [`Event::BarRevised`]; absent → asked again ([`SessionConfig::history_retries`] times, then
    /// given up with a warning).
    fn on_confirm(&mut self, now: Instant, key: StreamKey, bars: &[crate::proto::ProtoOaTrendbar]) {
        let (retries_max, delay) = (self.cfg.history_retries, self.cfg.history_retry_delay);
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        s.confirming = false;
        let got: HashMap<i64, Bar> = bars
            .iter()
            .filter_map(|b| decode_trendbar(b).ok())
            .map(|b| (b.open_time, b))
            .collect();
        let mut revised = Vec::new();
        s.unconfirmed.retain(|u| match got.get(&u.open_time) {
            Some(h) => {
                if h != u {
                    revised.push((*u, *h));
                }
                false
            }
            None => true,
        });
        if s.unconfirmed.is_empty() {
            s.confirm_retries = 0;
        } else if s.confirm_retries < retries_max {
            s.confirm_retries += 1;
            s.confirm_at = Some(now + delay);
        } else {
            for u in s.unconfirmed.drain(..) {
                tracing::warn!(symbol_id = key.0, period = ?key.1, open_time = u.open_time,
                    "live bar never confirmed by history (it is not there)");
            }
            s.confirm_retries = 0;
        }
        for (live, history) in revised {
            tracing::warn!(symbol_id = key.0, period = ?key.1, open_time = live.open_time,
                ?live, ?history, "live bar differs from history");
            self.events.push_back(Event::BarRevised {
                symbol_id: key.0,
                period: key.1,
                live,
                history,
            });
        }
    }

    fn on_history(
        &mut self,
        now: Instant,
        key: StreamKey,
        bars: Vec<crate::proto::ProtoOaTrendbar>,
        has_more: bool,
    ) {
        let retries_max = self.cfg.history_retries;
        let retry_delay = self.cfg.history_retry_delay;
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        s.fetching = false;
        let mut decoded: Vec<Bar> = bars
            .iter()
            .filter_map(|b| decode_trendbar(b).ok())
            .collect();
        decoded.sort_by_key(|b| b.open_time);
        // A bar listed twice by the server is emitted once (exactly once per open time).
        decoded.dedup_by_key(|b| b.open_time);
        // What this answer covers: the request's range. Bars the stream closed since are
        // fetched next (marking them checked here would skip them).
        let bound = s.fetch_to;
        // The bar the live stream showed must be in history before we move past it.
        let expected = s
            .forming
            .filter(|f| f.open_time < bound && f.open_time > s.emit_after);
        let page_end = decoded.last().map(|b| b.open_time);
        let mut emit = Vec::new();
        let mut blocked = false;
        for b in decoded {
            if b.open_time <= s.emit_after || b.open_time >= bound {
                continue;
            }
            if let Some(e) = expected
                && b.open_time > e.open_time
                && !emit.iter().any(|x: &Bar| x.open_time == e.open_time)
                && s.emit_after < e.open_time
            {
                // History skipped the live bar: stop before it.
                blocked = true;
                break;
            }
            emit.push(b);
        }
        if has_more && !blocked {
            // Page on from after the last bar of this page.
            s.page_from = page_end.map(|t| t + 1);
        } else {
            s.page_from = None;
        }
        let missing = expected
            .filter(|e| !emit.iter().any(|b| b.open_time == e.open_time) && (blocked || !has_more));
        for b in &emit {
            s.emit_after = b.open_time;
        }
        let mut out: Vec<(Bar, BarSource)> =
            emit.into_iter().map(|b| (b, BarSource::History)).collect();
        if let Some(e) = missing {
            if s.retries < retries_max {
                s.retries += 1;
                s.retry_at = Some(now + retry_delay);
            } else {
                s.retries = 0;
                tracing::warn!(symbol_id = key.0, period = ?key.1, open_time = e.open_time, "bar missing from history; emitting the live snapshot");
                s.emit_after = e.open_time;
                out.push((e, BarSource::LiveUnconfirmed));
            }
        } else if !has_more {
            s.retries = 0;
            s.checked_until = s.checked_until.max(bound);
        }
        if s.forming.is_some_and(|f| f.open_time <= s.emit_after) {
            s.forming = None;
        }
        for (bar, source) in out {
            self.events.push_back(Event::BarClosed {
                symbol_id: key.0,
                period: key.1,
                bar,
                source,
            });
        }
    }
}

fn decode_reason(e: &DecodeError) -> String {
    e.to_string()
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("account_id", &self.cfg.account_id)
            .field("in_flight", &self.in_flight.len())
            .field("queued", &(self.queue.len() + self.history_queue.len()))
            .field("streams", &self.streams.len())
            .finish()
    }
}
