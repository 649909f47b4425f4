//! The Tokio shell: the WebSocket client (token, reconnect with backoff), the models-folder poll,
//! and shutdown on SIGINT/SIGTERM. Everything else is [`crate::engine::Predictor`].

use crate::engine::{BatchInstants, Predictor};
use crate::wire;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tracing::{error, info, warn};

/// How the shell connects and polls.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// The IPC token.
    pub token: String,
    /// Models-folder poll period.
    pub poll: Duration,
    /// Exit when the executor closes the connection (instead of reconnecting).
    pub once: bool,
}

/// How long after a batch's `SIGNAL`s the twins' trace rows and states are written (and the
/// states fsynced): past the executor's order path (its journal's fsync of the batch's intents,
/// the orders on the wire), so that fsync neither queues behind the predictor's nor has to
/// commit the trace files' appended rows with its own. The file is a restart point, not
/// a promise to anyone: a predictor killed before it restores the state before and steps the
/// bars since again from `HISTORY` (the same twins, the same `SIGNAL`s, which the executor
/// answers as duplicates). The next batch, when it comes sooner, writes them before it is
/// handled.
pub const PERSIST_DELAY: Duration = Duration::from_millis(50);

enum Ended {
    Shutdown,
    Closed,
}

/// Runs until SIGINT/SIGTERM (or, with `once`, until the executor hangs up).
pub async fn run(cfg: ShellConfig, mut p: Predictor) -> anyhow::Result<()> {
    let mut poll = interval(cfg.poll);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let shutdown = oracle_resident::shutdown_signal();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    // Arguments, logs, state file and runtime are set up: trimmed before the models load, so
    // the code that set them up does not add to the load's peak; and again once they are loaded.
    oracle_resident::trim();
    p.scan();
    oracle_resident::trim();
    loop {
        let attempt = timeout(Duration::from_secs(5), connect(&cfg.url));
        let conn = tokio::select! {
            biased;
            _ = &mut shutdown => { finish(&mut p); return Ok(()); }
            r = attempt => r,
        };
        match conn {
            Ok(Ok(ws)) => {
                info!(event = "connected", url = %cfg.url);
                match session(&cfg, &mut p, ws, &mut poll, &mut shutdown, &mut backoff).await {
                    Ok(Ended::Shutdown) => {
                        finish(&mut p);
                        return Ok(());
                    }
                    Ok(Ended::Closed) => warn!(event = "disconnected", url = %cfg.url),
                    Err(e) => warn!(event = "disconnected", url = %cfg.url, error = %e),
                }
                p.on_disconnected();
                if let Err(e) = p.persist() {
                    error!(event = "state_unwritable", error = %e);
                }
                if cfg.once {
                    finish(&mut p);
                    return Ok(());
                }
            }
            Ok(Err(e)) => {
                warn!(event = "connect_failed", url = %cfg.url, error = %e, retry_ms = backoff.as_millis() as u64)
            }
            Err(_) => {
                warn!(event = "connect_failed", url = %cfg.url, error = "timeout", retry_ms = backoff.as_millis() as u64)
            }
        }
        // Back off, still polling the folder and honouring shutdown.
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => { finish(&mut p); return Ok(()); }
                _ = sleep_until(until) => break,
                _ = poll.tick() => { p.scan(); }
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One session over an open WebSocket to the executor (what [`run`] does on each connection,
/// the models already scanned), until the executor closes it; the states are written at its end.
pub async fn serve<S>(
    cfg: &ShellConfig,
    p: &mut Predictor,
    ws: tokio_tungstenite::WebSocketStream<S>,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut poll = interval(cfg.poll);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let never = std::future::pending::<()>();
    tokio::pin!(never);
    let mut backoff = Duration::from_millis(100);
    let r = session(cfg, p, ws, &mut poll, &mut never, &mut backoff).await;
    p.persist()?;
    r.map(|_| ())
}

async fn session<S>(
    cfg: &ShellConfig,
    p: &mut Predictor,
    ws: tokio_tungstenite::WebSocketStream<S>,
    poll: &mut tokio::time::Interval,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    backoff: &mut Duration,
) -> anyhow::Result<Ended>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(wire::hello(&cfg.token))).await?;
    // The first answer is WELCOME or ERR|AUTH.
    let first = timeout(Duration::from_secs(5), rx.next()).await;
    match first {
        Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with("WELCOME") => {
            info!(event = "welcome", line = %t.as_str());
        }
        Ok(Some(Ok(Message::Text(t)))) => {
            error!(event = "auth_refused", line = %t.as_str(), "the executor refused the IPC token");
            return Ok(Ended::Closed);
        }
        Ok(other) => anyhow::bail!("no WELCOME: {other:?}"),
        Err(_) => anyhow::bail!("no WELCOME within 5 s"),
    }
    *backoff = Duration::from_millis(100);
    for line in p.on_connected() {
        tx.send(Message::text(line)).await?;
    }
    // When the states are written next (PERSIST_DELAY after a batch that moved a twin); the
    // caller writes them when the session ends.
    let mut persist_at: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.as_mut() => {
                let _ = tx.send(Message::Close(None)).await;
                return Ok(Ended::Shutdown);
            }
            msg = rx.next() => {
                let Some(msg) = msg else { return Ok(Ended::Closed) };
                let received_us = utc_us();
                // The previous batch's states are written before this one is handled (bars
                // that come faster than PERSIST_DELAY: a restart is never more than a batch
                // behind, as when every batch wrote its states at once).
                if persist_at.take().is_some()
                    && let Err(e) = p.persist()
                {
                    error!(event = "state_unwritable", error = %e);
                }
                // Handle this frame and every frame already received together (the bars of
                // one close arrive together: their twins step in one fleet call), send the
                // signals, then write the states once.
                let mut lines = Vec::new();
                let mut next = Some(msg);
                let mut closed = false;
                while let Some(m) = next.take() {
                    match m? {
                        Message::Text(t) => lines.push(t),
                        Message::Close(_) => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                    if lines.len() >= 1024 {
                        break;
                    }
                    next = rx.next().now_or_never().flatten();
                }
                let lines: Vec<&str> = lines.iter().map(|t| t.as_str()).collect();
                let out = p.handle_lines(&lines);
                let sent_us = utc_us();
                for line in out {
                    tx.feed(Message::text(line)).await?;
                }
                tx.flush().await?;
                // The signals are out: their log lines now, the trace rows and the states a
                // little later (PERSIST_DELAY).
                p.after_send_at(Some(BatchInstants {
                    received_us,
                    sent_us,
                }));
                if closed {
                    return Ok(Ended::Closed);
                }
                if p.unsaved() && persist_at.is_none() {
                    persist_at = Some(Instant::now() + PERSIST_DELAY);
                }
            }
            _ = sleep_until(persist_at.unwrap_or_else(Instant::now)), if persist_at.is_some() => {
                persist_at = None;
                if let Err(e) = p.persist() {
                    error!(event = "state_unwritable", error = %e);
                }
            }
            _ = poll.tick() => {
                for line in p.scan() {
                    tx.send(Message::text(line)).await?;
                }
            }
        }
    }
}

/// Opens the WebSocket with `TCP_NODELAY` set: signals are small frames that must not wait
/// for Nagle's algorithm.
async fn connect(
    url: &str,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| anyhow::anyhow!("{url}: only ws:// on loopback is supported"))?;
    let addr = rest.split('/').next().unwrap_or(rest);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config())).await?;
    Ok(ws)
}

/// The WebSocket buffers: lines are short (< 1 KiB) and a bar close is a few KiB, so
/// tungstenite's 128 KiB defaults (its read buffer is zero-filled to capacity on every read) only
/// cost memory; a HISTORY answer just takes a few more reads.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    let mut cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    cfg.read_buffer_size = 8 * 1024;
    cfg.write_buffer_size = 16 * 1024;
    cfg
}

fn finish(p: &mut Predictor) {
    if let Err(e) = p.persist() {
        error!(event = "state_unwritable", error = %e);
    }
    for (name, c) in p.counters() {
        info!(event = "summary", model = %name, bars = c.bars, live_bars = c.live_bars,
            signals = c.signals, ack_ok = c.ack_ok, ack_hold = c.ack_hold, ack_fail = c.ack_fail,
            ack_wait_sync = c.ack_wait_sync, drift = c.drift, ignored = c.ignored, rejected = c.rejected);
    }
    info!(
        event = "stopped",
        malformed = p.malformed,
        errors = p.errors
    );
}

/// The wall clock, UTC µs (the `signal` lines' batch instants).
fn utc_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
