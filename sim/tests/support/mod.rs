//! A minimal Open API test client over real TLS: `oracle-ctrader`'s frame codec and generated
//! messages, nothing of the sim's internals.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oracle_ctrader::FrameDecoder;
use oracle_ctrader::frame::encode_frame;
use oracle_ctrader::proto::{self as pb, Envelope, Payload};
use oracle_sim::bars::{Bar, Period, parse_iso_utc};
use oracle_sim::market::Start;
use oracle_sim::symbols::{SymbolData, synthetic};
use oracle_sim::{SimConfig, SimHandle};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const ACC: i64 = 1001;
pub const WAIT: Duration = Duration::from_secs(10);

pub fn t0() -> i64 {
    parse_iso_utc("2024-03-04T00:00:00Z").unwrap() // a Monday
}

/// EURUSD M15 ×400, US500 M5 ×1200, AAPL M15 ×400 (seeded), replay after 300 EURUSD bars.
pub fn three_symbols() -> Vec<SymbolData> {
    vec![
        synthetic("EURUSD", Period::M15, 400, t0(), 1),
        synthetic("US500", Period::M5, 1200, t0(), 2),
        synthetic("AAPL", Period::M15, 400, t0(), 3),
    ]
}

pub fn config() -> SimConfig {
    SimConfig {
        symbols: three_symbols(),
        start: Start::AfterBars(300),
        ..SimConfig::default()
    }
}

pub async fn start(cfg: SimConfig) -> SimHandle {
    oracle_sim::spawn(cfg).await.expect("sim starts")
}

/// What came off the wire.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Recv {
    Msg(Envelope),
    /// Clean end of stream (TLS close_notify or FIN).
    Eof,
    /// Read error (e.g. connection reset, or EOF without close_notify).
    Err(std::io::Error),
    /// The frame decoder refused the stream (e.g. an oversized frame).
    Frame(oracle_ctrader::FrameError),
    /// A frame whose body is not a valid ProtoMessage.
    Garbage(String),
    Timeout,
}

pub struct Client {
    pub stream: TlsStream<TcpStream>,
    dec: FrameDecoder,
    pub pending: VecDeque<Envelope>,
    n: u64,
    buf: Vec<u8>,
}

pub fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

impl Client {
    pub async fn connect(sim: &SimHandle) -> Client {
        Self::connect_to(sim.addr, &sim.ca_pem).await
    }

    pub async fn connect_to(addr: SocketAddr, ca_pem: &str) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = connector(ca_pem)
            .connect(ServerName::try_from("localhost").unwrap().to_owned(), tcp)
            .await
            .unwrap();
        Client {
            stream,
            dec: FrameDecoder::default(),
            pending: VecDeque::new(),
            n: 0,
            buf: vec![0; 64 * 1024],
        }
    }

    pub async fn send(&mut self, payload: impl Into<Payload>) -> String {
        self.n += 1;
        let cmid = format!("c{}", self.n);
        let bytes =
            oracle_ctrader::frame::encode_envelope(&Envelope::new(payload, Some(cmid.clone())));
        self.stream.write_all(&bytes).await.unwrap();
        self.stream.flush().await.unwrap();
        cmid
    }

    /// Like `send`, but a write error (the server closed the connection) is returned.
    pub async fn try_send(&mut self, payload: impl Into<Payload>) -> std::io::Result<String> {
        self.n += 1;
        let cmid = format!("c{}", self.n);
        let bytes =
            oracle_ctrader::frame::encode_envelope(&Envelope::new(payload, Some(cmid.clone())));
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        Ok(cmid)
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    pub async fn send_body(&mut self, body: &[u8]) {
        self.send_raw(&encode_frame(body)).await;
    }

    /// The next thing on the wire (ignores `pending`).
    pub async fn recv_raw(&mut self, wait: Duration) -> Recv {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.dec.next_frame() {
                Ok(Some(body)) => {
                    return match Envelope::decode(&body) {
                        Ok(e) => Recv::Msg(e),
                        Err(e) => Recv::Garbage(e.to_string()),
                    };
                }
                Ok(None) => {}
                Err(e) => return Recv::Frame(e),
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await {
                Err(_) => return Recv::Timeout,
                Ok(Ok(0)) => return Recv::Eof,
                Ok(Ok(n)) => self.dec.feed(&self.buf[..n]),
                Ok(Err(e)) => return Recv::Err(e),
            }
        }
    }

    /// The next message (pending first); panics on anything else.
    pub async fn next(&mut self) -> Envelope {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        match self.recv_raw(WAIT).await {
            Recv::Msg(e) => e,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The first message (pending or new) for which `pred` holds; the others stay pending.
    pub async fn wait_for(&mut self, mut pred: impl FnMut(&Envelope) -> bool) -> Envelope {
        if let Some(i) = self.pending.iter().position(&mut pred) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            match self.recv_raw(WAIT).await {
                Recv::Msg(e) if pred(&e) => return e,
                Recv::Msg(e) => self.pending.push_back(e),
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Sends and waits for the message echoing the clientMsgId.
    pub async fn request(&mut self, payload: impl Into<Payload>) -> Payload {
        let cmid = self.send(payload).await;
        self.wait_for(|e| e.client_msg_id.as_deref() == Some(cmid.as_str()))
            .await
            .payload
    }

    pub async fn app_auth(&mut self) {
        let r = self
            .request(pb::ProtoOaApplicationAuthReq {
                client_id: oracle_sim::config::DEFAULT_CLIENT_ID.into(),
                client_secret: oracle_sim::config::DEFAULT_CLIENT_SECRET.into(),
                ..Default::default()
            })
            .await;
        assert!(matches!(r, Payload::ApplicationAuthRes(_)), "{r:?}");
    }

    pub async fn login(&mut self) {
        self.app_auth().await;
        let r = self
            .request(pb::ProtoOaAccountAuthReq {
                ctid_trader_account_id: ACC,
                access_token: oracle_sim::config::DEFAULT_ACCESS_TOKEN.into(),
                ..Default::default()
            })
            .await;
        assert!(matches!(r, Payload::AccountAuthRes(_)), "{r:?}");
    }

    /// Drops pending spot events.
    pub fn drop_spots(&mut self) {
        self.pending
            .retain(|e| !matches!(e.payload, Payload::SpotEvent(_)));
    }
}

pub fn error_code(p: &Payload) -> String {
    match p {
        Payload::ErrorRes(e) => e.error_code.clone(),
        Payload::OaErrorRes(e) => e.error_code.clone(),
        Payload::OrderErrorEvent(e) => e.error_code.clone(),
        other => panic!("not an error: {other:?}"),
    }
}

/// A wire trendbar decoded with the client crate's decoder, as a sim bar.
pub fn decode(tb: &pb::ProtoOaTrendbar) -> Bar {
    let b = oracle_ctrader::units::decode_trendbar(tb).unwrap();
    Bar {
        time_ms: b.open_time * 1000,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    }
}

pub fn market_order(symbol_id: i64, side: i32, volume: i64) -> pb::ProtoOaNewOrderReq {
    pb::ProtoOaNewOrderReq {
        ctid_trader_account_id: ACC,
        symbol_id,
        order_type: 1,
        trade_side: side,
        volume,
        label: Some("test".into()),
        client_order_id: Some(format!("t-{symbol_id}-{side}-{volume}")),
        ..Default::default()
    }
}
