//! The broker: a deterministic, sans-IO state machine of a cTrader Open API server.
//!
//! No sockets, no clock, no threads. Inputs arrive through [`Broker::connect`],
//! [`Broker::handle_request`], [`Broker::handle_bad_frame`], [`Broker::handle_timeout`],
//! [`Broker::step_market`] and [`Broker::disconnect`], each with `now` (Unix ms of the wall clock,
//! supplied by the caller); outputs leave through [`Broker::poll_output`], and
//! [`Broker::poll_timeout`] says when to call `handle_timeout` next. For the same seed and the same
//! inputs the outputs are the same, byte for byte.
//!
//! ## Behaviour where Spotware's documentation is silent (our choices)
//! - **Heartbeats:** the server sends `ProtoHeartbeatEvent` when it has sent nothing for 10 s, and
//!   disconnects a client that has sent nothing (heartbeat or request) for 30 s, with a
//!   `ProtoOAClientDisconnectEvent` ("idle timeout") first. Client heartbeats are not answered.
//! - **Rate limits:** per connection, sliding one-second windows: 50 requests, and 5 historical
//!   requests (GetTrendbars, GetTickData, DealList). Heartbeats do not count; refused requests do
//!   not use up the window. Over the limit: `ProtoOAErrorRes REQUEST_FREQUENCY_EXCEEDED`; the
//!   connection stays open.
//! - **Errors:** request errors are `ProtoOAErrorRes` (with `ctidTraderAccountId` when the
//!   request names one); frame-level problems (unknown payload type, undecodable payload) are
//!   `ProtoErrorRes`. A bad application secret gets `CH_CLIENT_AUTH_FAILURE`, then the server
//!   closes the connection.
//! - **Accounts:** hedged (`accountType` HEDGED, cTrader's default): each market order without
//!   `positionId` opens its own position; an opposite-side order with `positionId` reduces that
//!   position; `ClosePositionReq` closes (part of) it. Margin is the SUM of positions' margins;
//!   `NOT_ENOUGH_MONEY` when the new order's margin exceeds free margin.
//! - **Trade errors** (volume, money, market closed, scope, unknown position) are
//!   `ProtoOAOrderErrorEvent` (the `reject` fault can send them as `ProtoOAErrorRes` instead).
//! - **Fills:** a buy fills at ask, a sell at bid, plus the symbol's fixed adverse slippage and an
//!   optional seeded random extra. MARKET_RANGE: the fill must be within `slippageInPoints` of
//!   `baseSlippagePrice` (default: the current price), otherwise ORDER_ACCEPTED then
//!   ORDER_CANCELLED with no deal. Absolute SL/TP on market orders: `TRADING_BAD_STOPS`. Relative
//!   SL/TP are recorded on the position but not triggered.
//! - **Commission:** `commission_per_lot` is per round turn; a position carries half of it as
//!   unrealised `commission`; the closing deal realises the whole round turn for the closed volume
//!   (so a closed trade's net equals the training environment's). No swaps.
//! - **Market closed:** an order for a symbol with no price yet, or whose data is exhausted, or
//!   (`--calendar realistic`, [`crate::calendar`]) outside its trading hours at market time; in
//!   closed hours no spot is sent and history holds no bar lying wholly in them.
//! - **Tokens:** refreshing invalidates the old access token at once (every connection using it
//!   gets `ProtoOAAccountsTokenInvalidatedEvent`); a refresh token works once. An access token that
//!   expires while in use gets the same event.
//! - **Spots:** the first `SpotEvent` after subscribing has bid and ask; later ones carry only the
//!   prices that changed, and the forming trendbar of every subscribed live period. A tick that
//!   changes neither price is not sent unless live trendbars are subscribed (their bar moved).
//! - **GetTrendbars:** closed bars with open time in `[from, to)`, oldest first; at most `count`
//!   (or the chunk size) of the newest ones, `hasMore` when older ones in the range were left out.
//!   `timestamp` is always set (the market clock). A period finer than the symbol's source data is
//!   refused with `INVALID_REQUEST`.
//! - **GetTickData:** ticks newest first; the first has absolute time and price, the others the
//!   differences to the previous one (so decoding is a running sum).
//! - **DealList:** deals with execution time in `[from, to]`, oldest first, at most `maxRows`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bars::{Period, PeriodExt, Trendbar, price_from_f64, price_to_f64};
use crate::calendar::{CalendarMode, SymbolHours};
use crate::config::{BrokerConfig, Fault, Speed};
use crate::market::{Market, Tick};
use crate::msg::*;
use crate::symbols::SymbolSpec;
use oracle_ctrader::calendar::{Holiday, TradingCalendar};

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // transient: each output is consumed right away
pub enum Output {
    /// Send `event` on `conn`, echoing `client_msg_id`, after waiting `delay_ms`.
    Send {
        /// Connection.
        conn: ConnId,
        /// Echoed clientMsgId.
        client_msg_id: Option<String>,
        /// The message.
        event: Event,
        /// Delay before writing (the `delay` fault).
        delay_ms: u64,
    },
    /// Send a frame whose body is these bytes (not a ProtoMessage): the `garbage` fault.
    Garbage {
        /// Connection.
        conn: ConnId,
        /// Body.
        bytes: Vec<u8>,
    },
    /// Send a frame announcing `len` bytes, followed by `len` zero bytes: the `oversized` fault.
    Oversized {
        /// Connection.
        conn: ConnId,
        /// Announced length.
        len: u32,
    },
    /// The `silence` fault fired: nothing more is sent on `conn`, but the socket stays open
    /// (for the shell's timing hook; nothing to do on the wire).
    Silenced {
        /// Connection.
        conn: ConnId,
        /// Why (for logs and the timing hook).
        reason: String,
    },
    /// Close the connection: `graceful` flushes queued frames and sends TLS close_notify; else
    /// the socket is dropped at once (a "connection reset" for the client).
    Close {
        /// Connection.
        conn: ConnId,
        /// Flush first.
        graceful: bool,
        /// Why (for logs).
        reason: String,
    },
}

/// A frame the shell could not turn into a request.
#[derive(Clone, Debug, PartialEq)]
pub enum BadFrame {
    /// Its length prefix exceeds the maximum frame size.
    TooLong {
        /// Announced length.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Its body is not a ProtoMessage.
    Garbage {
        /// Decoder message.
        reason: String,
    },
}

/// Account figures for inspection (tests, CLI status).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountView {
    /// Balance, cents.
    pub balance: i64,
    /// Balance + unrealised gross P&L + unrealised commission, cents.
    pub equity: i64,
    /// Used margin, cents.
    pub used_margin: i64,
    /// equity − used margin, cents.
    pub free_margin: i64,
    /// Open positions.
    pub open_positions: usize,
    /// Deals so far.
    pub deals: usize,
}

#[derive(Debug, Clone)]
struct Position {
    id: i64,
    symbol: usize,
    side: Side,
    volume: i64,
    price: i64,
    open_ms: i64,
    last_update_ms: i64,
    label: Option<String>,
    comment: Option<String>,
    used_margin: i64,
    relative_sl: Option<i64>,
    relative_tp: Option<i64>,
}

#[derive(Debug)]
struct Account {
    cfg: crate::config::AccountConfig,
    balance: i64,
    balance_version: i64,
    positions: BTreeMap<i64, Position>,
    deals: Vec<DealInfo>,
    /// Orders in their last state (served by OrderDetails / OrderList).
    orders: Vec<OrderInfo>,
}

#[derive(Debug)]
struct Token {
    access: String,
    refresh: Option<String>,
    scope: Scope,
    accounts: Vec<i64>,
    expires_ms: i64,
    revoked: bool,
}

#[derive(Debug, Default)]
struct SpotSub {
    with_timestamp: bool,
    last_bid: Option<i64>,
    last_ask: Option<i64>,
    /// Subscribed live-trendbar periods → open time (Unix ms) of the forming bar last sent.
    periods: BTreeMap<Period, Option<i64>>,
}

#[derive(Debug)]
struct Conn {
    app: Option<String>,
    /// account id → index of the token it was authorized with
    accounts: BTreeMap<i64, usize>,
    spots: BTreeMap<(i64, usize), SpotSub>,
    last_recv_ms: i64,
    last_sent_ms: i64,
    sent: u64,
    silenced: bool,
    closed: bool,
    req_window: VecDeque<i64>,
    hist_window: VecDeque<i64>,
}

/// The broker state machine. See the module docs.
///
/// Invariants the code relies on (indexing and `expect`s below): an account authorized on a
/// connection exists in `accounts` (account auth checks it; accounts are never removed), and a
/// position id passed to `execute` as a target was looked up in that account just before.
#[derive(Debug)]
pub struct Broker {
    cfg: BrokerConfig,
    market: Market,
    assets: Vec<String>,
    accounts: BTreeMap<i64, Account>,
    tokens: Vec<Token>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    next_order: i64,
    next_position: i64,
    next_deal: i64,
    orders_seen: u64,
    fault_fired: Vec<u64>,
    fault_matches: Vec<u64>,
    rng_fault: ChaCha8Rng,
    rng_fill: ChaCha8Rng,
    rng_token: ChaCha8Rng,
    wall_anchor_ms: i64,
    replay_anchor_ms: i64,
    /// market ms per wall ms (timed speeds)
    factor: Option<f64>,
    paused: bool,
    /// fast speed: no step before this wall time (the bar pause)
    hold_until_ms: Option<i64>,
    out: VecDeque<Output>,
    ticks: Vec<Tick>,
    /// NewOrderReq received per clientOrderId (tests prove "never resent").
    new_orders_by_coid: BTreeMap<String, u64>,
    /// Trading requests received, of any kind (NewOrderReq, ClosePositionReq, cancel, amend):
    /// tests of a dry run prove none came.
    trading_requests: u64,
    /// Connections reset (`drop:*`) or silenced (`silence:*`) by a fault.
    fault_disconnects: u64,
    /// `now` at [`Broker::new`]: the `maintenance` fault's origin.
    started_ms: i64,
    /// Each symbol's trading hours as served (by index in `market.symbols`).
    hours: Vec<SymbolHours>,
    /// Each symbol's calendar, enforced on market time (empty: `--calendar always-open`).
    calendars: Vec<TradingCalendar>,
    /// `--calendar realistic`, timed speeds: the weekly maintenance window (market time; "open"
    /// = under maintenance).
    maintenance_cal: Option<TradingCalendar>,
    /// The window (by its wall end) whose start already disconnected everyone.
    maintenance_window_closed: Option<i64>,
    /// Market steps taken (for `spread:…,after=N`).
    steps: u64,
    /// Each symbol's `tradingMode` set by [`Broker::set_trading_mode`] (None: by its data).
    trading_modes: Vec<Option<i32>>,
    /// OAuth authorization codes not yet exchanged (`crate::oauth`).
    codes: Vec<AuthCode>,
}

/// An OAuth authorization code (`crate::oauth`): lives 60 s, works once.
#[derive(Debug)]
struct AuthCode {
    code: String,
    client_id: String,
    redirect_uri: String,
    scope: Scope,
    expires_ms: i64,
}

/// How long an OAuth authorization code lives (cTrader: one minute).
pub const AUTH_CODE_TTL_MS: i64 = 60_000;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A token grants an account that does not exist.
    #[error("a token grants account {0}, which is not configured")]
    UnknownAccount(i64),
    /// Two accounts share an id.
    #[error("account {0} is configured twice")]
    DuplicateAccount(i64),
    /// No symbol to quote.
    #[error("no symbols: give bar files (--data) for at least one symbol")]
    NoSymbols,
    /// A deposit currency no traded symbol pairs with USD (its money cannot be converted).
    #[error(
        "--deposit-currency {0}: no traded symbol pairs {0} with USD (e.g. {0}USD or USD{0}) to convert the symbols' money at"
    )]
    NoDepositConversion(String),
}

/// The price (USD → `deposit`) of the first traded symbol pairing `deposit` with USD, at the
/// replay's start (its last bid before it, else its first bar's open); `None`: no such symbol.
fn usd_to_deposit(market: &Market, deposit: &str) -> Option<f64> {
    market.symbols.iter().find_map(|s| {
        let bars = s.series.get(&s.base)?;
        let price = s.last_bid.or_else(|| bars.first().map(|b| b.open))? as f64 / 100_000.0;
        if price <= 0.0 {
            return None;
        }
        match (s.spec.base_asset.as_str(), s.spec.quote_asset.as_str()) {
            (b, "USD") if b == deposit => Some(1.0 / price),
            ("USD", q) if q == deposit => Some(price),
            _ => None,
        }
    })
}

const MAX_TIMESTAMP_MS: i64 = 2_147_483_646_000;

impl Broker {
    /// A broker over `market`, started at wall time `now_ms`.
    pub fn new(cfg: BrokerConfig, market: Market, now_ms: i64) -> Result<Self, ConfigError> {
        if market.symbols.is_empty() {
            return Err(ConfigError::NoSymbols);
        }
        let mut accounts = BTreeMap::new();
        for a in &cfg.accounts {
            let acc = Account {
                cfg: a.clone(),
                balance: a.balance_cents,
                balance_version: 1,
                positions: BTreeMap::new(),
                deals: Vec::new(),
                orders: Vec::new(),
            };
            if accounts.insert(a.id, acc).is_some() {
                return Err(ConfigError::DuplicateAccount(a.id));
            }
        }
        let mut tokens = Vec::new();
        for t in &cfg.tokens {
            if let Some(a) = t.accounts.iter().find(|a| !accounts.contains_key(a)) {
                return Err(ConfigError::UnknownAccount(*a));
            }
            tokens.push(Token {
                access: t.access_token.clone(),
                refresh: Some(t.refresh_token.clone()),
                scope: t.scope,
                accounts: t.accounts.clone(),
                expires_ms: now_ms.saturating_add(t.expires_in_s.saturating_mul(1000)),
                revoked: false,
            });
        }
        // Money in another deposit currency than USD: the symbols' USD money (per point, commission)
        // converted at the start's price of a symbol pairing it with USD.
        let mut market = market;
        let deposit = cfg.deposit_currency.clone();
        if deposit != "USD" {
            let rate = usd_to_deposit(&market, &deposit)
                .ok_or_else(|| ConfigError::NoDepositConversion(deposit.clone()))?;
            tracing::info!(deposit = %deposit, usd_to_deposit = rate, "deposit currency: the symbols' USD money converted at the start's price");
            for s in &mut market.symbols {
                s.spec.money_per_point_per_lot *= rate;
                s.spec.commission_per_lot *= rate;
            }
        }
        let mut names: BTreeSet<String> = BTreeSet::new();
        names.insert(deposit);
        for s in &market.symbols {
            names.insert(s.spec.base_asset.clone());
            names.insert(s.spec.quote_asset.clone());
        }
        names.remove("USD");
        let mut assets = vec!["USD".to_string()];
        assets.extend(names);
        let seed = cfg.seed;
        let nf = cfg.faults.len();
        let start_ms = market.now_ms;
        let hours: Vec<SymbolHours> = market
            .symbols
            .iter()
            .map(|s| {
                let mut h = SymbolHours::for_symbol(&s.spec.name, cfg.calendar);
                if cfg.calendar == CalendarMode::Realistic {
                    h.holidays
                        .extend(cfg.holidays.iter().map(|(name, days)| Holiday {
                            name: name.clone(),
                            time_zone: h.time_zone.clone(),
                            date_days: *days,
                            recurring: false,
                            start_second: None,
                            end_second: None,
                        }));
                }
                h
            })
            .collect();
        let calendars = match cfg.calendar {
            CalendarMode::AlwaysOpen => Vec::new(),
            CalendarMode::Realistic => hours.iter().map(SymbolHours::calendar).collect(),
        };
        // The broker's names (hours above were chosen by the model's name).
        for s in &mut market.symbols {
            if let Some(b) = cfg.broker_names.get(&s.spec.name) {
                tracing::info!(symbol = %s.spec.name, broker_symbol = %b, "symbol listed under the broker's name");
                s.spec.name = b.clone();
            }
        }
        let trading_modes = vec![None; market.symbols.len()];
        let factor = match cfg.speed {
            Speed::Fast => None,
            Speed::Times(f) => Some(f),
            Speed::BarsPerSecond(b) => Some(b * market.coarsest_base_ms() as f64 / 1000.0),
        };
        let maintenance_cal = (cfg.calendar == CalendarMode::Realistic && factor.is_some())
            .then(crate::calendar::weekly_maintenance);
        Ok(Broker {
            cfg,
            market,
            assets,
            accounts,
            tokens,
            conns: BTreeMap::new(),
            next_conn: 1,
            next_order: 10_000_001,
            next_position: 20_000_001,
            next_deal: 30_000_001,
            orders_seen: 0,
            fault_fired: vec![0; nf],
            fault_matches: vec![0; nf],
            rng_fault: ChaCha8Rng::seed_from_u64(seed ^ 0x0066_6175_6c74),
            rng_fill: ChaCha8Rng::seed_from_u64(seed ^ 0x0066_696c_6c73),
            rng_token: ChaCha8Rng::seed_from_u64(seed ^ 0x746f_6b65_6e73),
            wall_anchor_ms: now_ms,
            replay_anchor_ms: start_ms,
            factor,
            paused: false,
            hold_until_ms: None,
            out: VecDeque::new(),
            ticks: Vec::new(),
            new_orders_by_coid: BTreeMap::new(),
            trading_requests: 0,
            fault_disconnects: 0,
            started_ms: now_ms,
            hours,
            calendars,
            maintenance_cal,
            maintenance_window_closed: None,
            steps: 0,
            trading_modes,
            codes: Vec::new(),
        })
    }

    /// How many times each configured fault (`BrokerConfig::faults`, in its order) has fired.
    pub fn faults_fired(&self) -> &[u64] {
        &self.fault_fired
    }

    /// The market (read-only).
    pub fn market(&self) -> &Market {
        &self.market
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.cfg
    }

    /// A new connection.
    pub fn connect(&mut self, now_ms: i64) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                app: None,
                accounts: BTreeMap::new(),
                spots: BTreeMap::new(),
                last_recv_ms: now_ms,
                last_sent_ms: now_ms,
                sent: 0,
                silenced: false,
                closed: false,
                req_window: VecDeque::new(),
                hist_window: VecDeque::new(),
            },
        );
        id
    }

    /// The connection is gone (the shell saw EOF, an error, or finished a `Close`).
    pub fn disconnect(&mut self, conn: ConnId, _now_ms: i64) {
        self.conns.remove(&conn);
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Next output for the shell.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// An account's open positions as (symbol name as listed, volume in cents), by position id.
    pub fn open_positions(&self, account_id: i64) -> Vec<(String, i64)> {
        self.accounts.get(&account_id).map_or_else(Vec::new, |a| {
            a.positions
                .values()
                .map(|p| (self.market.symbols[p.symbol].spec.name.clone(), p.volume))
                .collect()
        })
    }

    /// Figures of an account.
    pub fn account_view(&self, id: i64) -> Option<AccountView> {
        let a = self.accounts.get(&id)?;
        let (unreal, comm, used) = self.unrealized(a);
        let equity = a.balance + unreal + comm;
        Some(AccountView {
            balance: a.balance,
            equity,
            used_margin: used,
            free_margin: equity - used,
            open_positions: a.positions.len(),
            deals: a.deals.len(),
        })
    }

    // ------------------------------------------------------------------ time

    /// Holds (true) or releases (false) the replay. While held the market clock does not move;
    /// releasing re-anchors timed speeds so the replay starts from where it stood.
    pub fn set_paused(&mut self, now_ms: i64, paused: bool) {
        if self.paused && !paused {
            self.wall_anchor_ms = now_ms;
            self.replay_anchor_ms = self.market.now_ms;
        }
        self.paused = paused;
    }

    /// True once every symbol's replay is over (data exhausted or the live-bar limit reached).
    pub fn replay_done(&self) -> bool {
        self.market.exhausted()
    }

    fn market_time_at(&self, now_ms: i64) -> Option<i64> {
        let f = self.factor.filter(|_| !self.paused)?;
        let dt = (now_ms - self.wall_anchor_ms).max(0) as f64 * f;
        // rounded, so the wall deadline computed by `wall_time_of` always reaches its tick
        Some(self.replay_anchor_ms.saturating_add(dt.round() as i64))
    }

    fn wall_time_of(&self, market_ms: i64) -> Option<i64> {
        let f = self.factor.filter(|_| !self.paused)?;
        let dm = (market_ms - self.replay_anchor_ms).max(0) as f64 / f;
        Some(self.wall_anchor_ms + dm.ceil() as i64)
    }

    /// Brings the market clock up to `now` (timed speeds) and dispatches the ticks.
    fn sync_market(&mut self, now_ms: i64) {
        if let Some(t) = self.market_time_at(now_ms) {
            let mut ticks = std::mem::take(&mut self.ticks);
            ticks.clear();
            self.market.advance_to(t, &mut ticks);
            for tick in &ticks {
                self.dispatch_tick(now_ms, *tick);
            }
            self.ticks = ticks;
        }
    }

    /// When `handle_timeout` should next be called (wall ms), if ever.
    pub fn poll_timeout(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |t: i64| next = Some(next.map_or(t, |n: i64| n.min(t)));
        let heartbeats = !self
            .cfg
            .faults
            .iter()
            .any(|f| matches!(f, Fault::NoHeartbeat));
        for c in self.conns.values().filter(|c| !c.closed) {
            if heartbeats && !c.silenced {
                consider(c.last_sent_ms + self.cfg.heartbeat_interval_ms);
            }
            consider(c.last_recv_ms + self.cfg.idle_timeout_ms);
            for tok in c.accounts.values() {
                let t = &self.tokens[*tok];
                if !t.revoked {
                    consider(t.expires_ms);
                }
            }
        }
        if let Some(h) = self.hold_until_ms {
            consider(h);
        }
        // The next Saturday window's start, while the replay can still reach it (a start the
        // market clock is already at, or one after the replay's end, would be due forever).
        if let Some(mc) = &self.maintenance_cal
            && !self.market.exhausted()
            && let Some(start) = mc.next_open(self.market.now_ms)
            && start > self.market.now_ms
            && let Some(w) = self.wall_time_of(start)
        {
            consider(w);
        }
        for (i, f) in self.cfg.faults.iter().enumerate() {
            if let Fault::Maintenance { after_s, .. } = f
                && self.fault_fired[i] == 0
            {
                consider(self.started_ms + (*after_s as i64) * 1000);
            }
        }
        if let Some(t) = self
            .market
            .next_tick_time()
            .and_then(|t| self.wall_time_of(t))
        {
            consider(t);
        }
        next
    }

    /// Fast speed only: true when the market should produce its next tick (some connection is
    /// subscribed to spots and the data is not exhausted). The shell calls [`Broker::step_market`]
    /// when this holds and every connection's queue has room.
    pub fn wants_step(&self, now_ms: i64) -> bool {
        matches!(self.cfg.speed, Speed::Fast)
            && !self.paused
            && self.hold_until_ms.is_none_or(|h| now_ms >= h)
            && !self.market.exhausted()
            && self
                .conns
                .values()
                .any(|c| !c.closed && !c.spots.is_empty())
    }

    /// Fast speed: produce the next tick(s) and their spot events. Returns false when the data is
    /// exhausted.
    pub fn step_market(&mut self, now_ms: i64) -> bool {
        let mut ticks = std::mem::take(&mut self.ticks);
        ticks.clear();
        let more = self.market.step(&mut ticks);
        for tick in &ticks {
            self.dispatch_tick(now_ms, *tick);
        }
        self.ticks = ticks;
        more
    }

    /// Timers: market ticks (timed speeds), heartbeats, idle disconnects, token expiry.
    pub fn handle_timeout(&mut self, now_ms: i64) {
        if self.hold_until_ms.is_some_and(|h| now_ms >= h) {
            self.hold_until_ms = None;
        }
        self.sync_market(now_ms);
        self.maintenance_start(now_ms);
        self.weekly_maintenance_start(now_ms);
        let heartbeats = !self
            .cfg
            .faults
            .iter()
            .any(|f| matches!(f, Fault::NoHeartbeat));
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            if c.closed {
                continue;
            }
            if now_ms - c.last_recv_ms >= self.cfg.idle_timeout_ms {
                tracing::info!(
                    conn = id,
                    "client idle for {} ms: disconnecting",
                    now_ms - c.last_recv_ms
                );
                let reason = format!(
                    "idle timeout: no message from the client for {} s",
                    self.cfg.idle_timeout_ms / 1000
                );
                self.send(
                    now_ms,
                    id,
                    None,
                    Event::ClientDisconnect {
                        reason: reason.clone(),
                    },
                    false,
                );
                self.close(id, true, reason);
                continue;
            }
            // expired tokens
            let expired: Vec<i64> = c
                .accounts
                .iter()
                .filter(|(_, t)| {
                    let t = &self.tokens[**t];
                    !t.revoked && t.expires_ms <= now_ms
                })
                .map(|(a, _)| *a)
                .collect();
            if !expired.is_empty() {
                self.deauthorize(id, &expired);
                self.send(
                    now_ms,
                    id,
                    None,
                    Event::TokenInvalidated {
                        account_ids: expired,
                        reason: "Access Token is expired".into(),
                    },
                    false,
                );
            }
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            if heartbeats && !c.closed && now_ms - c.last_sent_ms >= self.cfg.heartbeat_interval_ms
            {
                self.send(now_ms, id, None, Event::Heartbeat, false);
            }
        }
    }

    // ------------------------------------------------------------------ output + faults

    fn close(&mut self, conn: ConnId, graceful: bool, reason: String) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.closed {
                c.closed = true;
                c.spots.clear();
                self.out.push_back(Output::Close {
                    conn,
                    graceful,
                    reason,
                });
            }
        }
    }

    /// Queues a `ProtoOAClientDisconnectEvent` on `conn` (outside `send`: no fault fires on it).
    fn push_client_disconnect(&mut self, now_ms: i64, conn: ConnId, reason: String) {
        if let Some(c) = self.conns.get_mut(&conn)
            && !c.closed
            && !c.silenced
        {
            c.sent += 1;
            c.last_sent_ms = now_ms;
            self.out.push_back(Output::Send {
                conn,
                client_msg_id: None,
                event: Event::ClientDisconnect { reason },
                delay_ms: 0,
            });
        }
    }

    /// `--calendar realistic` with a timed speed: the wall time (Unix ms) the weekly Saturday
    /// maintenance window ends, while market time is inside it. None outside it, at the fast
    /// speed (the market only moves while a client is subscribed, so a window would never end)
    /// or while paused.
    fn weekly_maintenance_end_wall(&self) -> Option<i64> {
        let mc = self.maintenance_cal.as_ref()?;
        let t = self.market.now_ms;
        if !mc.is_open(t) {
            return None;
        }
        self.wall_time_of(mc.next_close(t)?)
    }

    /// The weekly window's start: every open connection is told and closed (once a window).
    fn weekly_maintenance_start(&mut self, now_ms: i64) {
        let Some(end) = self.weekly_maintenance_end_wall() else {
            return;
        };
        if self.maintenance_window_closed == Some(end) {
            return;
        }
        self.maintenance_window_closed = Some(end);
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(id, _)| *id)
            .collect();
        tracing::warn!(
            connections = ids.len(),
            maintenance_end_ms = end,
            "Saturday maintenance begins (--calendar realistic): disconnecting every client"
        );
        for id in ids {
            let reason = format!("server maintenance until {end} (Unix ms)");
            self.push_client_disconnect(now_ms, id, reason.clone());
            self.close(id, true, reason);
        }
    }

    /// The `maintenance` fault's start: every open connection is told and closed (once).
    fn maintenance_start(&mut self, now_ms: i64) {
        for i in 0..self.cfg.faults.len() {
            if let Fault::Maintenance { after_s, for_s } = self.cfg.faults[i]
                && self.fault_fired[i] == 0
            {
                let start = self.started_ms + (after_s as i64) * 1000;
                let end = start + (for_s as i64) * 1000;
                if now_ms < start {
                    continue;
                }
                self.fault_fired[i] = 1;
                if now_ms >= end {
                    continue;
                }
                let ids: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| !c.closed)
                    .map(|(id, _)| *id)
                    .collect();
                tracing::warn!(
                    connections = ids.len(),
                    maintenance_end_ms = end,
                    "fault: server maintenance begins: disconnecting every client"
                );
                for id in ids {
                    let reason = format!("server maintenance until {end} (Unix ms)");
                    self.push_client_disconnect(now_ms, id, reason.clone());
                    self.fault_disconnects += 1;
                    self.close(id, true, reason);
                }
            }
        }
    }

    fn fault_may_fire(&self, i: usize, times: Option<u64>) -> bool {
        times.is_none_or(|t| self.fault_fired[i] < t)
    }

    fn send(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        client_msg_id: Option<String>,
        event: Event,
        response: bool,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closed || c.silenced {
            return;
        }
        c.sent += 1;
        c.last_sent_ms = now_ms;
        let sent = c.sent;
        let delay_ms = if response {
            self.cfg
                .faults
                .iter()
                .map(|f| if let Fault::Delay { ms } = f { *ms } else { 0 })
                .sum()
        } else {
            0
        };
        self.out.push_back(Output::Send {
            conn,
            client_msg_id,
            event,
            delay_ms,
        });
        for i in 0..self.cfg.faults.len() {
            let f = self.cfg.faults[i].clone();
            match f {
                Fault::Garbage { after, times }
                    if after == sent && self.fault_may_fire(i, times) =>
                {
                    self.fault_fired[i] += 1;
                    let n = self.rng_fault.random_range(8..64);
                    // 0xFF… never parses as a ProtoMessage: field 31, wire type 7 is invalid.
                    let mut bytes = vec![0xFFu8; 2];
                    bytes.extend((0..n).map(|_| self.rng_fault.random::<u8>()));
                    tracing::warn!(conn, "fault: sending a garbage frame after {sent} frames");
                    self.out.push_back(Output::Garbage { conn, bytes });
                }
                Fault::Oversized { after, len, times }
                    if after == sent && self.fault_may_fire(i, times) =>
                {
                    self.fault_fired[i] += 1;
                    tracing::warn!(
                        conn,
                        "fault: sending an oversized frame ({len} bytes) after {sent} frames"
                    );
                    self.out.push_back(Output::Oversized { conn, len });
                }
                Fault::Silence { after, times }
                    if after == sent && self.fault_may_fire(i, times) =>
                {
                    self.fault_fired[i] += 1;
                    tracing::warn!(conn, "fault: connection goes silent after {sent} frames");
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.silenced = true;
                    }
                    self.fault_disconnects += 1;
                    self.out.push_back(Output::Silenced {
                        conn,
                        reason: format!("fault: silence after {sent} frames (socket kept open)"),
                    });
                }
                Fault::DropAfter { after, times }
                    if after == sent && self.fault_may_fire(i, times) =>
                {
                    self.fault_fired[i] += 1;
                    tracing::warn!(conn, "fault: dropping the connection after {sent} frames");
                    self.fault_disconnects += 1;
                    self.close(conn, false, format!("fault: drop after {sent} frames"));
                }
                Fault::ClientDisconnect { after, times }
                    if after == sent && self.fault_may_fire(i, times) =>
                {
                    self.fault_fired[i] += 1;
                    tracing::warn!(
                        conn,
                        "fault: ProtoOAClientDisconnectEvent after {sent} frames, then closing"
                    );
                    self.fault_disconnects += 1;
                    let reason = format!("fault: client disconnect after {sent} frames");
                    self.push_client_disconnect(now_ms, conn, reason.clone());
                    self.close(conn, true, reason);
                }
                Fault::DropRandom { p, times }
                    if self.fault_may_fire(i, times) && self.rng_fault.random::<f64>() < p =>
                {
                    self.fault_fired[i] += 1;
                    tracing::warn!(conn, "fault: random drop after {sent} frames");
                    self.fault_disconnects += 1;
                    self.close(
                        conn,
                        false,
                        format!("fault: random drop after {sent} frames"),
                    );
                }
                _ => {}
            }
            if self.conns.get(&conn).is_none_or(|c| c.closed || c.silenced) {
                break;
            }
        }
    }

    fn error(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        code: ErrorCode,
        account_id: Option<i64>,
        description: impl Into<String>,
    ) {
        let description = description.into();
        tracing::debug!(conn, code = code.name(), %description, "error response");
        self.send(
            now_ms,
            conn,
            cmid,
            Event::Error {
                code,
                description,
                account_id,
                common: false,
            },
            true,
        );
    }

    // ------------------------------------------------------------------ inputs

    /// A frame the shell could not decode: `ProtoErrorRes` (FRAME_TOO_LONG or INVALID_REQUEST)
    /// and the connection is closed (the stream cannot be resynchronised).
    pub fn handle_bad_frame(&mut self, now_ms: i64, conn: ConnId, bad: BadFrame) {
        let (code, description) = match &bad {
            BadFrame::TooLong { len, max } => (
                ErrorCode::FrameTooLong,
                format!("frame of {len} bytes exceeds the maximum of {max} bytes"),
            ),
            BadFrame::Garbage { reason } => (
                ErrorCode::InvalidRequest,
                format!("malformed frame: {reason}"),
            ),
        };
        tracing::warn!(conn, %description, "bad frame from client: closing");
        self.send(
            now_ms,
            conn,
            None,
            Event::Error {
                code,
                description: description.clone(),
                account_id: None,
                common: true,
            },
            true,
        );
        self.close(conn, true, description);
    }

    /// One decoded request from a client.
    pub fn handle_request(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        req: Request,
    ) {
        self.sync_market(now_ms);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closed {
            return;
        }
        c.last_recv_ms = now_ms;
        if matches!(req, Request::Heartbeat) {
            return;
        }
        // NewOrderReq, ClosePositionReq, and CancelOrderReq (2108), AmendOrderReq (2109),
        // AmendPositionSLTPReq (2110), which the sim does not serve: counted all the same.
        if matches!(
            req,
            Request::NewOrder(_)
                | Request::ClosePosition { .. }
                | Request::Unsupported {
                    payload_type: 2108..=2110,
                    ..
                }
        ) {
            self.trading_requests += 1;
        }
        // rate limits (sliding 1 s windows; refused requests do not count)
        while c.req_window.front().is_some_and(|t| *t <= now_ms - 1000) {
            c.req_window.pop_front();
        }
        while c.hist_window.front().is_some_and(|t| *t <= now_ms - 1000) {
            c.hist_window.pop_front();
        }
        if c.req_window.len() >= self.cfg.rate_limit {
            let d = format!("more than {} requests per second", self.cfg.rate_limit);
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::RequestFrequencyExceeded,
                req.account_id(),
                d,
            );
        }
        if req.is_historical() && c.hist_window.len() >= self.cfg.history_rate_limit {
            let d = format!(
                "more than {} historical requests per second",
                self.cfg.history_rate_limit
            );
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::RequestFrequencyExceeded,
                req.account_id(),
                d,
            );
        }
        c.req_window.push_back(now_ms);
        if req.is_historical() {
            c.hist_window.push_back(now_ms);
        }
        tracing::debug!(conn, req = req.kind(), "request");
        if self.request_fault(now_ms, conn, &cmid, &req) {
            return;
        }
        if self.no_answer_fault(req.kind()) {
            let mark = self.out.len();
            let kind = req.kind();
            self.dispatch_request(now_ms, conn, cmid.clone(), req);
            let before = self.out.len();
            let mut i = 0usize;
            self.out.retain(|o| {
                i += 1;
                !(i > mark
                    && matches!(o, Output::Send { conn: c, client_msg_id, .. }
                        if *c == conn && cmid.is_some() && *client_msg_id == cmid))
            });
            tracing::warn!(
                conn,
                req = kind,
                dropped = before - self.out.len(),
                "fault: request executed, its answer never sent"
            );
            return;
        }
        self.dispatch_request(now_ms, conn, cmid, req);
    }

    /// Refuses `req` with `SERVER_IS_UNDER_MAINTENANCE` (its end, `end_ms`) and closes the
    /// connection: the Saturday window of `--calendar realistic` and the `maintenance` fault alike.
    fn refuse_for_maintenance(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: &Option<String>,
        req: &Request,
        end_ms: i64,
    ) {
        self.refuse(
            now_ms,
            conn,
            cmid.clone(),
            ErrorCode::ServerIsUnderMaintenance,
            req.account_id(),
            "server is under maintenance".into(),
            None,
            Some(end_ms),
        );
        self.close(conn, true, "server under maintenance".into());
    }

    /// The `blocked`, `maintenance` and `connections-limit` faults for a request: true when
    /// one refused it (answered, not executed).
    fn request_fault(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: &Option<String>,
        req: &Request,
    ) -> bool {
        if let Some(end) = self.weekly_maintenance_end_wall() {
            tracing::warn!(
                conn,
                req = req.kind(),
                maintenance_end_ms = end,
                "Saturday maintenance (--calendar realistic): request refused, connection closed"
            );
            self.refuse_for_maintenance(now_ms, conn, cmid, req, end);
            return true;
        }
        let is_auth = matches!(
            req,
            Request::ApplicationAuth { .. } | Request::AccountAuth { .. }
        );
        for i in 0..self.cfg.faults.len() {
            match self.cfg.faults[i].clone() {
                Fault::Maintenance { after_s, for_s } => {
                    let start = self.started_ms + (after_s as i64) * 1000;
                    let end = start + (for_s as i64) * 1000;
                    if (start..end).contains(&now_ms) {
                        tracing::warn!(
                            conn,
                            req = req.kind(),
                            maintenance_end_ms = end,
                            "fault: server under maintenance: request refused, connection closed"
                        );
                        self.refuse_for_maintenance(now_ms, conn, cmid, req, end);
                        return true;
                    }
                }
                Fault::ConnectionsLimit { max, times }
                    if matches!(req, Request::ApplicationAuth { .. })
                        && self.fault_may_fire(i, times) =>
                {
                    let others = self
                        .conns
                        .iter()
                        .filter(|(id, c)| **id != conn && !c.closed && c.app.is_some())
                        .count() as u64;
                    if others >= max {
                        self.fault_fired[i] += 1;
                        tracing::warn!(
                            conn,
                            others,
                            "fault: connections limit ({max}) exceeded: application auth refused, connection closed"
                        );
                        self.refuse(
                            now_ms,
                            conn,
                            cmid.clone(),
                            ErrorCode::ConnectionsLimitExceeded,
                            None,
                            format!("more than {max} connections for this application"),
                            None,
                            None,
                        );
                        self.close(conn, true, "connections limit exceeded".into());
                        return true;
                    }
                }
                Fault::Blocked {
                    kind,
                    retry_after_s,
                    every,
                    times,
                } if !is_auth
                    && kind
                        .as_deref()
                        .is_none_or(|k| k.eq_ignore_ascii_case(req.kind())) =>
                {
                    self.fault_matches[i] += 1;
                    if self.fault_matches[i] % every == 0 && self.fault_may_fire(i, times) {
                        self.fault_fired[i] += 1;
                        tracing::warn!(
                            conn,
                            req = req.kind(),
                            retry_after_s,
                            "fault: BLOCKED_PAYLOAD_TYPE (request refused, not executed)"
                        );
                        self.refuse(
                            now_ms,
                            conn,
                            cmid.clone(),
                            ErrorCode::BlockedPayloadType,
                            req.account_id(),
                            format!("{} is blocked for {retry_after_s} s", req.kind()),
                            Some(retry_after_s),
                            None,
                        );
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// The `no-answer` fault: true when this request's answer is to be dropped.
    fn no_answer_fault(&mut self, kind: &str) -> bool {
        for i in 0..self.cfg.faults.len() {
            if let Fault::NoAnswer {
                kind: k,
                every,
                times,
            } = self.cfg.faults[i].clone()
                && k.eq_ignore_ascii_case(kind)
            {
                self.fault_matches[i] += 1;
                if self.fault_matches[i] % every == 0 && self.fault_may_fire(i, times) {
                    self.fault_fired[i] += 1;
                    return true;
                }
            }
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        code: ErrorCode,
        account_id: Option<i64>,
        description: String,
        retry_after_s: Option<u64>,
        maintenance_end_ms: Option<i64>,
    ) {
        self.send(
            now_ms,
            conn,
            cmid,
            Event::Refused {
                code,
                description,
                account_id,
                retry_after_s,
                maintenance_end_ms,
            },
            true,
        );
    }

    /// A request past the rate limits and the request faults.
    fn dispatch_request(&mut self, now_ms: i64, conn: ConnId, cmid: Option<String>, req: Request) {
        // application-level requests
        match req {
            Request::Unsupported { payload_type, name } => {
                let d = match name {
                    Some(n) => format!("{n} ({payload_type}) is not supported by oracle-sim"),
                    None => format!("unknown payload type {payload_type}"),
                };
                return self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::Error {
                        code: ErrorCode::UnsupportedMessage,
                        description: d,
                        account_id: None,
                        common: true,
                    },
                    true,
                );
            }
            Request::Malformed { reason } => {
                return self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::Error {
                        code: ErrorCode::InvalidRequest,
                        description: reason,
                        account_id: None,
                        common: true,
                    },
                    true,
                );
            }
            Request::Version => {
                return self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::VersionRes {
                        version: "91".into(),
                    },
                    true,
                );
            }
            Request::ApplicationAuth {
                client_id,
                client_secret,
            } => {
                return self.app_auth(now_ms, conn, cmid, client_id, client_secret);
            }
            _ => {}
        }
        let app_ok = self.conns.get(&conn).is_some_and(|c| c.app.is_some());
        if !app_ok {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::ChClientNotAuthenticated,
                req.account_id(),
                "application is not authorized: send ProtoOAApplicationAuthReq first",
            );
        }
        match req {
            Request::AccountListByToken { access_token } => {
                return self.account_list(now_ms, conn, cmid, access_token);
            }
            Request::RefreshToken { refresh_token } => {
                return self.refresh(now_ms, conn, cmid, refresh_token);
            }
            Request::AccountAuth {
                account_id,
                access_token,
            } => return self.account_auth(now_ms, conn, cmid, account_id, access_token),
            _ => {}
        }
        let Some(account_id) = req.account_id() else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                None,
                "request names no account",
            );
        };
        let authorized = self
            .conns
            .get(&conn)
            .and_then(|c| c.accounts.get(&account_id).copied());
        let Some(token_idx) = authorized else {
            let code = if self.accounts.contains_key(&account_id) {
                ErrorCode::AccountNotAuthorized
            } else {
                ErrorCode::ChCtidTraderAccountNotFound
            };
            return self.error(
                now_ms,
                conn,
                cmid,
                code,
                Some(account_id),
                format!("account {account_id} is not authorized on this connection"),
            );
        };
        let scope = self.tokens[token_idx].scope;
        match req {
            Request::AssetList { account_id } => {
                let assets = self
                    .assets
                    .iter()
                    .enumerate()
                    .map(|(i, n)| AssetInfo {
                        id: i as i64 + 1,
                        name: n.clone(),
                        digits: 2,
                    })
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::AssetList { account_id, assets },
                    true,
                );
            }
            Request::SymbolsList { account_id } => {
                let symbols = (0..self.market.symbols.len())
                    .map(|i| self.light_symbol(i))
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::SymbolsList {
                        account_id,
                        symbols,
                    },
                    true,
                );
            }
            Request::SymbolById {
                account_id,
                symbol_ids,
            } => {
                let mut symbols = Vec::new();
                for id in &symbol_ids {
                    match self.market.index_of(*id) {
                        Some(i) => symbols.push(self.symbol_info(i)),
                        None => {
                            return self.error(
                                now_ms,
                                conn,
                                cmid,
                                ErrorCode::SymbolNotFound,
                                Some(account_id),
                                format!("symbol {id} not found"),
                            );
                        }
                    }
                }
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::SymbolById {
                        account_id,
                        symbols,
                    },
                    true,
                );
            }
            Request::SymbolsForConversion {
                account_id,
                first_asset_id,
                last_asset_id,
            } => {
                let name = |id: i64| {
                    self.assets
                        .get((id - 1).max(0) as usize)
                        .cloned()
                        .filter(|_| id >= 1)
                };
                let (Some(first), Some(last)) = (name(first_asset_id), name(last_asset_id)) else {
                    return self.error(
                        now_ms,
                        conn,
                        cmid,
                        ErrorCode::InvalidRequest,
                        Some(account_id),
                        "unknown asset id",
                    );
                };
                let symbols = (0..self.market.symbols.len())
                    .filter(|i| {
                        let s = &self.market.symbols[*i].spec;
                        (s.base_asset == first && s.quote_asset == last)
                            || (s.base_asset == last && s.quote_asset == first)
                    })
                    .take(1)
                    .map(|i| self.light_symbol(i))
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::SymbolsForConversion {
                        account_id,
                        symbols,
                    },
                    true,
                );
            }
            Request::Trader { account_id } => {
                let trader = self.trader_info(account_id);
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::Trader { account_id, trader },
                    true,
                );
            }
            Request::Reconcile { account_id } => {
                let positions = self.accounts[&account_id]
                    .positions
                    .values()
                    .map(|p| self.position_info(p, PositionStatus::Open))
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::Reconcile {
                        account_id,
                        positions,
                        orders: Vec::new(),
                    },
                    true,
                );
            }
            Request::SubscribeSpots {
                account_id,
                symbol_ids,
                with_timestamp,
            } => self.subscribe_spots(now_ms, conn, cmid, account_id, symbol_ids, with_timestamp),
            Request::UnsubscribeSpots {
                account_id,
                symbol_ids,
            } => {
                let mut idxs = Vec::new();
                for id in &symbol_ids {
                    match self.market.index_of(*id) {
                        Some(i) => idxs.push(i),
                        None => {
                            return self.error(
                                now_ms,
                                conn,
                                cmid,
                                ErrorCode::SymbolNotFound,
                                Some(account_id),
                                format!("symbol {id} not found"),
                            );
                        }
                    }
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    if let Some(i) = idxs
                        .iter()
                        .find(|i| !c.spots.contains_key(&(account_id, **i)))
                    {
                        let id = self.market.symbols[*i].id;
                        return self.error(
                            now_ms,
                            conn,
                            cmid,
                            ErrorCode::NotSubscribedToSpots,
                            Some(account_id),
                            format!("not subscribed to spots of symbol {id}"),
                        );
                    }
                    for i in idxs {
                        c.spots.remove(&(account_id, i));
                    }
                }
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::UnsubscribeSpotsRes { account_id },
                    true,
                );
            }
            Request::SubscribeLiveTrendbar {
                account_id,
                symbol_id,
                period,
            } => self.live_trendbar(now_ms, conn, cmid, account_id, symbol_id, period, true),
            Request::UnsubscribeLiveTrendbar {
                account_id,
                symbol_id,
                period,
            } => self.live_trendbar(now_ms, conn, cmid, account_id, symbol_id, period, false),
            Request::GetTrendbars {
                account_id,
                symbol_id,
                period,
                from_ms,
                to_ms,
                count,
            } => self.get_trendbars(
                now_ms, conn, cmid, account_id, symbol_id, period, from_ms, to_ms, count,
            ),
            Request::GetTickData {
                account_id,
                symbol_id,
                ask,
                from_ms,
                to_ms,
            } => self.get_ticks(
                now_ms, conn, cmid, account_id, symbol_id, ask, from_ms, to_ms,
            ),
            Request::NewOrder(order) => self.new_order(now_ms, conn, cmid, scope, order),
            Request::ClosePosition {
                account_id,
                position_id,
                volume,
            } => self.close_position(now_ms, conn, cmid, scope, account_id, position_id, volume),
            Request::DealList {
                account_id,
                from_ms,
                to_ms,
                max_rows,
            } => {
                let from = from_ms.unwrap_or(0);
                let to = to_ms.unwrap_or(MAX_TIMESTAMP_MS);
                if from < 0 || to < from {
                    return self.error(
                        now_ms,
                        conn,
                        cmid,
                        ErrorCode::IncorrectBoundaries,
                        Some(account_id),
                        "fromTimestamp must be ≥ 0 and ≤ toTimestamp",
                    );
                }
                let max = match max_rows {
                    Some(n) if n > 0 => n as usize,
                    _ => self.cfg.max_deals_per_response,
                };
                let all: Vec<&DealInfo> = self.accounts[&account_id]
                    .deals
                    .iter()
                    .filter(|d| d.execution_ms >= from && d.execution_ms <= to)
                    .collect();
                let has_more = all.len() > max;
                let deals = all.into_iter().take(max).cloned().collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::DealList {
                        account_id,
                        deals,
                        has_more,
                    },
                    true,
                );
            }
            Request::UnrealizedPnl { account_id } => {
                let acc = &self.accounts[&account_id];
                let items = acc
                    .positions
                    .values()
                    .map(|p| {
                        let spec = &self.market.symbols[p.symbol].spec;
                        let gross = self.position_gross(p);
                        let comm = commission_cents(spec, p.volume, 0.5);
                        (p.id, gross, gross + comm)
                    })
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::UnrealizedPnl {
                        account_id,
                        items,
                        money_digits: 2,
                    },
                    true,
                );
            }
            Request::ExpectedMargin {
                account_id,
                symbol_id,
                volumes,
            } => {
                let Some(i) = self.market.index_of(symbol_id) else {
                    return self.error(
                        now_ms,
                        conn,
                        cmid,
                        ErrorCode::SymbolNotFound,
                        Some(account_id),
                        format!("symbol {symbol_id} not found"),
                    );
                };
                let s = &self.market.symbols[i];
                let spec = s.spec.clone();
                let bid = s.last_bid.unwrap_or(0);
                let ask = s.ask_for(bid);
                let lev = self.accounts[&account_id].cfg.leverage;
                let margins = volumes
                    .iter()
                    .map(|v| {
                        (
                            *v,
                            margin_cents(&spec, ask, *v, lev),
                            margin_cents(&spec, bid, *v, lev),
                        )
                    })
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::ExpectedMargin {
                        account_id,
                        margins,
                        money_digits: 2,
                    },
                    true,
                );
            }
            Request::OrderDetails {
                account_id,
                order_id,
            } => {
                let acc = &self.accounts[&account_id];
                let Some(order) = acc.orders.iter().find(|o| o.id == order_id).cloned() else {
                    return self.error(
                        now_ms,
                        conn,
                        cmid,
                        ErrorCode::InvalidRequest,
                        Some(account_id),
                        format!("order {order_id} not found"),
                    );
                };
                let deals = acc
                    .deals
                    .iter()
                    .filter(|d| d.order_id == order_id)
                    .cloned()
                    .collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::OrderDetails {
                        account_id,
                        order: Box::new(order),
                        deals,
                    },
                    true,
                );
            }
            Request::OrderList {
                account_id,
                from_ms,
                to_ms,
            } => {
                let from = from_ms.unwrap_or(0);
                let to = to_ms.unwrap_or(MAX_TIMESTAMP_MS);
                if from < 0 || to < from {
                    return self.error(
                        now_ms,
                        conn,
                        cmid,
                        ErrorCode::IncorrectBoundaries,
                        Some(account_id),
                        "fromTimestamp must be ≥ 0 and ≤ toTimestamp",
                    );
                }
                let max = self.cfg.max_deals_per_response;
                let all: Vec<&OrderInfo> = self.accounts[&account_id]
                    .orders
                    .iter()
                    .filter(|o| o.last_update_ms >= from && o.last_update_ms <= to)
                    .collect();
                let has_more = all.len() > max;
                let orders = all.into_iter().take(max).cloned().collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::OrderList {
                        account_id,
                        orders,
                        has_more,
                    },
                    true,
                );
            }
            Request::DealListByPositionId {
                account_id,
                position_id,
                from_ms,
                to_ms,
            } => {
                let from = from_ms.unwrap_or(0);
                let to = to_ms.unwrap_or(MAX_TIMESTAMP_MS);
                let max = self.cfg.max_deals_per_response;
                let all: Vec<&DealInfo> = self.accounts[&account_id]
                    .deals
                    .iter()
                    .filter(|d| {
                        d.position_id == position_id
                            && d.execution_ms >= from
                            && d.execution_ms <= to
                    })
                    .collect();
                let has_more = all.len() > max;
                let deals = all.into_iter().take(max).cloned().collect();
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::DealListByPositionId {
                        account_id,
                        deals,
                        has_more,
                    },
                    true,
                );
            }
            Request::AccountLogout { account_id } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.accounts.remove(&account_id);
                }
                self.send(
                    now_ms,
                    conn,
                    cmid,
                    Event::AccountLogoutRes { account_id },
                    true,
                );
            }
            _ => {
                self.error(
                    now_ms,
                    conn,
                    cmid,
                    ErrorCode::InvalidRequest,
                    Some(account_id),
                    "unexpected request",
                );
            }
        }
    }

    fn record_order(&mut self, acc_id: i64, order: &OrderInfo) {
        if let Some(acc) = self.accounts.get_mut(&acc_id) {
            acc.orders.retain(|o| o.id != order.id);
            acc.orders.push(order.clone());
        }
    }

    // ------------------------------------------------------------------ test hooks

    /// How many NewOrderReq carried this clientOrderId (a resend would count twice).
    pub fn new_orders_with_client_id(&self, client_order_id: &str) -> u64 {
        self.new_orders_by_coid
            .get(client_order_id)
            .copied()
            .unwrap_or(0)
    }

    /// NewOrderReq received per clientOrderId, every id seen (a resend counts twice).
    pub fn new_orders_by_client_id(&self) -> &BTreeMap<String, u64> {
        &self.new_orders_by_coid
    }

    /// Trading requests received since the start, of any kind (NewOrderReq, ClosePositionReq,
    /// CancelOrderReq, AmendOrderReq, AmendPositionSLTPReq), answered or refused.
    pub fn trading_requests(&self) -> u64 {
        self.trading_requests
    }

    /// Connections the sim reset (`drop:after`, `drop:random`) or silenced (`silence:after`)
    /// because of a fault, since it started.
    pub fn fault_disconnects(&self) -> u64 {
        self.fault_disconnects
    }

    /// Sets an account's balance (cents); equity follows (balance + floating P&L). Returns
    /// false for an unknown account.
    pub fn set_balance(&mut self, account_id: i64, balance_cents: i64) -> bool {
        let Some(acc) = self.accounts.get_mut(&account_id) else {
            return false;
        };
        acc.balance = balance_cents;
        acc.balance_version += 1;
        tracing::warn!(account_id, balance_cents, "test hook: balance set");
        true
    }

    /// Open position ids of an account.
    pub fn position_ids(&self, account_id: i64) -> Vec<i64> {
        self.accounts
            .get(&account_id)
            .map(|a| a.positions.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Closes a position at market as a stop-out or a manual close in another terminal would:
    /// the execution events go to every connection of the account without a clientMsgId.
    /// Returns false when the position does not exist.
    pub fn close_position_outside(
        &mut self,
        now_ms: i64,
        account_id: i64,
        position_id: i64,
    ) -> bool {
        self.sync_market(now_ms);
        let Some(p) = self
            .accounts
            .get(&account_id)
            .and_then(|a| a.positions.get(&position_id))
            .cloned()
        else {
            return false;
        };
        let side = p.side.opposite();
        let price = self.fill_price(p.symbol, side);
        tracing::warn!(
            account_id,
            position_id,
            "test hook: position closed outside the client (stop-out / manual)"
        );
        // No connection asked: `ConnId::MAX` is no connection, so every connection of the
        // account gets the events without a clientMsgId.
        self.execute(
            now_ms,
            ConnId::MAX,
            None,
            account_id,
            p.symbol,
            side,
            p.volume,
            price,
            OrderExtras {
                order_type: OrderType::Market,
                target: Some((position_id, true)),
                label: p.label.clone(),
                comment: Some("stop-out".into()),
                client_order_id: None,
                base_slippage_price: None,
                slippage_in_points: None,
                relative_sl: None,
                relative_tp: None,
            },
        );
        true
    }

    /// Sets a symbol's spread in points (the next quotes carry it). Returns false for an
    /// unknown symbol name.
    pub fn set_spread_points(&mut self, symbol: &str, points: i64) -> bool {
        let Some(s) = self
            .market
            .symbols
            .iter_mut()
            .find(|s| s.spec.name == symbol)
        else {
            return false;
        };
        s.spec.spread_points = points;
        tracing::warn!(symbol, points, "spread set");
        true
    }

    /// Sets a symbol's `tradingMode` (`ProtoOATradingMode`: 0 ENABLED, 1 and 2 disabled,
    /// 3 CLOSE_ONLY_MODE) and sends every authorized account a `SymbolChangedEvent` for it.
    /// Returns false for an unknown symbol name (the broker's).
    pub fn set_trading_mode(&mut self, now_ms: i64, symbol: &str, mode: i32) -> bool {
        let Some(i) = self
            .market
            .symbols
            .iter()
            .position(|s| s.spec.name == symbol)
        else {
            return false;
        };
        self.trading_modes[i] = Some(mode);
        let symbol_id = self.market.symbols[i].id;
        tracing::warn!(symbol, mode, "trading mode set");
        let to: Vec<(ConnId, i64)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .flat_map(|(id, c)| c.accounts.keys().map(move |a| (*id, *a)))
            .collect();
        for (conn, account_id) in to {
            self.send(
                now_ms,
                conn,
                None,
                Event::SymbolChanged {
                    account_id,
                    symbol_ids: vec![symbol_id],
                },
                false,
            );
        }
        true
    }

    /// Lists symbol `symbol` under the name `to` from now on (a broker renaming it: FTMO does),
    /// announced with a `SymbolChangedEvent`. Its id, positions and data stay. False for an
    /// unknown symbol name.
    pub fn rename_symbol(&mut self, now_ms: i64, symbol: &str, to: &str) -> bool {
        let Some(i) = self
            .market
            .symbols
            .iter()
            .position(|s| s.spec.name == symbol)
        else {
            return false;
        };
        self.market.symbols[i].spec.name = to.to_string();
        tracing::warn!(symbol, to, "symbol renamed");
        // The announcement only: the mode stays as it was.
        let mode = self.trading_modes[i];
        let announced = self.set_trading_mode(now_ms, to, mode.unwrap_or(0));
        self.trading_modes[i] = mode;
        announced
    }

    /// TRADING_DISABLED's description when symbol `i`'s trading mode refuses the order (a
    /// close passes in close-only mode).
    fn refused_by_mode(&self, i: usize, closing: bool) -> Option<String> {
        let mode = self.trading_modes.get(i).copied().flatten()?;
        let name = match mode {
            0 => return None,
            3 if closing => return None,
            3 => "CLOSE_ONLY_MODE",
            2 => "DISABLED_WITH_PENDINGS_EXECUTION",
            _ => "DISABLED_WITHOUT_PENDINGS_EXECUTION",
        };
        Some(format!(
            "trading mode of {} is {name}",
            self.market.symbols[i].spec.name
        ))
    }

    /// The tick-triggered faults (`spread`, `trading-mode`) due at this market step: those whose
    /// `after` is the number of steps taken, in the order they were given.
    fn tick_faults_due(&self) -> Vec<crate::config::Fault> {
        let steps = self.steps;
        self.cfg
            .faults
            .iter()
            .filter(|f| match f {
                crate::config::Fault::Spread { after, .. }
                | crate::config::Fault::TradingMode { after, .. } => *after == steps,
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// Applies the `spread` and `trading-mode` faults due at this step (spreads first, then
    /// trading modes, as before).
    fn tick_faults(&mut self, now_ms: i64) {
        let due = self.tick_faults_due();
        for f in &due {
            if let crate::config::Fault::Spread { symbol, points, .. } = f
                && !self.set_spread_points(symbol, *points)
            {
                tracing::warn!(symbol = %symbol, "fault spread: unknown symbol");
            }
        }
        for f in &due {
            if let crate::config::Fault::TradingMode { symbol, mode, .. } = f
                && !self.set_trading_mode(now_ms, symbol, *mode)
            {
                tracing::warn!(symbol = %symbol, "fault trading-mode: unknown symbol");
            }
        }
    }

    // ------------------------------------------------------------------ auth

    fn app_auth(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        client_id: String,
        secret: String,
    ) {
        if self.conns.get(&conn).is_some_and(|c| c.app.is_some()) {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::ChClientAlreadyAuthenticated,
                None,
                "application already authorized on this connection",
            );
        }
        let ok = self
            .cfg
            .apps
            .iter()
            .any(|a| a.client_id == client_id && a.client_secret == secret);
        if !ok {
            tracing::warn!(
                conn,
                "application auth failed (wrong client id or secret): closing"
            );
            self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::ChClientAuthFailure,
                None,
                "Open API client is not activated or wrong client credentials",
            );
            return self.close(conn, true, "application auth failure".into());
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.app = Some(client_id);
        }
        tracing::info!(conn, "application authorized");
        self.send(now_ms, conn, cmid, Event::ApplicationAuthRes, true);
    }

    /// The token for an access token string: Ok(index) or the error to send.
    fn check_access_token(
        &self,
        now_ms: i64,
        token: &str,
    ) -> Result<usize, (ErrorCode, &'static str)> {
        match self.tokens.iter().position(|t| t.access == token) {
            None => Err((ErrorCode::ChAccessTokenInvalid, "access token is invalid")),
            Some(i) if self.tokens[i].revoked => Err((
                ErrorCode::ChAccessTokenInvalid,
                "access token was revoked (refreshed)",
            )),
            Some(i) if self.tokens[i].expires_ms <= now_ms => {
                Err((ErrorCode::OaAuthTokenExpired, "access token is expired"))
            }
            Some(i) => Ok(i),
        }
    }

    fn account_list(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        access_token: String,
    ) {
        match self.check_access_token(now_ms, &access_token) {
            Err((code, d)) => self.error(now_ms, conn, cmid, code, None, d),
            Ok(i) => {
                let t = &self.tokens[i];
                let accounts = t
                    .accounts
                    .iter()
                    .filter_map(|a| self.accounts.get(a))
                    .map(|a| AccountListItem {
                        account_id: a.cfg.id,
                        is_live: a.cfg.is_live,
                        trader_login: a.cfg.login,
                        broker: "oracle-sim".into(),
                    })
                    .collect();
                let ev = Event::AccountList {
                    access_token,
                    scope: t.scope,
                    accounts,
                };
                self.send(now_ms, conn, cmid, ev, true);
            }
        }
    }

    fn account_auth(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        account_id: i64,
        access_token: String,
    ) {
        if self
            .conns
            .get(&conn)
            .is_some_and(|c| c.accounts.contains_key(&account_id))
        {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::AlreadyLoggedIn,
                Some(account_id),
                format!("account {account_id} is already authorized on this connection"),
            );
        }
        let i = match self.check_access_token(now_ms, &access_token) {
            Err((code, d)) => return self.error(now_ms, conn, cmid, code, Some(account_id), d),
            Ok(i) => i,
        };
        if !self.accounts.contains_key(&account_id) {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::ChCtidTraderAccountNotFound,
                Some(account_id),
                format!("trading account {account_id} not found"),
            );
        }
        if !self.tokens[i].accounts.contains(&account_id) {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::ChAccessTokenInvalid,
                Some(account_id),
                format!("access token does not grant account {account_id}"),
            );
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.accounts.insert(account_id, i);
        }
        tracing::info!(conn, account_id, "account authorized");
        self.send(
            now_ms,
            conn,
            cmid,
            Event::AccountAuthRes { account_id },
            true,
        );
    }

    fn refresh(&mut self, now_ms: i64, conn: ConnId, cmid: Option<String>, refresh_token: String) {
        let Some((i, access, refresh)) = self.rotate(now_ms, &refresh_token) else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::ChAccessTokenInvalid,
                None,
                "refresh token is invalid or was already used",
            );
        };
        tracing::info!(conn, "tokens refreshed; the old access token is revoked");
        self.send(
            now_ms,
            conn,
            cmid,
            Event::RefreshTokenRes {
                access_token: access,
                refresh_token: refresh,
                expires_in_s: self.cfg.token_ttl_s,
            },
            true,
        );
        self.invalidate_sessions_of(now_ms, i);
    }

    /// Spends `refresh_token`: the old pair is revoked, a new one (living `token_ttl_s`) issued.
    /// `Some((old token index, access, refresh))`, `None` for an unknown or used refresh token.
    fn rotate(&mut self, now_ms: i64, refresh_token: &str) -> Option<(usize, String, String)> {
        let i = self
            .tokens
            .iter()
            .position(|t| t.refresh.as_deref() == Some(refresh_token))?;
        let access = self.gen_token("at");
        let refresh = self.gen_token("rt");
        let old = &mut self.tokens[i];
        old.refresh = None;
        old.revoked = true;
        let new = Token {
            access: access.clone(),
            refresh: Some(refresh.clone()),
            scope: old.scope,
            accounts: old.accounts.clone(),
            expires_ms: now_ms.saturating_add(self.cfg.token_ttl_s.saturating_mul(1000)),
            revoked: false,
        };
        self.tokens.push(new);
        Some((i, access, refresh))
    }

    /// Sessions that used token `i` lose their accounts (`ProtoOAAccountsTokenInvalidatedEvent`).
    fn invalidate_sessions_of(&mut self, now_ms: i64, i: usize) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let accs: Vec<i64> = self.conns[&id]
                .accounts
                .iter()
                .filter(|(_, t)| **t == i)
                .map(|(a, _)| *a)
                .collect();
            if !accs.is_empty() {
                self.deauthorize(id, &accs);
                self.send(
                    now_ms,
                    id,
                    None,
                    Event::TokenInvalidated {
                        account_ids: accs,
                        reason: "Access Token was refreshed".into(),
                    },
                    false,
                );
            }
        }
    }

    // ------------------------------------------------------------------ OAuth (crate::oauth)

    fn oauth_client(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<(), crate::oauth::Refusal> {
        if self
            .cfg
            .apps
            .iter()
            .any(|a| a.client_id == client_id && a.client_secret == client_secret)
        {
            Ok(())
        } else {
            Err(crate::oauth::Refusal::new(
                "ACCESS_DENIED",
                "wrong client_id or client_secret",
            ))
        }
    }

    /// The authorization page (`/apps/auth`): the sim's one cTrader ID allows `client_id` at
    /// once; a code for all configured accounts with `scope`, living [`AUTH_CODE_TTL_MS`].
    pub fn oauth_authorize(
        &mut self,
        now_ms: i64,
        client_id: &str,
        redirect_uri: &str,
        scope: Scope,
    ) -> Result<String, crate::oauth::Refusal> {
        if !self.cfg.apps.iter().any(|a| a.client_id == client_id) {
            return Err(crate::oauth::Refusal::new(
                "ACCESS_DENIED",
                "unknown client_id",
            ));
        }
        if redirect_uri.is_empty() {
            return Err(crate::oauth::Refusal::new(
                "INVALID_REQUEST",
                "redirect_uri is missing",
            ));
        }
        self.codes.retain(|c| c.expires_ms > now_ms);
        let code = self.gen_token("code");
        self.codes.push(AuthCode {
            code: code.clone(),
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scope,
            expires_ms: now_ms.saturating_add(AUTH_CODE_TTL_MS),
        });
        tracing::info!("oauth: authorization code issued");
        Ok(code)
    }

    /// The token endpoint's `authorization_code` grant: the code (once, within its life, with
    /// the client and redirect URI it was issued for) for a new token pair over every
    /// configured account, living `token_ttl_s`.
    pub fn oauth_exchange_code(
        &mut self,
        now_ms: i64,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<crate::oauth::Issued, crate::oauth::Refusal> {
        use crate::oauth::Refusal;
        self.oauth_client(client_id, client_secret)?;
        let Some(i) = self.codes.iter().position(|c| c.code == code) else {
            return Err(Refusal::new(
                "INVALID_GRANT",
                "authorization code is unknown or was already used",
            ));
        };
        let c = self.codes.swap_remove(i);
        if c.expires_ms <= now_ms {
            return Err(Refusal::new(
                "INVALID_GRANT",
                "authorization code expired (codes live 60 s)",
            ));
        }
        if c.client_id != client_id || c.redirect_uri != redirect_uri {
            return Err(Refusal::new(
                "INVALID_GRANT",
                "authorization code was issued for another client_id or redirect_uri",
            ));
        }
        let access = self.gen_token("at");
        let refresh = self.gen_token("rt");
        self.tokens.push(Token {
            access: access.clone(),
            refresh: Some(refresh.clone()),
            scope: c.scope,
            accounts: self.accounts.keys().copied().collect(),
            expires_ms: now_ms.saturating_add(self.cfg.token_ttl_s.saturating_mul(1000)),
            revoked: false,
        });
        tracing::info!("oauth: authorization code exchanged for a token pair");
        Ok(crate::oauth::Issued {
            access_token: access,
            refresh_token: refresh,
            expires_in_s: self.cfg.token_ttl_s,
        })
    }

    /// The token endpoint's `refresh_token` grant: as `RefreshTokenReq` (the refresh token
    /// works once; the old access token is revoked and its sessions are told).
    pub fn oauth_refresh(
        &mut self,
        now_ms: i64,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Result<crate::oauth::Issued, crate::oauth::Refusal> {
        self.oauth_client(client_id, client_secret)?;
        let Some((i, access, refresh)) = self.rotate(now_ms, refresh_token) else {
            return Err(crate::oauth::Refusal::new(
                "INVALID_GRANT",
                "refresh token is invalid or was already used",
            ));
        };
        tracing::info!("oauth: tokens refreshed; the old access token is revoked");
        self.invalidate_sessions_of(now_ms, i);
        Ok(crate::oauth::Issued {
            access_token: access,
            refresh_token: refresh,
            expires_in_s: self.cfg.token_ttl_s,
        })
    }

    fn gen_token(&mut self, prefix: &str) -> String {
        let mut s = String::with_capacity(48);
        s.push_str(prefix);
        s.push('-');
        for _ in 0..40 {
            let v: u8 = self.rng_token.random_range(0..16);
            s.push(char::from_digit(u32::from(v), 16).unwrap_or('0'));
        }
        s
    }

    fn deauthorize(&mut self, conn: ConnId, accounts: &[i64]) {
        if let Some(c) = self.conns.get_mut(&conn) {
            for a in accounts {
                c.accounts.remove(a);
            }
            c.spots.retain(|(a, _), _| !accounts.contains(a));
        }
    }

    // ------------------------------------------------------------------ symbols

    fn asset_id(&self, name: &str) -> i64 {
        self.assets
            .iter()
            .position(|a| a == name)
            .map_or(0, |i| i as i64 + 1)
    }

    fn light_symbol(&self, i: usize) -> LightSymbol {
        let s = &self.market.symbols[i];
        LightSymbol {
            id: s.id,
            name: s.spec.name.clone(),
            base_asset_id: self.asset_id(&s.spec.base_asset),
            quote_asset_id: self.asset_id(&s.spec.quote_asset),
            description: s.spec.description.clone(),
        }
    }

    fn symbol_info(&self, i: usize) -> SymbolInfo {
        let s = &self.market.symbols[i];
        SymbolInfo {
            id: s.id,
            digits: s.spec.digits as i32,
            pip_position: s.spec.pip_position as i32,
            lot_size: s.spec.lot_size,
            min_volume: s.spec.min_volume,
            step_volume: s.spec.step_volume,
            max_volume: s.spec.max_volume,
            precise_commission_rate: (s.spec.commission_per_lot / 2.0 * 1e8).round() as i64,
            tradable: !self.market.is_closed(i),
            trading_mode: self.trading_modes[i],
            hours: self.hours[i].clone(),
        }
    }

    /// Whether symbol `i` trades at market time `t_ms` by its calendar (always, without one).
    fn in_hours(&self, i: usize, t_ms: i64) -> bool {
        self.calendars.get(i).is_none_or(|c| c.is_open(t_ms))
    }

    /// Whether a bar of symbol `i` (its index in [`Market::symbols`]) opening at `open_ms` and
    /// lasting `len_ms` had any open instant: a bar wholly in closed hours has no tick, so it
    /// does not exist and history never serves it (always true without a calendar).
    pub fn bar_in_hours(&self, i: usize, open_ms: i64, len_ms: i64) -> bool {
        self.calendars
            .get(i)
            .is_none_or(|c| c.next_open(open_ms).is_some_and(|t| t < open_ms + len_ms))
    }

    /// MARKET_CLOSED's description when symbol `i` is outside its hours now (market time).
    fn closed_by_calendar(&self, i: usize) -> Option<String> {
        let now = self.market.now_ms;
        if self.in_hours(i, now) {
            return None;
        }
        let next = self.calendars.get(i).and_then(|c| c.next_open(now));
        Some(format!(
            "market is closed for {} (trading hours, {}){}",
            self.market.symbols[i].spec.name,
            self.hours[i].time_zone,
            next.map(|t| format!(": opens at {}", crate::bars::format_iso_utc(t)))
                .unwrap_or_default()
        ))
    }

    fn trader_info(&self, account_id: i64) -> TraderInfo {
        let a = &self.accounts[&account_id];
        TraderInfo {
            account_id,
            balance: a.balance,
            balance_version: a.balance_version,
            deposit_asset_id: self.asset_id(&self.cfg.deposit_currency),
            leverage_in_cents: a.cfg.leverage * 100,
            trader_login: a.cfg.login,
            broker_name: "oracle-sim".into(),
            registration_ms: self.market.start_ms - 365 * 86_400_000,
            money_digits: 2,
        }
    }

    // ------------------------------------------------------------------ spots

    fn subscribe_spots(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        account_id: i64,
        symbol_ids: Vec<i64>,
        with_timestamp: bool,
    ) {
        let mut idxs = Vec::new();
        for id in &symbol_ids {
            match self.market.index_of(*id) {
                Some(i) => idxs.push(i),
                None => {
                    return self.error(
                        now_ms,
                        conn,
                        cmid,
                        ErrorCode::SymbolNotFound,
                        Some(account_id),
                        format!("symbol {id} not found"),
                    );
                }
            }
        }
        if symbol_ids.is_empty() {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(account_id),
                "no symbolId",
            );
        }
        if let Some(c) = self.conns.get(&conn) {
            if let Some(i) = idxs
                .iter()
                .find(|i| c.spots.contains_key(&(account_id, **i)))
            {
                let id = self.market.symbols[*i].id;
                return self.error(
                    now_ms,
                    conn,
                    cmid,
                    ErrorCode::AlreadySubscribed,
                    Some(account_id),
                    format!("already subscribed to spots of symbol {id}"),
                );
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            for i in &idxs {
                c.spots.insert(
                    (account_id, *i),
                    SpotSub {
                        with_timestamp,
                        ..Default::default()
                    },
                );
            }
        }
        self.send(
            now_ms,
            conn,
            cmid,
            Event::SubscribeSpotsRes { account_id },
            true,
        );
        // the first event carries the latest prices (even when the market is closed)
        for i in idxs {
            let s = &self.market.symbols[i];
            let Some(bid) = s.last_bid else { continue };
            let ask = s.ask_for(bid);
            let ts = s.last_tick_ms.unwrap_or(self.market.now_ms);
            let symbol_id = s.id;
            if let Some(sub) = self
                .conns
                .get_mut(&conn)
                .and_then(|c| c.spots.get_mut(&(account_id, i)))
            {
                sub.last_bid = Some(bid);
                sub.last_ask = Some(ask);
            }
            let ev = Event::Spot {
                account_id,
                symbol_id,
                bid: Some(bid as u64),
                ask: Some(ask as u64),
                trendbars: Vec::new(),
                timestamp_ms: with_timestamp.then_some(ts),
                closed_bars: Vec::new(),
            };
            self.send(now_ms, conn, None, ev, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn live_trendbar(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        account_id: i64,
        symbol_id: i64,
        period: i32,
        subscribe: bool,
    ) {
        let Some(p) = Period::from_number(period) else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(account_id),
                format!("invalid period {period}"),
            );
        };
        let Some(i) = self.market.index_of(symbol_id) else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::SymbolNotFound,
                Some(account_id),
                format!("symbol {symbol_id} not found"),
            );
        };
        if !self.market.symbols[i].has_period(p) {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(account_id),
                format!(
                    "no {p} bars for symbol {symbol_id}: its data is {}",
                    self.market.symbols[i].base
                ),
            );
        }
        let Some(sub) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.spots.get_mut(&(account_id, i)))
        else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::NotSubscribedToSpots,
                Some(account_id),
                format!("subscribe to spots of symbol {symbol_id} first"),
            );
        };
        if subscribe {
            sub.periods.entry(p).or_insert(None);
            self.send(
                now_ms,
                conn,
                cmid,
                Event::SubscribeLiveTrendbarRes { account_id },
                true,
            );
        } else {
            sub.periods.remove(&p);
            self.send(
                now_ms,
                conn,
                cmid,
                Event::UnsubscribeLiveTrendbarRes { account_id },
                true,
            );
        }
    }

    fn dispatch_tick(&mut self, now_ms: i64, tick: Tick) {
        self.tick_faults(now_ms);
        self.steps += 1;
        if !self.in_hours(tick.symbol, tick.time_ms) {
            return; // closed hours: no tick reaches a client (its bar does not exist for them)
        }
        let s = &self.market.symbols[tick.symbol];
        let bid = tick.bid;
        let ask = s.ask_for(bid);
        let symbol_id = s.id;
        let mut sends = Vec::new();
        let mut bar_closed_for_a_subscriber = false;
        for (cid, c) in self.conns.iter_mut() {
            if c.closed {
                continue;
            }
            for ((acc, sym), sub) in c.spots.iter_mut() {
                if *sym != tick.symbol {
                    continue;
                }
                let b = (sub.last_bid != Some(bid)).then_some(bid as u64);
                let a = (sub.last_ask != Some(ask)).then_some(ask as u64);
                sub.last_bid = Some(bid);
                sub.last_ask = Some(ask);
                let mut closed_bars = Vec::new();
                let mut trendbars = Vec::with_capacity(sub.periods.len());
                for (p, last_sent) in sub.periods.iter_mut() {
                    let Some(b) = s.forming.get(p) else { continue };
                    if let Some(t) = *last_sent {
                        if t != b.time_ms {
                            closed_bars.push((*p, t));
                        }
                    }
                    *last_sent = Some(b.time_ms);
                    trendbars.push(Trendbar::encode(*p, b));
                }
                if sub
                    .periods
                    .keys()
                    .any(|p| s.closed_by_last_tick.contains(p))
                {
                    bar_closed_for_a_subscriber = true;
                }
                if b.is_none() && a.is_none() && trendbars.is_empty() {
                    continue; // nothing changed for this subscriber
                }
                sends.push((
                    *cid,
                    Event::Spot {
                        account_id: *acc,
                        symbol_id,
                        bid: b,
                        ask: a,
                        trendbars,
                        timestamp_ms: sub.with_timestamp.then_some(tick.time_ms),
                        closed_bars,
                    },
                ));
            }
        }
        for (cid, ev) in sends {
            self.send(now_ms, cid, None, ev, false);
        }
        if bar_closed_for_a_subscriber
            && self.cfg.bar_pause_ms > 0
            && matches!(self.cfg.speed, Speed::Fast)
        {
            self.hold_until_ms = Some(now_ms + self.cfg.bar_pause_ms as i64);
        }
    }

    // ------------------------------------------------------------------ history

    #[allow(clippy::too_many_arguments)]
    fn get_trendbars(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        account_id: i64,
        symbol_id: i64,
        period: i32,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        count: Option<u32>,
    ) {
        let Some(p) = Period::from_number(period) else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(account_id),
                format!("invalid period {period}"),
            );
        };
        let Some(i) = self.market.index_of(symbol_id) else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::SymbolNotFound,
                Some(account_id),
                format!("symbol {symbol_id} not found"),
            );
        };
        let s = &self.market.symbols[i];
        if !s.has_period(p) {
            let d = format!(
                "no {p} bars for symbol {symbol_id}: the sim's data for it is {}",
                s.base
            );
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(account_id),
                d,
            );
        }
        let from = from_ms.unwrap_or(0);
        let to = to_ms.unwrap_or(MAX_TIMESTAMP_MS);
        if from < 0 || to > MAX_TIMESTAMP_MS || to < from {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::IncorrectBoundaries,
                Some(account_id),
                "need 0 ≤ fromTimestamp ≤ toTimestamp ≤ 2147483646000",
            );
        }
        let bars = s.closed_bars(p, from, to, self.market.now_ms);
        let len_ms = p.fixed_ms().unwrap_or(86_400_000);
        let kept: Vec<crate::bars::Bar>;
        let bars: &[crate::bars::Bar] = if self.calendars.is_empty() {
            bars
        } else {
            kept = bars
                .iter()
                .filter(|b| self.bar_in_hours(i, b.time_ms, len_ms))
                .copied()
                .collect();
            &kept
        };
        let limit = match count {
            Some(c) if c > 0 => (c as usize).min(self.cfg.max_bars_per_response),
            _ => self.cfg.max_bars_per_response,
        };
        let has_more = bars.len() > limit;
        let bug = self
            .cfg
            .faults
            .iter()
            .any(|f| matches!(f, Fault::DeltaHighBug));
        let out: Vec<Trendbar> = bars[bars.len().saturating_sub(limit)..]
            .iter()
            .map(|b| {
                let mut t = Trendbar::encode(p, b);
                if bug && t.delta_close == 0 {
                    t.delta_high = 0;
                }
                t
            })
            .collect();
        let ev = Event::Trendbars {
            account_id,
            symbol_id,
            period: p,
            timestamp_ms: self.market.now_ms,
            bars: out,
            has_more,
        };
        self.send(now_ms, conn, cmid, ev, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn get_ticks(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        account_id: i64,
        symbol_id: i64,
        ask: bool,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) {
        let Some(i) = self.market.index_of(symbol_id) else {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::SymbolNotFound,
                Some(account_id),
                format!("symbol {symbol_id} not found"),
            );
        };
        let from = from_ms.unwrap_or(0);
        let to = to_ms.unwrap_or(MAX_TIMESTAMP_MS);
        if from < 0 || to > MAX_TIMESTAMP_MS || to < from {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::IncorrectBoundaries,
                Some(account_id),
                "need 0 ≤ fromTimestamp ≤ toTimestamp ≤ 2147483646000",
            );
        }
        let s = &self.market.symbols[i];
        let (ticks, has_more) = s.ticks_between(
            from,
            to,
            self.market.now_ms,
            self.cfg.max_ticks_per_response,
        );
        let mut coded = Vec::with_capacity(ticks.len());
        let mut prev: Option<(i64, i64)> = None;
        for (t, bid) in ticks.into_iter().rev() {
            let p = if ask { s.ask_for(bid) } else { bid };
            coded.push(match prev {
                None => (t, p),
                Some((pt, pp)) => (t - pt, p - pp),
            });
            prev = Some((t, p));
        }
        self.send(
            now_ms,
            conn,
            cmid,
            Event::TickData {
                account_id,
                ticks: coded,
                has_more,
            },
            true,
        );
    }

    // ------------------------------------------------------------------ money

    fn position_gross(&self, p: &Position) -> i64 {
        let s = &self.market.symbols[p.symbol];
        let Some(bid) = s.last_bid else { return 0 };
        let mark = match p.side {
            Side::Buy => bid,
            Side::Sell => s.ask_for(bid),
        };
        gross_cents(&s.spec, p.side, p.price, mark, p.volume)
    }

    /// (Σ unrealised gross, Σ unrealised commission, Σ used margin), cents.
    fn unrealized(&self, a: &Account) -> (i64, i64, i64) {
        let mut g = 0;
        let mut c = 0;
        let mut m = 0;
        for p in a.positions.values() {
            g += self.position_gross(p);
            c += commission_cents(&self.market.symbols[p.symbol].spec, p.volume, 0.5);
            m += p.used_margin;
        }
        (g, c, m)
    }

    fn position_info(&self, p: &Position, status: PositionStatus) -> PositionInfo {
        let s = &self.market.symbols[p.symbol];
        let digits = s.spec.digits;
        let sl = p
            .relative_sl
            .map(|d| price_to_f64(p.price - p.side.sign() * d, digits));
        let tp = p
            .relative_tp
            .map(|d| price_to_f64(p.price + p.side.sign() * d, digits));
        PositionInfo {
            id: p.id,
            trade: TradeData {
                symbol_id: s.id,
                volume: p.volume,
                side: p.side,
                open_ms: p.open_ms,
                label: p.label.clone(),
                comment: p.comment.clone(),
                close_ms: (status == PositionStatus::Closed).then_some(p.last_update_ms),
            },
            status,
            price: price_to_f64(p.price, digits),
            stop_loss: sl,
            take_profit: tp,
            last_update_ms: p.last_update_ms,
            commission: commission_cents(&s.spec, p.volume, 0.5),
            margin_rate: price_to_f64(p.price, 5) * s.spec.quote_to_deposit(),
            used_margin: p.used_margin.max(0) as u64,
        }
    }

    // ------------------------------------------------------------------ orders

    #[allow(clippy::too_many_arguments)]
    fn order_error(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        account_id: i64,
        code: ErrorCode,
        position_id: Option<i64>,
        via_error_res: bool,
        description: String,
    ) {
        tracing::info!(conn, account_id, code = code.name(), %description, "order refused");
        let ev = if via_error_res {
            Event::Error {
                code,
                description,
                account_id: Some(account_id),
                common: false,
            }
        } else {
            Event::OrderError {
                account_id,
                code,
                order_id: None,
                position_id,
                description,
            }
        };
        self.send(now_ms, conn, cmid, ev, true);
    }

    /// Applies `reject` faults to a new order; returns the code and channel if one fires.
    fn reject_fault(&mut self, symbol: &str) -> Option<(ErrorCode, bool)> {
        for i in 0..self.cfg.faults.len() {
            if let Fault::Reject {
                code,
                every,
                symbol: sym,
                times,
                via_error_res,
            } = self.cfg.faults[i].clone()
            {
                if sym.as_deref().is_some_and(|s| s != symbol) {
                    continue;
                }
                self.fault_matches[i] += 1;
                if self.fault_matches[i] % every == 0 && self.fault_may_fire(i, times) {
                    self.fault_fired[i] += 1;
                    return Some((code, via_error_res));
                }
            }
        }
        None
    }

    /// Applies `lose-exec` faults to the order just counted: (lose accepted, lose filled).
    fn lose_fault(&mut self) -> (bool, bool) {
        let n = self.orders_seen;
        for i in 0..self.cfg.faults.len() {
            if let Fault::LoseExec {
                every,
                times,
                filled_only,
            } = self.cfg.faults[i]
            {
                if n % every == 0 && self.fault_may_fire(i, times) {
                    self.fault_fired[i] += 1;
                    return (!filled_only, true);
                }
            }
        }
        (false, false)
    }

    fn fill_price(&mut self, sym: usize, side: Side) -> i64 {
        let s = &self.market.symbols[sym];
        let bid = s.last_bid.unwrap_or(0);
        let base = match side {
            Side::Buy => s.ask_for(bid),
            Side::Sell => bid,
        };
        let mut slip = s.spec.slippage_points;
        let pu = s.spec.point_units();
        if self.cfg.slippage_random_points > 0 {
            slip += self
                .rng_fill
                .random_range(0..=self.cfg.slippage_random_points);
        }
        base + side.sign() * slip * pu
    }

    fn check_volume(spec: &SymbolSpec, volume: i64) -> Result<(), String> {
        if volume <= 0 {
            return Err(format!("volume {volume} must be positive"));
        }
        if volume < spec.min_volume {
            return Err(format!(
                "volume {volume} is below the minimum {}",
                spec.min_volume
            ));
        }
        if volume > spec.max_volume {
            return Err(format!(
                "volume {volume} is above the maximum {}",
                spec.max_volume
            ));
        }
        if volume % spec.step_volume != 0 {
            return Err(format!(
                "volume {volume} is not a multiple of the step {}",
                spec.step_volume
            ));
        }
        Ok(())
    }

    fn new_order(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        scope: Scope,
        o: NewOrder,
    ) {
        let acc_id = o.account_id;
        if let Some(c) = &o.client_order_id {
            *self.new_orders_by_coid.entry(c.clone()).or_insert(0) += 1;
        }
        if scope != Scope::Trade {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingNotAllowed,
                None,
                false,
                "the access token has SCOPE_VIEW: trading is not allowed".into(),
            );
        }
        let Some(sym) = self.market.index_of(o.symbol_id) else {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::SymbolNotFound,
                None,
                false,
                format!("symbol {} not found", o.symbol_id),
            );
        };
        if !matches!(o.order_type, OrderType::Market | OrderType::MarketRange) {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(acc_id),
                "oracle-sim executes MARKET and MARKET_RANGE orders only",
            );
        }
        let too_long =
            |s: &Option<String>, n: usize| s.as_ref().is_some_and(|s| s.chars().count() > n);
        if too_long(&o.client_order_id, 50) || too_long(&o.label, 100) || too_long(&o.comment, 512)
        {
            return self.error(
                now_ms,
                conn,
                cmid,
                ErrorCode::InvalidRequest,
                Some(acc_id),
                "clientOrderId ≤ 50, label ≤ 100, comment ≤ 512 characters",
            );
        }
        if o.stop_loss.is_some() || o.take_profit.is_some() {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingBadStops,
                None,
                false,
                "absolute stopLoss/takeProfit are not allowed on market orders: use relative ones"
                    .into(),
            );
        }
        if o.order_type == OrderType::MarketRange && o.slippage_in_points.is_none_or(|s| s < 0) {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingBadPrices,
                None,
                false,
                "MARKET_RANGE needs slippageInPoints ≥ 0".into(),
            );
        }
        let spec = self.market.symbols[sym].spec.clone();
        if let Err(d) = Self::check_volume(&spec, o.volume) {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingBadVolume,
                None,
                false,
                d,
            );
        }
        // an order on an existing position (hedged: opposite side reduces it)
        let target = match o.position_id {
            None => None,
            Some(pid) => match self.accounts[&acc_id].positions.get(&pid) {
                None => {
                    return self.order_error(
                        now_ms,
                        conn,
                        cmid,
                        acc_id,
                        ErrorCode::PositionNotFound,
                        Some(pid),
                        false,
                        format!("position {pid} not found"),
                    );
                }
                Some(p) if p.symbol != sym => {
                    return self.order_error(
                        now_ms,
                        conn,
                        cmid,
                        acc_id,
                        ErrorCode::InvalidRequest,
                        Some(pid),
                        false,
                        format!("position {pid} is another symbol"),
                    );
                }
                Some(p) if p.side != o.side && o.volume > p.volume => {
                    return self.order_error(
                        now_ms,
                        conn,
                        cmid,
                        acc_id,
                        ErrorCode::TradingBadVolume,
                        Some(pid),
                        false,
                        format!("volume {} exceeds position {pid}'s {}", o.volume, p.volume),
                    );
                }
                Some(p) => Some((pid, p.side != o.side)),
            },
        };
        if let Some((code, via)) = self.reject_fault(&spec.name) {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                code,
                None,
                via,
                format!("fault: {} injected", code.name()),
            );
        }
        if self.market.is_closed(sym) {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::MarketClosed,
                None,
                false,
                format!("market is closed for {}", spec.name),
            );
        }
        if let Some(d) = self.refused_by_mode(sym, false) {
            tracing::info!(conn, symbol = %spec.name, "order refused: {d}");
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingDisabled,
                None,
                false,
                d,
            );
        }
        if let Some(d) = self.closed_by_calendar(sym) {
            tracing::info!(conn, symbol = %spec.name, "order refused: {d}");
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::MarketClosed,
                None,
                false,
                d,
            );
        }
        let price = self.fill_price(sym, o.side);
        let closing = matches!(target, Some((_, true)));
        if !closing {
            let lev = self.accounts[&acc_id].cfg.leverage;
            let need = margin_cents(&spec, price, o.volume, lev);
            let free = self.account_view(acc_id).map_or(0, |v| v.free_margin);
            if need > free {
                let d = format!("margin {need} needed, free margin {free} (cents)");
                return self.order_error(
                    now_ms,
                    conn,
                    cmid,
                    acc_id,
                    ErrorCode::NotEnoughMoney,
                    None,
                    false,
                    d,
                );
            }
        }
        self.execute(
            now_ms,
            conn,
            cmid,
            acc_id,
            sym,
            o.side,
            o.volume,
            price,
            OrderExtras {
                order_type: o.order_type,
                target,
                label: o.label,
                comment: o.comment,
                client_order_id: o.client_order_id,
                base_slippage_price: o.base_slippage_price,
                slippage_in_points: o.slippage_in_points.map(i64::from),
                relative_sl: o.relative_stop_loss,
                relative_tp: o.relative_take_profit,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn close_position(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        scope: Scope,
        acc_id: i64,
        position_id: i64,
        volume: i64,
    ) {
        if scope != Scope::Trade {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingNotAllowed,
                Some(position_id),
                false,
                "the access token has SCOPE_VIEW: trading is not allowed".into(),
            );
        }
        let Some(p) = self.accounts[&acc_id].positions.get(&position_id).cloned() else {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::PositionNotFound,
                Some(position_id),
                false,
                format!("position {position_id} not found"),
            );
        };
        let spec = self.market.symbols[p.symbol].spec.clone();
        let bad = if volume <= 0 || volume > p.volume {
            Some(format!("close volume {volume} must be in 1..={}", p.volume))
        } else if volume != p.volume && volume % spec.step_volume != 0 {
            Some(format!(
                "close volume {volume} is not a multiple of the step {}",
                spec.step_volume
            ))
        } else {
            None
        };
        if let Some(d) = bad {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingBadVolume,
                Some(position_id),
                false,
                d,
            );
        }
        if self.market.is_closed(p.symbol) {
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::MarketClosed,
                Some(position_id),
                false,
                format!("market is closed for {}", spec.name),
            );
        }
        if let Some(d) = self.refused_by_mode(p.symbol, true) {
            tracing::info!(conn, symbol = %spec.name, "close refused: {d}");
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::TradingDisabled,
                Some(position_id),
                false,
                d,
            );
        }
        if let Some(d) = self.closed_by_calendar(p.symbol) {
            tracing::info!(conn, symbol = %spec.name, "close refused: {d}");
            return self.order_error(
                now_ms,
                conn,
                cmid,
                acc_id,
                ErrorCode::MarketClosed,
                Some(position_id),
                false,
                d,
            );
        }
        let side = p.side.opposite();
        let price = self.fill_price(p.symbol, side);
        self.execute(
            now_ms,
            conn,
            cmid,
            acc_id,
            p.symbol,
            side,
            volume,
            price,
            OrderExtras {
                order_type: OrderType::Market,
                target: Some((position_id, true)),
                label: p.label.clone(),
                comment: p.comment.clone(),
                client_order_id: None,
                base_slippage_price: None,
                slippage_in_points: None,
                relative_sl: None,
                relative_tp: None,
            },
        );
    }

    /// Accepts and fills (or cancels, for an out-of-range MARKET_RANGE) an order that passed
    /// validation, and sends its execution events to every connection authorized on the account.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        acc_id: i64,
        sym: usize,
        side: Side,
        volume: i64,
        price: i64,
        x: OrderExtras,
    ) {
        let t = self.market.now_ms;
        let spec = self.market.symbols[sym].spec.clone();
        let symbol_id = self.market.symbols[sym].id;
        let digits = spec.digits;
        self.orders_seen += 1;
        let (lose_accepted, lose_filled) = self.lose_fault();
        let order_id = self.next_order;
        self.next_order += 1;
        let closing = matches!(x.target, Some((_, true)));
        let position_id = match x.target {
            Some((pid, _)) => pid,
            None => {
                self.next_position += 1;
                self.next_position - 1
            }
        };
        let mut order = OrderInfo {
            id: order_id,
            trade: TradeData {
                symbol_id,
                volume,
                side,
                open_ms: t,
                label: x.label.clone(),
                comment: x.comment.clone(),
                close_ms: None,
            },
            order_type: x.order_type,
            status: OrderStatus::Accepted,
            execution_price: None,
            executed_volume: 0,
            last_update_ms: t,
            base_slippage_price: x.base_slippage_price,
            slippage_in_points: x.slippage_in_points,
            closing_order: closing,
            client_order_id: x.client_order_id.clone(),
            position_id,
            relative_stop_loss: x.relative_sl,
            relative_take_profit: x.relative_tp,
        };
        let accepted_pos = match x.target {
            Some((pid, _)) => self.accounts[&acc_id]
                .positions
                .get(&pid)
                .map(|p| self.position_info(p, PositionStatus::Open)),
            None => Some(PositionInfo {
                id: position_id,
                trade: order.trade.clone(),
                status: PositionStatus::Created,
                price: 0.0,
                stop_loss: None,
                take_profit: None,
                last_update_ms: t,
                commission: 0,
                margin_rate: 0.0,
                used_margin: 0,
            }),
        };
        if lose_accepted {
            tracing::warn!(order_id, "fault: ORDER_ACCEPTED event lost");
        } else {
            let ev = Event::Execution {
                account_id: acc_id,
                exec_type: ExecType::Accepted,
                position: accepted_pos.clone(),
                order: Some(order.clone()),
                deal: None,
                error_code: None,
            };
            self.broadcast(now_ms, conn, cmid.clone(), acc_id, ev);
        }

        // MARKET_RANGE bound
        if x.order_type == OrderType::MarketRange {
            let s = &self.market.symbols[sym];
            let base = match x.base_slippage_price {
                Some(b) => price_from_f64(b),
                None => match side {
                    Side::Buy => s.ask_for(s.last_bid.unwrap_or(0)),
                    Side::Sell => s.last_bid.unwrap_or(0),
                },
            };
            let bound = x.slippage_in_points.unwrap_or(0) * spec.point_units();
            let ok = match side {
                Side::Buy => price <= base + bound,
                Side::Sell => price >= base - bound,
            };
            if !ok {
                tracing::info!(
                    order_id,
                    "MARKET_RANGE price outside the slippage range: cancelled"
                );
                order.status = OrderStatus::Cancelled;
                self.record_order(acc_id, &order);
                let ev = Event::Execution {
                    account_id: acc_id,
                    exec_type: ExecType::Cancelled,
                    position: accepted_pos,
                    order: Some(order),
                    deal: None,
                    error_code: None,
                };
                if !lose_filled {
                    self.broadcast(now_ms, conn, cmid, acc_id, ev);
                }
                return;
            }
        }

        let deal_id = self.next_deal;
        self.next_deal += 1;
        let lev = self.accounts[&acc_id].cfg.leverage;
        let q2d = spec.quote_to_deposit();
        let margin_rate = price_to_f64(price, 5) * q2d;
        let (position_info, deal) = if closing {
            let acc = self
                .accounts
                .get_mut(&acc_id)
                .expect("account checked by the caller");
            let mut p = acc
                .positions
                .remove(&position_id)
                .expect("position checked by the caller");
            let gross = gross_cents(&spec, p.side, p.price, price, volume);
            let commission = commission_cents(&spec, volume, 1.0);
            acc.balance += gross + commission;
            acc.balance_version += 1;
            let remaining = p.volume - volume;
            p.last_update_ms = t;
            let status = if remaining == 0 {
                PositionStatus::Closed
            } else {
                PositionStatus::Open
            };
            let detail = CloseDetail {
                entry_price: price_to_f64(p.price, digits),
                gross_profit: gross,
                swap: 0,
                commission,
                balance: acc.balance,
                quote_to_deposit: q2d,
                closed_volume: volume,
                balance_version: acc.balance_version,
            };
            p.volume = remaining;
            p.used_margin = margin_cents(&spec, p.price, remaining, lev);
            let info = self.position_info(&p, status);
            if remaining > 0 {
                self.accounts
                    .get_mut(&acc_id)
                    .expect("account exists")
                    .positions
                    .insert(position_id, p);
            }
            let deal = DealInfo {
                id: deal_id,
                order_id,
                position_id,
                volume,
                filled_volume: volume,
                symbol_id,
                create_ms: t,
                execution_ms: t,
                execution_price: price_to_f64(price, digits),
                side,
                margin_rate,
                commission,
                close: Some(detail),
            };
            (info, deal)
        } else {
            let acc = self
                .accounts
                .get_mut(&acc_id)
                .expect("account checked by the caller");
            let p = match acc.positions.get_mut(&position_id) {
                Some(p) => {
                    // same-side order on an existing position: VWAP
                    let v = p.volume + volume;
                    p.price = ((i128::from(p.price) * i128::from(p.volume)
                        + i128::from(price) * i128::from(volume))
                        as f64
                        / v as f64)
                        .round() as i64;
                    p.volume = v;
                    p.last_update_ms = t;
                    p.used_margin = margin_cents(&spec, p.price, v, lev);
                    p.clone()
                }
                None => {
                    let p = Position {
                        id: position_id,
                        symbol: sym,
                        side,
                        volume,
                        price,
                        open_ms: t,
                        last_update_ms: t,
                        label: x.label.clone(),
                        comment: x.comment.clone(),
                        used_margin: margin_cents(&spec, price, volume, lev),
                        relative_sl: x.relative_sl,
                        relative_tp: x.relative_tp,
                    };
                    acc.positions.insert(position_id, p.clone());
                    p
                }
            };
            let info = self.position_info(&p, PositionStatus::Open);
            let deal = DealInfo {
                id: deal_id,
                order_id,
                position_id,
                volume,
                filled_volume: volume,
                symbol_id,
                create_ms: t,
                execution_ms: t,
                execution_price: price_to_f64(price, digits),
                side,
                margin_rate,
                commission: commission_cents(&spec, volume, 0.5),
                close: None,
            };
            (info, deal)
        };
        self.accounts
            .get_mut(&acc_id)
            .expect("account exists")
            .deals
            .push(deal.clone());
        order.status = OrderStatus::Filled;
        order.execution_price = Some(deal.execution_price);
        order.executed_volume = volume;
        order.last_update_ms = t;
        self.record_order(acc_id, &order);
        tracing::info!(
            account_id = acc_id,
            order_id,
            position_id,
            symbol = %spec.name,
            side = ?side,
            volume,
            price = %crate::bars::format_price(price, digits),
            closing,
            "order filled"
        );
        if lose_filled {
            tracing::warn!(order_id, "fault: ORDER_FILLED event lost");
            return;
        }
        let ev = Event::Execution {
            account_id: acc_id,
            exec_type: ExecType::Filled,
            position: Some(position_info),
            order: Some(order),
            deal: Some(deal),
            error_code: None,
        };
        self.broadcast(now_ms, conn, cmid, acc_id, ev);
    }

    /// Sends an account event to `conn` (with the request's clientMsgId) and to every other
    /// connection where the account is authorized (without it).
    fn broadcast(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        cmid: Option<String>,
        acc_id: i64,
        ev: Event,
    ) {
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| **id != conn && !c.closed && c.accounts.contains_key(&acc_id))
            .map(|(id, _)| *id)
            .collect();
        self.send(now_ms, conn, cmid, ev.clone(), true);
        for id in others {
            self.send(now_ms, id, None, ev.clone(), false);
        }
    }
}

struct OrderExtras {
    order_type: OrderType,
    /// (position id, closing?)
    target: Option<(i64, bool)>,
    label: Option<String>,
    comment: Option<String>,
    client_order_id: Option<String>,
    base_slippage_price: Option<f64>,
    slippage_in_points: Option<i64>,
    relative_sl: Option<i64>,
    relative_tp: Option<i64>,
}

fn round_cents(money: f64) -> i64 {
    (money * 100.0).round() as i64
}

/// Gross P&L in deposit cents of `volume` moved from `entry` to `exit` (1e-5 prices):
/// points × money per point per lot × lots, as the training environment computes it.
pub fn gross_cents(spec: &SymbolSpec, side: Side, entry: i64, exit: i64, volume: i64) -> i64 {
    let points = ((exit - entry) * side.sign()) as f64 / spec.point_units() as f64;
    let lots = volume as f64 / spec.lot_size as f64;
    round_cents(points * spec.money_per_point_per_lot * lots)
}

/// Commission in cents (negative) for `volume`: `fraction` of the round-turn rate.
pub fn commission_cents(spec: &SymbolSpec, volume: i64, fraction: f64) -> i64 {
    let lots = volume as f64 / spec.lot_size as f64;
    -round_cents(spec.commission_per_lot * fraction * lots)
}

/// Margin in cents for `volume` at `price`: notional in deposit currency / leverage.
pub fn margin_cents(spec: &SymbolSpec, price: i64, volume: i64, leverage: u32) -> i64 {
    let units = volume as f64 / 100.0;
    let notional = units * (price as f64 / 100_000.0) * spec.quote_to_deposit();
    round_cents(notional / f64::from(leverage.max(1)))
}
