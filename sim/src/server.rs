//! The thin Tokio shell: a TLS listener on loopback, one task per connection that only moves
//! frames, and one task that owns the [`Broker`] and its clock.
//!
//! - Every broker input comes from one task (the actor), in the order it receives them; its
//!   `tokio::select!` is `biased` (inbound first, then timers, then market steps).
//! - Outbound queues are bounded; a connection whose queue is full is dropped as a slow consumer.
//!   In fast speed the market steps only when every connection's queue has room, so the clients'
//!   reading pace drives the replay.
//! - Frames from a client: 4-byte big-endian length + `ProtoMessage` (the `oracle-ctrader` frame
//!   decoder, maximum 15,000,000 bytes by default). A length over the maximum or a body that is
//!   not a `ProtoMessage` gets a `ProtoErrorRes` and the connection is closed; the server goes on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::bars::Period;
use crate::broker::{BadFrame, Broker, Output};
use crate::config::BrokerConfig;
use crate::market::{Market, Start};
use crate::msg::{ConnId, Event, Request};
use crate::symbols::SymbolData;
use crate::timing::Timing;
use crate::tls::{self, TlsSource};
use crate::wire;

/// Everything needed to run a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Listen address (default 127.0.0.1:0: an ephemeral loopback port).
    pub listen: SocketAddr,
    /// Broker settings (credentials, accounts, speed, limits, faults).
    pub broker: BrokerConfig,
    /// Symbols and their bars.
    pub symbols: Vec<SymbolData>,
    /// Replay start.
    pub start: Start,
    /// TLS certificate source.
    pub tls: TlsSource,
    /// Largest frame body accepted from a client.
    pub max_frame_len: usize,
    /// Outbound queue length per connection (frames).
    pub queue_len: usize,
    /// Publish only this many live bars (see [`Market::limit_live_bars`]).
    pub live_bars: Option<usize>,
    /// Hold the replay until this file exists (checked every 100 ms).
    pub start_file: Option<std::path::PathBuf>,
    /// Write the CA PEM here before the listener is bound (so a client that sees the port
    /// open can read it).
    pub ca_out: Option<std::path::PathBuf>,
    /// Shift every bar by whole days so the replay starts at or just after the wall clock's
    /// now: server times then look live (a client that also closes bars by its own clock sees
    /// market time at or ahead of it, never behind).
    pub rebase_to_now: bool,
    /// The timing hook (`--timing-out`): when set, this file is created (truncated) and gets one
    /// JSONL line per closed live bar written to a client (`bar_close`), per `NewOrderReq`
    /// decoded (`new_order`) and per connection end or fault silence (`disconnect`), each with
    /// the wall clock in µs (`t_us`). See the crate's README, "Timing hook". Off by default.
    pub timing_out: Option<std::path::PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            broker: BrokerConfig::default(),
            symbols: Vec::new(),
            start: Start::AfterBars(500),
            tls: TlsSource::Generate,
            max_frame_len: oracle_ctrader::frame::DEFAULT_MAX_FRAME_LEN,
            queue_len: 4096,
            live_bars: None,
            start_file: None,
            ca_out: None,
            rebase_to_now: false,
            timing_out: None,
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// PEM of the CA clients must trust.
    pub ca_pem: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Ask the broker actor for a snapshot of an account (tests, status).
    query: mpsc::Sender<ActorMsg>,
    replay_done: watch::Receiver<bool>,
}

impl SimHandle {
    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Account figures (balance, equity, margins) as the broker sees them now.
    pub async fn account(&self, id: i64) -> Option<crate::broker::AccountView> {
        let (tx, rx) = oneshot::channel();
        self.query
            .send(ActorMsg::Account { id, reply: tx })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Runs `f` on the broker (between two requests, with the actor's now in ms) and returns its
    /// result: the test hooks ([`crate::broker::Broker::set_balance`],
    /// [`crate::broker::Broker::close_position_outside`],
    /// [`crate::broker::Broker::set_spread_points`],
    /// [`crate::broker::Broker::new_orders_with_client_id`], …). `None` when the sim stopped.
    pub async fn with_broker<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::broker::Broker, i64) -> R + Send + Sync + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let hook = Box::new(move |b: &mut crate::broker::Broker, now: i64| {
            let _ = tx.send(f(b, now));
        });
        self.query.send(ActorMsg::Hook(Hook(hook))).await.ok()?;
        rx.await.ok()
    }

    /// Sets an account's balance in cents (equity follows).
    pub async fn set_balance(&self, account_id: i64, balance_cents: i64) -> bool {
        self.with_broker(move |b, _| b.set_balance(account_id, balance_cents))
            .await
            .unwrap_or(false)
    }

    /// Closes a position as a stop-out or a manual close elsewhere would.
    pub async fn close_position_outside(&self, account_id: i64, position_id: i64) -> bool {
        self.with_broker(move |b, now| b.close_position_outside(now, account_id, position_id))
            .await
            .unwrap_or(false)
    }

    /// Sets a symbol's spread (points).
    pub async fn set_spread_points(&self, symbol: &str, points: i64) -> bool {
        let symbol = symbol.to_string();
        self.with_broker(move |b, _| b.set_spread_points(&symbol, points))
            .await
            .unwrap_or(false)
    }

    /// Sets a symbol's `tradingMode` (0 ENABLED, 1/2 disabled, 3 CLOSE_ONLY_MODE) and announces
    /// it (`SymbolChangedEvent`). False for an unknown symbol (the broker's name).
    pub async fn set_trading_mode(&self, symbol: &str, mode: i32) -> bool {
        let symbol = symbol.to_string();
        self.with_broker(move |b, now| b.set_trading_mode(now, &symbol, mode))
            .await
            .unwrap_or(false)
    }

    /// Renames a symbol (the broker's name) and announces it (`SymbolChangedEvent`). False for
    /// an unknown symbol.
    pub async fn rename_symbol(&self, symbol: &str, to: &str) -> bool {
        let (symbol, to) = (symbol.to_string(), to.to_string());
        self.with_broker(move |b, now| b.rename_symbol(now, &symbol, &to))
            .await
            .unwrap_or(false)
    }

    /// NewOrderReq received with this clientOrderId.
    pub async fn new_orders_with_client_id(&self, client_order_id: &str) -> u64 {
        let c = client_order_id.to_string();
        self.with_broker(move |b, _| b.new_orders_with_client_id(&c))
            .await
            .unwrap_or(0)
    }

    /// NewOrderReq received per clientOrderId, for every id seen (a resend counts twice; the
    /// chaos proof's "no order twice").
    pub async fn new_orders_by_client_id(&self) -> BTreeMap<String, u64> {
        self.with_broker(|b, _| b.new_orders_by_client_id().clone())
            .await
            .unwrap_or_default()
    }

    /// Connections the sim reset (`drop:after`, `drop:random`) or silenced (`silence:after`)
    /// because of a fault, since it started.
    pub async fn fault_disconnects(&self) -> u64 {
        self.with_broker(|b, _| b.fault_disconnects())
            .await
            .unwrap_or(0)
    }

    /// Trading requests received of any kind (orders, closes, cancels, amends): a dry run's
    /// proof that none was sent.
    pub async fn trading_requests(&self) -> u64 {
        self.with_broker(|b, _| b.trading_requests())
            .await
            .unwrap_or(0)
    }

    /// Open position ids of an account.
    pub async fn position_ids(&self, account_id: i64) -> Vec<i64> {
        self.with_broker(move |b, _| b.position_ids(account_id))
            .await
            .unwrap_or_default()
    }

    /// Waits until the replay is over (data exhausted or the live-bar limit reached).
    pub async fn replay_done(&self) {
        let mut rx = self.replay_done.clone();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Number of open client connections.
    pub async fn connections(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self
            .query
            .send(ActorMsg::Connections { reply: tx })
            .await
            .is_err()
        {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

type HookFn = Box<dyn FnOnce(&mut crate::broker::Broker, i64) + Send + Sync>;

/// A test hook for the broker actor.
struct Hook(HookFn);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // transient
enum ActorMsg {
    Connected {
        reply: oneshot::Sender<ConnId>,
        tx: mpsc::Sender<OutFrame>,
    },
    Request {
        conn: ConnId,
        cmid: Option<String>,
        req: Request,
    },
    BadFrame {
        conn: ConnId,
        bad: BadFrame,
    },
    Closed {
        conn: ConnId,
    },
    Account {
        id: i64,
        reply: oneshot::Sender<Option<crate::broker::AccountView>>,
    },
    /// A test hook run on the broker actor (with the wall clock's now).
    Hook(Hook),
    Connections {
        reply: oneshot::Sender<usize>,
    },
}

#[derive(Debug)]
enum OutFrame {
    Bytes {
        bytes: Vec<u8>,
        delay_ms: u64,
        kind: &'static str,
        /// Timing hook only (else empty): (symbol id, period, open time ms) of the live bars
        /// this frame shows closed.
        closes: Vec<(i64, Period, i64)>,
    },
    /// Timing hook only: the `silence` fault fired on this connection.
    Silenced {
        reason: String,
    },
    Close {
        graceful: bool,
        reason: String,
    },
}

/// The shell's clock: Unix ms, monotonic (anchored at start).
#[derive(Clone, Copy, Debug)]
struct Clock {
    anchor: Instant,
    unix0: i64,
}

impl Clock {
    fn new() -> Self {
        let unix0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock {
            anchor: Instant::now(),
            unix0,
        }
    }
    fn now_ms(&self) -> i64 {
        self.unix0 + self.anchor.elapsed().as_millis() as i64
    }
    fn instant_of(&self, ms: i64) -> tokio::time::Instant {
        let d = Duration::from_millis((ms - self.unix0).max(0) as u64);
        tokio::time::Instant::from_std(self.anchor + d)
    }
}

/// Starts a simulator in the current Tokio runtime: binds, generates or loads the certificate,
/// and returns at once with the address and the CA PEM.
pub async fn spawn(config: SimConfig) -> anyhow::Result<SimHandle> {
    let clock = Clock::new();
    let mut market = Market::new(config.symbols.clone(), config.start);
    if config.rebase_to_now {
        let day = 86_400_000;
        let behind = (clock.now_ms() - market.start_ms).max(0);
        let shift = (behind + day - 1) / day * day;
        let mut symbols = config.symbols.clone();
        for s in &mut symbols {
            for b in &mut s.bars {
                b.time_ms += shift;
            }
        }
        tracing::info!(
            days = shift / day,
            "bars shifted to start at the wall clock"
        );
        market = Market::new(symbols, Start::At(market.start_ms + shift));
    }
    if let Some(n) = config.live_bars {
        market.limit_live_bars(n);
    }
    let mut broker = Broker::new(config.broker.clone(), market, clock.now_ms())?;
    let timing = match &config.timing_out {
        Some(path) => {
            let names = broker
                .market()
                .symbols
                .iter()
                .map(|s| (s.id, s.spec.name.clone()))
                .collect();
            let t = Timing::create(path, names)?;
            tracing::info!(path = %path.display(), "timing hook on");
            Some(Arc::new(t))
        }
        None => None,
    };
    if config.start_file.is_some() {
        broker.set_paused(clock.now_ms(), true);
    }
    let tls = tls::load(&config.tls)?;
    if let Some(path) = &config.ca_out {
        tls::write_ca(path, &tls.ca_pem)?;
        tracing::info!(path = %path.display(), "CA certificate written");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening on a non-loopback address");
    }
    tracing::info!(%addr, symbols = broker.market().symbols.len(), "oracle-sim listening (TLS)");
    let (actor_tx, actor_rx) = mpsc::channel::<ActorMsg>(1024);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let drained = Arc::new(Notify::new());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
    let max_frame = config.max_frame_len;
    let queue_len = config.queue_len.max(64);

    let (done_tx, done_rx) = watch::channel(false);
    let actor = tokio::spawn(run_actor(
        broker,
        clock,
        actor_rx,
        drained.clone(),
        config.start_file.clone(),
        done_tx,
        timing.is_some(),
    ));
    let accept_tx = actor_tx.clone();
    let task = tokio::spawn(async move {
        let mut shutdown_rx = shutdown_rx;
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown_rx => break,
                acc = listener.accept() => match acc {
                    Ok((tcp, peer)) => {
                        let acceptor = acceptor.clone();
                        let tx = accept_tx.clone();
                        let drained = drained.clone();
                        let timing = timing.clone();
                        conns.spawn(async move {
                            if let Err(e) = run_connection(tcp, peer, acceptor, tx, drained, max_frame, queue_len, timing).await {
                                tracing::debug!(%peer, "connection ended: {e:#}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        // aborted at their next await: no frame and no timing line after this returns
        conns.shutdown().await;
        drop(accept_tx);
        actor.abort();
        let _ = actor.await;
        tracing::info!("oracle-sim stopped");
    });
    Ok(SimHandle {
        addr,
        ca_pem: tls.ca_pem,
        shutdown: Some(shutdown_tx),
        task: Some(task),
        query: actor_tx,
        replay_done: done_rx,
    })
}

async fn run_actor(
    mut broker: Broker,
    clock: Clock,
    mut rx: mpsc::Receiver<ActorMsg>,
    drained: Arc<Notify>,
    mut start_file: Option<std::path::PathBuf>,
    done: watch::Sender<bool>,
    timing: bool,
) {
    let mut outs: BTreeMap<ConnId, mpsc::Sender<OutFrame>> = BTreeMap::new();
    if let Some(f) = &start_file {
        tracing::info!(file = %f.display(), "replay held until the start file exists");
    }
    loop {
        route_outputs(&mut broker, &mut outs, &clock, timing);
        if start_file.is_none() && !*done.borrow() && broker.replay_done() {
            tracing::info!(market_time = %crate::bars::format_iso_utc(broker.market().now_ms), "replay done");
            let _ = done.send(true);
        }
        let held = start_file.is_some();
        let deadline = broker.poll_timeout();
        let wants_step = broker.wants_step(clock.now_ms());
        let room = outs.values().all(|tx| tx.capacity() >= 64);
        let sleep_until = deadline.map(|d| clock.instant_of(d));
        tokio::select! {
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let now = clock.now_ms();
                match msg {
                    ActorMsg::Connected { reply, tx } => {
                        let id = broker.connect(now);
                        outs.insert(id, tx);
                        let _ = reply.send(id);
                    }
                    ActorMsg::Request { conn, cmid, req } => broker.handle_request(now, conn, cmid, req),
                    ActorMsg::BadFrame { conn, bad } => broker.handle_bad_frame(now, conn, bad),
                    ActorMsg::Closed { conn } => {
                        broker.disconnect(conn, now);
                        outs.remove(&conn);
                    }
                    ActorMsg::Account { id, reply } => { let _ = reply.send(broker.account_view(id)); }
                    ActorMsg::Hook(Hook(f)) => f(&mut broker, now),
                    ActorMsg::Connections { reply } => { let _ = reply.send(broker.connection_count()); }
                }
            }
            _ = async { if let Some(t) = sleep_until { tokio::time::sleep_until(t).await } }, if sleep_until.is_some() => {
                broker.handle_timeout(clock.now_ms());
            }
            _ = std::future::ready(()), if wants_step && room => {
                broker.step_market(clock.now_ms());
                // let the connection tasks write before the next step
                tokio::task::yield_now().await;
            }
            _ = drained.notified(), if wants_step && !room => {}
            _ = tokio::time::sleep(Duration::from_millis(100)), if held => {
                if start_file.as_ref().is_some_and(|f| f.exists()) {
                    tracing::info!("start file found: replay starts");
                    start_file = None;
                    broker.set_paused(clock.now_ms(), false);
                }
            }
        }
    }
}

fn route_outputs(
    broker: &mut Broker,
    outs: &mut BTreeMap<ConnId, mpsc::Sender<OutFrame>>,
    clock: &Clock,
    timing: bool,
) {
    while let Some(o) = broker.poll_output() {
        let (conn, frame) = match o {
            Output::Send {
                conn,
                client_msg_id,
                event,
                delay_ms,
            } => {
                let kind = event.kind();
                let closes = match &event {
                    Event::Spot {
                        symbol_id,
                        closed_bars,
                        ..
                    } if timing && !closed_bars.is_empty() => closed_bars
                        .iter()
                        .map(|(p, t)| (*symbol_id, *p, *t))
                        .collect(),
                    _ => Vec::new(),
                };
                (
                    conn,
                    OutFrame::Bytes {
                        bytes: wire::encode_event(client_msg_id, &event),
                        delay_ms,
                        kind,
                        closes,
                    },
                )
            }
            Output::Silenced { conn, reason } => {
                if !timing {
                    continue;
                }
                (conn, OutFrame::Silenced { reason })
            }
            Output::Garbage { conn, bytes } => (
                conn,
                OutFrame::Bytes {
                    bytes: oracle_ctrader::frame::encode_frame(&bytes),
                    delay_ms: 0,
                    kind: "garbage",
                    closes: Vec::new(),
                },
            ),
            Output::Oversized { conn, len } => {
                let mut bytes = Vec::with_capacity(4 + len as usize);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.resize(4 + len as usize, 0);
                (
                    conn,
                    OutFrame::Bytes {
                        bytes,
                        delay_ms: 0,
                        kind: "oversized",
                        closes: Vec::new(),
                    },
                )
            }
            Output::Close {
                conn,
                graceful,
                reason,
            } => {
                tracing::info!(conn, graceful, %reason, "closing connection");
                if let Some(tx) = outs.remove(&conn) {
                    // Ok or Full: either the writer sees Close, or the channel closes when `tx`
                    // drops; both end the connection.
                    let _ = tx.try_send(OutFrame::Close { graceful, reason });
                }
                continue;
            }
        };
        let Some(tx) = outs.get(&conn) else { continue };
        if let Err(e) = tx.try_send(frame) {
            let full = matches!(e, mpsc::error::TrySendError::Full(_));
            if full {
                tracing::warn!(conn, "outbound queue full: dropping the slow consumer");
            }
            outs.remove(&conn);
            broker.disconnect(conn, clock.now_ms());
        }
    }
}

/// At most this many bytes go in one write of queued frames ([`coalesce`]).
const COALESCE_BYTES: usize = 64 * 1024;

/// Appends to `bytes` (and `closes`) the undelayed frames already queued on `rx`, up to
/// [`COALESCE_BYTES`], so they reach the socket in one write: the spot events of a close
/// instant are one frame per symbol, and 20 symbols closing together were 20 writes and
/// flushes, one after the other. The first frame that cannot join (delayed, a close, a silence,
/// or over the size) is returned, to be handled next; the order of the frames is kept.
fn coalesce(
    bytes: &mut Vec<u8>,
    closes: &mut Vec<(i64, Period, i64)>,
    rx: &mut mpsc::Receiver<OutFrame>,
) -> Option<OutFrame> {
    while bytes.len() < COALESCE_BYTES {
        match rx.try_recv() {
            Ok(OutFrame::Bytes {
                bytes: b,
                delay_ms: 0,
                closes: c,
                ..
            }) if bytes.len() + b.len() <= COALESCE_BYTES => {
                bytes.extend_from_slice(&b);
                closes.extend(c);
            }
            Ok(other) => return Some(other),
            Err(_) => return None,
        }
    }
    None
}

/// One client: the TLS handshake, then a loop that writes the actor's frames and feeds the
/// client's frames to the actor.
///
/// Timing hook (`timing` set): a `bar_close` line is stamped after the frame that shows the bar
/// closed was written to the TLS stream **and flushed to the socket** (not when it was queued);
/// a `new_order` line as soon as a `NewOrderReq` is decoded, before the actor sees it; a
/// `disconnect` line when the connection ends (after the sim's reset or close, or when the
/// peer's EOF or an I/O error is seen) and when the `silence` fault fires.
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    actor: mpsc::Sender<ActorMsg>,
    drained: Arc<Notify>,
    max_frame: usize,
    queue_len: usize,
    timing: Option<Arc<Timing>>,
) -> anyhow::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut stream = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake")?;
    let (out_tx, mut out_rx) = mpsc::channel::<OutFrame>(queue_len);
    let (reply_tx, reply_rx) = oneshot::channel();
    actor
        .send(ActorMsg::Connected {
            reply: reply_tx,
            tx: out_tx,
        })
        .await
        .context("sim stopping")?;
    let conn = reply_rx.await.context("sim stopping")?;
    tracing::info!(conn, %peer, "client connected");
    let mut decoder = oracle_ctrader::FrameDecoder::new(max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    let mut reading = true;
    // timing hook: the last closed bar stamped per (symbol, period), so a symbol subscribed
    // under two accounts of this connection gives one line per closed bar
    let mut stamped: BTreeMap<(i64, Period), i64> = BTreeMap::new();
    let mut heads: Vec<String> = Vec::new();
    // the first bytes of a connection that turned out to be HTTP (crate::oauth)
    let mut first_read = true;
    let mut http: Option<Vec<u8>> = None;
    // Ok(why) when the connection ended normally (for the timing hook)
    // a frame taken from the queue that could not join the write before it
    let mut next: Option<OutFrame> = None;
    let result: anyhow::Result<String> = async {
        loop {
            tokio::select! {
                biased;
                frame = async { match next.take() { Some(f) => Some(f), None => out_rx.recv().await } } => match frame {
                    Some(OutFrame::Bytes { mut bytes, delay_ms, kind, mut closes }) => {
                        if delay_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        }
                        tracing::trace!(conn, kind, len = bytes.len(), "send");
                        // The frames already queued behind it (a close instant's spots, one per
                        // symbol) go in the same write.
                        next = coalesce(&mut bytes, &mut closes, &mut out_rx);
                        if let Some(t) = timing.as_deref().filter(|_| !closes.is_empty()) {
                            heads.clear();
                            for (sym, p, bar_ms) in closes {
                                let last = stamped.entry((sym, p)).or_insert(i64::MIN);
                                if bar_ms > *last {
                                    *last = bar_ms;
                                    heads.push(t.bar_close_head(conn, sym, p, bar_ms));
                                }
                            }
                            stream.write_all(&bytes).await.context("write")?;
                            stream.flush().await.context("flush")?;
                            for h in &heads {
                                t.stamp(h);
                            }
                        } else {
                            stream.write_all(&bytes).await.context("write")?;
                            if next.is_none() && out_rx.is_empty() {
                                stream.flush().await.context("flush")?;
                            }
                        }
                        drained.notify_one();
                    }
                    Some(OutFrame::Silenced { reason }) => {
                        let _ = stream.flush().await;
                        if let Some(t) = &timing {
                            t.disconnect(conn, &reason);
                        }
                    }
                    Some(OutFrame::Close { graceful: true, reason }) => {
                        let _ = stream.flush().await;
                        let _ = stream.shutdown().await;
                        return Ok(reason);
                    }
                    Some(OutFrame::Close { graceful: false, reason }) => {
                        // an abrupt close: the client sees a reset, not a TLS close_notify
                        let _ = stream.get_ref().0.set_zero_linger();
                        return Ok(reason);
                    }
                    None => {
                        let _ = stream.get_ref().0.set_zero_linger();
                        return Ok("closed by the sim: outbound queue full (slow consumer) or stopping".into());
                    }
                },
                n = stream.read(&mut buf), if reading => {
                    let n = n.context("read")?;
                    if n == 0 {
                        return Ok("peer closed".into());
                    }
                    if std::mem::take(&mut first_read) && crate::oauth::is_http(&buf[..n]) {
                        http = Some(buf[..n].to_vec());
                        return Ok("HTTP request (OAuth endpoint)".into());
                    }
                    decoder.feed(&buf[..n]);
                    loop {
                        match decoder.next_frame() {
                            Ok(Some(body)) => match wire::decode_request(&body) {
                                Ok((cmid, req)) => {
                                    match (&timing, &req) {
                                        (Some(t), Request::NewOrder(o)) => t.new_order(conn, o),
                                        (Some(t), Request::ClosePosition { position_id, .. }) => {
                                            t.close_position(conn, *position_id);
                                        }
                                        (Some(_), Request::Heartbeat) | (None, _) => {}
                                        (Some(t), r) => t.request(conn, r.kind()),
                                    }
                                    actor.send(ActorMsg::Request { conn, cmid, req }).await.context("sim stopping")?;
                                }
                                Err(e) => {
                                    reading = false;
                                    actor.send(ActorMsg::BadFrame { conn, bad: BadFrame::Garbage { reason: e.0 } }).await.context("sim stopping")?;
                                    break;
                                }
                            },
                            Ok(None) => break,
                            Err(oracle_ctrader::FrameError::TooLong { len, max }) => {
                                reading = false;
                                let bad = BadFrame::TooLong { len: len as u64, max: max as u64 };
                                actor.send(ActorMsg::BadFrame { conn, bad }).await.context("sim stopping")?;
                                break;
                            }
                            Err(e) => anyhow::bail!("frame stream: {e}"),
                        }
                    }
                }
            }
        }
    }
    .await;
    // an HTTP request is no Open API client: the timing hook counts no disconnect for it
    if let Some(t) = timing.as_ref().filter(|_| http.is_none()) {
        match &result {
            Ok(reason) => t.disconnect(conn, reason),
            Err(e) => t.disconnect(conn, &format!("{e:#}")),
        }
    }
    let _ = actor.send(ActorMsg::Closed { conn }).await;
    if let Some(first) = http {
        tracing::info!(conn, %peer, "HTTPS request (OAuth endpoint)");
        return serve_http(stream, first, actor).await;
    }
    tracing::info!(conn, %peer, "client disconnected");
    result.map(|_| ())
}

/// One HTTP request on a TLS connection (`crate::oauth`): read it whole (10 s, 16 KiB at
/// most), answer it on the broker actor, close.
async fn serve_http(
    mut stream: tokio_rustls::server::TlsStream<TcpStream>,
    mut buf: Vec<u8>,
    actor: mpsc::Sender<ActorMsg>,
) -> anyhow::Result<()> {
    let mut chunk = vec![0u8; 4096];
    let parsed: anyhow::Result<Result<crate::oauth::HttpRequest, crate::oauth::HttpResponse>> =
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match crate::oauth::parse_request(&buf) {
                    Ok(Some(req)) => return Ok(Ok(req)),
                    Ok(None) => {}
                    Err(bad) => return Ok(Err(bad.0)),
                }
                let n = stream.read(&mut chunk).await.context("read")?;
                if n == 0 {
                    anyhow::bail!("peer closed before the request was whole");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .context("HTTP request timed out")?;
    let answer = match parsed {
        Ok(Ok(req)) => {
            let (tx, rx) = oneshot::channel();
            let hook = Box::new(move |b: &mut Broker, now: i64| {
                let _ = tx.send(crate::oauth::handle(b, now, &req));
            });
            actor
                .send(ActorMsg::Hook(Hook(hook)))
                .await
                .context("sim stopping")?;
            rx.await.context("sim stopping")?
        }
        Ok(Err(bad)) => bad,
        Err(e) => return Err(e),
    };
    tracing::info!(status = answer.status, "HTTP answer (OAuth endpoint)");
    stream
        .write_all(&answer.to_bytes())
        .await
        .context("write")?;
    stream.flush().await.context("flush")?;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(b: &[u8], delay_ms: u64, closes: Vec<(i64, Period, i64)>) -> OutFrame {
        OutFrame::Bytes {
            bytes: b.to_vec(),
            delay_ms,
            kind: "spot",
            closes,
        }
    }

    #[test]
    fn the_frames_queued_behind_one_join_its_write_in_order_up_to_one_that_cannot() {
        let (tx, mut rx) = mpsc::channel(16);
        for (i, b) in [b"bb", b"cc", b"dd"].iter().enumerate() {
            let c = vec![(i as i64 + 2, Period::M5, 60_000)];
            assert!(tx.try_send(bytes(*b, 0, c)).is_ok());
        }
        // A delayed frame does not join (its delay comes first), nor does what follows it.
        assert!(tx.try_send(bytes(b"ee", 5, Vec::new())).is_ok());
        assert!(tx.try_send(bytes(b"ff", 0, Vec::new())).is_ok());
        let (mut out, mut closes) = (b"aa".to_vec(), vec![(1, Period::M5, 60_000)]);
        let next = coalesce(&mut out, &mut closes, &mut rx);
        assert_eq!(out, b"aabbccdd", "one write, the frames in their order");
        assert_eq!(
            closes.iter().map(|c| c.0).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "every close of the write is stamped after it"
        );
        assert!(
            matches!(next, Some(OutFrame::Bytes { ref bytes, delay_ms: 5, .. }) if bytes == b"ee"),
            "the frame that could not join is handled next"
        );
        assert!(matches!(rx.try_recv(), Ok(OutFrame::Bytes { ref bytes, .. }) if bytes == b"ff"));
        // A close ends the write too; nothing queued: nothing joins.
        assert!(
            tx.try_send(OutFrame::Close {
                graceful: true,
                reason: "bye".into()
            })
            .is_ok()
        );
        let mut one = b"gg".to_vec();
        let next = coalesce(&mut one, &mut Vec::new(), &mut rx);
        assert!(matches!(next, Some(OutFrame::Close { graceful: true, .. })));
        assert_eq!(one, b"gg");
        assert!(coalesce(&mut one, &mut Vec::new(), &mut rx).is_none());
        // A write stops at COALESCE_BYTES: a frame that would pass it is the next one; at
        // the size, the rest stays queued.
        let big = vec![7u8; COALESCE_BYTES - 1];
        assert!(tx.try_send(bytes(&big, 0, Vec::new())).is_ok());
        let mut w = b"ii".to_vec();
        let next = coalesce(&mut w, &mut Vec::new(), &mut rx);
        assert_eq!(w, b"ii");
        assert!(
            matches!(next, Some(OutFrame::Bytes { ref bytes, .. }) if bytes.len() == COALESCE_BYTES - 1)
        );
        let big = vec![7u8; COALESCE_BYTES - 2];
        assert!(tx.try_send(bytes(&big, 0, Vec::new())).is_ok());
        assert!(tx.try_send(bytes(b"hh", 0, Vec::new())).is_ok());
        let mut w = b"ii".to_vec();
        assert!(coalesce(&mut w, &mut Vec::new(), &mut rx).is_none());
        assert_eq!(w.len(), COALESCE_BYTES);
        assert!(matches!(rx.try_recv(), Ok(OutFrame::Bytes { ref bytes, .. }) if bytes == b"hh"));
    }
}
