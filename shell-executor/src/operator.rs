//! The operator channel (docs/operator.md): a Unix-domain socket in the executor's state folder
//! (`operator.sock`, mode 0600, the folder 0700) that `oracle status|halt|flatten|resume|enable|
//! disable` talk to. "Authenticated local": only a peer of the executor's own uid is served (the
//! kernel's `SO_PEERCRED`); another uid is refused and logged.
//!
//! One JSON request line in, one JSON answer line out, as many as the client sends:
//!
//! ```text
//! {"cmd":"status"}                       → {"ok":true,"status":{…}}
//! {"cmd":"enable","symbol":"EURUSD"}     → {"ok":true,"message":"EURUSD enabled: …"}
//! {"cmd":"disable","symbol":"NOPE"}      → {"ok":false,"error":"unknown symbol \"NOPE\": …"}
//! not json                               → {"ok":false,"error":"malformed operator request …"}
//! ```
//!
//! A request reaches the engine through the loop that owns it ([`OperatorCall`] over a channel,
//! answered by [`handle`] on the engine's task): nothing changes behind the core's back. Every
//! request is journaled with its origin (`operator uid=1000 pid=4242 via socket`) in
//! `operator-journal.jsonl` beside the order journal, fsynced, before it is answered.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::{ExecutorConfig, write_atomic};
use crate::engine::{DECISION, Engine};
use crate::policy::{KeyText, StreamKey};
// The requests and the status view are the core's; re-exported: the socket serves them.
pub use oracle_executor_core::operator::{
    ModelRow, Request, SideStatus, Status, SymbolRow, TokenStatus, answer_err, check_peer, command,
    enable_check, enabled_file, enabled_message, model_state, parse_request,
};

/// The socket's file name in the state folder.
pub const SOCKET_NAME: &str = "operator.sock";
/// The operator journal's file name in the state folder.
pub const JOURNAL_NAME: &str = "operator-journal.jsonl";
/// The longest request line served (a longer one is refused and the connection closed).
pub const MAX_LINE: usize = 64 * 1024;

/// The socket of the executor whose state folder is `state`.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join(SOCKET_NAME)
}

/// A request on its way to the engine's loop, with where it came from and where to answer.
#[derive(Debug)]
pub struct OperatorCall {
    /// The request.
    pub req: Request,
    /// `operator uid=… pid=… via socket`.
    pub origin: String,
    /// The answer line's value.
    pub reply: oneshot::Sender<Value>,
}

/// What the engine's loop needs to answer operator requests: the channel's receiving end, the
/// configuration file, the state folder, the models it streams.
#[derive(Debug)]
pub struct Operator {
    /// Requests from the socket's connections.
    pub rx: mpsc::Receiver<OperatorCall>,
    /// executor_config.json (enable/disable rewrite it).
    pub config_path: PathBuf,
    /// The state folder (the journal, the token file).
    pub state_dir: PathBuf,
    /// The models streamed (rows of the status even before their first SIGNAL).
    pub models: Vec<StreamKey>,
    /// The socket's accept loop and its file: stopped and removed when this is dropped (the
    /// executor stops serving), so a later start on the same folder finds no one answering.
    served: Option<(tokio::task::JoinHandle<()>, PathBuf)>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some((task, path)) = self.served.take() {
            task.abort();
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `operator.sock` in `state` (folder made 0700, socket 0600) and starts serving it: the
/// requests come out of [`Operator::rx`]. A stale socket file is replaced; one another executor
/// still serves is an error.
pub fn open(state: &Path, config_path: &Path, models: Vec<StreamKey>) -> anyhow::Result<Operator> {
    use anyhow::Context as _;
    std::fs::create_dir_all(state)
        .with_context(|| format!("{}: cannot create the state folder", state.display()))?;
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("{}: cannot make the state folder 0700", state.display()))?;
    let path = socket_path(state);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        anyhow::bail!(
            "{}: another executor serves this state folder (stop it, or give this one another --state)",
            path.display()
        );
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}: stale socket", path.display())),
    }
    let listener = UnixListener::bind(&path).with_context(|| {
        format!(
            "{}: cannot bind the operator socket (a Unix socket's path is at most 107 bytes)",
            path.display()
        )
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot make it 0600", path.display()))?;
    // The socket file is ours: its owner is the uid the executor runs as.
    let own_uid = std::fs::metadata(&path)
        .with_context(|| format!("{}", path.display()))?
        .uid();
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(accept_loop(listener, own_uid, tx));
    info!(socket = %path.display(), "operator channel listening (oracle status|halt|flatten|resume|enable|disable)");
    Ok(Operator {
        rx,
        config_path: config_path.to_path_buf(),
        state_dir: state.to_path_buf(),
        models,
        served: Some((task, path)),
    })
}

async fn accept_loop(listener: UnixListener, own_uid: u32, tx: mpsc::Sender<OperatorCall>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, own_uid, tx.clone()));
            }
            Err(e) => {
                warn!(error = %e, "operator channel: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn write_line(w: &mut (impl AsyncWriteExt + Unpin), v: &Value) -> std::io::Result<()> {
    let mut text = v.to_string();
    text.push('\n');
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}

async fn connection(stream: UnixStream, own_uid: u32, tx: mpsc::Sender<OperatorCall>) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "operator connection refused: its peer credentials cannot be read");
            return;
        }
    };
    let (r, mut w) = stream.into_split();
    if let Err(why) = check_peer(cred.uid(), own_uid) {
        warn!(target: DECISION, event = "operator_refused", uid = cred.uid(), pid = ?cred.pid(), "{why}");
        let _ = write_line(&mut w, &answer_err(&why)).await;
        return;
    }
    let origin = match cred.pid() {
        Some(pid) => format!("operator uid={} pid={pid} via socket", cred.uid()),
        None => format!("operator uid={} via socket", cred.uid()),
    };
    let mut lines = tokio::io::BufReader::new(r);
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = match AsyncReadExt::take(&mut lines, MAX_LINE as u64)
            .read_line(&mut buf)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                let _ = write_line(
                    &mut w,
                    &answer_err(&format!("operator request not readable: {e}")),
                )
                .await;
                return;
            }
        };
        if n == 0 {
            return;
        }
        if !buf.ends_with('\n') && n >= MAX_LINE {
            let why = format!("operator request longer than {MAX_LINE} bytes: refused");
            warn!(target: DECISION, event = "operator_malformed", origin = %origin, "{why}");
            let _ = write_line(&mut w, &answer_err(&why)).await;
            return;
        }
        if buf.trim().is_empty() {
            continue;
        }
        let answer = match parse_request(&buf) {
            Err(why) => {
                warn!(target: DECISION, event = "operator_malformed", origin = %origin, "{why}");
                answer_err(&why)
            }
            Ok(req) => {
                let (reply, rx) = oneshot::channel();
                let call = OperatorCall {
                    req,
                    origin: origin.clone(),
                    reply,
                };
                if tx.send(call).await.is_err() {
                    answer_err("the executor is stopping")
                } else {
                    rx.await
                        .unwrap_or_else(|_| answer_err("the executor is stopping"))
                }
            }
        };
        if write_line(&mut w, &answer).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The engine's side.

fn side_status<B: Broker>(name: &str, side: &crate::engine::Side<B>, now: i64) -> SideStatus {
    // The last account read when the broker did not answer now.
    let acc = side
        .core
        .cached_account(now)
        .or_else(|| side.core.last_account());
    SideStatus {
        side: name.to_string(),
        balance: acc.map(|a| a.balance),
        equity: acc.map(|a| a.equity),
        free_margin: acc.map(|a| a.free_margin),
        margin_used: acc.map(|a| a.equity - a.free_margin),
        connected: side.broker.connected(),
    }
}

/// The status snapshot of `engine` at `now` (Unix seconds). The account is the one last read
/// (refreshed first by [`handle`]).
pub fn status<B: Broker>(engine: &Engine<B>, op: &Operator, now: i64) -> Status {
    let mut keys: Vec<StreamKey> = op.models.clone();
    for side in [
        engine.core.live.as_ref().map(|s| &s.core.policy),
        engine.core.paper.as_ref().map(|s| &s.core.policy),
    ]
    .into_iter()
    .flatten()
    {
        keys.extend(side.models.keys().cloned());
    }
    // Rows by symbol, then timeframe name (`EURUSD H1` before `EURUSD M15`), as always.
    keys.sort_by(oracle_executor_core::key::by_name);
    keys.dedup();
    // The answering side: live when there is one.
    let answering = engine.core.live.as_ref().map(|s| &s.core.policy).or(engine
        .core
        .paper
        .as_ref()
        .map(|s| &s.core.policy));
    let models = keys
        .iter()
        .map(|k| {
            let m = answering.and_then(|p| p.models.get(k));
            let live = engine.core.live.as_ref().map(|s| s.position_view(k));
            let paper = engine.core.paper.as_ref().map(|s| s.position_view(k));
            ModelRow {
                model: k.model_name().to_string(),
                virtual_position: m.and_then(|m| m.target).map(|t| t.0.as_str().to_string()),
                virtual_pnl: engine.virtual_pnl(k),
                real_position: live.as_ref().map(|(p, _)| p.clone()),
                real_pnl: live.as_ref().map(|(_, v)| *v),
                paper_position: paper.as_ref().map(|(p, _)| p.clone()),
                paper_pnl: paper.as_ref().map(|(_, v)| *v),
                last_bar: m
                    .and_then(|m| m.last_bt)
                    .map(|t| oracle_ipc::Iso(t).to_string()),
                state: model_state(&engine.core.cfg, k, m, answering),
            }
        })
        .collect();
    let mut sides = Vec::new();
    if let Some(l) = &engine.core.live {
        sides.push(side_status("live", l, now));
    }
    if let Some(p) = &engine.core.paper {
        sides.push(side_status("paper", p, now));
    }
    let symbols = engine
        .core
        .cfg
        .symbols
        .iter()
        .map(|(n, s)| SymbolRow {
            name: n.clone(),
            enabled: s.enabled,
        })
        .collect();
    Status {
        at: oracle_ipc::Iso(now).to_string(),
        models,
        sides,
        guard: engine.core.guard_status(),
        symbols,
        token: engine
            .core
            .live
            .as_ref()
            .and_then(|l| l.broker.token_expires_at_ms())
            .map(|e| TokenStatus::at(e, now, "session"))
            .or_else(|| token_status(&op.state_dir, now)),
        restrictions: engine.core.restrictions_status(now.saturating_mul(1000)),
    }
}

#[cfg(feature = "live")]
fn token_status(state: &Path, now: i64) -> Option<TokenStatus> {
    let path = oracle_ctrader::tokenfile::path_in(state);
    let pair = oracle_ctrader::tokenfile::load(&path).ok()??;
    Some(TokenStatus::at(pair.expires_at_ms, now, "token file"))
}

#[cfg(not(feature = "live"))]
fn token_status(_state: &Path, _now: i64) -> Option<TokenStatus> {
    None
}

/// Sets `symbol`'s `enabled` in the running configuration and in the file: the file first
/// (atomically, its mode kept, every other key as it was), then the running value, so the two
/// never disagree. An unknown symbol is an error naming it and the configured ones.
pub fn set_enabled(
    cfg: &mut ExecutorConfig,
    path: &Path,
    symbol: &str,
    enabled: bool,
) -> Result<String, String> {
    let shown = path.display().to_string();
    if let Some(unchanged) = enable_check(cfg, &shown, symbol, enabled)? {
        return Ok(unchanged);
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let text = enabled_file(&bytes, &shown, symbol, enabled)?;
    write_atomic(path, &text).map_err(|e| format!("{shown}: cannot rewrite: {e}"))?;
    if let Some(sc) = cfg.symbols.get_mut(symbol) {
        sc.enabled = enabled;
    }
    Ok(enabled_message(symbol, enabled, &shown))
}

/// Appends one record to the operator journal (fsynced).
pub fn journal(state: &Path, record: &Value) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state.join(JOURNAL_NAME))?;
    let mut line = record.to_string();
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Answers one request on the engine's task: refreshes the accounts for a status, applies
/// enable/disable, journals the request and its outcome with its origin.
pub async fn handle<B: Broker>(
    engine: &mut Engine<B>,
    op: &Operator,
    now: i64,
    req: &Request,
    origin: &str,
) -> Value {
    let result: Result<Value, String> = match req {
        Request::Status => {
            if let Some(l) = &mut engine.core.live {
                let _ = l.refresh_risk(now).await;
            }
            if let Some(p) = &mut engine.core.paper {
                let _ = p.refresh_risk(now).await;
            }
            let s = status(engine, op, now);
            Ok(json!({"ok": true, "status": s}))
        }
        Request::Enable { symbol } | Request::Disable { symbol } => {
            let on = matches!(req, Request::Enable { .. });
            set_enabled(&mut engine.core.cfg, &op.config_path, symbol, on)
                .map(|m| json!({"ok": true, "message": m}))
        }
        Request::Halt { .. } | Request::Flatten { .. } | Request::Resume => {
            let cmd = command(req);
            let r = engine
                .core
                .handle_operator(now.saturating_mul(1000), &cmd, origin);
            // The closes it asked for and its journal records (the core's actions).
            engine.drive_sides(now).await;
            r.map(|m| json!({"ok": true, "message": m}))
        }
    };
    let (answer, ok, text) = match result {
        Ok(v) => {
            let text = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("status")
                .to_string();
            (v, true, text)
        }
        Err(e) => (answer_err(&e), false, e),
    };
    let record = json!({
        "ts": now,
        "origin": origin,
        "request": req,
        "ok": ok,
        "result": text,
    });
    if let Err(e) = journal(&op.state_dir, &record) {
        warn!(target: DECISION, error = %e, "operator journal write failed");
    }
    if ok {
        info!(target: DECISION, event = "operator", origin, request = %req.to_line(), "{text}");
    } else {
        warn!(target: DECISION, event = "operator", origin, request = %req.to_line(), "refused: {text}");
    }
    answer
}

// ---------------------------------------------------------------------------------------------
// The client (`oracle status` …).

/// Sends `req` to the executor of the state folder `state` and returns its answer. Errors name
/// the socket and what to check.
pub fn request(state: &Path, req: &Request) -> Result<Value, String> {
    let path = socket_path(state);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "{}: no executor answers ({e}); is it running with --state {}?",
            path.display(),
            state.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(60)));
    let mut line = req.to_line();
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("{}: cannot send: {e}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(&s)
        .read_line(&mut answer)
        .map_err(|e| format!("{}: no answer: {e}", path.display()))?;
    if answer.is_empty() {
        return Err(format!(
            "{}: the executor closed the connection",
            path.display()
        ));
    }
    serde_json::from_str(&answer)
        .map_err(|e| format!("{}: unreadable answer {answer:?}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_file(tag: &str, text: &str) -> (PathBuf, ExecutorConfig) {
        let dir = std::env::temp_dir().join(format!("oracle-op-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("executor_config.json");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (cfg, _) = crate::config::load(&p, &[]).unwrap();
        (p, cfg)
    }

    const TWO: &str = r#"{"risk": {"daily_loss_pct": 4}, "US500": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5, "max_spread_points": 80}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#;

    #[test]
    fn disable_applies_to_the_running_config_and_rewrites_the_file_keeping_the_rest() {
        let (p, mut cfg) = config_file("disable", TWO);
        let m = set_enabled(&mut cfg, &p, "EURUSD", false).expect("disable");
        assert!(m.contains("EURUSD disabled"), "{m}");
        assert!(!cfg.symbols["EURUSD"].enabled, "running value changed");
        assert!(cfg.symbols["US500"].enabled);
        // The file says the same, every other key as it was, in its order, and its mode kept.
        let (again, _) = crate::config::load(&p, &[]).unwrap();
        assert!(!again.symbols["EURUSD"].enabled);
        assert_eq!(again.symbols["US500"].max_spread_points, Some(80.0));
        assert_eq!(again.risk.daily_loss_pct, 4.0);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.find("risk").unwrap() < text.find("US500").unwrap());
        assert!(text.find("US500").unwrap() < text.find("EURUSD").unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // And back.
        set_enabled(&mut cfg, &p, "EURUSD", true).expect("enable");
        assert!(cfg.symbols["EURUSD"].enabled);
        assert!(crate::config::load(&p, &[]).unwrap().0.symbols["EURUSD"].enabled);
    }

    #[test]
    fn an_unknown_symbol_is_named_with_the_configured_ones_and_nothing_changes() {
        let (p, mut cfg) = config_file("unknown", TWO);
        let before = std::fs::read(&p).unwrap();
        let e = set_enabled(&mut cfg, &p, "GBPUSD", false).expect_err("unknown");
        assert!(e.contains("\"GBPUSD\""), "{e}");
        assert!(
            e.contains("EURUSD, US500"),
            "lists the configured ones: {e}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[cfg(feature = "live")]
    #[test]
    fn the_token_expiry_is_read_from_the_state_folders_token_file() {
        let dir = std::env::temp_dir().join(format!("oracle-op-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = 1_736_899_200;
        assert_eq!(token_status(&dir, now), None, "no token file: none");
        let path = oracle_ctrader::tokenfile::path_in(&dir);
        oracle_ctrader::tokenfile::prepare_folder(&path).unwrap();
        let pair = oracle_ctrader::tokenfile::TokenPair {
            access_token: oracle_ctrader::Secret::new("access-secret"),
            refresh_token: oracle_ctrader::Secret::new("refresh-secret"),
            obtained_at_ms: now * 1000,
            expires_at_ms: (now + 3600) * 1000,
        };
        oracle_ctrader::tokenfile::store(&path, &pair).unwrap();
        let t = token_status(&dir, now + 600).expect("a token");
        assert_eq!(t.seconds_left, 3000);
        assert_eq!(t.expires_at, oracle_ipc::Iso(now + 3600).to_string());
        let shown = serde_json::to_string(&t).unwrap();
        assert!(
            !shown.contains("secret"),
            "no token value in the status: {shown}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
