//! The Tokio shell: wires config, journal, books, the IPC server and the bar feed around the
//! engine, which runs on one task. The SIGNALs waiting when the engine takes one are handled
//! with it as one batch ([`Engine::on_signals`]: orders of different models in flight together,
//! one fsync per batch of intents); answers go back in arrival order.

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use oracle_ipc::{ErrCode, Message, Timeframe};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config;
use crate::drift::DriftLedger;
use crate::engine::{DECISION, Engine, Side};
use crate::journal::Journal;
use crate::paper::PaperBook;
use crate::policy::{KeyText, StreamKey};
use crate::server::{Cmd, Metrics, accept_loop};
use crate::volume::SymbolSpec;
pub use oracle_executor_core::gather::Awaiting;
use oracle_executor_core::gather::{GATHER_WAIT_MS, Timer};
use oracle_executor_core::key::key_of;
use oracle_executor_core::operator::paper_only_note;
use oracle_executor_core::pace::Pace;
use oracle_executor_core::streams::{NotStreamed, Streams, bar_line, err_line};
use oracle_secrets::{Secret, SecretsFile, load_token};

pub use oracle_executor_broker::feed::{Clock, Feed, system_clock};

/// Bars kept per stream for HISTORY.
pub const HISTORY_RING: usize = 2000;

/// The engine loop: serves the IPC commands and the feed until `shutdown`. Reconciles first,
/// then loads the recent bars of each `preload` stream (so HISTORY and SEQ are consistent even
/// when a live bar arrives before the predictor's first HISTORY request).
#[allow(clippy::too_many_arguments)]
pub async fn serve<B: Broker>(
    engine: &mut Engine<B>,
    preload: &[(String, Timeframe)],
    listener: TcpListener,
    token: Secret,
    feed: mpsc::Receiver<Feed>,
    clock: Clock,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_paced(
        engine, preload, listener, token, feed, clock, metrics, shutdown, None,
    )
    .await
}

/// Demo pacing (`--hold-market-until-predictor`): the market is held back until the predictor
/// is ready for it, then one bar at a time until its SIGNAL is in.
#[derive(Clone)]
pub struct Pacing {
    /// How long to wait for a bar's SIGNAL (and, before the first live bar, how long after the
    /// last HISTORY request the predictor counts as ready when it did not ask for every stream).
    pub timeout: Duration,
    /// Called once per [`Feed::Bar`] taken from the feed, when the engine is done with it (its
    /// SIGNALs are in, it timed out, or nobody waits for it). The live broker uses it to stop
    /// reading the market while a bar is pending (back-pressure to the server).
    pub released: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacing")
            .field("timeout", &self.timeout)
            .field("released", &self.released.is_some())
            .finish()
    }
}

/// [`serve`] with optional demo pacing (see [`Pacing`]).
#[allow(clippy::too_many_arguments)]
pub async fn serve_paced<B: Broker>(
    engine: &mut Engine<B>,
    preload: &[(String, Timeframe)],
    listener: TcpListener,
    token: Secret,
    feed: mpsc::Receiver<Feed>,
    clock: Clock,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    pacing: Option<Pacing>,
) -> anyhow::Result<()> {
    serve_with(
        engine, preload, listener, token, feed, clock, metrics, shutdown, pacing, None,
    )
    .await
}

/// [`serve_paced`] that also answers the operator channel's requests
/// ([`crate::operator`]), on this loop: the engine is touched by nobody else.
#[allow(clippy::too_many_arguments)]
pub async fn serve_with<B: Broker>(
    engine: &mut Engine<B>,
    preload: &[(String, Timeframe)],
    listener: TcpListener,
    token: Secret,
    mut feed: mpsc::Receiver<Feed>,
    clock: Clock,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    pacing: Option<Pacing>,
    mut operator: Option<crate::operator::Operator>,
) -> anyhow::Result<()> {
    // The core's timers run on milliseconds since this instant (monotonic; the paused clock of
    // tokio's tests too).
    let origin = tokio::time::Instant::now();
    let now_ms = move || i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX);
    // Demo pacing is the core's (`oracle_executor_core::pace`); the release is the shell's.
    let released = pacing.as_ref().and_then(|p| p.released.clone());
    let release = move || {
        if let Some(f) = &released {
            f();
        }
    };
    engine.core.pace = pacing.map(|p| {
        let ms = i64::try_from(p.timeout.as_millis()).unwrap_or(i64::MAX);
        Pace::new(ms, preload)
    });
    let mut gather = Gather::default();
    // Reconcile before anything is sent.
    if let Err(e) = engine.reconcile(clock()).await {
        warn!(target: DECISION, error = %e, "reconciliation at start failed: entries wait until the broker answers");
    }
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Cmd>(1024);
    let (bar_tx, _) = broadcast::channel::<Arc<str>>(4096);
    let addr = listener.local_addr()?;
    let server = tokio::spawn(accept_loop(
        listener,
        token,
        cmd_tx,
        bar_tx.clone(),
        metrics.clone(),
    ));
    info!(%addr, "IPC server listening");
    let mut streams = Streams::new(HISTORY_RING);
    for (symbol, tf) in preload {
        streams.serve(symbol, *tf);
        seed(engine, &mut streams, symbol, *tf).await;
    }
    let mut deferred: Vec<Deferred> = Vec::new();
    tokio::pin!(shutdown);
    let mut feed_open = true;
    loop {
        let takes = engine.core.pace.as_ref().is_none_or(Pace::takes);
        // An exit held while its market was closed goes at the first open instant.
        engine.arm_held_exits(clock(), now_ms());
        engine
            .core
            .arm_guard_day(clock().saturating_mul(1000), now_ms());
        // risk.flat_before_weekend: each symbol's flat instant (its schedule's last close of
        // the week less N minutes) while it holds a position.
        engine.arm_weekend(clock(), now_ms());
        let timeout = engine
            .core
            .poll_timeout()
            .map(|ms| origin + Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            ev = feed.recv(), if feed_open && takes => match ev {
                None => feed_open = false,
                Some(Feed::Reconnected) => {
                    crate::server::bump(&metrics.reconnects);
                    info!(target: DECISION, event = "reconnected", "broker session back: reconciling before any order");
                    if let Err(e) = engine.reconcile(clock()).await {
                        warn!(target: DECISION, error = %e, "reconciliation after reconnect failed");
                    }
                    // The streams whose history request failed are loaded before any gap
                    // fill, then the HISTORY requests waiting for them are answered.
                    let mut wanted = streams.unseeded();
                    wanted.extend(deferred.iter().map(|d| (d.symbol.clone(), d.tf)));
                    wanted.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
                    wanted.dedup();
                    for (symbol, tf) in wanted {
                        seed(engine, &mut streams, &symbol, tf).await;
                    }
                    answer_deferred(engine, &streams, &metrics, now_ms(), &mut deferred);
                }
                Some(Feed::Quote { symbol, bid, ask }) => {
                    // The paper book alone on a live feed (--dry-run) fills at the live
                    // quotes (beside live it takes them at each batch).
                    if engine.core.live.is_none()
                        && let Some(p) = &mut engine.core.paper
                    {
                        p.broker.set_quote(&symbol, bid, ask);
                    }
                    // Intra-bar: the guard on the quote; its flatten's closes go out now.
                    engine.on_quote(clock(), &symbol, bid, ask).await;
                }
                Some(Feed::Reconcile) => {
                    info!(target: DECISION, event = "reconcile", "the broker reported a change we did not ask for: reconciling");
                    if let Err(e) = engine.reconcile(clock()).await {
                        warn!(target: DECISION, error = %e, "reconciliation failed");
                    }
                }
                Some(Feed::BarRevised { symbol, tf, bar, sent }) => {
                    let key = format!("{symbol}_{tf}");
                    match streams.revise(&symbol, tf, bar) {
                        Some(seq) => {
                            crate::server::bump(&metrics.revisions);
                            if let Some(line) = bar_line(&symbol, tf, seq, &bar, false, true) {
                                warn!(target: DECISION, event = "bar_revised", stream = %key, seq,
                                    bt = %oracle_ipc::Iso(bar.time), ?sent, line = %line,
                                    "history differs from the bar sent from the live stream: the predictor gets history's bar (REV:1) and rewinds to it");
                                let _ = bar_tx.send(Arc::from(line));
                            }
                        }
                        None => {
                            info!(target: DECISION, event = "bar_revised_not_held", stream = %key,
                                bt = %oracle_ipc::Iso(bar.time), ?sent, ?bar,
                                "history differs from a bar sent from the live stream that is no longer held (or already revised)");
                        }
                    }
                }
                Some(Feed::Bar { symbol, tf, bar, spread }) => {
                    let mut sent = false;
                    streams.serve(&symbol, tf);
                    // A stream whose history request failed is loaded first (a bar came: the
                    // session is back); its history then holds this bar or the bar follows it.
                    let seeded = seed(engine, &mut streams, &symbol, tf).await;
                    if seeded {
                        answer_deferred(engine, &streams, &metrics, now_ms(), &mut deferred);
                    } else {
                        warn!(target: DECISION, event = "bar_held_back", stream = %format_args!("{symbol}_{tf}"),
                            bt = %oracle_ipc::Iso(bar.time),
                            "live bar not sent: the stream's history could not be loaded; the bar comes with it once the broker answers");
                    }
                    if seeded && let Some(seq) = streams.offer(&symbol, tf, bar) {
                        // Streamed symbols are model names (checked when the models loaded).
                        let key = key_of(&symbol, tf)?;
                        engine.on_bar(&key, bar.time, bar.close, spread);
                        if let Some(line) = bar_line(&symbol, tf, seq, &bar, false, false) {
                            info!(target: DECISION, event = "bar", stream = %key.model_name(), seq, line = %line, "bar out");
                            let _ = bar_tx.send(Arc::from(line));
                            engine.bar_streamed(&key, bar.time);
                            engine.core.gather.bar_out(&symbol, tf, bar.time);
                            // The batch's account read runs beside the predictor's round trip.
                            engine.read_account_ahead(clock());
                            sent = true;
                        }
                    }
                    if let Some(p) = &mut engine.core.pace
                        && (!sent || p.bar_sent(now_ms(), &symbol, tf, bar.time))
                    {
                        release();
                    }
                }
            },
            () = sleep_opt(timeout), if timeout.is_some() => {
                // The core's timers. Gather: the wait for the rest of the close instant ran
                // out: those models are not waited for again until a SIGNAL of theirs comes in;
                // the batch goes. PaceSignal: the paced bar goes without its SIGNAL.
                let due = engine.core.handle_timeout(now_ms());
                if due.contains(&Timer::PaceSignal) {
                    release();
                }
                if due.contains(&Timer::Gather) {
                    run_signals(engine, &streams, &clock, &mut gather, &release).await;
                }
                if due.contains(&Timer::HeldExit) {
                    engine.release_held_exits(clock(), now_ms()).await;
                }
                if due.contains(&Timer::Weekend) {
                    // Flat before the weekend: the symbols' closes go out now.
                    engine.on_weekend(clock(), now_ms()).await;
                }
                if due.contains(&Timer::GuardDay) {
                    // Midnight in Prague: the guards close their day (a daily halt ends).
                    engine.core.handle_guard_day_end(clock().saturating_mul(1000));
                    engine.drive_sides(clock()).await;
                }
            }
            call = operator_call(&mut operator) => {
                if gather.len() > 0 {
                    run_signals(engine, &streams, &clock, &mut gather, &release).await;
                }
                match (&operator, call) {
                    (Some(op), Some(call)) => {
                        let (req, origin) = (&call.req, &call.origin);
                        let mut answer = crate::operator::handle(engine, op, clock(), req, origin).await;
                        if engine.core.live.is_none() {
                            paper_only_note(req, &mut answer);
                        }
                        let _ = call.reply.send(answer);
                    }
                    _ => operator = None,
                }
            }
            cmd = cmd_rx.recv() => {
                let Some(first) = cmd else { break };
                let mut next = Some(first);
                while let Some(c) = next.take() {
                    next = match c {
                        Cmd::Signal { line, reply } => {
                            // Every SIGNAL already waiting joins the pending batch (a HISTORY
                            // behind them is answered after them, in order).
                            gather.push(engine, line, reply);
                            let mut after = None;
                            while gather.len() < MAX_BATCH {
                                match cmd_rx.try_recv() {
                                    Ok(Cmd::Signal { line, reply }) => gather.push(engine, line, reply),
                                    Ok(other) => {
                                        after = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            // The other models of the same close instant whose bars went out
                            // and whose SIGNALs are on their way join it (the loop goes on
                            // forwarding bars meanwhile; GATHER_WAIT at most): one batch per
                            // close instant, so one set of account reads for all its orders
                            // (split in two, a 20-symbol reversal passed cTrader's 50 a second).
                            // Paced (--hold-market-until-predictor), bars go one at a time:
                            // nothing to gather.
                            if after.is_some()
                                || engine.core.pace.is_some()
                                || gather.len() >= MAX_BATCH
                                || !engine.core.gather.expects_more()
                            {
                                run_signals(engine, &streams, &clock, &mut gather, &release).await;
                            } else {
                                engine.core.gather.arm(now_ms());
                            }
                            after
                        }
                        Cmd::History { symbol, tf, count, reply } => {
                            if gather.len() > 0 {
                                run_signals(engine, &streams, &clock, &mut gather, &release).await;
                            }
                            match history(engine, &mut streams, &symbol, tf, count).await {
                                Some(out) => answer_history(engine, &metrics, now_ms(), &symbol, tf, out, reply),
                                None => {
                                    info!(target: DECISION, event = "history_waits", symbol = %symbol, tf = tf.as_str(),
                                        "HISTORY waits for the broker's history (asked again at the reconnect)");
                                    deferred.push(Deferred { symbol, tf, count, reply });
                                }
                            }
                            None
                        }
                    };
                }
            },
        }
    }
    if gather.len() > 0 {
        run_signals(engine, &streams, &clock, &mut gather, &release).await;
    }
    server.abort();
    engine.flush_unexplained();
    Ok(())
}

/// The next operator request (pending forever without the channel).
async fn operator_call(
    op: &mut Option<crate::operator::Operator>,
) -> Option<crate::operator::OperatorCall> {
    match op {
        Some(o) => o.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// SIGNALs handled as one batch at most (the rest wait for the next turn).
pub const MAX_BATCH: usize = 64;

/// How long a batch waits for the SIGNALs of the other models of its close instant (their bars
/// went out together). The predictor answers the bars it read together in one write, but the
/// first bar of an instant often reaches it alone: its SIGNAL comes first, then the others after
/// the predictor's state write (an fsync: milliseconds on a cloud disk). A bound, not a pace: the
/// batch goes as soon as every expected SIGNAL is in; a model that misses it once is not waited
/// for again until it signals.
/// The core's [`GATHER_WAIT_MS`] ([`Timer::Gather`]).
pub const GATHER_WAIT: Duration = Duration::from_millis(GATHER_WAIT_MS as u64);

/// Answers a batch of SIGNALs ([`signals`]) and tells the pacing.
async fn run_signals<B: Broker>(
    engine: &mut Engine<B>,
    streams: &Streams,
    clock: &Clock,
    gather: &mut Gather,
    release: &dyn Fn(),
) {
    let batch = gather.take(engine);
    if batch.is_empty() {
        return;
    }
    let lines: Vec<&str> = batch.iter().map(|(l, _)| l.as_str()).collect();
    let outs = signals(engine, streams, clock, &lines).await;
    for ((line, reply), out) in batch.into_iter().zip(outs) {
        let _ = reply.send(out);
        if let Some(p) = &mut engine.core.pace
            && p.signal_in(&line)
        {
            release();
        }
    }
}

/// The SIGNALs taken in and not yet answered, waiting for the rest of their close instant
/// (what is awaited and the wait's timer are the core's
/// [`oracle_executor_core::gather::Gather`]).
#[derive(Default)]
struct Gather {
    batch: Vec<(String, tokio::sync::oneshot::Sender<String>)>,
}

impl Gather {
    fn len(&self) -> usize {
        self.batch.len()
    }

    fn push<B>(
        &mut self,
        engine: &mut Engine<B>,
        line: String,
        reply: tokio::sync::oneshot::Sender<String>,
    ) {
        engine.core.gather.signal_in(&line);
        self.batch.push((line, reply));
    }

    fn take<B>(
        &mut self,
        engine: &mut Engine<B>,
    ) -> Vec<(String, tokio::sync::oneshot::Sender<String>)> {
        engine.core.gather.taken();
        std::mem::take(&mut self.batch)
    }
}

/// Answers a batch of SIGNAL lines, in order: ERR lines for malformed ones, unknown symbols,
/// models not loaded and bars not streamed ([`Streams::check_signal`]), the engine's ACKs (one
/// batch, [`Engine::on_signals`]) for the others.
async fn signals<B: Broker>(
    engine: &mut Engine<B>,
    streams: &Streams,
    clock: &Clock,
    lines: &[&str],
) -> Vec<String> {
    let mut out: Vec<Option<String>> = vec![None; lines.len()];
    let mut valid = Vec::with_capacity(lines.len());
    let mut at = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let Ok(Message::Signal(s)) = oracle_ipc::parse(line) else {
            out[i] = Some(err_line(ErrCode::Malformed, line));
            continue;
        };
        if !engine.knows(s.symbol) {
            warn!(target: DECISION, event = "refusal", symbol = s.symbol, reason = "UNKNOWN_SYMBOL",
                "SIGNAL for {} refused: symbol not in executor_config.json", s.symbol);
            out[i] = Some(err_line(ErrCode::UnknownSymbol, s.symbol));
            continue;
        }
        let (Some(tf), Some(bt)) = (s.tf, s.bar_time) else {
            warn!(target: DECISION, event = "refusal", symbol = s.symbol, reason = "MALFORMED",
                "SIGNAL without TF/BT tags refused: the executor needs them to deduplicate");
            out[i] = Some(err_line(ErrCode::Malformed, line));
            continue;
        };
        if let Err(why) = streams.check_signal(s.symbol, tf, bt) {
            // The model's name as the ERR line carries it (`EURUSD_M15`).
            let key = format!("{}_{tf}", s.symbol);
            let code = why.code();
            let detail = match why {
                NotStreamed::Model => key.to_string(),
                NotStreamed::Bar => format!("{key}|{}", oracle_ipc::Iso(bt)),
            };
            warn!(target: DECISION, event = "refusal", model = %key, action = %s.action, reason = code.as_str(),
            bt = %oracle_ipc::Iso(bt),
            "SIGNAL for {key} at {} refused: {}; not executed, not journaled", oracle_ipc::Iso(bt),
            match why {
                NotStreamed::Model => "no model of this symbol and timeframe is loaded (the executor does not stream it)",
                NotStreamed::Bar => "not a bar the executor has streamed for this model (not closed yet, in the future, or no bar's open time)",
            });
            out[i] = Some(err_line(code, &detail));
            continue;
        }
        valid.push(s);
        at.push(i);
    }
    if let Some(t) = engine.telemetry() {
        // The refusals before the engine (malformed, unknown symbol, model or bar).
        for (line, o) in lines.iter().zip(&out) {
            if let Some(o) = o {
                t.answered(&line.split('|').nth(1).unwrap_or("?"), o);
            }
        }
    }
    if !valid.is_empty() {
        let answers = engine.on_signals(clock(), &valid).await;
        for (i, a) in at.into_iter().zip(answers) {
            out[i] = Some(a.line);
        }
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}

/// Fills `(symbol, tf)`'s ring from the broker's history (live side, else paper) unless it
/// already was; true when it is seeded. A failed request (the session dropped, say) leaves it
/// unseeded: HISTORY for it waits ([`Deferred`]) and the reconnect, or its next live bar, seeds
/// it first — never an answer made of the few live bars that came after the failure.
async fn seed<B: Broker>(
    engine: &mut Engine<B>,
    streams: &mut Streams,
    symbol: &str,
    tf: Timeframe,
) -> bool {
    if streams.seeded(symbol, tf) {
        return true;
    }
    let got = match (&mut engine.core.live, &mut engine.core.paper) {
        (Some(l), _) => l.broker.history(symbol, tf, HISTORY_RING as u32).await,
        (None, Some(p)) => p.broker.history(symbol, tf, HISTORY_RING as u32).await,
        _ => Ok(Vec::new()),
    };
    match got {
        Ok(bars) => {
            for b in bars {
                if streams.offer(symbol, tf, b).is_some()
                    && let Ok(key) = key_of(symbol, tf)
                {
                    engine.on_bar(&key, b.time, b.close, 0.0);
                }
            }
            streams.mark_seeded(symbol, tf);
            true
        }
        Err(e) => {
            warn!(symbol, tf = tf.as_str(), error = %e,
                "history request to the broker failed: the stream's HISTORY answers and live bars wait until it is loaded (asked again at the reconnect)");
            false
        }
    }
}

/// The answer to `HISTORY|symbol|tf|count` from a seeded stream's ring: its last bars, then
/// `HISTORY_END`.
fn history_lines(streams: &Streams, symbol: &str, tf: Timeframe, count: u32) -> Vec<String> {
    let out = streams.history_lines(symbol, tf, count);
    info!(target: DECISION, event = "history", symbol, tf = tf.as_str(), asked = count, sent = out.len() - 1, "history answered");
    out
}

/// A HISTORY request waiting for its stream's seed (the broker did not answer the history
/// request): answered once the stream is seeded, at the reconnect or the stream's next bar.
struct Deferred {
    symbol: String,
    tf: Timeframe,
    count: u32,
    reply: oneshot::Sender<Vec<String>>,
}

/// Sends a HISTORY answer and counts it (and tells the demo pacing).
fn answer_history<B: Broker>(
    engine: &mut Engine<B>,
    metrics: &Metrics,
    now_ms: i64,
    symbol: &str,
    tf: Timeframe,
    out: Vec<String>,
    reply: oneshot::Sender<Vec<String>>,
) {
    let ok = out.last().is_some_and(|l| l.starts_with("HISTORY_END"));
    let _ = reply.send(out);
    if ok {
        crate::server::bump(&metrics.histories);
        if let Some(p) = &mut engine.core.pace {
            p.history_answered(now_ms, symbol, tf);
        }
    }
}

/// Answers the waiting HISTORY requests whose streams are seeded now.
fn answer_deferred<B: Broker>(
    engine: &mut Engine<B>,
    streams: &Streams,
    metrics: &Metrics,
    now_ms: i64,
    deferred: &mut Vec<Deferred>,
) {
    let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(deferred)
        .into_iter()
        .partition(|d| streams.seeded(&d.symbol, d.tf));
    *deferred = wait;
    for d in ready {
        let out = history_lines(streams, &d.symbol, d.tf, d.count);
        answer_history(engine, metrics, now_ms, &d.symbol, d.tf, out, d.reply);
    }
}

/// The answer to a HISTORY request, or `None` while its stream cannot be seeded (the broker
/// did not answer: the request waits, see [`Deferred`]).
async fn history<B: Broker>(
    engine: &mut Engine<B>,
    streams: &mut Streams,
    symbol: &str,
    tf: Timeframe,
    count: u32,
) -> Option<Vec<String>> {
    if !engine.knows(symbol) {
        return Some(vec![err_line(ErrCode::UnknownSymbol, symbol)]);
    }
    if !seed(engine, streams, symbol, tf).await {
        return None;
    }
    Some(history_lines(streams, symbol, tf, count))
}

/// What `run` needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// IPC listen address (must be loopback).
    pub listen: SocketAddr,
    /// Token file (used when `ORACLE_IPC_TOKEN` is not set).
    pub token_file: Option<PathBuf>,
    /// The `--secrets` file, read and mode-checked: broker credentials, account id and, after
    /// the environment and the token file, the IPC token.
    pub secrets: Option<SecretsFile>,
    /// executor_config.json.
    pub config: PathBuf,
    /// Models folder (SYM_TF.zip).
    pub models: Option<PathBuf>,
    /// Journal, drift ledger.
    pub state_dir: PathBuf,
    /// Trade the paper book only.
    pub paper: bool,
    /// Paper book beside live.
    pub with_paper: bool,
    /// `--dry-run` (with `--broker`): the paper book alone on the live broker's feed (bars,
    /// quotes, history, specs); the engine has no live side, so no order of any kind reaches
    /// the broker.
    pub dry_run: bool,
    /// Paper starting balance.
    pub paper_balance: f64,
    /// Symbol specs for the paper book (JSON list of SymbolSpec); defaults are used otherwise.
    pub paper_specs: Option<PathBuf>,
    /// Bar replays for the paper book (`SYM_TF` → CSV), paced by `feed_interval`.
    pub feed_csv: Vec<(String, Timeframe, PathBuf)>,
    /// Pause between replayed bar times (every stream's bar of one instant goes out together).
    pub feed_interval: Duration,
    /// Hold the replay until this file exists (`--feed-start-file`).
    pub feed_start_file: Option<PathBuf>,
    /// Hold the replay until an IPC client has been answered HISTORY (`--feed-wait-client`).
    pub feed_wait_client: bool,
    /// Stop after validating the configuration.
    pub check_only: bool,
    /// Live broker (credentials from the secrets file, else the environment: CTRADER_CLIENT_ID,
    /// CTRADER_CLIENT_SECRET, CTRADER_ACCESS_TOKEN, optional CTRADER_REFRESH_TOKEN, each also as
    /// ORACLE_CTRADER_*).
    pub broker: Option<BrokerTarget>,
    /// Demo pacing (`--hold-market-until-predictor`): the SIGNAL timeout per bar; `None` = off.
    pub hold_market: Option<Duration>,
    /// `--bar-close live`: a closed bar goes out from the live stream's final snapshot, history
    /// confirms it afterwards (see [`oracle_ctrader::SessionConfig::live_close`]).
    pub live_close: bool,
}

pub use oracle_executor_core::volume::default_spec;

/// Runs the executor until Ctrl-C: live over `oracle-ctrader`'s driver (feature `live`), or with
/// `--paper` the whole policy against the paper book alone.
pub async fn run(rc: RunConfig) -> anyhow::Result<()> {
    if rc.check_only {
        // The shell's own sections (alerts, metrics) are checked too.
        crate::alerting::sections(&rc.config).map_err(anyhow::Error::msg)?;
        return run_inner(rc, Arc::new(crate::alerting::Telemetry::off())).await;
    }
    // Alerts and metrics first, so a start that fails (the broker refusing the account) is told.
    let (tel, metrics_cfg) = crate::alerting::Telemetry::start(&rc.config, rc.secrets.as_ref())?;
    let r = match oracle_metrics::start(&metrics_cfg, tel.metrics.clone()).await {
        Ok(_) => run_inner(rc, tel.clone()).await,
        Err(e) => Err(e),
    };
    crate::alerting::stopped(&tel, &r);
    r
}

async fn run_inner(rc: RunConfig, tel: Arc<crate::alerting::Telemetry>) -> anyhow::Result<()> {
    if !rc.listen.ip().is_loopback() {
        bail!(
            "--listen {}: the IPC server binds to loopback only (127.0.0.1)",
            rc.listen
        );
    }
    let models = match &rc.models {
        Some(d) => {
            config::scan_models(d).with_context(|| format!("models folder {}", d.display()))?
        }
        None => Vec::new(),
    };
    let mut seen: Vec<String> = models.iter().map(|m| m.symbol.clone()).collect();
    seen.dedup();
    if rc.check_only {
        // A check writes nothing: say what a start would add.
        let (cfg, added) = config::check(&rc.config, &seen)?;
        // The news calendar's lines are checked too.
        crate::funded::restrictions(&cfg, &rc.config)?;
        for s in &added {
            warn!(symbol = %s, "{s}: found in the models folder but not in {}; a start adds it with enabled=false and lots 0.01/0.03/0.05 (--check-config leaves the file as it is)", rc.config.display());
        }
        info!(
            symbols = cfg.symbols.len(),
            models = models.len(),
            would_add = added.len(),
            "configuration valid"
        );
        return Ok(());
    }
    let (cfg, added) = config::load(&rc.config, &seen)?;
    for s in &added {
        warn!(symbol = %s, "{s}: found in the models folder but not in {}; added with enabled=false and lots 0.01/0.03/0.05 (edit the file to trade it)", rc.config.display());
    }
    info!(
        symbols = cfg.symbols.len(),
        models = models.len(),
        "configuration valid"
    );
    // The IPC token: the environment, else --token-file, else the secrets file.
    let env_token = std::env::var(oracle_secrets::IPC_TOKEN_KEY)
        .ok()
        .filter(|t| !t.is_empty());
    let file_token = match (&env_token, &rc.token_file, &rc.secrets) {
        (None, None, Some(f)) => f.get(oracle_secrets::IPC_TOKEN_KEY).map(str::to_string),
        _ => None,
    };
    let token = load_token(env_token.or(file_token), rc.token_file.as_deref())?;
    std::fs::create_dir_all(&rc.state_dir)?;
    let mut preload: Vec<(String, Timeframe)> =
        models.iter().map(|m| (m.symbol.clone(), m.tf)).collect();
    preload.extend(rc.feed_csv.iter().map(|(s, tf, _)| (s.clone(), *tf)));
    preload.sort();
    preload.dedup();
    if !rc.paper {
        return run_live(rc, cfg, preload, token, tel).await;
    }
    let mut specs: Vec<SymbolSpec> = match &rc.paper_specs {
        Some(p) => serde_json::from_slice(&std::fs::read(p)?)?,
        None => Vec::new(),
    };
    for s in cfg.symbols.keys() {
        if !specs.iter().any(|x| &x.name == s) {
            specs.push(default_spec(s));
        }
    }
    let mut book = PaperBook::new(rc.paper_balance, specs);
    // Each replay is checked whole here, then read as the feed goes (crate::replay). Bars
    // older than the replayed ones serve HISTORY: the first 350 of each replay are history.
    let mut replays = Vec::new();
    for (sym, tf, path) in &rc.feed_csv {
        let mut r = crate::replay::Replay::open(path)?;
        book.bars.insert((sym.clone(), *tf), r.take(350));
        replays.push((sym.clone(), *tf, r));
    }
    let (side, acks) = paper_side(&cfg, book, &rc.state_dir, rc.paper_balance)?;
    let drift = DriftLedger::open(&rc.state_dir.join("drift"))?;
    let mut engine: Engine<PaperBook> = Engine::new(cfg, None, Some(side), acks, Some(drift));
    engine.set_telemetry(tel.clone());
    engine
        .core
        .set_restrictions(&crate::funded::restrictions(&engine.core.cfg, &rc.config)?);
    // Clock: the replay's virtual time (bar close + 1 s) when replaying, else the system clock.
    let vclock = Arc::new(AtomicI64::new(0));
    let clock: Clock = if replays.is_empty() {
        system_clock()
    } else {
        let v = vclock.clone();
        Arc::new(move || v.load(Ordering::SeqCst))
    };
    let (feed_tx, feed_rx) = mpsc::channel(1024);
    let interval = rc.feed_interval;
    let metrics = Arc::new(Metrics::default());
    tel.metrics.attach_ipc(metrics.clone());
    let gate = crate::replay::Gate {
        start_file: rc.feed_start_file.clone(),
        wait_client: rc.feed_wait_client.then(|| {
            let m = metrics.clone();
            let answered: crate::replay::Count = Box::new(move || Metrics::get(&m.histories));
            (answered, replays.len() as u64)
        }),
    };
    tokio::spawn(async move {
        gate.wait().await;
        crate::replay::feed(replays, interval, &vclock, &feed_tx).await;
    });
    let listener = TcpListener::bind(rc.listen)
        .await
        .with_context(|| format!("bind {}", rc.listen))?;
    let shutdown = oracle_resident::shutdown_signal();
    let pacing = rc.hold_market.map(|timeout| Pacing {
        timeout,
        released: None,
    });
    tel.started(&format!(
        "paper, {}",
        crate::alerting::streams(preload.len())
    ));
    tel.spawn_ticker(clock.clone());
    // Start-up is done (configuration, bar files, journal): from here on only what serving
    // touches stays resident.
    oracle_resident::trim();
    let operator = open_operator(&rc, &preload)?;
    serve_with(
        &mut engine,
        &preload,
        listener,
        token,
        feed_rx,
        clock,
        metrics,
        shutdown,
        pacing,
        Some(operator),
    )
    .await
}

/// The operator channel in the state folder (`operator.sock`), its status rows the streamed
/// models.
fn open_operator(
    rc: &RunConfig,
    preload: &[(String, Timeframe)],
) -> anyhow::Result<crate::operator::Operator> {
    let models = preload
        .iter()
        .map(|(s, tf)| key_of(s, *tf))
        .collect::<Result<_, _>>()?;
    crate::operator::open(&rc.state_dir, &rc.config, models)
}

fn open_journal(path: &Path) -> anyhow::Result<(Journal, crate::journal::Replayed)> {
    let j = Journal::open(path).with_context(|| format!("journal {}", path.display()))?;
    if j.1.bad_lines > 0 {
        warn!(
            lines = j.1.bad_lines,
            "journal: unreadable lines skipped (a torn last line after a crash)"
        );
    }
    Ok(j)
}

#[cfg(not(feature = "live"))]
async fn run_live(
    _rc: RunConfig,
    _cfg: config::ExecutorConfig,
    _preload: Vec<(String, Timeframe)>,
    _token: Secret,
    _tel: Arc<crate::alerting::Telemetry>,
) -> anyhow::Result<()> {
    bail!("this build has no live broker (build with --features live); run with --paper")
}

/// Live trading (and the paper book beside it with `--with-paper`).
#[cfg(feature = "live")]
async fn run_live(
    rc: RunConfig,
    cfg: config::ExecutorConfig,
    preload: Vec<(String, Timeframe)>,
    token: Secret,
    tel: Arc<crate::alerting::Telemetry>,
) -> anyhow::Result<()> {
    use oracle_executor_broker::session;
    let mut b = rc
        .broker
        .clone()
        .context("live trading needs --broker HOST:PORT and --account-id")?;
    let token_file = oracle_ctrader::tokenfile::path_in(&rc.state_dir);
    let creds = session::credentials(rc.secrets.as_ref(), &token_file)?;
    let tls = session::tls_mode(&b)?;
    session::resolve_host(&mut b, &tls, &creds, &rc.state_dir).await?;
    let client = session::client_config(&b, creds, tls, rc.live_close);
    let live_cfg = crate::live::LiveConfig {
        client,
        symbols: cfg.symbols.keys().cloned().collect(),
        symbol_config: Some(cfg.clone()),
        streams: preload.clone(),
        fill_timeout: Duration::from_secs(10),
        ready_timeout: Duration::from_secs(30),
        hold_market: rc.hold_market.is_some(),
        token_file: Some(token_file),
    };
    let (broker, feed_rx) = crate::live::connect(live_cfg).await?;
    crate::live::record_currency(&rc.state_dir, &broker);
    let clock = broker.clock();
    let pacing = rc.hold_market.map(|timeout| Pacing {
        timeout,
        released: Some(broker.release_hook()),
    });
    if rc.dry_run {
        let dry = DrySession {
            session: broker,
            feed: feed_rx,
            clock,
            pacing,
            account_id: b.account_id,
        };
        return run_dry(rc, cfg, preload, token, tel, dry).await;
    }
    let journal = open_journal(&rc.state_dir.join("journal.jsonl"))?;
    let acks = journal.1.acks.clone();
    broker.set_telemetry(tel.clone());
    let book = rc
        .with_paper
        .then(|| paper_beside(&broker, &cfg, rc.paper_balance));
    let live = Side::new("live", &cfg, broker, Some(journal));
    let paper = match book {
        Some(book) => Some(paper_side(&cfg, book, &rc.state_dir, rc.paper_balance)?.0),
        None => None,
    };
    let drift = DriftLedger::open(&rc.state_dir.join("drift"))?;
    let mut engine = Engine::new(cfg, Some(live), paper, acks, Some(drift));
    engine.set_telemetry(tel.clone());
    engine
        .core
        .set_restrictions(&crate::funded::restrictions(&engine.core.cfg, &rc.config)?);
    let listener = TcpListener::bind(rc.listen)
        .await
        .with_context(|| format!("bind {}", rc.listen))?;
    let metrics = Arc::new(Metrics::default());
    tel.metrics.attach_ipc(metrics.clone());
    let shutdown = oracle_resident::shutdown_signal();
    tel.started(&format!(
        "live, account {}, {}",
        b.account_id,
        crate::alerting::streams(preload.len())
    ));
    tel.spawn_ticker(clock.clone());
    oracle_resident::trim();
    let operator = open_operator(&rc, &preload)?;
    serve_with(
        &mut engine,
        &preload,
        listener,
        token,
        feed_rx,
        clock,
        metrics,
        shutdown,
        pacing,
        Some(operator),
    )
    .await
}

#[cfg(feature = "live")]
pub use oracle_executor_broker::beside::paper_beside;

/// The ACK lines a journal remembers, by (model, bar time) ([`crate::journal::Replayed`]).
pub type JournaledAcks = std::collections::HashMap<(StreamKey, i64), String>;

/// The paper side of every mode (`--paper`, `--with-paper`, `--dry-run`): `book` rebuilt from
/// the paper journal in `state_dir` (`paper-journal.jsonl`) before anything trades: the
/// positions the models hold ([`resume_paper_book`]), the balance (`balance`, the
/// `--paper-balance`, plus the closed trades' P&L: [`paper_closed_trades`]) and new position
/// ids after the journal's. One path, so a restart in any mode, or a state folder taken from one
/// mode to another (a dry run going live), finds the paper positions held, never closed
/// outside. Returns the side and the ACKs its journal remembers.
pub fn paper_side(
    cfg: &config::ExecutorConfig,
    mut book: PaperBook,
    state_dir: &Path,
    balance: f64,
) -> anyhow::Result<(Side<PaperBook>, JournaledAcks)> {
    let path = state_dir.join("paper-journal.jsonl");
    let journal = open_journal(&path)?;
    let resumed = resume_paper_book(&mut book, &journal.1);
    let closed = paper_closed_trades(&path);
    book.set_balance(balance + closed.realized);
    book.reserve_ids(closed.last_position_id);
    if resumed > 0 || closed.trades > 0 {
        info!(
            positions = resumed,
            closed_trades = closed.trades,
            balance = balance + closed.realized,
            "the paper book resumed from its journal (open positions, and the balance: --paper-balance plus the closed trades' P&L)"
        );
    }
    let acks = journal.1.acks.clone();
    Ok((Side::new("paper", cfg, book, Some(journal)), acks))
}

/// Puts back into a fresh paper book the positions its journal says the models hold
/// ([`PaperBook::resume`]). Returns how many.
pub fn resume_paper_book(book: &mut PaperBook, rep: &crate::journal::Replayed) -> usize {
    book.resume(rep)
}

pub use oracle_executor_core::journal::ClosedTrades;

/// The closed trades of the paper journal at `path` (nothing when there is none): the
/// balance a resumed paper book starts from is the starting balance plus their P&L
/// ([`oracle_executor_core::journal::closed_trades`]).
pub fn paper_closed_trades(path: &Path) -> ClosedTrades {
    std::fs::read_to_string(path)
        .map(|text| oracle_executor_core::journal::closed_trades(&text))
        .unwrap_or_default()
}

/// The live session a `--dry-run` reads.
#[cfg(feature = "live")]
struct DrySession {
    session: crate::live::LiveBroker,
    feed: mpsc::Receiver<Feed>,
    clock: Clock,
    pacing: Option<Pacing>,
    account_id: i64,
}

/// `--dry-run`: the paper book alone on the live session's feed. The session reads symbols,
/// history, bars, spots and the account; the engine has no live side, and the book holds the
/// session only as its [`crate::paper::Market`] (trading hours and symbol modes: the paper side
/// refuses an entry into a closed market or a close-only symbol and holds an exit to the open,
/// as live would), so nothing can send it an order (no NewOrderReq, ClosePositionReq or
/// amend). The broker's open positions are listed and left alone. Journal
/// (`paper-journal.jsonl`) and drift ledger as `--paper` keeps them: a restart resumes the
/// paper book ([`paper_side`], the same path as every mode).
#[cfg(feature = "live")]
async fn run_dry(
    rc: RunConfig,
    cfg: config::ExecutorConfig,
    preload: Vec<(String, Timeframe)>,
    token: Secret,
    tel: Arc<crate::alerting::Telemetry>,
    dry: DrySession,
) -> anyhow::Result<()> {
    let DrySession {
        session,
        feed,
        clock,
        pacing,
        account_id,
    } = dry;
    info!(
        account = account_id,
        "dry run: the live feed drives the paper book; no order of any kind is sent to the broker"
    );
    let symbols: Vec<String> = cfg.symbols.keys().cloned().collect();
    let book = oracle_executor_broker::beside::dry_run_book(
        session,
        account_id,
        &symbols,
        &preload,
        HISTORY_RING as u32,
        rc.paper_balance,
        tel.clone(),
    )
    .await?;
    let (side, acks) = paper_side(&cfg, book, &rc.state_dir, rc.paper_balance)?;
    let drift = DriftLedger::open(&rc.state_dir.join("drift"))?;
    let mut engine: Engine<PaperBook> = Engine::new(cfg, None, Some(side), acks, Some(drift));
    engine.set_telemetry(tel.clone());
    engine
        .core
        .set_restrictions(&crate::funded::restrictions(&engine.core.cfg, &rc.config)?);
    let listener = TcpListener::bind(rc.listen)
        .await
        .with_context(|| format!("bind {}", rc.listen))?;
    let metrics = Arc::new(Metrics::default());
    tel.metrics.attach_ipc(metrics.clone());
    let shutdown = oracle_resident::shutdown_signal();
    tel.started(&format!(
        "dry run (paper book on the live feed, no orders), account {account_id}, {}",
        crate::alerting::streams(preload.len())
    ));
    tel.spawn_ticker(clock.clone());
    oracle_resident::trim();
    let operator = open_operator(&rc, &preload)?;
    let r = serve_with(
        &mut engine,
        &preload,
        listener,
        token,
        feed,
        clock,
        metrics,
        shutdown,
        pacing,
        Some(operator),
    )
    .await;
    // The session (in the book) lives as long as the serving: it is the feed.
    drop(engine);
    r
}

pub use oracle_executor_broker::session::BrokerTarget;

/// Command line of `oracle-executor` (and `oracle executor`).
#[derive(Parser, Debug)]
#[command(
    name = "oracle-executor",
    version,
    about = "Oracle Trader executor: broker session, risk guard, IPC server"
)]
pub struct Cli {
    /// executor_config.json.
    #[arg(long, default_value = "executor_config.json")]
    pub config: PathBuf,
    /// Models folder (SYM_TF.zip); new symbols are added to the config disabled.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Journal and drift ledger folder.
    #[arg(long, default_value = "state")]
    pub state: PathBuf,
    /// IPC listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// Token file (mode 0600) when ORACLE_IPC_TOKEN is not set.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Trade the internal paper book only.
    #[arg(long)]
    pub paper: bool,
    /// Run the paper book beside live (drift ledger).
    #[arg(long)]
    pub with_paper: bool,
    /// Live dry run (with --broker): connect and read the live feed (bars, quotes, history,
    /// symbols, account) and trade the paper book only: no order of any kind is sent to the
    /// broker. The paper journal and the drift ledger are kept as --paper keeps them, so new
    /// models can run on the real market for weeks before they are enabled.
    #[arg(long, conflicts_with_all = ["paper", "with_paper", "feed_csv", "paper_specs"])]
    pub dry_run: bool,
    /// Paper starting balance.
    #[arg(long, default_value_t = 100_000.0)]
    pub paper_balance: f64,
    /// Paper symbol specs (JSON list of {name,id,digits,pip_position,lot_size,min_volume,step_volume,max_volume}).
    #[arg(long)]
    pub paper_specs: Option<PathBuf>,
    /// Replay bars to the paper book: SYM_TF=bars.csv (repeatable).
    #[arg(long = "feed-csv")]
    pub feed_csv: Vec<String>,
    /// Milliseconds between replayed bar times (all streams' bars of one instant go together).
    #[arg(long, default_value_t = 1000)]
    pub feed_interval_ms: u64,
    /// Hold the --feed-csv replay until this file exists.
    #[arg(long)]
    pub feed_start_file: Option<PathBuf>,
    /// Hold the --feed-csv replay until an IPC client has been answered HISTORY for every
    /// replayed stream (or 2 s after its first HISTORY).
    #[arg(long)]
    pub feed_wait_client: bool,
    /// JSON log lines, one flat object each (`timestamp`, `level`, `message` and the event's
    /// fields at the top level: the predictor's shape).
    #[arg(long)]
    pub json: bool,
    /// Log filter (tracing EnvFilter syntax: `info`, `debug`, `oracle_executor=debug,info`).
    /// Default: RUST_LOG, else `info`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Keep the process's memory warm between bars: every this many milliseconds a thread reads
    /// one byte of each resident page (0: off). A bar after minutes of idle otherwise finds its
    /// pages cold (caches, and on a VM the host's mappings): measured on the development VM, a
    /// page read after seconds of idle costs ~40 µs. README, "Performance", says what it costs.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub keep_warm_ms: u64,
    /// Validate the configuration and the models folder, say which symbols a start would add,
    /// and exit. Writes nothing.
    #[arg(long)]
    pub check_config: bool,
    /// Live broker: HOST:PORT (e.g. demo.ctraderapi.com:5035, or the simulator's address), or
    /// `auto`: the account's host by its `isLive` in the token's account list (--live-host for a
    /// live account, --demo-host for a demo one). A Spotware host of the wrong kind is refused,
    /// naming the right one.
    #[arg(long)]
    pub broker: Option<String>,
    /// The host `--broker auto` uses for a live account.
    #[arg(
        long,
        default_value = "live.ctraderapi.com:5035",
        value_name = "HOST:PORT"
    )]
    pub live_host: String,
    /// The host `--broker auto` uses for a demo account (and reads the account list at).
    #[arg(
        long,
        default_value = "demo.ctraderapi.com:5035",
        value_name = "HOST:PORT"
    )]
    pub demo_host: String,
    /// Trading account id (ctidTraderAccountId). Default: the secrets file's
    /// `ORACLE_CTRADER_ACCOUNT_ID` (or `CTRADER_ACCOUNT_ID`), else the environment's.
    #[arg(long)]
    pub account_id: Option<i64>,
    /// CA certificate (PEM) to trust for the broker (the simulator's).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Skip TLS verification (only for a loopback broker).
    #[arg(long)]
    pub insecure_local: bool,
    /// The secrets env file, as `oracle doctor --secrets` checks it (deployments:
    /// /etc/oracle-trader/secrets.env). Default: none, the environment. Mode 0600 or 0640 (the
    /// group may read it, nobody else, nobody but the owner writes); keys `CTRADER_<NAME>` or
    /// `ORACLE_CTRADER_<NAME>` (CLIENT_ID, CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN,
    /// ACCOUNT_ID) and ORACLE_IPC_TOKEN (used when the environment and --token-file give none).
    #[arg(long, visible_alias = "credentials-file", value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// Demo pacing: take no live bar until a predictor has had HISTORY_END for its streams, then
    /// one bar at a time, each after its SIGNAL (or --hold-timeout-ms). Live: the market is read
    /// no further meanwhile, so a fast simulator waits; the clock is the broker's time.
    #[arg(long)]
    pub hold_market_until_predictor: bool,
    /// With --hold-market-until-predictor: how long to wait for a bar's SIGNAL (ms).
    #[arg(long, default_value_t = 2000)]
    pub hold_timeout_ms: u64,
    /// Where a closed bar comes from. `live` (default): the live stream's final snapshot goes
    /// out the moment the stream moves into the next period, when nothing could have been missed
    /// (every earlier bar accounted for, no reconnect since its last update; otherwise history);
    /// history confirms each bar afterwards, off the bar → order path, and a difference is sent
    /// again as a revision (`REV:1`) that the predictor rewinds to (docs/ipc.md "Revisions").
    /// `history`: every closed bar is fetched from the broker's history before it goes out —
    /// with K streams closing together the last waits about ⌈K/5⌉ − 1 s (5 historical requests
    /// a second), beyond the seed's 100 ms for 20 symbols.
    #[arg(long, value_enum, default_value_t = BarClose::Live)]
    pub bar_close: BarClose,
}

/// `--bar-close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BarClose {
    /// Every closed bar from the broker's history.
    History,
    /// The live stream's final snapshot, confirmed by history afterwards (revised on a
    /// difference).
    Live,
}

impl Cli {
    /// The run configuration.
    pub fn run_config(&self) -> anyhow::Result<RunConfig> {
        let mut feed = Vec::new();
        for f in &self.feed_csv {
            let (k, p) = f
                .split_once('=')
                .context("--feed-csv wants SYM_TF=path.csv")?;
            let (s, tf) = k
                .rsplit_once('_')
                .context("--feed-csv wants SYM_TF=path.csv")?;
            let tf = Timeframe::from_name(tf)
                .with_context(|| format!("--feed-csv {k}: unknown timeframe"))?;
            feed.push((s.to_string(), tf, PathBuf::from(p)));
        }
        let secrets = match &self.secrets {
            Some(p) => Some(SecretsFile::read(p).map_err(|e| anyhow::anyhow!("--secrets: {e}"))?),
            None => None,
        };
        let broker = match &self.broker {
            Some(b) => {
                let auto = b == "auto";
                let b = if auto {
                    self.demo_host.as_str()
                } else {
                    b.as_str()
                };
                let (host, port) = b
                    .rsplit_once(':')
                    .context("--broker wants HOST:PORT or auto")?;
                let port = port.parse().context("--broker: bad port")?;
                let account_id = oracle_secrets::account_id(
                    self.account_id,
                    secrets.as_ref(),
                    &|k| std::env::var(k).ok(),
                )
                .map_err(|e| anyhow::anyhow!("account id: {e}"))?
                .context(
                    "--broker needs the trading account id: --account-id, or ORACLE_CTRADER_ACCOUNT_ID in the --secrets file or the environment",
                )?;
                Some(BrokerTarget {
                    host: host.to_string(),
                    port,
                    account_id,
                    ca: self.ca.clone(),
                    insecure_local: self.insecure_local,
                    auto: auto.then(|| (self.live_host.clone(), self.demo_host.clone())),
                })
            }
            None if self.account_id.is_some() => bail!("--account-id needs --broker HOST:PORT"),
            None if self.dry_run => bail!(
                "--dry-run needs --broker HOST:PORT (or auto): it reads the live feed and trades the paper book only; without a broker use --paper"
            ),
            None => None,
        };
        Ok(RunConfig {
            secrets,
            broker,
            listen: self.listen,
            token_file: self.token_file.clone(),
            config: self.config.clone(),
            models: self.models.clone(),
            state_dir: self.state.clone(),
            paper: self.paper,
            with_paper: self.with_paper,
            dry_run: self.dry_run,
            paper_balance: self.paper_balance,
            paper_specs: self.paper_specs.clone(),
            feed_csv: feed,
            feed_interval: Duration::from_millis(self.feed_interval_ms),
            feed_start_file: self.feed_start_file.clone(),
            feed_wait_client: self.feed_wait_client,
            check_only: self.check_config,
            hold_market: self
                .hold_market_until_predictor
                .then(|| Duration::from_millis(self.hold_timeout_ms.max(1))),
            live_close: self.bar_close == BarClose::Live,
        })
    }
}

/// The log filter: `--log`, else `RUST_LOG`, else `info`; a filter that does not parse is an
/// error naming where it came from.
pub fn log_filter(flag: Option<&str>) -> Result<tracing_subscriber::EnvFilter, String> {
    let (text, from) = match flag {
        Some(f) => (f.to_string(), "--log"),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => (v, "RUST_LOG"),
            _ => ("info".to_string(), "default"),
        },
    };
    tracing_subscriber::EnvFilter::try_new(&text).map_err(|e| {
        format!("{from} {text:?}: not a log filter (e.g. info, debug, oracle_executor=debug): {e}")
    })
}

/// Installs the log subscriber on stderr: text (colours only when stderr is a terminal) or, with
/// `json`, one flat JSON object per line (the event's fields at the top level, as the
/// predictor writes them).
pub fn init_logging(json: bool, filter: tracing_subscriber::EnvFilter) {
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().flatten_event(true).with_target(false).try_init()
    } else {
        b.try_init()
    };
}

/// Entry point for `oracle-executor ARGS` and `oracle executor ARGS` (`args` includes `argv[0]`).
pub fn run_cli<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    oracle_resident::limit_arenas();
    oracle_resident::trim();
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let filter = match log_filter(cli.log.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("oracle-executor: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.json, filter);
    oracle_resident::warm::start_logged(cli.keep_warm_ms);
    let rc = match cli.run_config() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    // One thread: the engine handles one batch at a time and the connections only move short
    // lines, so worker threads would add wake-ups between threads (and their stacks and malloc
    // arenas) without running anything in parallel that matters.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(rc)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("executor stopped: {e:#}");
            #[cfg(feature = "live")]
            if e.downcast_ref::<crate::live::AuthStop>().is_some() {
                return ExitCode::from(crate::live::EXIT_AUTH_STOP);
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oracle_executor_core::gather::close_instant;

    fn signal(sym: &str, bt: i64) -> String {
        format!(
            "SIGNAL|{sym}|WAIT|0|0.00|TF:M15|BT:{}|SEQ:1",
            oracle_ipc::Iso(bt)
        )
    }

    #[test]
    fn a_close_instant_is_awaited_until_each_of_its_signals_is_in() {
        let mut a = Awaiting::default();
        let bt = 1_736_899_200;
        a.bar_out("EURUSD", Timeframe::M15, bt);
        a.bar_out("US500", Timeframe::M15, bt);
        assert_eq!(close_instant(&signal("EURUSD", bt)), Some(bt + 900));
        a.signal_in(&signal("EURUSD", bt));
        assert!(a.expects(bt + 900), "US500's signal is still on its way");
        assert!(!a.expects(bt + 1800), "another instant is not");
        a.signal_in(&signal("US500", bt));
        assert!(!a.expects(bt + 900));
    }

    #[test]
    fn a_model_late_once_is_not_waited_for_until_it_signals_again() {
        let mut a = Awaiting::default();
        let bt = 1_736_899_200;
        a.bar_out("US500", Timeframe::M15, bt);
        a.late(bt + 900);
        assert!(!a.expects(bt + 900));
        // Its next bar is not awaited either: the predictor may not have it at all.
        a.bar_out("US500", Timeframe::M15, bt + 900);
        assert!(!a.expects(bt + 1800));
        // A signal of it comes in: awaited again from its next bar on.
        a.signal_in(&signal("US500", bt + 900));
        a.bar_out("US500", Timeframe::M15, bt + 1800);
        assert!(a.expects(bt + 2700));
    }

    #[test]
    fn dry_run_without_a_broker_is_refused_naming_the_flag() {
        let cli = Cli::try_parse_from(["oracle-executor", "--dry-run"]).expect("parses");
        let e = cli.run_config().expect_err("no broker").to_string();
        assert!(e.contains("--dry-run needs --broker"), "{e}");
    }

    #[test]
    fn dry_run_is_refused_beside_paper_with_paper_and_a_bar_replay() {
        let base = ["oracle-executor", "--dry-run", "--broker", "127.0.0.1:5035"];
        for extra in [
            &["--paper"][..],
            &["--with-paper"][..],
            &["--feed-csv", "EURUSD_M1=x.csv"][..],
        ] {
            let args = base.iter().chain(extra);
            let e = Cli::try_parse_from(args).expect_err("conflict").to_string();
            assert!(e.contains("--dry-run"), "{extra:?}: {e}");
        }
    }

    #[test]
    fn dry_run_with_a_broker_runs_live_without_the_paper_flags() {
        let cli = Cli::try_parse_from([
            "oracle-executor",
            "--dry-run",
            "--broker",
            "127.0.0.1:5035",
            "--account-id",
            "7",
        ])
        .expect("parses");
        let rc = cli.run_config().expect("config");
        assert!(rc.dry_run && !rc.paper && !rc.with_paper);
        assert_eq!(rc.broker.map(|b| b.account_id), Some(7));
    }
}
