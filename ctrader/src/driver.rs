//! The thin Tokio driver: owns the TCP/TLS socket and the clock, shuttles bytes and time to the
//! [`Session`], and routes its events. It makes no protocol decision of its own.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use oracle_ctrader::driver::{connect, ClientConfig, Endpoint, TlsMode};
//! use oracle_ctrader::{Credentials, SessionConfig};
//! let session = SessionConfig::new(Credentials::from_env()?, 12345);
//! let cfg = ClientConfig::new(Endpoint::demo(), TlsMode::WebPki, session);
//! let (client, mut events) = connect(cfg)?;
//! while let Some(ev) = events.recv().await {
//!     if matches!(ev, oracle_ctrader::Event::Ready) { break; }
//! }
//! # Ok(()) }
//! ```
//!
//! **TLS:** verification is on for real endpoints ([`TlsMode::WebPki`], Mozilla's roots from
//! `webpki-roots`). [`TlsMode::CustomCa`] trusts exactly the given PEM certificates (the
//! simulator's self-signed one). [`TlsMode::InsecureLocal`] skips verification and is refused
//! unless the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::proto::{
    ErrorCode, Payload, ProtoOaExecutionEvent, ProtoOaOrderErrorEvent, ProtoOaTrendbarPeriod,
};
use crate::session::{
    Event, NotSentReason, RequestId, Session, SessionConfig, SessionError, Transmit, UnknownReason,
};

/// Spotware's live host.
pub const LIVE_HOST: &str = "live.ctraderapi.com";
/// Spotware's demo host.
pub const DEMO_HOST: &str = "demo.ctraderapi.com";
/// The protobuf port.
pub const PORT: u16 = 5035;

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// `live.ctraderapi.com:5035`.
    pub fn live() -> Self {
        Self {
            host: LIVE_HOST.into(),
            port: PORT,
        }
    }
    /// `demo.ctraderapi.com:5035`.
    pub fn demo() -> Self {
        Self {
            host: DEMO_HOST.into(),
            port: PORT,
        }
    }
    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// How the server certificate is verified.
#[derive(Clone)]
pub enum TlsMode {
    /// Public roots (`webpki-roots`): for Spotware's hosts.
    WebPki,
    /// Trust exactly these PEM-encoded certificates (`--ca <pem>`).
    CustomCa(Vec<u8>),
    /// No verification; only for loopback hosts (`--insecure-local`).
    InsecureLocal,
}

impl std::fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsMode::WebPki => f.write_str("WebPki"),
            TlsMode::CustomCa(p) => write!(f, "CustomCa({} bytes)", p.len()),
            TlsMode::InsecureLocal => f.write_str("InsecureLocal"),
        }
    }
}

/// Everything [`connect`] needs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Server address.
    pub endpoint: Endpoint,
    /// Certificate verification.
    pub tls: TlsMode,
    /// The session's configuration (credentials, timeouts, limits).
    pub session: SessionConfig,
    /// TCP + TLS handshake timeout.
    pub connect_timeout: Duration,
    /// Capacity of the event channel (the driver waits when it is full).
    pub event_capacity: usize,
}

impl ClientConfig {
    /// Defaults: 10 s connect timeout, 4096 buffered events.
    pub fn new(endpoint: Endpoint, tls: TlsMode, session: SessionConfig) -> Self {
        Self {
            endpoint,
            tls,
            session,
            connect_timeout: Duration::from_secs(10),
            event_capacity: 4096,
        }
    }
}

/// Why [`connect`] refused to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `InsecureLocal` with a host that is not loopback.
    #[error("insecure TLS is only allowed for loopback hosts, not {0}")]
    InsecureNotLoopback(String),
    /// The CA PEM has no certificate or does not parse.
    #[error("CA certificate file is not valid PEM: {0}")]
    BadCa(String),
    /// The host is not a valid TLS server name.
    #[error("invalid server name {0}")]
    BadServerName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The driver task has stopped (closed, or the session failed).
    #[error("the cTrader driver has stopped")]
    Stopped,
    /// The session refused the command.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// The final word on one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The response message.
    Response(Payload),
    /// The server answered with an error.
    Error {
        /// Code.
        code: ErrorCode,
        /// Description.
        description: Option<String>,
    },
    /// The response to an order: an execution event.
    Execution(ProtoOaExecutionEvent),
    /// The response to an order: an order error event.
    OrderError(ProtoOaOrderErrorEvent),
    /// Sent, but the outcome is unknown: look it up (reconcile / deal list), do not resend.
    Unknown(UnknownReason),
    /// Never sent: safe to retry.
    NotSent(NotSentReason),
}

enum Command {
    Request(
        Box<Payload>,
        Option<Duration>,
        oneshot::Sender<Result<(RequestId, oneshot::Receiver<Outcome>), SessionError>>,
    ),
    Subscribe(
        i64,
        ProtoOaTrendbarPeriod,
        Option<i64>,
        oneshot::Sender<Result<(), SessionError>>,
    ),
    Unsubscribe(
        i64,
        ProtoOaTrendbarPeriod,
        oneshot::Sender<Result<(), SessionError>>,
    ),
    TokensStored(Result<(), String>),
    Close,
}

/// A request queued by [`Client::submit`], not yet known to be taken by the driver.
#[derive(Debug)]
pub struct Queued(oneshot::Receiver<Result<(RequestId, oneshot::Receiver<Outcome>), SessionError>>);

impl Queued {
    /// Waits until the driver took the request: its id and a receiver for its outcome, or why
    /// it was never sent (the driver stopped before taking it, or the session refused it).
    pub async fn taken(self) -> Result<(RequestId, oneshot::Receiver<Outcome>), ClientError> {
        Ok(self.0.await.map_err(|_| ClientError::Stopped)??)
    }
}

/// Handle to a running driver; cheap to clone.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
}

/// The stream of session events (everything except the outcomes delivered to [`Client::request`]
/// callers; execution events are delivered to both).
pub type Events = mpsc::Receiver<Event>;

impl Client {
    /// Sends a request and waits for its [`Outcome`] (with the session's default timeout).
    pub async fn request(&self, payload: impl Into<Payload>) -> Result<Outcome, ClientError> {
        self.request_inner(payload.into(), None).await
    }

    /// Sends a request with its own timeout and waits for its [`Outcome`].
    pub async fn request_with_timeout(
        &self,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Outcome, ClientError> {
        self.request_inner(payload.into(), Some(timeout)).await
    }

    /// Queues a request and returns at once, without waiting for the driver to take it: the
    /// requests queued back to back (a batch's orders) are taken together and go out in one
    /// write. [`Queued::taken`] gives the request's id and a receiver for its outcome.
    pub async fn submit(&self, payload: impl Into<Payload>) -> Result<Queued, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Request(Box::new(payload.into()), None, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        Ok(Queued(rx))
    }

    async fn request_inner(
        &self,
        payload: Payload,
        timeout: Option<Duration>,
    ) -> Result<Outcome, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Request(Box::new(payload), timeout, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        let (_, outcome) = rx.await.map_err(|_| ClientError::Stopped)??;
        outcome.await.map_err(|_| ClientError::Stopped)
    }

    /// Adds a subscriber to a bar stream (see [`Session::subscribe_bars`]); closed bars arrive as
    /// [`Event::BarClosed`] on the event stream.
    pub async fn subscribe_bars(
        &self,
        symbol_id: i64,
        period: ProtoOaTrendbarPeriod,
        last_closed: Option<i64>,
    ) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Subscribe(symbol_id, period, last_closed, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        Ok(rx.await.map_err(|_| ClientError::Stopped)??)
    }

    /// Removes a subscriber from a bar stream.
    pub async fn unsubscribe_bars(
        &self,
        symbol_id: i64,
        period: ProtoOaTrendbarPeriod,
    ) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Unsubscribe(symbol_id, period, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        Ok(rx.await.map_err(|_| ClientError::Stopped)??)
    }

    /// With [`SessionConfig::confirm_token_store`]: the pair of the last
    /// [`Event::TokensRefreshed`] is stored (`Ok`: the session may use it now) or could not be
    /// (`Err(reason)`: the session fails, [`Event::AuthFailed`]).
    pub async fn tokens_stored(&self, result: Result<(), String>) {
        let _ = self.tx.send(Command::TokensStored(result)).await;
    }

    /// Closes the session and stops the driver.
    pub async fn close(&self) {
        let _ = self.tx.send(Command::Close).await;
    }
}

/// Starts the driver task (must be called inside a Tokio runtime) and begins connecting. Progress
/// shows on the event stream (`Connecting`, `Ready`, `Disconnected`, `AuthFailed`, …).
pub fn connect(cfg: ClientConfig) -> Result<(Client, Events), ConfigError> {
    let tls = tls_connector(&cfg.endpoint, &cfg.tls)?;
    let server_name = ServerName::try_from(
        cfg.endpoint
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| ConfigError::BadServerName(cfg.endpoint.host.clone()))?;
    let (tx, rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(cfg.event_capacity.max(1));
    let now = tokio::time::Instant::now().into_std();
    let mut session = Session::new(cfg.session.clone(), now, utc_ms());
    session.start(now);
    let driver = Driver {
        session,
        tls,
        server_name,
        addr: format!("{}:{}", cfg.endpoint.host, cfg.endpoint.port),
        connect_timeout: cfg.connect_timeout,
        events: ev_tx,
        waiting: std::collections::HashMap::new(),
    };
    tokio::spawn(driver.run(rx));
    Ok((Client { tx }, ev_rx))
}

fn utc_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn tls_connector(
    endpoint: &Endpoint,
    mode: &TlsMode,
) -> Result<TlsConnector, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match mode {
        TlsMode::WebPki => {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::CustomCa(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| ConfigError::BadCa(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::BadCa(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(ConfigError::BadCa("no certificate found".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::InsecureLocal => {
            if !endpoint.is_loopback() {
                return Err(ConfigError::InsecureNotLoopback(endpoint.host.clone()));
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate (still checks handshake signatures). Loopback only; see [`TlsMode`].
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type ConnectFuture =
    Pin<Box<dyn std::future::Future<Output = Result<TlsStream<TcpStream>, String>> + Send>>;

struct Driver {
    session: Session,
    tls: TlsConnector,
    server_name: ServerName<'static>,
    addr: String,
    connect_timeout: Duration,
    events: mpsc::Sender<Event>,
    waiting: std::collections::HashMap<RequestId, oneshot::Sender<Outcome>>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut stream: Option<TlsStream<TcpStream>> = None;
        let mut connecting: Option<ConnectFuture> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut out: Vec<u8> = Vec::new();
        let mut closing = false;
        loop {
            // Outputs of the session: transmits (the frames queued together in one write),
            // then events.
            loop {
                let next = next_transmit(&mut self.session, &mut out);
                if !out.is_empty() {
                    if let Some(s) = stream.as_mut()
                        && let Err(e) = s.write_all(&out).await
                    {
                        stream = None;
                        self.session
                            .handle_disconnected(now(), format!("write failed: {e}"));
                    }
                    out.clear();
                }
                match next {
                    None => break,
                    Some(Transmit::Connect) => {
                        stream = None;
                        connecting = Some(self.connect_future());
                    }
                    Some(Transmit::Close) => {
                        if let Some(mut s) = stream.take() {
                            let _ = s.shutdown().await;
                        }
                    }
                    Some(Transmit::Bytes(_)) => unreachable!("next_transmit gathers the bytes"),
                }
            }
            while let Some(ev) = self.session.poll_event() {
                if self.route(ev).await.is_err() {
                    return; // Nobody listens any more.
                }
            }
            if closing
                || matches!(
                    self.session.state(),
                    crate::session::State::Failed | crate::session::State::Closed
                )
            {
                // Flush what the session produced, then stop.
                if let Some(mut s) = stream.take() {
                    let _ = s.shutdown().await;
                }
                return;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(c) => {
                        closing = self.command(c);
                        // The commands already queued behind it (requests made together: a
                        // batch's margins, an account read) go out in the same write.
                        while !closing && let Ok(c) = commands.try_recv() {
                            closing = self.command(c);
                        }
                    }
                    None => { self.session.close(now()); closing = true; }
                },
                res = async { connecting.as_mut().expect("guarded by the select condition").await }, if connecting.is_some() => {
                    connecting = None;
                    match res {
                        Ok(s) => { stream = Some(s); self.session.handle_connected(now()); }
                        Err(e) => self.session.handle_connect_failed(now(), e),
                    }
                }
                n = async { stream.as_mut().expect("guarded by the select condition").read(&mut buf).await }, if stream.is_some() => {
                    match n {
                        Ok(0) => { stream = None; self.session.handle_disconnected(now(), "connection closed by peer".into()); }
                        Ok(n) => self.session.handle_bytes(now(), &buf[..n]),
                        Err(e) => { stream = None; self.session.handle_disconnected(now(), format!("read failed: {e}")); }
                    }
                }
                _ = sleep_until(deadline) => {
                    let t = now();
                    self.session.handle_utc(t, utc_ms());
                    self.session.handle_timeout(t);
                }
            }
        }
    }

    fn connect_future(&self) -> ConnectFuture {
        let tls = self.tls.clone();
        let name = self.server_name.clone();
        let addr = self.addr.clone();
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let fut = async {
                let tcp = TcpStream::connect(&addr)
                    .await
                    .map_err(|e| format!("tcp connect to {addr}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                tls.connect(name, tcp)
                    .await
                    .map_err(|e| format!("tls handshake with {addr}: {e}"))
            };
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| format!("connect to {addr} timed out"))?
        })
    }

    /// Returns true when the driver must stop.
    fn command(&mut self, c: Command) -> bool {
        let t = now();
        match c {
            Command::Request(payload, timeout, reply) => {
                let r = match timeout {
                    Some(d) => self.session.send_request_with_timeout(t, *payload, d),
                    None => self.session.send_request(t, *payload),
                };
                let r = r.map(|id| {
                    let (otx, orx) = oneshot::channel();
                    self.waiting.insert(id, otx);
                    (id, orx)
                });
                let _ = reply.send(r);
            }
            Command::Subscribe(sym, period, last, reply) => {
                let _ = reply.send(self.session.subscribe_bars(t, sym, period, last));
            }
            Command::Unsubscribe(sym, period, reply) => {
                let _ = reply.send(self.session.unsubscribe_bars(t, sym, period));
            }
            Command::TokensStored(Ok(())) => self.session.handle_tokens_stored(t),
            Command::TokensStored(Err(reason)) => {
                self.session.handle_tokens_store_failed(t, reason);
            }
            Command::Close => {
                self.session.close(t);
                return true;
            }
        }
        false
    }

    /// Outcomes go to their waiting caller; everything else (and executions) to the event stream.
    async fn route(&mut self, ev: Event) -> Result<(), ()> {
        let (id, outcome) = match &ev {
            Event::Response { id, payload } => (*id, Outcome::Response(payload.clone())),
            Event::RequestError {
                id,
                code,
                description,
            } => (
                *id,
                Outcome::Error {
                    code: code.clone(),
                    description: description.clone(),
                },
            ),
            Event::RequestOutcomeUnknown { id, reason, .. } => (*id, Outcome::Unknown(*reason)),
            Event::RequestNotSent { id, reason } => (*id, Outcome::NotSent(reason.clone())),
            Event::Execution {
                request: Some(id),
                event,
            } => {
                if let Some(w) = self.waiting.remove(id) {
                    let _ = w.send(Outcome::Execution(event.clone()));
                }
                return self.events.send(ev).await.map_err(|_| ());
            }
            Event::OrderError {
                request: Some(id),
                event,
            } => {
                if let Some(w) = self.waiting.remove(id) {
                    let _ = w.send(Outcome::OrderError(event.clone()));
                }
                return self.events.send(ev).await.map_err(|_| ());
            }
            _ => return self.events.send(ev).await.map_err(|_| ()),
        };
        match self.waiting.remove(&id) {
            Some(w) => {
                let _ = w.send(outcome);
                Ok(())
            }
            None => self.events.send(ev).await.map_err(|_| ()),
        }
    }
}

/// The session's next transmits: the bytes of consecutive frames appended to `out` (to go in
/// one write), and the first transmit that is not bytes (to be handled after that write), or
/// `None` when the session has nothing more to send.
fn next_transmit(session: &mut Session, out: &mut Vec<u8>) -> Option<Transmit> {
    loop {
        match session.poll_transmit()? {
            Transmit::Bytes(b) => out.extend_from_slice(&b),
            other => return Some(other),
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameDecoder, encode_envelope};
    use crate::proto::{
        Envelope, ProtoOaAccountAuthRes, ProtoOaApplicationAuthRes, ProtoOaTraderReq,
    };
    use crate::{Credentials, Secret};

    const ACC: i64 = 77;

    fn ready_session() -> (Session, std::time::Instant) {
        let t = std::time::Instant::now();
        let creds = Credentials {
            client_id: Secret::new("id-1"),
            client_secret: Secret::new("secret-1"),
            access_token: Secret::new("token-1"),
            refresh_token: None,
        };
        let mut s = Session::new(SessionConfig::new(creds, ACC), t, 1_700_000_000_000);
        s.start(t);
        assert!(matches!(s.poll_transmit(), Some(Transmit::Connect)));
        s.handle_connected(t);
        // Answers the request just sent (by its client message id).
        let answer = |s: &mut Session, p: Payload| {
            let mut sent = Vec::new();
            assert!(next_transmit(s, &mut sent).is_none());
            let mut dec = FrameDecoder::default();
            dec.feed(&sent);
            let f = dec.next_frame().expect("frame").expect("a request");
            let id = Envelope::decode(&f).expect("envelope").client_msg_id;
            s.handle_bytes(t, &encode_envelope(&Envelope::new(p, id)));
        };
        answer(&mut s, ProtoOaApplicationAuthRes::default().into());
        answer(
            &mut s,
            ProtoOaAccountAuthRes {
                payload_type: None,
                ctid_trader_account_id: ACC,
            }
            .into(),
        );
        while s.poll_transmit().is_some() {}
        let mut ready = false;
        while let Some(ev) = s.poll_event() {
            ready |= matches!(ev, Event::Ready);
        }
        assert!(ready, "the session is ready");
        (s, t)
    }

    #[test]
    fn requests_made_together_leave_in_one_write() {
        let (mut s, t) = ready_session();
        let ids: Vec<RequestId> = (0..3)
            .map(|_| {
                s.send_request(
                    t,
                    ProtoOaTraderReq {
                        payload_type: None,
                        ctid_trader_account_id: ACC,
                    },
                )
                .expect("sent")
            })
            .collect();
        let mut out = Vec::new();
        assert!(
            next_transmit(&mut s, &mut out).is_none(),
            "nothing but bytes"
        );
        let mut dec = FrameDecoder::default();
        dec.feed(&out);
        let mut frames = Vec::new();
        while let Ok(Some(f)) = dec.next_frame() {
            frames.push(Envelope::decode(&f).expect("envelope"));
        }
        assert_eq!(frames.len(), 3, "the three requests in the one write");
        assert!(
            frames
                .iter()
                .all(|e| matches!(e.payload, Payload::TraderReq(_)))
        );
        let sent: std::collections::HashSet<_> =
            frames.iter().map(|e| e.client_msg_id.clone()).collect();
        assert_eq!(sent.len(), ids.len(), "each request once");
        // A transmit that is not bytes ends the write: it is handled after it.
        out.clear();
        s.close(t);
        let next = next_transmit(&mut s, &mut out);
        assert!(matches!(next, Some(Transmit::Close)), "{out:?}");
    }
}
