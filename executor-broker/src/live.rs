//! The live broker: [`Broker`] over `oracle-ctrader`'s Tokio driver (feature `live`).
//!
//! One driver connection (TLS, to the broker or to `oracle-sim` with its CA). A task consumes the
//! session's events: `Ready` (after the first one: [`Feed::Reconnected`], so the engine reconciles
//! before anything else), `Spot` (quotes), `BarClosed` ([`Feed::Bar`]), and execution events that
//! complete orders whose first answer was only `ORDER_ACCEPTED`.
//!
//! Margin: `ExpectedMarginReq` when the broker answers it (a batch's asks: one request per
//! symbol, all in flight together), else (logged once) an estimate of units × price / leverage
//! (quote currency taken as the deposit currency). An order whose outcome is unknown is looked
//! up by its clientOrderId (`OrderListReq` + `OrderDetailsReq`) first; positions do not carry
//! the client order id, so reconciliation and the fallback look-up also explain a position by
//! label, side and volume, or by an opening deal (see `engine`).
//!
//! History (`Broker::history`, the seed of a stream's first HISTORY) ends at the broker's time,
//! not the wall clock: the window ends at the later of the wall clock and the latest server time
//! seen; when the answer's `timestamp` (the server's time) is more than a bar away from that end
//! (a simulator replaying ahead of the wall clock, or a replay of the past), the request is made
//! once more for the window ending at the broker's time (logged once), and bars are closed by it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oracle_ctrader::calendar::TradingCalendar;
use oracle_ctrader::driver::{self, Client, ClientConfig, Outcome, Queued};
use oracle_ctrader::proto::{
    ProtoOaAssetListReq, ProtoOaDealListReq, ProtoOaExecutionEvent, ProtoOaExecutionType,
    ProtoOaExpectedMarginReq, ProtoOaGetPositionUnrealizedPnLReq, ProtoOaGetTrendbarsReq,
    ProtoOaGetTrendbarsRes, ProtoOaOrderDetailsReq, ProtoOaOrderListReq, ProtoOaOrderStatus,
    ProtoOaReconcileReq, ProtoOaSymbolByIdReq, ProtoOaSymbolsListReq, ProtoOaTraderReq,
    ProtoOaTrendbarPeriod,
};
use oracle_ctrader::{Event, Payload, units};
use oracle_executor_core::currency::Currencies;
use oracle_ipc::Timeframe;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::broker::{
    Bar, Broker, BrokerError, BrokerPosition, OrderLookup, OrderReq, OrderResult, Quote,
};
use crate::feed::Feed;
use crate::risk::Account;
use crate::symbols::{self, TradingMode};
use crate::volume::SymbolSpec;

/// What [`connect`] needs.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Driver configuration (endpoint, TLS, credentials, account).
    pub client: ClientConfig,
    /// Symbols to trade (names as in executor_config.json).
    pub symbols: Vec<String>,
    /// executor_config.json: each symbol's broker name (`broker_symbol`) and whether it is
    /// enabled. `None`: every name of `symbols` is the broker's and enabled.
    pub symbol_config: Option<crate::config::ExecutorConfig>,
    /// Bar streams to subscribe.
    pub streams: Vec<(String, Timeframe)>,
    /// How long to wait for `ORDER_FILLED` after `ORDER_ACCEPTED`.
    pub fill_timeout: Duration,
    /// How long to wait for the first `Ready`.
    pub ready_timeout: Duration,
    /// Demo pacing (`--hold-market-until-predictor`): after handing a closed bar to the engine,
    /// read no further market events until the engine releases it ([`LiveBroker::release_hook`])
    /// unless a request of ours is in flight; the clock is then the broker's time.
    pub hold_market: bool,
    /// Where the rotated token pair lives (the state folder's `tokens/ctrader-token.json`,
    /// [`oracle_ctrader::tokenfile::path_in`]). With a path the session stores before use: a
    /// refreshed pair is written there ([`oracle_ctrader::tokenfile::store`]) and only then is
    /// the new access token sent; a store that fails stops the executor ([`AuthStop`]).
    /// `None`: the refreshed pair is used in memory only (lost at the next restart).
    pub token_file: Option<std::path::PathBuf>,
}

/// The executor's exit status when authentication failed for good (a refresh refused, a
/// refreshed pair that could not be stored, a wrong client secret): a restart cannot help, so
/// the units name it in `RestartPreventExitStatus=` (no restart loop) and a person is needed
/// (`oracle auth`, docs/auth.md). 78 is `EX_CONFIG` of sysexits.h.
pub const EXIT_AUTH_STOP: u8 = 78;

/// Authentication failed for good (see [`EXIT_AUTH_STOP`]).
#[derive(Debug)]
pub struct AuthStop(pub String);

impl std::fmt::Display for AuthStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "broker authentication failed for good: {}; a restart cannot fix this: get a new token pair with `oracle auth` (docs/auth.md), then start the executor",
            self.0
        )
    }
}

impl std::error::Error for AuthStop {}

/// The pair to start with: the newest of the token file's (`token_file`, written by
/// `oracle auth` or by a refresh) and the one in `creds` (secrets file or environment, stamped
/// obtained at 0 so that a stored pair wins: every refresh kills the pair before it). Logged
/// without secrets: which source, and the days the access token has left at `now_ms` when known.
/// Returns the credentials and the access token's expiry (Unix ms) when known.
pub fn startup_credentials(
    mut creds: oracle_ctrader::Credentials,
    token_file: &std::path::Path,
    now_ms: i64,
) -> anyhow::Result<(oracle_ctrader::Credentials, Option<i64>)> {
    use oracle_ctrader::tokenfile::{self, TokenPair};
    let stored = tokenfile::load(token_file).map_err(anyhow::Error::msg)?;
    let from_secrets = creds.refresh_token.clone().map(|rt| TokenPair {
        access_token: creds.access_token.clone(),
        refresh_token: rt,
        obtained_at_ms: 0,
        expires_at_ms: 0,
    });
    let pairs: Vec<&TokenPair> = stored.iter().chain(from_secrets.iter()).collect();
    match tokenfile::newest(pairs) {
        Some(p) if p.obtained_at_ms > 0 => {
            let days = p.seconds_left(now_ms) as f64 / 86_400.0;
            info!(
                source = "token file",
                path = %token_file.display(),
                expires_in_days = format!("{days:.1}"),
                "broker tokens: the token file's pair is the newest"
            );
            creds.access_token = p.access_token.clone();
            creds.refresh_token = Some(p.refresh_token.clone());
            Ok((creds, Some(p.expires_at_ms)))
        }
        _ => {
            info!(
                source = "secrets",
                token_file = %token_file.display(),
                "broker tokens: the secrets file's (or environment's) pair, no token file yet; its expiry is unknown until the first refresh stores one"
            );
            Ok((creds, None))
        }
    }
}

/// Stores a refreshed pair before the session may use it, then tells the session. Failpoints:
/// `after_refresh_answer` (the pair received, not stored: the old pair is spent), and
/// `after_token_write` (stored, the session not told). Returns the error of a store that failed
/// (the session is told and fails: [`AuthStop`]).
async fn store_refreshed(
    client: &Client,
    path: &std::path::Path,
    access_token: oracle_ctrader::Secret,
    refresh_token: oracle_ctrader::Secret,
    expires_in: i64,
) -> Result<(), String> {
    use crate::failpoint::{Point, hit};
    hit(Point::AfterRefreshAnswer);
    let now = utc_ms();
    let pair = oracle_ctrader::tokenfile::TokenPair {
        access_token,
        refresh_token,
        obtained_at_ms: now,
        expires_at_ms: now.saturating_add(expires_in.saturating_mul(1000)),
    };
    let stored = oracle_ctrader::tokenfile::prepare_folder(path)
        .and_then(|()| oracle_ctrader::tokenfile::store(path, &pair));
    match &stored {
        Ok(()) => {
            hit(Point::AfterTokenWrite);
            info!(
                path = %path.display(),
                expires_in_days = format!("{:.1}", expires_in as f64 / 86_400.0),
                "broker tokens refreshed and stored; the new access token is used from now on"
            );
        }
        Err(e) => tracing::error!(
            "broker tokens refreshed but NOT stored ({e}): the old refresh token is spent, stopping (a restart would have no valid pair)"
        ),
    }
    client.tokens_stored(stored.clone()).await;
    stored
}

/// Bid and ask in wire units (a side absent until first seen).
type WireQuote = (Option<u64>, Option<u64>);

/// What the live session tells the process's alerts and metrics ([`LiveBroker::set_telemetry`];
/// the executor's `alerting::Telemetry` implements it): called from the session's event task.
pub trait SessionEvents: Send + Sync {
    /// The session is (again) ready at `now` (UTC seconds).
    fn session_up(&self, now: i64);
    /// The session was lost at `now` (UTC seconds).
    fn session_lost(&self, now: i64);
    /// The broker refused the authentication for good (`why`: its code and description): the
    /// alert and the stop's message sent before the process exits.
    fn auth_refused(&self, why: &str);
    /// `n` more access-token refreshes.
    fn tokens_refreshed(&self, n: u64);
}

#[derive(Default)]
struct Shared {
    up: AtomicBool,
    /// Alerts and metrics ([`LiveBroker::set_telemetry`]): the event task tells them of a
    /// loss, a reconnect, a refresh and an authentication failure.
    telemetry: std::sync::OnceLock<Arc<dyn SessionEvents>>,
    /// Token refreshes not yet counted in the metrics (those before [`LiveBroker::set_telemetry`]:
    /// inside [`connect`], or in the event task meanwhile); whoever sees the telemetry set adds
    /// them ([`Shared::count_refreshes`]).
    refreshes_uncounted: std::sync::atomic::AtomicU64,
    /// When the session's current access token expires (Unix ms; 0: not known): the stored
    /// pair's at start, then each refresh's.
    token_expires_ms: std::sync::atomic::AtomicI64,
    /// Latest server time seen on a spot (Unix ms), 0 before the first.
    server_ms: std::sync::atomic::AtomicI64,
    /// symbol id → (bid, ask) in wire units.
    quotes: Mutex<HashMap<i64, WireQuote>>,
    /// symbol id → (model name, digits).
    symbols: Mutex<HashMap<i64, (String, u32)>>,
    /// The broker's symbol facts may have changed (a reconnect, a `SymbolChangedEvent`): read
    /// them again before the next decision ([`Broker::changed_specs`]).
    specs_stale: AtomicBool,
    /// Orders waiting for their fill: client order id, or `pos:<id>` for a close.
    fills: Mutex<HashMap<String, oneshot::Sender<OrderResult>>>,
    /// Pacing: bars handed to the engine and not yet released.
    unreleased: std::sync::atomic::AtomicUsize,
    /// Pacing: the close time (ms) of each unreleased bar, oldest first: the engine's clock is
    /// the front one (the bar it is handling), even while the session reads further market
    /// events to get the answers of our requests (a fast replay moves on meanwhile).
    handed_ms: Mutex<std::collections::VecDeque<i64>>,
    /// Requests of ours in flight (their answers must be read even while the market is held).
    busy: std::sync::atomic::AtomicUsize,
    /// Wakes the event task (a release, a request).
    wake: tokio::sync::Notify,
    hold: AtomicBool,
}

impl Shared {
    /// A token refresh the session made at `now_ms` (Unix ms), its access token living
    /// `expires_in` seconds: its expiry kept, and counted in the metrics (now, or when they
    /// are attached).
    fn refreshed(&self, now_ms: i64, expires_in: i64) {
        self.token_expires_ms.store(
            now_ms.saturating_add(expires_in.saturating_mul(1000)),
            Ordering::SeqCst,
        );
        self.refreshes_uncounted.fetch_add(1, Ordering::SeqCst);
        self.count_refreshes();
    }

    /// Adds the refreshes not yet counted to the metrics, once they are attached.
    fn count_refreshes(&self) {
        if let Some(t) = self.telemetry.get() {
            let n = self.refreshes_uncounted.swap(0, Ordering::SeqCst);
            if n > 0 {
                t.tokens_refreshed(n);
            }
        }
    }
}

/// Counts an order in flight while it lives (owned: it travels with a [`LiveTicket`]).
struct BusyOwned(Arc<Shared>);

impl BusyOwned {
    fn new(s: Arc<Shared>) -> Self {
        s.busy.fetch_add(1, Ordering::SeqCst);
        s.wake.notify_one();
        BusyOwned(s)
    }
}

impl Drop for BusyOwned {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for BusyOwned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusyOwned")
    }
}

/// Counts a request in flight while it lives.
struct Busy<'a>(&'a Shared);

impl<'a> Busy<'a> {
    fn new(s: &'a Shared) -> Self {
        s.busy.fetch_add(1, Ordering::SeqCst);
        s.wake.notify_one();
        Busy(s)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked while holding it; the maps stay usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The live session.
pub struct LiveBroker {
    client: Client,
    account: i64,
    shared: Arc<Shared>,
    specs: HashMap<String, SymbolSpec>,
    money_digits: u32,
    leverage: f64,
    fill_timeout: Duration,
    /// The broker answers `ExpectedMarginReq` (false after an UNSUPPORTED answer).
    expected_margin_ok: bool,
    /// Per (symbol, volume, buy): the margin the broker last gave per unit of price, and when
    /// ([`MARGIN_RATE_TTL`]).
    margin_rates: HashMap<(String, i64, bool), (f64, std::time::Instant)>,
    /// The broker answers `OrderListReq` / `OrderDetailsReq`.
    order_list_ok: bool,
    /// `history` found the broker's clock more than a bar away from ours (a replay; said once).
    replay_clock: bool,
    /// Each symbol's trading hours as the broker states them (`schedule`, `holiday`,
    /// `scheduleTimeZone` of `SymbolByIdRes`), read with its facts at start and after a
    /// reconnect. A symbol without one (unusable: logged) is taken as open.
    calendars: HashMap<String, TradingCalendar>,
    /// Broker symbol id → model symbol name, mapped at start (a symbol the broker stopped
    /// listing under its name is taken out: its facts stay, with trading disabled).
    symbol_ids: HashMap<i64, String>,
    /// Broker symbol id → the broker's name it was mapped by at start.
    listed_as: HashMap<i64, String>,
    /// Model symbol → (base asset id, quote asset id), from the symbol list at start.
    asset_ids: HashMap<String, (i64, i64)>,
    /// The deposit currency and the symbols' assets by name ([`currencies_of`]), read at start.
    currencies: Option<Currencies>,
}

/// How long the broker's margin for a (symbol, volume, side) is reused, scaled to the current
/// price, instead of asked again. A 20-symbol reversal then fits its closes and entries (40
/// requests, with the account reads 46) in cTrader's 50 requests a second; with 20
/// `ExpectedMarginReq`s more the entries queued a second behind the rate limit (measured over the
/// simulator: bar → NewOrderReq 1.003 s instead of ~4 ms). The scaled margin is exact where the
/// margin is proportional to the price (quote currency = deposit currency) and off by at most the
/// price move since the answer elsewhere (deposit currency = base currency: the margin does not
/// move with the price); the broker's own check (`NOT_ENOUGH_MONEY`) still stands behind it.
/// One value with the DST's `Link` ([`oracle_executor_ctrader::link::MARGIN_RATE_TTL_MS`]).
pub const MARGIN_RATE_TTL: Duration =
    Duration::from_millis(oracle_executor_ctrader::link::MARGIN_RATE_TTL_MS as u64);

/// A decoded trendbar as the engine's bar, prices rounded to the symbol's `digits`.
fn bar_data(b: &units::Bar, digits: u32) -> Bar {
    let [open, high, low, close] = b.ohlc_f64(digits);
    Bar {
        time: b.open_time,
        open,
        high,
        low,
        close,
        volume: b.volume.max(0) as f64,
    }
}

/// The largest timestamp the Open API accepts (ms).
const MAX_TIMESTAMP_MS: i64 = 2_147_483_646_000;

fn unsupported(e: &BrokerError) -> bool {
    e.0.contains("UNSUPPORTED_MESSAGE") || e.0.contains("unexpected answer")
}

impl std::fmt::Debug for LiveBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBroker")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

use oracle_executor_ctrader::wire::{
    account_of, close_key, close_position_req, fill_key, fill_of, lookup_in_positions_and_deals,
    margin_of, new_order_req, order_error_result, order_outcome, order_with_coid, positions_of,
    spec_of,
};

/// The wall clock, Unix ms.
pub fn utc_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError(e.to_string())
}

/// The config's symbols [`connect`] loads: `config`'s entries for `names` (a name without one,
/// or no config: enabled, traded under its own name).
fn wanted_symbols(
    names: &[String],
    config: Option<&crate::config::ExecutorConfig>,
) -> crate::config::ExecutorConfig {
    let mut out = crate::config::from_value(&serde_json::json!({}))
        .expect("an empty executor_config.json is valid");
    for n in names {
        let sc = config
            .and_then(|c| c.symbols.get(n).cloned())
            .unwrap_or_else(|| crate::config::SymbolConfig {
                enabled: true,
                lots: oracle_executor_core::config::DEFAULT_LOTS,
                max_spread_points: None,
                slippage_points: None,
                broker_symbol: n.clone(),
            });
        out.symbols.insert(n.clone(), sc);
    }
    out
}

/// Connects, waits for the session to be ready, loads the symbols and subscribes the streams.
pub async fn connect(cfg: LiveConfig) -> anyhow::Result<(LiveBroker, mpsc::Receiver<Feed>)> {
    let account = cfg.client.session.account_id;
    let mut client_cfg = cfg.client.clone();
    if let Some(path) = &cfg.token_file {
        // Before any refresh token can be spent, the folder its pair goes to must take it.
        oracle_ctrader::tokenfile::prepare_folder(path).map_err(anyhow::Error::msg)?;
        client_cfg.session.confirm_token_store = true;
        // The stored pair's expiry, when the session starts on it: refresh ahead of it.
        if let Ok(Some(p)) = oracle_ctrader::tokenfile::load(path)
            && p.access_token == client_cfg.session.credentials.access_token
        {
            client_cfg.session.access_expires_at_ms = Some(p.expires_at_ms);
        }
    }
    if cfg.hold_market {
        // Few buffered events, so a held market stops the server soon (back-pressure).
        client_cfg.event_capacity = client_cfg.event_capacity.min(32);
    }
    let shared = Arc::new(Shared::default());
    if let Some(e) = client_cfg.session.access_expires_at_ms {
        shared.token_expires_ms.store(e, Ordering::SeqCst);
    }
    let (client, mut events) = driver::connect(client_cfg)?;
    // First Ready.
    let ready = tokio::time::timeout(cfg.ready_timeout, async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Ready => return Ok(()),
                Event::AuthFailed { code, description } => {
                    let why = match description {
                        Some(d) => format!("{code} ({d})"),
                        None => code.to_string(),
                    };
                    return Err(AuthStop(why).into());
                }
                Event::TokensRefreshed {
                    access_token,
                    refresh_token,
                    expires_in,
                } => {
                    shared.refreshed(utc_ms(), expires_in);
                    if let Some(path) = &cfg.token_file {
                        // A failed store fails the session: AuthFailed follows.
                        let _ =
                            store_refreshed(&client, path, access_token, refresh_token, expires_in)
                                .await;
                    }
                }
                _ => {}
            }
        }
        anyhow::bail!("the cTrader driver stopped before the session was ready")
    })
    .await;
    match ready {
        Ok(r) => r?,
        Err(_) => anyhow::bail!(
            "the broker session was not ready within {:?}",
            cfg.ready_timeout
        ),
    }
    shared.up.store(true, Ordering::SeqCst);
    shared.hold.store(cfg.hold_market, Ordering::SeqCst);
    let mut b = LiveBroker {
        client,
        account,
        shared: shared.clone(),
        specs: HashMap::new(),
        money_digits: 2,
        leverage: 1.0,
        fill_timeout: cfg.fill_timeout,
        expected_margin_ok: true,
        margin_rates: HashMap::new(),
        order_list_ok: true,
        replay_clock: false,
        calendars: HashMap::new(),
        symbol_ids: HashMap::new(),
        listed_as: HashMap::new(),
        asset_ids: HashMap::new(),
        currencies: None,
    };
    // The event task runs before the start-up requests: a refresh ahead of a stored pair's
    // expiry can begin as soon as the session is ready, and the session holds every request
    // until the new pair is stored, which only the event task confirms (started after them,
    // the start-up requests waited for it until their queue timeout).
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(event_task(
        events,
        shared,
        tx,
        b.client.clone(),
        cfg.token_file.clone(),
    ));
    b.load_symbols(&cfg.symbols, cfg.symbol_config.as_ref())
        .await?;
    b.load_trader().await?;
    for (sym, tf) in &cfg.streams {
        let Some(spec) = b.specs.get(sym) else {
            warn!(symbol = %sym, "model stream for a symbol the broker does not have: not subscribed");
            continue;
        };
        b.client
            .subscribe_bars(spec.id, ProtoOaTrendbarPeriod::from(*tf), None)
            .await
            .map_err(err)?;
    }
    Ok((b, rx))
}

/// The account's deposit currency (the asset `deposit_asset_id` of `assets`, the broker's
/// `AssetListRes`) and each symbol's (base, quote) asset names from its ids (`symbols`: model
/// symbol → ids of the `SymbolsListRes`); a symbol whose assets are not listed is left out.
/// `None` when the deposit asset is not listed.
pub fn currencies_of(
    deposit_asset_id: i64,
    assets: &[oracle_ctrader::proto::ProtoOaAsset],
    symbols: &HashMap<String, (i64, i64)>,
) -> Option<Currencies> {
    let name = |id: i64| {
        assets
            .iter()
            .find(|a| a.asset_id == id)
            .map(|a| a.name.clone())
    };
    Some(Currencies {
        deposit: name(deposit_asset_id)?,
        assets: symbols
            .iter()
            .filter_map(|(s, (b, q))| Some((s.clone(), (name(*b)?, name(*q)?))))
            .collect(),
    })
}

/// The state folder's file naming the account's deposit currency (`USD`), written at each live
/// start: `oracle report --state` shows money in it.
pub const CURRENCY_FILE: &str = "deposit-currency";

/// Writes the deposit currency `b` read at start to `state`'s [`CURRENCY_FILE`] (a failure is
/// logged: the report then says "account currency").
pub fn record_currency(state: &std::path::Path, b: &LiveBroker) {
    let Some(c) = &b.currencies else { return };
    let path = state.join(CURRENCY_FILE);
    if let Err(e) = std::fs::write(&path, format!("{}\n", c.deposit)) {
        warn!(path = %path.display(), error = %e, "the deposit currency could not be recorded for the report");
    }
}

/// Hands `ev` to whoever reads the broker's feed (the engine loop). When nobody reads it any
/// more (the receiver was dropped), the feed is closed once, with a log line, and the event task
/// goes on: quotes, fills and the connection state must keep flowing to the requests that wait
/// for them (an order's fill, a reconcile) — a reader gone must never take the driver down.
async fn forward(tx: &mpsc::Sender<Feed>, open: &mut bool, ev: Feed) {
    if *open && tx.send(ev).await.is_err() {
        *open = false;
        warn!(
            "nobody reads the broker feed any more: bars are no longer forwarded, quotes and fills go on"
        );
    }
}

async fn event_task(
    mut events: driver::Events,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Feed>,
    client: Client,
    token_file: Option<std::path::PathBuf>,
) {
    let mut open = true;
    // When each symbol's last quote went to the engine (UTC ms).
    let mut last_quote: HashMap<i64, i64> = HashMap::new();
    loop {
        // Pacing: hold the market while a bar is with the engine, unless a request of ours
        // needs its answer read (a fill, a reconcile).
        while shared.hold.load(Ordering::SeqCst)
            && shared.unreleased.load(Ordering::SeqCst) > 0
            && shared.busy.load(Ordering::SeqCst) == 0
        {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let Some(ev) = events.recv().await else { break };
        match ev {
            Event::Ready => {
                shared.up.store(true, Ordering::SeqCst);
                if let Some(t) = shared.telemetry.get() {
                    t.session_up(utc_ms() / 1000);
                }
                // A symbol may have changed its trading mode (or name) while we were away.
                shared.specs_stale.store(true, Ordering::SeqCst);
                info!("broker session ready again");
                forward(&tx, &mut open, Feed::Reconnected).await;
            }
            Event::Disconnected { reason, .. } => {
                shared.up.store(false, Ordering::SeqCst);
                if let Some(t) = shared.telemetry.get() {
                    t.session_lost(utc_ms() / 1000);
                }
                warn!(
                    ?reason,
                    "broker session lost: entries refused until it is back, exits retried"
                );
            }
            Event::AuthFailed { code, description } => {
                shared.up.store(false, Ordering::SeqCst);
                // The session does nothing more: a loud stop with its own status, never a
                // process that stays up unauthenticated (positions unmanaged) or a restart loop.
                let why = match description {
                    Some(d) => format!("{code} ({d})"),
                    None => code.to_string(),
                };
                if let Some(t) = shared.telemetry.get() {
                    t.auth_refused(&why);
                }
                tracing::error!("{}", AuthStop(why));
                std::process::exit(i32::from(EXIT_AUTH_STOP));
            }
            Event::TokensRefreshed {
                access_token,
                refresh_token,
                expires_in,
            } => {
                shared.refreshed(utc_ms(), expires_in);
                if let Some(path) = &token_file {
                    // A failed store fails the session: AuthFailed follows, and the stop.
                    let _ = store_refreshed(&client, path, access_token, refresh_token, expires_in)
                        .await;
                }
            }
            Event::Spot {
                symbol_id,
                bid,
                ask,
                timestamp,
            } => {
                if let Some(t) = timestamp {
                    shared.server_ms.fetch_max(t, Ordering::SeqCst);
                }
                let both = {
                    let mut q = lock(&shared.quotes);
                    let e = q.entry(symbol_id).or_default();
                    if bid.is_some() {
                        e.0 = bid;
                    }
                    if ask.is_some() {
                        e.1 = ask;
                    }
                    match *e {
                        (Some(b), Some(a)) => Some((b, a)),
                        _ => None,
                    }
                };
                // The prop-firm guard's intra-bar input: at most one quote a second per symbol,
                // dropped (never waited for) when the engine is behind; bars keep their order.
                let at = utc_ms();
                if let Some((b, a)) = both
                    && open
                    && last_quote.get(&symbol_id).is_none_or(|t| at - t >= 1000)
                    && let Some((name, digits)) = lock(&shared.symbols).get(&symbol_id).cloned()
                {
                    last_quote.insert(symbol_id, at);
                    let _ = tx.try_send(Feed::Quote {
                        symbol: name,
                        bid: units::price_to_f64(b as i64, digits),
                        ask: units::price_to_f64(a as i64, digits),
                    });
                }
            }
            Event::BarClosed {
                symbol_id,
                period,
                bar,
                ..
            } => {
                let Some((name, digits)) = lock(&shared.symbols).get(&symbol_id).cloned() else {
                    continue;
                };
                let spread = match lock(&shared.quotes).get(&symbol_id) {
                    Some((Some(b), Some(a))) => {
                        units::price_to_f64(*a as i64, digits)
                            - units::price_to_f64(*b as i64, digits)
                    }
                    _ => 0.0,
                };
                let tf = Timeframe::from(period);
                // The broker's time is at least the end of a bar it closed.
                shared
                    .server_ms
                    .fetch_max((bar.open_time + tf.seconds()) * 1000, Ordering::SeqCst);
                let ev = Feed::Bar {
                    symbol: name,
                    tf,
                    bar: bar_data(&bar, digits),
                    spread,
                };
                if shared.hold.load(Ordering::SeqCst) {
                    lock(&shared.handed_ms).push_back((bar.open_time + tf.seconds()) * 1000);
                    shared.unreleased.fetch_add(1, Ordering::SeqCst);
                }
                forward(&tx, &mut open, ev).await;
            }
            Event::BarRevised {
                symbol_id,
                period,
                live,
                history,
            } => {
                // `--bar-close live`: the bar that went out differs from history's. History
                // counts: the engine loop sends it again (REV:1) and the predictor rewinds.
                let Some((name, digits)) = lock(&shared.symbols).get(&symbol_id).cloned() else {
                    continue;
                };
                let ev = Feed::BarRevised {
                    symbol: name,
                    tf: Timeframe::from(period),
                    bar: bar_data(&history, digits),
                    sent: bar_data(&live, digits),
                };
                forward(&tx, &mut open, ev).await;
            }
            Event::Execution { request, event } => {
                let ours = complete_fill(&shared, &event);
                // A position closed that no request of ours closed (stop-out, manual close in
                // another terminal): the engine reconciles. The fill of our own close comes
                // after its ORDER_ACCEPTED completed the request (so without a request id): the
                // close waiting for it makes it ours.
                let outside = !ours
                    && request.is_none()
                    && event
                        .order
                        .as_ref()
                        .is_some_and(|o| o.closing_order == Some(true))
                    && event.execution_type == ProtoOaExecutionType::OrderFilled as i32;
                if outside {
                    info!(position_id = ?event.position.as_ref().map(|p| p.position_id),
                        "a position was closed outside this session: reconciling");
                    forward(&tx, &mut open, Feed::Reconcile).await;
                }
            }
            Event::Message(p) if p.payload_type() == SYMBOL_CHANGED_EVENT => {
                info!(
                    "the broker changed a symbol (SymbolChangedEvent): its facts and trading mode are read again"
                );
                shared.specs_stale.store(true, Ordering::SeqCst);
            }
            _ => {}
        }
    }
    shared.up.store(false, Ordering::SeqCst);
}

/// `ProtoOASymbolChangedEvent`'s payload type (no message type in the generated code: it
/// arrives as [`Payload::Unknown`]; only its arrival matters).
pub const SYMBOL_CHANGED_EVENT: u32 = 2120;

/// One log line per symbol whose trading mode is not ENABLED (or changed): entries on it are
/// refused, exits go on.
fn report_mode(spec: &SymbolSpec, before: Option<TradingMode>) {
    if before == Some(spec.trading_mode) {
        return;
    }
    if spec.trading_mode.allows_entries() {
        if before.is_some() {
            info!(symbol = %spec.name, mode = %spec.trading_mode, "the broker enabled the symbol again: entries allowed");
        }
    } else {
        warn!(symbol = %spec.name, mode = %spec.trading_mode, "the broker has the symbol in trading mode {}: entries refused, exits go on", spec.trading_mode);
    }
}

/// Hands a fill (or a final refusal) to the order waiting for it. `true` when one was waiting:
/// the event answers an order of ours.
fn complete_fill(shared: &Shared, ev: &ProtoOaExecutionEvent) -> bool {
    let (Some(key), Some(r)) = (fill_key(ev), fill_of(ev)) else {
        return false;
    };
    match lock(&shared.fills).remove(&key) {
        Some(w) => {
            let _ = w.send(r);
            true
        }
        None => false,
    }
}

impl LiveBroker {
    /// The broker's latest time seen where its clock is not ours ([`replay_time`]): trading
    /// hours are judged at it ([`broker_instant`]); `None`: at our instant `now_ms`.
    fn replay_ms(&self, now_ms: i64) -> Option<i64> {
        let server = self.shared.server_ms.load(Ordering::SeqCst);
        replay_time(now_ms, server, self.replay_clock)
    }

    /// The event task tells `t` of a loss, a reconnect, a token refresh and an authentication
    /// failed for good (then the process stops).
    pub fn set_telemetry(&self, t: Arc<dyn SessionEvents>) {
        let _ = self.shared.telemetry.set(t);
        // The refreshes made before (inside `connect`, or since).
        self.shared.count_refreshes();
    }

    /// The executor's clock for this session.
    ///
    /// Outside pacing: the system clock (a replay rebased to now, or the real broker, runs on
    /// it). With `hold_market`: the close time of the bar the engine is handling (a replay's
    /// virtual time; a fast replay that moves on while our requests are answered does not age
    /// the signal), else the broker's time (latest spot `timestamp`, else the end of the latest
    /// closed bar).
    pub fn clock(&self) -> crate::feed::Clock {
        let shared = self.shared.clone();
        let sys = crate::feed::system_clock();
        Arc::new(move || {
            if !shared.hold.load(Ordering::SeqCst) {
                return sys();
            }
            let handed = lock(&shared.handed_ms).front().copied();
            let ms = handed.unwrap_or_else(|| shared.server_ms.load(Ordering::SeqCst));
            if ms > 0 { ms / 1000 } else { sys() }
        })
    }

    /// The engine's release of a bar (the shell's `Pacing::released`).
    pub fn release_hook(&self) -> Arc<dyn Fn() + Send + Sync> {
        let shared = self.shared.clone();
        Arc::new(move || {
            lock(&shared.handed_ms).pop_front();
            let _ = shared
                .unreleased
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            shared.wake.notify_one();
        })
    }

    /// The broker announced a change of symbols (a `SymbolChangedEvent`, a reconnect) that
    /// [`Broker::changed_specs`] has not read yet.
    pub fn symbols_stale(&self) -> bool {
        self.shared.specs_stale.load(Ordering::SeqCst)
    }

    /// The broker's facts for a symbol.
    pub fn spec(&self, name: &str) -> Option<SymbolSpec> {
        self.specs.get(name).cloned()
    }

    /// The margin estimate when the broker does not say: units × price / leverage (quote
    /// currency taken as the deposit currency).
    fn estimate_margin(&self, symbol: &str, volume: i64, buy: bool) -> Result<f64, BrokerError> {
        let q = self.quote(symbol).ok_or_else(|| err("no price"))?;
        let px = if buy { q.ask } else { q.bid };
        Ok(units::volume_to_units(volume) * px / self.leverage)
    }

    async fn req(&self, p: impl Into<Payload>) -> Result<Payload, BrokerError> {
        request(&self.client, &self.shared, p).await
    }

    /// Reads the broker's symbol list, maps the config's symbols to it
    /// ([`oracle_executor_core::symbols::resolve`]: an enabled symbol the broker does not list
    /// stops the start, named with its close matches) and loads their facts.
    async fn load_symbols(
        &mut self,
        names: &[String],
        config: Option<&crate::config::ExecutorConfig>,
    ) -> anyhow::Result<()> {
        let list = self
            .req(ProtoOaSymbolsListReq {
                ctid_trader_account_id: self.account,
                ..Default::default()
            })
            .await?;
        let Payload::SymbolsListRes(list) = list else {
            anyhow::bail!("SymbolsListReq: unexpected answer")
        };
        let broker_names: Vec<String> = list
            .symbol
            .iter()
            .filter_map(|s| s.symbol_name.clone())
            .collect();
        let wanted = wanted_symbols(names, config);
        let map = symbols::resolve(&wanted, &broker_names)?;
        for m in &map.disabled_missing {
            warn!(symbol = %m.model, "disabled symbol not at the broker (it does not trade): {m}");
        }
        let mut by_id = HashMap::new();
        for s in &list.symbol {
            if let Some(model) = s.symbol_name.as_deref().and_then(|n| map.model(n)) {
                if Some(model) != s.symbol_name.as_deref() {
                    info!(symbol = %model, broker_symbol = ?s.symbol_name, "symbol traded under the broker's name");
                }
                by_id.insert(s.symbol_id, model.to_string());
                if let (Some(b), Some(q)) = (s.base_asset_id, s.quote_asset_id) {
                    self.asset_ids.insert(model.to_string(), (b, q));
                }
                if let Some(n) = &s.symbol_name {
                    self.listed_as.insert(s.symbol_id, n.clone());
                }
            }
        }
        self.symbol_ids = by_id;
        self.read_specs().await?;
        Ok(())
    }

    /// Reads the facts (`SymbolByIdReq`) of the symbols mapped at start, trading mode included;
    /// returns the specs that changed. A symbol the broker no longer answers for keeps its
    /// facts with trading disabled (entries refused, exits tried).
    async fn read_specs(&mut self) -> Result<Vec<SymbolSpec>, BrokerError> {
        let mut ids: Vec<i64> = self.symbol_ids.keys().copied().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort_unstable();
        let res = self
            .req(ProtoOaSymbolByIdReq {
                ctid_trader_account_id: self.account,
                symbol_id: ids.clone(),
                ..Default::default()
            })
            .await?;
        let Payload::SymbolByIdRes(res) = res else {
            return Err(err("SymbolByIdReq: unexpected answer"));
        };
        let mut changed = Vec::new();
        let mut seen = Vec::new();
        for s in &res.symbol {
            let Some(name) = self.symbol_ids.get(&s.symbol_id).cloned() else {
                continue;
            };
            seen.push(s.symbol_id);
            let spec = spec_of(&name, s);
            self.load_calendar(&name, s);
            let before = self.specs.get(&name).map(|b| b.trading_mode);
            report_mode(&spec, before);
            lock(&self.shared.symbols).insert(s.symbol_id, (name.clone(), spec.digits));
            if self.specs.get(&name) != Some(&spec) {
                changed.push(spec.clone());
            }
            self.specs.insert(name, spec);
        }
        for id in ids.iter().filter(|i| !seen.contains(i)) {
            let Some(name) = self.symbol_ids.get(id) else {
                continue;
            };
            if let Some(spec) = self.specs.get_mut(name)
                && spec.trading_mode.allows_entries()
            {
                tracing::error!(symbol = %name, symbol_id = id, "the broker no longer answers for the symbol (renamed or removed?): entries refused, exits tried; check executor_config.json's broker_symbol and restart");
                spec.trading_mode = TradingMode::DisabledWithoutPendingsExecution;
                changed.push(spec.clone());
            }
        }
        Ok(changed)
    }

    /// Reads the broker's symbol list again (after a reconnect or a `SymbolChangedEvent`): a
    /// symbol no longer listed under the name it was mapped by (renamed or removed by the
    /// broker) is reported, naming the new name or the close matches, and taken as disabled:
    /// entries refused, exits tried. Returns the specs that changed.
    async fn relist(&mut self) -> Result<Vec<SymbolSpec>, BrokerError> {
        let list = self
            .req(ProtoOaSymbolsListReq {
                ctid_trader_account_id: self.account,
                ..Default::default()
            })
            .await?;
        let Payload::SymbolsListRes(list) = list else {
            return Err(err("SymbolsListReq: unexpected answer"));
        };
        let names: Vec<String> = list
            .symbol
            .iter()
            .filter_map(|s| s.symbol_name.clone())
            .collect();
        let mut gone: Vec<(i64, String)> = Vec::new();
        for (id, model) in &self.symbol_ids {
            let was = self.listed_as.get(id).cloned().unwrap_or_default();
            let now = list
                .symbol
                .iter()
                .find(|s| s.symbol_id == *id)
                .and_then(|s| s.symbol_name.clone());
            if now.as_deref() == Some(was.as_str()) {
                continue;
            }
            let missing = symbols::Missing {
                model: model.clone(),
                broker: was.clone(),
                close: match &now {
                    Some(n) => vec![n.clone()],
                    None => symbols::close_matches(&was, &names),
                },
            };
            tracing::error!(symbol = %model, broker_symbol = %was, now_listed_as = ?now,
                "the broker renamed or removed the symbol: {missing}; entries refused, exits tried until executor_config.json names the broker's symbol and the executor restarts");
            gone.push((*id, model.clone()));
        }
        let mut changed = Vec::new();
        for (id, model) in gone {
            self.symbol_ids.remove(&id);
            if let Some(spec) = self.specs.get_mut(&model)
                && spec.trading_mode.allows_entries()
            {
                spec.trading_mode = TradingMode::DisabledWithoutPendingsExecution;
                changed.push(spec.clone());
            }
        }
        Ok(changed)
    }

    async fn load_trader(&mut self) -> Result<(), BrokerError> {
        let r = self
            .req(ProtoOaTraderReq {
                ctid_trader_account_id: self.account,
                ..Default::default()
            })
            .await?;
        let Payload::TraderRes(r) = r else {
            return Err(err("TraderReq: unexpected answer"));
        };
        self.money_digits = r.trader.money_digits.unwrap_or(2);
        self.leverage = r
            .trader
            .leverage_in_cents
            .map_or(1.0, |l| f64::from(l) / 100.0)
            .max(1.0);
        // The deposit currency (`depositAssetId` named by `AssetListRes`): the guard converts
        // a position's P&L between two account reads into it. Not fatal when unread.
        let assets = match self
            .req(ProtoOaAssetListReq {
                ctid_trader_account_id: self.account,
                ..Default::default()
            })
            .await
        {
            Ok(Payload::AssetListRes(a)) => a.asset,
            Ok(other) => {
                warn!(
                    answer = other.name(),
                    "AssetListReq: unexpected answer; the deposit currency is not known (P&L between account reads taken as in it)"
                );
                Vec::new()
            }
            Err(e) => {
                warn!(error = %e, "AssetListReq failed; the deposit currency is not known (P&L between account reads taken as in it)");
                Vec::new()
            }
        };
        self.currencies = currencies_of(r.trader.deposit_asset_id, &assets, &self.asset_ids);
        match &self.currencies {
            Some(c) => info!(currency = %c.deposit, "account deposit currency"),
            None => warn!(
                deposit_asset_id = r.trader.deposit_asset_id,
                "the account's deposit asset is not in the broker's asset list"
            ),
        }
        Ok(())
    }

    async fn reconcile_raw(
        &self,
    ) -> Result<oracle_ctrader::proto::ProtoOaReconcileRes, BrokerError> {
        let r = self
            .req(ProtoOaReconcileReq {
                ctid_trader_account_id: self.account,
                ..Default::default()
            })
            .await?;
        match r {
            Payload::ReconcileRes(r) => Ok(r),
            _ => Err(err("ReconcileReq: unexpected answer")),
        }
    }

    fn name_of(&self, id: i64) -> String {
        lock(&self.shared.symbols)
            .get(&id)
            .map_or_else(|| id.to_string(), |s| s.0.clone())
    }

    /// Puts an order on the wire: registers the wait for its fill (keyed by client order id,
    /// or `pos:<id>` for a close, so concurrent orders are told apart; the session correlates
    /// each request's first answer by its own `clientMsgId`), then queues the request in the
    /// driver, awaiting neither the driver taking it nor the answer: a batch's orders queued
    /// back to back go out in one write (awaiting each one's hand-over cost a scheduler round
    /// trip per order, 0.7-5 ms for 20).
    async fn submit(&self, key: String, p: impl Into<Payload>) -> LiveTicket {
        let busy = BusyOwned::new(self.shared.clone());
        let (tx, fill) = oneshot::channel();
        lock(&self.shared.fills).insert(key.clone(), tx);
        let state = match self.client.submit(p).await {
            Ok(queued) => TicketState::Sent { queued, fill },
            // Never sent (the driver stopped, or the session refused it): safe to report refused.
            Err(e) => {
                lock(&self.shared.fills).remove(&key);
                TicketState::Answered(OrderResult::Rejected {
                    code: "DRIVER_STOPPED".into(),
                    msg: e.to_string(),
                })
            }
        };
        LiveTicket {
            key,
            state,
            _busy: busy,
        }
    }
}

/// One request and its answer (the event task keeps reading meanwhile: [`Busy`]).
async fn request(
    client: &Client,
    shared: &Shared,
    p: impl Into<Payload>,
) -> Result<Payload, BrokerError> {
    let _busy = Busy::new(shared);
    match client.request(p).await.map_err(err)? {
        Outcome::Response(p) => Ok(p),
        Outcome::Error { code, description } => Err(BrokerError(format!(
            "{code} {}",
            description.unwrap_or_default()
        ))),
        other => Err(BrokerError(format!("unexpected answer: {other:?}"))),
    }
}

/// The account: trader, open positions and their unrealised P&L, the three requests in flight
/// together (one round trip, not three).
async fn read_account(
    client: &Client,
    shared: &Shared,
    account: i64,
    money_digits: u32,
) -> Result<Account, BrokerError> {
    let (t, rec, pnl) = tokio::join!(
        request(
            client,
            shared,
            ProtoOaTraderReq {
                ctid_trader_account_id: account,
                ..Default::default()
            }
        ),
        request(
            client,
            shared,
            ProtoOaReconcileReq {
                ctid_trader_account_id: account,
                ..Default::default()
            }
        ),
        request(
            client,
            shared,
            ProtoOaGetPositionUnrealizedPnLReq {
                ctid_trader_account_id: account,
                ..Default::default()
            }
        ),
    );
    let Payload::TraderRes(t) = t? else {
        return Err(err("TraderReq: unexpected answer"));
    };
    let Payload::ReconcileRes(rec) = rec? else {
        return Err(err("ReconcileReq: unexpected answer"));
    };
    let pnl = match pnl? {
        Payload::GetPositionUnrealizedPnLRes(r) => Some(r),
        _ => None,
    };
    Ok(account_of(&t, &rec, pnl.as_ref(), money_digits))
}

/// An order of [`LiveBroker`] on the wire (see [`Broker::answers`]).
#[derive(Debug)]
pub struct LiveTicket {
    key: String,
    state: TicketState,
    /// Keeps the event task reading while the answer is awaited (pacing).
    _busy: BusyOwned,
}

#[derive(Debug)]
enum TicketState {
    /// Known without waiting (never sent).
    Answered(OrderResult),
    /// Queued in the driver: taken (or refused unsent), then the request's first answer, then
    /// (after `ORDER_ACCEPTED`) its fill.
    Sent {
        queued: Queued,
        fill: oneshot::Receiver<OrderResult>,
    },
}

/// Awaits one ticket's answer: the request's outcome, then, when that was only an acceptance
/// (or no answer), the fill event for up to `fill_timeout`.
async fn settle(shared: &Shared, fill_timeout: Duration, t: LiveTicket) -> OrderResult {
    let (queued, fill) = match t.state {
        TicketState::Answered(r) => return r,
        TicketState::Sent { queued, fill } => (queued, fill),
    };
    let first = match queued.taken().await {
        Ok((_, first)) => first,
        // Never sent (the driver stopped before taking it, or the session refused it): safe
        // to report refused.
        Err(e) => {
            lock(&shared.fills).remove(&t.key);
            return OrderResult::Rejected {
                code: "DRIVER_STOPPED".into(),
                msg: e.to_string(),
            };
        }
    };
    let early = match first.await {
        Ok(Outcome::Execution(ev)) => fill_of(&ev),
        Ok(Outcome::OrderError(ev)) => Some(order_error_result(&ev)),
        Ok(Outcome::Error { code, description }) => Some(OrderResult::Rejected {
            code: code.to_string(),
            msg: description.unwrap_or_default(),
        }),
        // Never sent: safe to report as refused.
        Ok(Outcome::NotSent(r)) => Some(OrderResult::Rejected {
            code: "NOT_SENT".into(),
            msg: format!("{r:?}"),
        }),
        // Sent (or queued) and no answer: wait for the fill event, else unknown.
        Ok(Outcome::Unknown(_)) | Ok(Outcome::Response(_)) => None,
        // The driver stopped after the request was queued: it may be on the wire.
        Err(_) => Some(OrderResult::Unknown),
    };
    if let Some(r) = early {
        lock(&shared.fills).remove(&t.key);
        return r;
    }
    match tokio::time::timeout(fill_timeout, fill).await {
        Ok(Ok(r)) => r,
        _ => {
            lock(&shared.fills).remove(&t.key);
            OrderResult::Unknown
        }
    }
}

/// What the first `GetTrendbarsRes` of [`LiveBroker::history`] says about the broker's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BrokerTime {
    /// Keep the answer; bars are closed by `end` (ms). `broker_ms`: the answer's timestamp when
    /// it is the broker's time (it updates `server_ms`).
    Agrees { end: i64, broker_ms: Option<i64> },
    /// The broker's time (`broker_ms`) is more than a bar away from the window's end: ask again
    /// for the window ending there.
    Differs { broker_ms: i64 },
}

/// The server time of a `GetTrendbarsRes` (a field deprecated in schema 91 that servers still
/// send: the Python SDK 0.9.2 requires it).
#[allow(deprecated)]
fn answer_time(r: &ProtoOaGetTrendbarsRes) -> Option<i64> {
    r.timestamp
}

/// Decides from the first answer to a history window ending at `to` (ms): its `timestamp` (the
/// server time of the answer; deprecated, so possibly absent), the bar period, and the latest
/// open time (ms) among the bars it returned.
///
/// - No timestamp, or one within a period of `to` (the real broker: server time ≈ ours): keep
///   the answer, closed by the later of both times.
/// - A timestamp more than a period ahead (a `fast` replay ran ahead of the wall clock): ask again.
/// - More than a period behind (a replay of the past): ask again, unless the answer holds a bar
///   opened at or after that time: then the timestamp is not the broker's clock (whatever a
///   server puts in the deprecated field), and the answer is kept as it is.
fn broker_time(
    to: i64,
    timestamp: Option<i64>,
    period_ms: i64,
    latest_open_ms: Option<i64>,
) -> BrokerTime {
    let Some(ts) = timestamp.filter(|t| (1..=MAX_TIMESTAMP_MS).contains(t)) else {
        return BrokerTime::Agrees {
            end: to,
            broker_ms: None,
        };
    };
    if (ts - to).abs() <= period_ms {
        return BrokerTime::Agrees {
            end: to.max(ts),
            broker_ms: Some(ts),
        };
    }
    if ts < to && latest_open_ms.is_some_and(|o| o >= ts) {
        return BrokerTime::Agrees {
            end: to,
            broker_ms: None,
        };
    }
    BrokerTime::Differs { broker_ms: ts }
}

impl LiveBroker {
    /// Reads a symbol's trading calendar from its `SymbolByIdRes` entry ([`TradingCalendar`]:
    /// the broker's schedule and holidays in their zones, jiff's tzdb). One the executor cannot
    /// use is named in the log and the symbol taken as open (the broker then refuses orders in
    /// closed hours itself: `MARKET_CLOSED`, a missed entry or a held exit).
    fn load_calendar(&mut self, name: &str, s: &oracle_ctrader::proto::ProtoOaSymbol) {
        match TradingCalendar::from_symbol(s) {
            Ok(c) => {
                if self
                    .calendars
                    .get(name)
                    .is_none_or(|old| old.time_zone() != c.time_zone())
                {
                    info!(symbol = %name, time_zone = %c.time_zone(), intervals = s.schedule.len(),
                        holidays = s.holiday.len(), "trading hours loaded from the broker");
                }
                self.calendars.insert(name.to_string(), c);
            }
            Err(e) => {
                warn!(symbol = %name, error = %e, "the broker's trading hours for the symbol are unusable: taken as open (the broker still refuses orders in closed hours)");
                self.calendars.remove(name);
            }
        }
    }
}

impl LiveBroker {
    /// One `GetTrendbarsReq`: the latest `count` bars opened before `to` (ms), in a window
    /// three times their span (bars are missing where a market was closed).
    async fn trendbars(
        &self,
        symbol_id: i64,
        tf: Timeframe,
        to: i64,
        count: u32,
    ) -> Result<ProtoOaGetTrendbarsRes, BrokerError> {
        let to = to.clamp(0, MAX_TIMESTAMP_MS);
        let span = i64::from(count.max(1)) * tf.seconds() * 1000 * 3;
        let r = self
            .req(ProtoOaGetTrendbarsReq {
                ctid_trader_account_id: self.account,
                from_timestamp: Some((to - span).max(0)),
                to_timestamp: Some(to),
                period: ProtoOaTrendbarPeriod::from(tf) as i32,
                symbol_id,
                count: Some(count),
                ..Default::default()
            })
            .await?;
        match r {
            Payload::GetTrendbarsRes(r) => Ok(r),
            _ => Err(err("GetTrendbarsReq: unexpected answer")),
        }
    }

    /// Looks an order up by its clientOrderId (`OrderListReq`, then `OrderDetailsReq` for its
    /// deals). `Ok(None)` when not found, pending, or the broker does not serve the look-up.
    async fn find_by_client_order_id(
        &mut self,
        o: &OrderLookup,
    ) -> Result<Option<OrderResult>, BrokerError> {
        // A day of margin before the intent: the broker's clock may differ from ours.
        let from = (o.since * 1000 - 86_400_000).max(0);
        let list = match self
            .req(ProtoOaOrderListReq {
                ctid_trader_account_id: self.account,
                from_timestamp: Some(from),
                to_timestamp: Some(MAX_TIMESTAMP_MS),
                ..Default::default()
            })
            .await
        {
            Ok(Payload::OrderListRes(l)) => l,
            Ok(_) => {
                self.order_list_ok = false;
                return Ok(None);
            }
            Err(e) if unsupported(&e) => {
                self.order_list_ok = false;
                warn!(error = %e, "the broker does not answer OrderListReq: unknown orders are found by label/side/volume and deals");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Some(order) = order_with_coid(&list.order, &o.client_order_id) else {
            return Ok(None);
        };
        info!(coid = %o.client_order_id, order_id = order.order_id, status = order.order_status,
            "unknown order found by its client order id");
        let deals = if ProtoOaOrderStatus::try_from(order.order_status).ok()
            == Some(ProtoOaOrderStatus::OrderStatusFilled)
        {
            match self
                .req(ProtoOaOrderDetailsReq {
                    ctid_trader_account_id: self.account,
                    order_id: order.order_id,
                    ..Default::default()
                })
                .await
            {
                Ok(Payload::OrderDetailsRes(d)) => d.deal,
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        Ok(order_outcome(order, &deals))
    }
}

impl Broker for LiveBroker {
    fn connected(&self) -> bool {
        self.shared.up.load(Ordering::SeqCst)
    }

    fn currencies(&self) -> Option<Currencies> {
        self.currencies.clone()
    }

    fn token_expires_at_ms(&self) -> Option<i64> {
        Some(self.shared.token_expires_ms.load(Ordering::SeqCst)).filter(|e| *e > 0)
    }

    async fn symbol(&mut self, name: &str) -> Option<SymbolSpec> {
        self.specs.get(name).cloned()
    }

    async fn changed_specs(&mut self) -> Vec<SymbolSpec> {
        if !self.shared.specs_stale.swap(false, Ordering::SeqCst) {
            return Vec::new();
        }
        let gone = match self.relist().await {
            Ok(gone) => gone,
            Err(e) => {
                self.shared.specs_stale.store(true, Ordering::SeqCst);
                warn!(error = %e, "the broker's symbol list not read again: asked again at the next signal");
                return Vec::new();
            }
        };
        match self.read_specs().await {
            Ok(mut changed) => {
                changed.extend(gone);
                changed
            }
            Err(e) => {
                // Asked again before the next decision.
                self.shared.specs_stale.store(true, Ordering::SeqCst);
                warn!(error = %e, "symbol facts not read again (trading mode unknown): asked again at the next signal");
                gone
            }
        }
    }

    fn week_end(&self, symbol: &str, utc_ms: i64) -> Option<crate::broker::WeekEnd> {
        let cal = self.calendars.get(symbol)?;
        let (at, shift) = broker_instant(utc_ms, self.replay_ms(utc_ms));
        oracle_executor_core::restrictions::week_end(
            at,
            |t| cal.next_close(t),
            |t| cal.next_open(t),
        )
        .map(|w| crate::broker::WeekEnd {
            close_ms: w.close_ms.saturating_add(shift),
            open_ms: w.open_ms.saturating_add(shift),
        })
    }

    fn closed(&self, symbol: &str, utc_ms: i64) -> Option<crate::broker::Closed> {
        let cal = self.calendars.get(symbol)?;
        let (at, shift) = broker_instant(utc_ms, self.replay_ms(utc_ms));
        (!cal.is_open(at)).then(|| crate::broker::Closed {
            until_ms: cal.next_open(at).map(|t| t.saturating_add(shift)),
        })
    }

    fn quote(&self, symbol: &str) -> Option<Quote> {
        let spec = self.specs.get(symbol)?;
        let q = lock(&self.shared.quotes);
        let (Some(b), Some(a)) = q.get(&spec.id).copied()? else {
            return None;
        };
        Some(Quote {
            bid: units::price_to_f64(b as i64, spec.digits),
            ask: units::price_to_f64(a as i64, spec.digits),
        })
    }

    async fn account(&mut self) -> Result<Account, BrokerError> {
        read_account(&self.client, &self.shared, self.account, self.money_digits).await
    }

    fn account_ahead(&mut self) -> Option<crate::broker::AccountRead> {
        // Its own task: the engine's loop goes on (the other bars out, the SIGNALs in) while
        // the three requests are on the wire.
        let (tx, rx) = oneshot::channel();
        let (client, shared) = (self.client.clone(), self.shared.clone());
        let (account, money_digits) = (self.account, self.money_digits);
        tokio::spawn(async move {
            let _ = tx.send(read_account(&client, &shared, account, money_digits).await);
        });
        Some(rx)
    }

    async fn expected_margin(
        &mut self,
        symbol: &str,
        volume: i64,
        buy: bool,
    ) -> Result<f64, BrokerError> {
        self.expected_margins(&[(symbol.to_string(), volume, buy)])
            .await
            .pop()
            .unwrap_or_else(|| Err(err("ExpectedMarginReq: no answer")))
    }

    /// One `ExpectedMarginReq` per symbol (carrying every volume asked for it), all in flight
    /// together: a batch of entries waits one round trip, not one per entry. An ask for a
    /// symbol the broker does not list, a volume missing from the answer, and every ask once the
    /// broker is found not to answer the request: the estimate (units × price / leverage).
    async fn expected_margins(
        &mut self,
        asks: &[(String, i64, bool)],
    ) -> Vec<Result<f64, BrokerError>> {
        // Margins the broker gave recently for the same (symbol, volume, side), scaled to the
        // current price: not asked again (MARGIN_RATE_TTL).
        let price = |b: &Self, symbol: &str, buy: bool| {
            b.quote(symbol)
                .map(|q| if buy { q.ask } else { q.bid })
                .filter(|p| *p > 0.0)
        };
        let cached: Vec<Option<f64>> = asks
            .iter()
            .map(|(symbol, volume, buy)| {
                let (rate, at) = self.margin_rates.get(&(symbol.clone(), *volume, *buy))?;
                (at.elapsed() < MARGIN_RATE_TTL)
                    .then(|| price(self, symbol, *buy).map(|p| rate * p))
                    .flatten()
            })
            .collect();
        // (symbol id, volumes) per request, and the request of each ask.
        let mut reqs: Vec<(i64, Vec<i64>)> = Vec::new();
        let mut req_of: Vec<Option<usize>> = vec![None; asks.len()];
        if self.expected_margin_ok {
            for (((symbol, volume, _), r), c) in asks.iter().zip(&mut req_of).zip(&cached) {
                if c.is_some() {
                    continue;
                }
                let Some(spec) = self.specs.get(symbol) else {
                    continue;
                };
                let i = match reqs.iter().position(|(id, _)| *id == spec.id) {
                    Some(i) => i,
                    None => {
                        reqs.push((spec.id, Vec::new()));
                        reqs.len() - 1
                    }
                };
                if !reqs[i].1.contains(volume) {
                    reqs[i].1.push(*volume);
                }
                *r = Some(i);
            }
        }
        let account = self.account;
        let answers = futures_util::future::join_all(reqs.iter().map(|(symbol_id, volumes)| {
            self.req(ProtoOaExpectedMarginReq {
                ctid_trader_account_id: account,
                symbol_id: *symbol_id,
                volume: volumes.clone(),
                ..Default::default()
            })
        }))
        .await;
        for a in &answers {
            let not_served = match a {
                Ok(Payload::ExpectedMarginRes(_)) => None,
                Ok(_) => Some("unexpected answer".to_string()),
                Err(e) if unsupported(e) => Some(e.to_string()),
                Err(_) => None,
            };
            if let Some(e) = not_served
                && self.expected_margin_ok
            {
                self.expected_margin_ok = false;
                warn!(error = %e, "the broker does not answer ExpectedMarginReq: estimating margin as units × price / leverage from now on");
            }
        }
        let mut out = Vec::with_capacity(asks.len());
        for (((symbol, volume, buy), r), c) in asks.iter().zip(req_of).zip(cached) {
            if let Some(m) = c {
                out.push(Ok(m));
                continue;
            }
            match r.map(|i| &answers[i]) {
                Some(Ok(Payload::ExpectedMarginRes(m))) => {
                    if let Some(margin) = margin_of(m, *volume, *buy, self.money_digits) {
                        if let Some(p) = price(self, symbol, *buy) {
                            self.margin_rates.insert(
                                (symbol.clone(), *volume, *buy),
                                (margin / p, std::time::Instant::now()),
                            );
                        }
                        out.push(Ok(margin));
                        continue;
                    }
                }
                Some(Err(e)) if !unsupported(e) => {
                    out.push(Err(e.clone()));
                    continue;
                }
                _ => {}
            }
            out.push(self.estimate_margin(symbol, *volume, *buy));
        }
        out
    }

    async fn prefetch_margins(&mut self, asks: &[(String, i64, bool)]) {
        // Refreshed at half their life, so a reversal finds them fresh.
        let stale: Vec<(String, i64, bool)> = asks
            .iter()
            .filter(|(symbol, volume, buy)| {
                self.quote(symbol).is_some()
                    && self
                        .margin_rates
                        .get(&(symbol.clone(), *volume, *buy))
                        .is_none_or(|(_, at)| at.elapsed() >= MARGIN_RATE_TTL / 2)
            })
            .cloned()
            .collect();
        if stale.is_empty() || !self.expected_margin_ok {
            return;
        }
        for (symbol, volume, buy) in &stale {
            self.margin_rates.remove(&(symbol.clone(), *volume, *buy));
        }
        for (a, r) in stale.iter().zip(self.expected_margins(&stale).await) {
            if let Err(e) = r {
                info!(symbol = %a.0, volume = a.1, error = %e, "margin prefetch failed (asked again at the entry)");
            }
        }
    }

    type Ticket = LiveTicket;

    async fn submit_open(&mut self, r: &OrderReq) -> LiveTicket {
        let Some(spec) = self.specs.get(&r.symbol) else {
            return LiveTicket {
                key: r.client_order_id.clone(),
                state: TicketState::Answered(OrderResult::Rejected {
                    code: "UNKNOWN_SYMBOL".into(),
                    msg: r.symbol.clone(),
                }),
                _busy: BusyOwned::new(self.shared.clone()),
            };
        };
        let req = new_order_req(self.account, spec.id, r);
        self.submit(r.client_order_id.clone(), req).await
    }

    async fn submit_close(&mut self, position_id: u64, volume: i64, _coid: &str) -> LiveTicket {
        let req = close_position_req(self.account, position_id, volume);
        self.submit(close_key(position_id), req).await
    }

    async fn answers(&mut self, tickets: Vec<LiveTicket>) -> Vec<OrderResult> {
        let shared = &*self.shared;
        let timeout = self.fill_timeout;
        futures_util::future::join_all(tickets.into_iter().map(|t| settle(shared, timeout, t)))
            .await
    }

    async fn reconcile(&mut self) -> Result<Vec<BrokerPosition>, BrokerError> {
        let r = self.reconcile_raw().await?;
        Ok(positions_of(&r, |id| self.name_of(id)))
    }

    async fn find_order(&mut self, o: &OrderLookup) -> Result<Option<OrderResult>, BrokerError> {
        // Exact: our clientOrderId in the order list (opening orders carry it).
        if o.closes.is_none()
            && self.order_list_ok
            && let Some(r) = self.find_by_client_order_id(o).await?
        {
            return Ok(Some(r));
        }
        let positions = self.reconcile_raw().await?;
        let deals = self
            .req(ProtoOaDealListReq {
                ctid_trader_account_id: self.account,
                from_timestamp: Some(o.since * 1000),
                to_timestamp: Some(utc_ms()),
                max_rows: Some(1000),
                ..Default::default()
            })
            .await?;
        let Payload::DealListRes(deals) = deals else {
            return Err(err("DealListReq: unexpected answer"));
        };
        Ok(lookup_in_positions_and_deals(o, &positions, &deals, |id| {
            self.name_of(id)
        }))
    }

    fn position_pnl(&self, _position_id: u64) -> Option<f64> {
        None
    }

    async fn history(
        &mut self,
        symbol: &str,
        tf: Timeframe,
        count: u32,
    ) -> Result<Vec<Bar>, BrokerError> {
        let spec = self
            .specs
            .get(symbol)
            .ok_or_else(|| err("unknown symbol"))?
            .clone();
        let period_ms = tf.seconds() * 1000;
        // The broker's time, as far as we know it: the real broker runs on the wall clock; a
        // simulator replaying `fast` runs ahead of it (spot times and bar ends tell). Once the
        // broker was found to be a replay, its latest time seen (which may be in the past) is
        // the better guess.
        let wall = utc_ms();
        let server = self.shared.server_ms.load(Ordering::SeqCst);
        let to = if self.replay_clock && server > 0 {
            server
        } else {
            wall.max(server)
        };
        let first = self.trendbars(spec.id, tf, to, count).await?;
        let latest_open_ms = first
            .trendbar
            .iter()
            .filter_map(|tb| units::decode_trendbar(tb).ok())
            .map(|b| b.open_time * 1000)
            .max();
        let (bars, end) = match broker_time(to, answer_time(&first), period_ms, latest_open_ms) {
            BrokerTime::Agrees { end, broker_ms } => {
                if let Some(t) = broker_ms {
                    self.shared.server_ms.fetch_max(t, Ordering::SeqCst);
                }
                (first.trendbar, end)
            }
            BrokerTime::Differs { broker_ms } => {
                // A replay: its clock is not ours. Ask again for the window ending at its time
                // (at most two historical requests per stream: within the 5/s limit).
                if !self.replay_clock {
                    self.replay_clock = true;
                    info!(
                        wall_clock = %oracle_ipc::Iso(wall.div_euclid(1000)),
                        broker_time = %oracle_ipc::Iso(broker_ms.div_euclid(1000)),
                        "the broker's clock differs from ours by more than a bar (a replay): history ends at the broker's time"
                    );
                }
                self.shared.server_ms.fetch_max(broker_ms, Ordering::SeqCst);
                let again = self.trendbars(spec.id, tf, broker_ms, count).await?;
                // Its own timestamp: the broker's time a moment later.
                if let Some(t) =
                    answer_time(&again).filter(|t| (broker_ms..=MAX_TIMESTAMP_MS).contains(t))
                {
                    self.shared.server_ms.fetch_max(t, Ordering::SeqCst);
                }
                (again.trendbar, broker_ms)
            }
        };
        let mut out = Vec::new();
        for tb in &bars {
            let Ok(b) = units::decode_trendbar(tb) else {
                continue;
            };
            // Closed bars only: closed by the broker's time.
            if (b.open_time + tf.seconds()) * 1000 > end {
                continue;
            }
            out.push(bar_data(&b, spec.digits));
        }
        out.sort_by_key(|b| b.time);
        let n = out.len().saturating_sub(count as usize);
        Ok(out.split_off(n))
    }
}

/// How far the broker's time may run ahead of ours and still be taken as our clock: 5 minutes.
///
/// The real broker's spot times trail or lead the wall clock by network delay (milliseconds) and
/// the two hosts' clock skew (milliseconds under NTP, seconds to a minute or two on a host whose
/// NTP has failed for weeks); its latest time seen is also stale in a quiet market. Judging its
/// hours at that time instead of ours would only move a decision at a session's edge by that
/// much (the broker refuses `MARKET_CLOSED` itself there, and held exits are tried again), so
/// such a broker stays on our clock. A simulator replaying bundled bars runs hours or days ahead
/// (the soak's, on a weekend: Friday's market on a Saturday): its hours are judged at its time.
/// Five minutes is far above any real skew and far below any replay's lead.
const BROKER_AHEAD_MS: i64 = 5 * 60_000;

/// The broker's own time at which its trading hours are judged for our instant `now_ms`, from
/// its latest time seen `server_ms` (0: none yet): a replay (`replay_clock`: `history` found its
/// clock more than a bar from ours, e.g. a replay of the past) or a broker more than
/// [`BROKER_AHEAD_MS`] ahead of us (a simulator running ahead of the wall clock). `None`: our own
/// instant (the real broker, whose spot times trail the wall clock or lead it by its skew).
fn replay_time(now_ms: i64, server_ms: i64, replay_clock: bool) -> Option<i64> {
    let ahead = server_ms.saturating_sub(now_ms) > BROKER_AHEAD_MS;
    (server_ms > 0 && (replay_clock || ahead)).then_some(server_ms)
}

/// Where the broker's trading hours are judged for our instant `now_ms`, and the shift that
/// brings the broker's instants back onto our clock: the real broker runs on the wall clock (our
/// instant, no shift); a replay (`replay_ms`: its latest time seen) runs on its own, so a
/// simulator days ahead of the wall clock is closed when *its* calendar says so, not ours.
fn broker_instant(now_ms: i64, replay_ms: Option<i64>) -> (i64, i64) {
    match replay_ms {
        Some(b) => (b, now_ms.saturating_sub(b)),
        None => (now_ms, 0),
    }
}

/// `--dry-run`: the paper book follows the live session's market (its calendar and symbol
/// modes); the session is reachable through nothing else, so it gets no order.
impl crate::paper::Market for LiveBroker {
    fn closed(&self, symbol: &str, utc_ms: i64) -> Option<crate::broker::Closed> {
        Broker::closed(self, symbol, utc_ms)
    }
    fn week_end(&self, symbol: &str, utc_ms: i64) -> Option<crate::broker::WeekEnd> {
        Broker::week_end(self, symbol, utc_ms)
    }
    fn changed_specs(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<SymbolSpec>> + '_>> {
        Box::pin(Broker::changed_specs(self))
    }
}

#[cfg(test)]
mod tests {
    use super::{BROKER_AHEAD_MS, BrokerTime, broker_instant, broker_time, replay_time};

    #[test]
    fn the_deposit_currency_and_the_symbols_assets_are_named_from_the_asset_list() {
        use oracle_ctrader::proto::ProtoOaAsset;
        let asset = |asset_id: i64, name: &str| ProtoOaAsset {
            asset_id,
            name: name.into(),
            ..Default::default()
        };
        let assets = [asset(1, "USD"), asset(2, "EUR"), asset(3, "JPY")];
        let ids = [
            ("EURJPY".to_string(), (2, 3)),
            ("USDJPY".to_string(), (1, 3)),
            // An asset the list does not have: the symbol is left out.
            ("XAUUSD".to_string(), (9, 1)),
        ]
        .into();
        let c = super::currencies_of(2, &assets, &ids).expect("the deposit asset is listed");
        assert_eq!(c.deposit, "EUR");
        assert_eq!(c.assets.len(), 2, "{c:?}");
        assert_eq!(c.assets["EURJPY"], ("EUR".to_string(), "JPY".to_string()));
        assert_eq!(c.assets["USDJPY"], ("USD".to_string(), "JPY".to_string()));
        assert_eq!(super::currencies_of(7, &assets, &ids), None);
    }

    const M15: i64 = 900_000;
    /// 2025-01-15T10:00:00Z.
    const NOW: i64 = 1_736_935_200_000;

    #[test]
    fn a_replays_hours_are_judged_at_its_time_and_its_instants_come_back_onto_our_clock() {
        // The real broker: our instant, no shift.
        assert_eq!(broker_instant(NOW, None), (NOW, 0));
        // A replay three days ahead of us (a Saturday for us, a Wednesday for it): its hours
        // are judged at its time; its next open 2 h on is 2 h on for us too.
        let ahead = NOW + 3 * 86_400_000;
        let (at, shift) = broker_instant(NOW, Some(ahead));
        assert_eq!(at, ahead);
        assert_eq!(ahead + 2 * 3_600_000 + shift, NOW + 2 * 3_600_000);
        // Behind us (a replay of the past) as well.
        let behind = NOW - 400 * 86_400_000;
        let (at, shift) = broker_instant(NOW, Some(behind));
        assert_eq!((at, behind + shift), (behind, NOW));
    }

    #[test]
    fn a_broker_ahead_of_us_by_less_than_the_threshold_is_on_our_clock_by_more_on_its_own() {
        // Ahead by network delay and clock skew (seconds, a minute, the threshold itself): our
        // clock, our instant, no shift.
        for lead in [1, 2_000, 60_000, BROKER_AHEAD_MS] {
            assert_eq!(
                replay_time(NOW, NOW + lead, false),
                None,
                "ahead by {lead} ms"
            );
            assert_eq!(
                broker_instant(NOW, replay_time(NOW, NOW + lead, false)),
                (NOW, 0)
            );
        }
        // A millisecond more, or a simulator days ahead (our Saturday, its Friday): its time.
        for lead in [BROKER_AHEAD_MS + 1, 3 * 86_400_000] {
            let b = replay_time(NOW, NOW + lead, false);
            assert_eq!(b, Some(NOW + lead), "ahead by {lead} ms");
            let (at, shift) = broker_instant(NOW, b);
            assert_eq!((at, at + shift), (NOW + lead, NOW));
        }
        // Behind us (the real broker's last tick before a quiet hour): our clock, unless
        // `history` found a replay; a replay is judged at its time whether behind or ahead.
        assert_eq!(replay_time(NOW, NOW - 3_600_000, false), None);
        for server in [NOW - 400 * 86_400_000, NOW + 2_000, NOW + 3 * 86_400_000] {
            assert_eq!(replay_time(NOW, server, true), Some(server));
        }
        // No broker time seen yet: our clock.
        assert_eq!(replay_time(NOW, 0, true), None);
        assert_eq!(replay_time(NOW, 0, false), None);
    }

    #[test]
    fn the_real_broker_keeps_its_single_answer() {
        // No timestamp (a server that drops the deprecated field): the window's end.
        assert_eq!(
            broker_time(NOW, None, M15, Some(NOW - M15)),
            BrokerTime::Agrees {
                end: NOW,
                broker_ms: None
            }
        );
        // Server time a little behind or ahead of ours: one request, closed by the later.
        assert_eq!(
            broker_time(NOW, Some(NOW - 2_000), M15, Some(NOW - M15)),
            BrokerTime::Agrees {
                end: NOW,
                broker_ms: Some(NOW - 2_000)
            }
        );
        assert_eq!(
            broker_time(NOW, Some(NOW + M15), M15, Some(NOW)),
            BrokerTime::Agrees {
                end: NOW + M15,
                broker_ms: Some(NOW + M15)
            }
        );
        // Nonsense in the deprecated field is ignored.
        for ts in [0, -5, i64::MAX] {
            assert_eq!(
                broker_time(NOW, Some(ts), M15, None),
                BrokerTime::Agrees {
                    end: NOW,
                    broker_ms: None
                }
            );
        }
    }

    #[test]
    fn a_replay_ahead_or_behind_is_asked_again_at_its_time() {
        let ahead = NOW + 40 * M15;
        assert_eq!(
            broker_time(NOW, Some(ahead), M15, Some(NOW - M15)),
            BrokerTime::Differs { broker_ms: ahead }
        );
        // 2001: the window ending at our clock held nothing.
        let past = 983_750_400_000;
        assert_eq!(
            broker_time(NOW, Some(past), M15, None),
            BrokerTime::Differs { broker_ms: past }
        );
        // Behind by a few bars, the answer's bars all before its time: asked again too.
        assert_eq!(
            broker_time(NOW, Some(NOW - 3 * M15), M15, Some(NOW - 5 * M15)),
            BrokerTime::Differs {
                broker_ms: NOW - 3 * M15
            }
        );
    }

    #[test]
    fn a_timestamp_older_than_the_bars_it_came_with_is_not_the_brokers_clock() {
        // E.g. the time of a bar, or of the last tick before a weekend: the answer stays.
        let ts = NOW - 8 * M15;
        for latest in [ts, NOW - M15] {
            assert_eq!(
                broker_time(NOW, Some(ts), M15, Some(latest)),
                BrokerTime::Agrees {
                    end: NOW,
                    broker_ms: None
                }
            );
        }
    }
}
