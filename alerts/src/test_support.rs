//! A local HTTPS server standing in for Telegram's Bot API and a webhook, for tests (feature
//! `test-support`): rustls with a test CA made by rcgen (trust [`ca_pem`]), recording each
//! request's path, content type and JSON body, answering from a script (200
//! `{"ok":true,"result":{}}` when it is empty), and able to hold an answer back.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

struct Material {
    config: Arc<rustls::ServerConfig>,
    ca_pem: String,
}

fn material() -> &'static Material {
    static M: OnceLock<Material> = OnceLock::new();
    M.get_or_init(|| {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alerts test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let mut leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
        Material {
            config: Arc::new(config),
            ca_pem: ca.pem(),
        }
    })
}

/// The test CA's certificate (PEM): what a client of the stand-in trusts.
pub fn ca_pem() -> &'static str {
    &material().ca_pem
}

/// One request the stand-in read.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request path (`/bot<TOKEN>/sendMessage`, `/hook/KEY`).
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body (`null` when it is not JSON).
    pub body: Value,
}

/// The stand-in server. Scripted answers: (status, body); an empty script answers 200
/// `{"ok":true,"result":{}}`.
#[derive(Clone, Default)]
pub struct Server {
    addr: Option<SocketAddr>,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    /// While set, a request is read and recorded, then its answer waits for a message here.
    hold: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl Server {
    /// Listens on a free loopback port, one thread per connection.
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = Server {
            addr: Some(listener.local_addr().unwrap()),
            ..Server::default()
        };
        let me = s.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let me = me.clone();
                std::thread::spawn(move || me.serve(conn));
            }
        });
        s
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("a started server")
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("https://{}", self.addr())
    }

    /// The next request is answered `status` with `body`.
    pub fn answer(&self, status: u16, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, body.to_string()));
    }

    /// The next request's answer waits until `release` sends (or is dropped).
    pub fn hold(&self, release: mpsc::Receiver<()>) {
        *self.hold.lock().unwrap() = Some(release);
    }

    /// The requests read so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The JSON bodies read so far, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().into_iter().map(|r| r.body).collect()
    }

    fn serve(&self, tcp: TcpStream) {
        let conn = rustls::ServerConnection::new(material().config.clone()).unwrap();
        let mut r = BufReader::new(rustls::StreamOwned::new(conn, tcp));
        let mut line = String::new();
        if r.read_line(&mut line).is_err() || line.is_empty() {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or_default().to_string();
        let (mut len, mut content_type) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap(),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        self.requests.lock().unwrap().push(Request {
            path,
            content_type,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        let held = self.hold.lock().unwrap().take();
        if let Some(rx) = held {
            let _ = rx.recv();
        }
        let (status, answer) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, r#"{"ok":true,"result":{}}"#.to_string()));
        let out = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let s = r.get_mut();
        let _ = s.write_all(out.as_bytes());
        s.conn.send_close_notify();
        let _ = s.flush();
    }
}
