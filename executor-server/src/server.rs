//! The IPC WebSocket server (127.0.0.1 only, token on the first frame). The bar streams and the
//! lines it sends are `oracle_executor_core::streams`; the token ([`Secret`], loaded from the
//! environment or a 0600 file) is `oracle_secrets`'.
//!
//! Each connection runs in its own task and never touches the engine: SIGNAL and HISTORY lines go
//! to the single engine loop (`oracle_executor::shell::serve`) over a bounded channel, bars come from a
//! broadcast. Malformed lines get `ERR|…` and a counter, never a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use oracle_executor_core::streams::{err_line, welcome_line};
use oracle_ipc::{ErrCode, Message, Timeframe};
use oracle_secrets::Secret;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};

/// Counters of the IPC side.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Wrong tokens.
    pub auth_failures: AtomicU64,
    /// Lines before HELLO.
    pub not_authenticated: AtomicU64,
    /// Unparseable lines.
    pub malformed: AtomicU64,
    /// Frames over MAX_LINE.
    pub too_long: AtomicU64,
    /// Unknown symbols.
    pub unknown_symbol: AtomicU64,
    /// SIGNALs for a model (symbol, timeframe) the executor does not stream (`UNKNOWN_MODEL`).
    pub unknown_model: AtomicU64,
    /// SIGNALs for a bar the executor has not streamed (`UNKNOWN_BAR`).
    pub unknown_bar: AtomicU64,
    /// BAR lines sent.
    pub bars_sent: AtomicU64,
    /// Broker reconnects (each followed by a reconciliation).
    pub reconnects: AtomicU64,
    /// HISTORY requests answered with HISTORY_END.
    pub histories: AtomicU64,
    /// Bars sent again with `REV:1` (history differed from the live snapshot sent).
    pub revisions: AtomicU64,
    /// Connections closed at once because [`Limits::max_connections`] were open.
    pub refused_connections: AtomicU64,
    /// Connections closed because their WebSocket handshake did not finish within
    /// [`Limits::handshake_timeout`].
    pub handshake_timeouts: AtomicU64,
}

impl Metrics {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A scrape reads the broker reconnects the IPC server counted.
impl oracle_metrics::IpcCounters for Metrics {
    fn reconnects(&self) -> u64 {
        Metrics::get(&self.reconnects)
    }
}

/// Requests from connections to the engine loop.
#[derive(Debug)]
pub enum Cmd {
    /// A SIGNAL line (re-parsed by the engine loop); the reply is the line to send back.
    Signal {
        /// The line.
        line: String,
        /// Reply.
        reply: oneshot::Sender<String>,
    },
    /// A HISTORY request; the reply is the lines to send (BARs then HISTORY_END, or an ERR).
    History {
        /// Symbol.
        symbol: String,
        /// Timeframe.
        tf: Timeframe,
        /// Count.
        count: u32,
        /// Reply.
        reply: oneshot::Sender<Vec<String>>,
    },
}

/// Largest WebSocket frame accepted at all; frames between [`oracle_ipc::MAX_LINE`] and this get
/// `ERR|TOO_LONG`, larger ones close the connection.
pub const MAX_FRAME: usize = 64 * 1024;

/// How long a connection may take to finish its WebSocket handshake before it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the handshake `HELLO|<token>` may take before the connection is closed.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once (authenticated or not); one more is closed at once. The predictor
/// needs one; a socket that never authenticates holds a place for at most
/// [`HANDSHAKE_TIMEOUT`] + [`HELLO_TIMEOUT`].
pub const MAX_CONNECTIONS: usize = 32;

/// The IPC server's limits against connections that never authenticate (defaults: the
/// constants above; tests shorten them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The WebSocket handshake must be done within this, else the socket is closed.
    pub handshake_timeout: Duration,
    /// `HELLO|<token>` must come within this after the handshake, else the connection is closed.
    pub hello_timeout: Duration,
    /// Connections open at once; a connection over it is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            hello_timeout: HELLO_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Accepts connections until the listener fails, with the default [`Limits`]. Each connection
/// is its own task.
pub async fn accept_loop(
    listener: TcpListener,
    token: Secret,
    cmds: mpsc::Sender<Cmd>,
    bars: broadcast::Sender<Arc<str>>,
    metrics: Arc<Metrics>,
) {
    accept_loop_with(listener, token, cmds, bars, metrics, Limits::default()).await;
}

/// [`accept_loop`] with explicit [`Limits`]: at most `max_connections` connections at once
/// (one more is closed as soon as it is accepted, so half-open sockets cannot exhaust the
/// process's file descriptors), each closed when its handshake or its HELLO is late.
pub async fn accept_loop_with(
    listener: TcpListener,
    token: Secret,
    cmds: mpsc::Sender<Cmd>,
    bars: broadcast::Sender<Arc<str>>,
    metrics: Arc<Metrics>,
    limits: Limits,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Said once per run of refusals, not once per socket of a flood.
    let mut full = false;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !peer.ip().is_loopback() {
            warn!(%peer, "refused a non-loopback IPC connection");
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            bump(&metrics.refused_connections);
            if !full {
                warn!(%peer, max = limits.max_connections,
                    "IPC connection refused: {} connections are open (one that does not authenticate is closed after {:?} + {:?})",
                    limits.max_connections, limits.handshake_timeout, limits.hello_timeout);
                full = true;
            }
            drop(stream);
            continue;
        };
        full = false;
        // Small frames (a BAR, an ACK) must not wait for Nagle + delayed ACK.
        let _ = stream.set_nodelay(true);
        bump(&metrics.connections);
        let (token, cmds, rx, metrics) = (
            token.clone(),
            cmds.clone(),
            bars.subscribe(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            // The slot is freed when the connection ends.
            let _slot = slot;
            if let Err(e) = connection(stream, token, cmds, rx, metrics, limits).await {
                info!(%peer, reason = %e, "IPC connection closed");
            }
        });
    }
}

/// The ERR detail answering a text frame that is not UTF-8.
const NOT_UTF8: &str = "text frame is not UTF-8";

/// Why an IPC connection ended: the reason its log line gives. A plain message, not an
/// `anyhow::Error`: a connection ending is an expected event (a client that goes away, a port
/// probe that is no WebSocket), and anyhow captures a backtrace for every error when
/// `RUST_BACKTRACE` is set. That capture walked the unwind tables, which then stayed resident:
/// +1.3 MB of the executor's RSS in the bench, whose port probe is such a connection.
#[derive(Debug)]
pub struct Closed(pub String);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Closed {
    fn from(e: E) -> Self {
        Closed(e.to_string())
    }
}

async fn connection(
    stream: TcpStream,
    token: Secret,
    cmds: mpsc::Sender<Cmd>,
    mut bars: broadcast::Receiver<Arc<str>>,
    metrics: Arc<Metrics>,
    limits: Limits,
) -> Result<(), Closed> {
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config()));
    let ws = match tokio::time::timeout(limits.handshake_timeout, handshake).await {
        Ok(ws) => ws?,
        Err(_) => {
            bump(&metrics.handshake_timeouts);
            return Err(Closed(format!(
                "no WebSocket handshake within {:?}: closed",
                limits.handshake_timeout
            )));
        }
    };
    let (mut tx, mut rx) = ws.split();
    // Authentication: the first text frame must be HELLO|<token>, within the HELLO timeout;
    // three wrong frames before it close the connection.
    let mut tries = 0;
    loop {
        let frame = tokio::time::timeout(limits.hello_timeout, rx.next())
            .await
            .map_err(|_| Closed(format!("no HELLO within {:?}", limits.hello_timeout)))?;
        let Some(frame) = frame else { return Ok(()) };
        let text = match frame {
            Ok(WsMsg::Text(t)) => t.to_string(),
            Ok(WsMsg::Close(_)) => return Ok(()),
            Ok(WsMsg::Ping(_) | WsMsg::Pong(_)) => continue,
            Ok(_) => String::new(),
            Err(WsError::Utf8(_)) => {
                // The WebSocket protocol fails the connection on it: ERR first, then the close.
                bump(&metrics.malformed);
                tx.send(WsMsg::text(err_line(ErrCode::Malformed, NOT_UTF8)))
                    .await?;
                let _ = tx.close().await;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        match oracle_ipc::parse(&text) {
            Ok(Message::Hello(h)) if token.matches(h.token) => {
                tx.send(WsMsg::text(welcome_line())).await?;
                info!("IPC client authenticated");
                break;
            }
            Ok(Message::Hello(_)) => {
                bump(&metrics.auth_failures);
                warn!("IPC client sent a wrong token: ERR|AUTH, connection closed");
                tx.send(WsMsg::text(err_line(ErrCode::Auth, ""))).await?;
                let _ = tx.close().await;
                return Ok(());
            }
            _ => {
                bump(&metrics.not_authenticated);
                tries += 1;
                tx.send(WsMsg::text(err_line(
                    ErrCode::NotAuthenticated,
                    "send HELLO|<token> first",
                )))
                .await?;
                if tries >= 3 {
                    let _ = tx.close().await;
                    return Ok(());
                }
            }
        }
    }
    // Authenticated: a reader task (frames in → engine, without waiting for the answers) and
    // this task as the writer (bars from the broadcast, the engine's answers in the order of the
    // frames). A bar is written as soon as it is broadcast, except while answers of this
    // connection are pending: then it follows them (see `Out`).
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(1024);
    let reader = tokio::spawn(read_frames(rx, out_tx, cmds, metrics.clone(), token));
    let res = write_frames(&mut tx, &mut out_rx, &mut bars, &metrics).await;
    reader.abort();
    // Whatever ended it, the client gets a close frame after the last line written.
    let _ = tx.close().await;
    // A read error ended the reader (and so the writer): report it.
    if let Ok(Err(e)) = reader.await {
        return Err(e);
    }
    res
}

/// The WebSocket buffers of an IPC connection. Lines are short (< 1 KiB) and a bar close is a
/// few KiB, so tungstenite's 128 KiB defaults (its read buffer is zero-filled to capacity on
/// every read) only cost memory; a HISTORY burst just takes a few more reads and writes.
fn ws_config() -> WebSocketConfig {
    let mut cfg = WebSocketConfig::default();
    cfg.max_message_size = Some(MAX_FRAME);
    cfg.max_frame_size = Some(MAX_FRAME);
    cfg.read_buffer_size = 8 * 1024;
    cfg.write_buffer_size = 16 * 1024;
    cfg
}

/// What the reader hands the writer, in the order of the frames.
#[derive(Debug)]
enum Out {
    /// A line to send.
    Line(String),
    /// A SIGNAL is with the engine: its answer (ACK or ERR) is the next line of this
    /// connection's answers. Bars the engine broadcast before answering still go out while it
    /// is held (the engine may be gathering the close instant's other SIGNALs); once the answer
    /// is there it goes first, so a bar the engine releases as it answers (the demo pacing
    /// releases the next bar right after the ACK) follows it.
    Signal(oneshot::Receiver<String>),
    /// A HISTORY request is with the engine: its answer (BAR…|HIST:1 lines, HISTORY_END) is
    /// written next, and no live bar overtakes it.
    History(oneshot::Receiver<Vec<String>>),
}

type WsRead = futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<TcpStream>>;
type WsWrite =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, WsMsg>;

/// The reader half: each frame is parsed and, for a SIGNAL or a HISTORY, handed to the engine
/// loop without waiting for its answer (the engine answers in order; the SIGNALs queued
/// together are handled as one batch);
/// the writer writes the answers in the order of the frames. So the SIGNALs of one bar close
/// queue at the engine back to back instead of one socket round of the reader per signal.
/// Ends when the socket or the writer ends.
async fn read_frames(
    mut rx: WsRead,
    out: mpsc::Sender<Out>,
    cmds: mpsc::Sender<Cmd>,
    metrics: Arc<Metrics>,
    token: Secret,
) -> Result<(), Closed> {
    while let Some(frame) = rx.next().await {
        let text = match frame {
            Ok(WsMsg::Text(t)) => t,
            Ok(WsMsg::Binary(_)) => {
                bump(&metrics.malformed);
                out.send(Out::Line(err_line(ErrCode::Malformed, "binary frame")))
                    .await?;
                continue;
            }
            Ok(WsMsg::Close(_)) => return Ok(()),
            Ok(_) => continue,
            Err(WsError::Utf8(_)) => {
                // The WebSocket protocol fails the connection on it (the stream ends here):
                // the ERR goes out first, then the writer closes.
                bump(&metrics.malformed);
                warn!("IPC text frame that is not UTF-8: ERR|MALFORMED, connection closed");
                out.send(Out::Line(err_line(ErrCode::Malformed, NOT_UTF8)))
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if !handle_line(text.as_str(), &out, &cmds, &metrics, &token).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one frame into the sink's buffer (written out by the next flush, or when the buffer
/// passes [`ws_config`]'s write size).
async fn feed(tx: &mut WsWrite, line: String) -> Result<(), Closed> {
    tx.feed(WsMsg::text(line)).await?;
    Ok(())
}

/// Writes one item from the reader (awaiting the engine's answer where it is one).
async fn write_out(
    tx: &mut WsWrite,
    item: Out,
    bars: &mut broadcast::Receiver<Arc<str>>,
    metrics: &Metrics,
) -> Result<BarStep, Closed> {
    match item {
        Out::Line(l) => feed(tx, l).await.map(|()| BarStep::Sent),
        Out::Signal(mut reply) => {
            // What is buffered goes out now, not after the engine's turn.
            tx.flush().await?;
            // While the engine has not answered, the bars it already broadcast still go out:
            // the engine may be gathering the SIGNALs of the other models of this close instant
            // (shell::GATHER_WAIT), whose bars these are. Once the answer is there it goes first
            // (biased), so a bar the engine releases while or after answering (the demo pacing)
            // never overtakes it.
            let answer = loop {
                tokio::select! {
                    biased;
                    r = &mut reply => break r,
                    bar = bars.recv() => {
                        if let BarStep::End = write_bar(tx, bar, metrics).await? {
                            return Ok(BarStep::End);
                        }
                        tx.flush().await?;
                    }
                }
            };
            match answer {
                Ok(l) => {
                    if l.starts_with("ERR|UNKNOWN_SYMBOL") {
                        bump(&metrics.unknown_symbol);
                    } else if l.starts_with("ERR|UNKNOWN_MODEL") {
                        bump(&metrics.unknown_model);
                    } else if l.starts_with("ERR|UNKNOWN_BAR") {
                        bump(&metrics.unknown_bar);
                    } else if l.starts_with("ERR|") {
                        bump(&metrics.malformed);
                    }
                    feed(tx, l).await.map(|()| BarStep::Sent)
                }
                // The engine loop is gone: nothing to answer.
                Err(_) => Ok(BarStep::Sent),
            }
        }
        Out::History(reply) => {
            tx.flush().await?;
            let lines = reply.await.unwrap_or_default();
            if lines
                .first()
                .is_some_and(|l| l.starts_with("ERR|UNKNOWN_SYMBOL"))
            {
                bump(&metrics.unknown_symbol);
            }
            for l in lines {
                feed(tx, l).await?;
            }
            Ok(BarStep::Sent)
        }
    }
}

/// What the writer does with a bar from the broadcast.
enum BarStep {
    /// Written (buffered).
    Sent,
    /// The connection ends (the client lagged behind the stream, or the stream closed).
    End,
}

/// Writes a bar from the broadcast, or ends the connection when the client lagged behind the
/// stream (it resynchronises with HISTORY) or the stream closed.
async fn write_bar(
    tx: &mut WsWrite,
    bar: Result<Arc<str>, broadcast::error::RecvError>,
    metrics: &Metrics,
) -> Result<BarStep, Closed> {
    match bar {
        Ok(line) => {
            bump(&metrics.bars_sent);
            feed(tx, line.to_string()).await?;
            Ok(BarStep::Sent)
        }
        Err(broadcast::error::RecvError::Lagged(n)) => {
            // Never a silent gap: close, the predictor reconnects and asks HISTORY.
            warn!(
                missed = n,
                "IPC client too slow for the bar stream: closing it so it resynchronises with HISTORY"
            );
            let _ = tx.close().await;
            Ok(BarStep::End)
        }
        Err(broadcast::error::RecvError::Closed) => {
            let _ = tx.flush().await;
            Ok(BarStep::End)
        }
    }
}

/// The writer half: the reader's items (answers in frame order) and bars, whichever comes
/// first; everything already waiting is written with one flush (the 20 bars of one close go
/// out in one write, so the predictor reads them as one batch). Ends when the reader has ended
/// (its sender dropped), the socket fails, or the client lags behind the bar stream.
async fn write_frames(
    tx: &mut WsWrite,
    out: &mut mpsc::Receiver<Out>,
    bars: &mut broadcast::Receiver<Arc<str>>,
    metrics: &Metrics,
) -> Result<(), Closed> {
    use broadcast::error::TryRecvError;
    loop {
        tokio::select! {
            // Biased: an answer queued before a bar was broadcast is written before that bar
            // (the engine answers a SIGNAL before it releases the next bar).
            biased;
            item = out.recv() => match item {
                Some(item) => {
                    if let BarStep::End = write_out(tx, item, bars, metrics).await? {
                        return Ok(());
                    }
                }
                None => {
                    tx.flush().await?;
                    return Ok(());
                }
            },
            bar = bars.recv() => {
                if let BarStep::End = write_bar(tx, bar, metrics).await? {
                    return Ok(());
                }
            }
        }
        // Whatever else is ready, in the same priority, then one flush.
        loop {
            match out.try_recv() {
                Ok(item) => {
                    if let BarStep::End = write_out(tx, item, bars, metrics).await? {
                        return Ok(());
                    }
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    tx.flush().await?;
                    return Ok(());
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let bar = match bars.try_recv() {
                Ok(line) => Ok(line),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => Err(broadcast::error::RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
            };
            if let BarStep::End = write_bar(tx, bar, metrics).await? {
                return Ok(());
            }
        }
        tx.flush().await?;
    }
}

/// Parses one line and queues what answers it: an ERR line at once, a SIGNAL or HISTORY to the
/// engine (its answer slot queued to the writer first, so that no bar overtakes the answer).
/// `Ok(false)`: the connection ends after the answer (a second HELLO with a wrong token).
async fn handle_line(
    text: &str,
    out: &mpsc::Sender<Out>,
    cmds: &mpsc::Sender<Cmd>,
    metrics: &Metrics,
    token: &Secret,
) -> Result<bool, Closed> {
    let msg = match oracle_ipc::parse(text) {
        Ok(m) => m,
        Err(e) => {
            let code = e.err_code();
            bump(if code == ErrCode::TooLong {
                &metrics.too_long
            } else {
                &metrics.malformed
            });
            warn!(error = %e, len = text.len(), "IPC line refused");
            out.send(Out::Line(err_line(
                code,
                if code == ErrCode::TooLong { "" } else { text },
            )))
            .await?;
            return Ok(true);
        }
    };
    match msg {
        Message::Signal(_) => {
            let (reply, rx) = oneshot::channel();
            out.send(Out::Signal(rx)).await?;
            // An engine loop that is gone drops `reply`: the writer answers nothing.
            let _ = cmds
                .send(Cmd::Signal {
                    line: text.to_string(),
                    reply,
                })
                .await;
        }
        Message::History(h) => {
            let (reply, rx) = oneshot::channel();
            out.send(Out::History(rx)).await?;
            let _ = cmds
                .send(Cmd::History {
                    symbol: h.symbol.to_string(),
                    tf: h.tf,
                    count: h.count,
                    reply,
                })
                .await;
        }
        // Already authenticated: answered as the first HELLO is (WELCOME again, or ERR|AUTH
        // and the close for a wrong token).
        Message::Hello(h) if token.matches(h.token) => {
            out.send(Out::Line(welcome_line())).await?;
        }
        Message::Hello(_) => {
            bump(&metrics.auth_failures);
            warn!("IPC client sent a wrong token in a second HELLO: ERR|AUTH, connection closed");
            out.send(Out::Line(err_line(ErrCode::Auth, ""))).await?;
            return Ok(false);
        }
        other => {
            bump(&metrics.malformed);
            warn!(
                kind = other.kind().as_str(),
                "IPC line of a kind the executor does not accept"
            );
            out.send(Out::Line(err_line(ErrCode::Malformed, text)))
                .await?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client of the server at `addr`, signed in with the token `tok`.
    async fn signed_in(
        addr: std::net::SocketAddr,
    ) -> tokio_tungstenite::WebSocketStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}"), tcp)
            .await
            .expect("ws");
        ws.send(WsMsg::text("HELLO|tok")).await.expect("hello");
        match ws.next().await {
            Some(Ok(WsMsg::Text(t))) => assert_eq!(t.as_str(), "WELCOME|V:1"),
            other => panic!("{other:?}"),
        }
        ws
    }

    /// SIGNALs are handed to the engine without waiting for each answer; the answers go out in
    /// the order of the frames, and a bar broadcast as the answers are given (the demo pacing's
    /// release) follows them.
    #[test]
    fn signals_are_pipelined_and_answered_in_order_before_a_later_bar() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (cmd_tx, mut cmd_rx) = mpsc::channel::<Cmd>(16);
            let (bar_tx, _) = broadcast::channel::<Arc<str>>(16);
            let metrics = Arc::new(Metrics::default());
            tokio::spawn(accept_loop(
                listener,
                Secret::new("tok"),
                cmd_tx,
                bar_tx.clone(),
                metrics.clone(),
            ));
            // The engine: answers only once all three SIGNALs are queued (a reader that waited
            // for each answer would never send the second), after broadcasting a bar.
            let bars = bar_tx.clone();
            let engine = tokio::spawn(async move {
                let mut pending = Vec::new();
                while pending.len() < 3 {
                    match cmd_rx.recv().await {
                        Some(Cmd::Signal { line, reply }) => pending.push((line, reply)),
                        other => panic!("{other:?}"),
                    }
                }
                let _ = bars.send(Arc::from("BAR|LATER"));
                for (i, (line, reply)) in pending.into_iter().enumerate() {
                    let seq = line
                        .split('|')
                        .find_map(|f| f.strip_prefix("SEQ:"))
                        .unwrap_or("")
                        .to_string();
                    let _ = reply.send(format!("ACK-{i}-{seq}"));
                }
            });
            let mut ws = signed_in(addr).await;
            for seq in 1..=3 {
                ws.feed(WsMsg::text(format!(
                    "SIGNAL|EURUSD|WAIT|1|0.00|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:{seq}|DIR:0|INT:0"
                )))
                .await
                .expect("feed");
            }
            ws.feed(WsMsg::text("NOPE")).await.expect("feed");
            ws.flush().await.expect("flush");
            let mut got = Vec::new();
            while got.len() < 5 {
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(WsMsg::Text(t)))) => got.push(t.to_string()),
                    other => panic!("after {got:?}: {other:?}"),
                }
            }
            assert_eq!(&got[..3], ["ACK-0-1", "ACK-1-2", "ACK-2-3"]);
            assert!(got[3].starts_with("ERR|"), "{got:?}");
            assert_eq!(got[4], "BAR|LATER");
            engine.await.expect("engine");
        });
    }

    /// The engine holds a SIGNAL's answer while it gathers the other SIGNALs of the close
    /// instant, whose bars it broadcast: those bars still reach the client (before, the writer
    /// held every bar behind the pending answer, so the other SIGNALs could not come and the
    /// batch waited for its whole gathering bound).
    #[test]
    fn bars_broadcast_while_an_answer_is_held_still_go_out() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (cmd_tx, mut cmd_rx) = mpsc::channel::<Cmd>(16);
            let (bar_tx, _) = broadcast::channel::<Arc<str>>(16);
            tokio::spawn(accept_loop(
                listener,
                Secret::new("tok"),
                cmd_tx,
                bar_tx.clone(),
                Arc::new(Metrics::default()),
            ));
            let (seen_tx, seen_rx) = oneshot::channel::<()>();
            let bars = bar_tx.clone();
            let engine = tokio::spawn(async move {
                let Some(Cmd::Signal { reply, .. }) = cmd_rx.recv().await else {
                    panic!("a SIGNAL first");
                };
                let _ = bars.send(Arc::from("BAR|OTHER"));
                // The answer waits until the client has the other bar.
                seen_rx.await.expect("the client saw the bar");
                let _ = reply.send("ACK-0".to_string());
            });
            let mut ws = signed_in(addr).await;
            ws.send(WsMsg::text(
                "SIGNAL|EURUSD|WAIT|1|0.00|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:1|DIR:0|INT:0",
            ))
            .await
            .expect("signal");
            let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
            match first {
                Ok(Some(Ok(WsMsg::Text(t)))) => assert_eq!(t.as_str(), "BAR|OTHER"),
                other => panic!("the bar did not come while the answer was held: {other:?}"),
            }
            seen_tx.send(()).expect("engine waits");
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(WsMsg::Text(t)))) => assert_eq!(t.as_str(), "ACK-0"),
                other => panic!("{other:?}"),
            }
            engine.await.expect("engine");
        });
    }
}
