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
//! This is the socket (bind, peer check, the lines) and the client ([`request`]). A request
//! reaches the engine through the loop that owns it ([`OperatorCall`] over a channel, answered
//! by `oracle_executor::operator::handle` on the engine's task): nothing changes behind the
//! core's back. Every request is journaled there with its origin (`operator uid=1000 pid=4242
//! via socket`) in `operator-journal.jsonl` beside the order journal, fsynced, before it is
//! answered.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use oracle_executor_core::key::StreamKey;
use oracle_executor_core::operator::{Request, answer_err, check_peer, parse_request};
use oracle_executor_core::side::DECISION;

/// The socket's file name in the state folder.
pub const SOCKET_NAME: &str = "operator.sock";
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
