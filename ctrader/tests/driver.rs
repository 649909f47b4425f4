//! The Tokio driver over real TLS on loopback, against a tiny in-test server (self-signed
//! certificate from rcgen). Only 127.0.0.1 is ever contacted.

use std::sync::Arc;
use std::time::Duration;

use oracle_ctrader::driver::{ClientConfig, ConfigError, Endpoint, Outcome, TlsMode, connect};
use oracle_ctrader::frame::{FrameDecoder, encode_envelope};
use oracle_ctrader::proto::*;
use oracle_ctrader::session::{DisconnectReason, Event};
use oracle_ctrader::{Credentials, Secret, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const ACC: i64 = 77;

fn session_cfg() -> SessionConfig {
    SessionConfig::new(
        Credentials {
            client_id: Secret::new("id-1"),
            client_secret: Secret::new("secret-1"),
            access_token: Secret::new("token-1"),
            refresh_token: None,
        },
        ACC,
    )
}

/// Starts a TLS server on 127.0.0.1 that answers auth and `TraderReq`; returns (port, CA pem).
async fn server() -> (u16, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let pem = ck.cert.pem().into_bytes();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut dec = FrameDecoder::default();
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    dec.feed(&buf[..n]);
                    while let Ok(Some(f)) = dec.next_frame() {
                        let env = Envelope::decode(&f).unwrap();
                        let id = env.client_msg_id.clone();
                        let reply: Option<Payload> = match env.payload {
                            Payload::ApplicationAuthReq(r) if r.client_secret == "secret-1" => {
                                Some(ProtoOaApplicationAuthRes::default().into())
                            }
                            Payload::ApplicationAuthReq(_) => Some(
                                ProtoOaErrorRes {
                                    error_code: "CH_CLIENT_AUTH_FAILURE".into(),
                                    ..Default::default()
                                }
                                .into(),
                            ),
                            Payload::AccountAuthReq(r) => Some(
                                ProtoOaAccountAuthRes {
                                    payload_type: None,
                                    ctid_trader_account_id: r.ctid_trader_account_id,
                                }
                                .into(),
                            ),
                            Payload::TraderReq(_) => Some(
                                ProtoOaTraderRes {
                                    payload_type: None,
                                    ctid_trader_account_id: ACC,
                                    trader: ProtoOaTrader {
                                        ctid_trader_account_id: ACC,
                                        balance: 123_456,
                                        deposit_asset_id: 1,
                                        ..Default::default()
                                    },
                                }
                                .into(),
                            ),
                            _ => None,
                        };
                        if let Some(p) = reply {
                            let fail = matches!(p, Payload::OaErrorRes(_));
                            let bytes = encode_envelope(&Envelope::new(p, id));
                            if tls.write_all(&bytes).await.is_err() {
                                return;
                            }
                            if fail {
                                let _ = tls.shutdown().await; // as the real server does
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, pem)
}

async fn next_matching(
    events: &mut oracle_ctrader::driver::Events,
    f: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = events.recv().await.expect("event stream ended");
            if f(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}

#[tokio::test]
async fn auth_and_request_over_tls_with_custom_ca() {
    let (port, pem) = server().await;
    let cfg = ClientConfig::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        },
        TlsMode::CustomCa(pem),
        session_cfg(),
    );
    let (client, mut events) = connect(cfg).unwrap();
    next_matching(&mut events, |e| matches!(e, Event::Ready)).await;
    let out = client
        .request(ProtoOaTraderReq {
            payload_type: None,
            ctid_trader_account_id: ACC,
        })
        .await
        .unwrap();
    match out {
        Outcome::Response(Payload::TraderRes(r)) => assert_eq!(r.trader.balance, 123_456),
        other => panic!("{other:?}"),
    }
    client.close().await;
}

#[tokio::test]
async fn insecure_local_works_on_loopback_only() {
    let (port, _) = server().await;
    let cfg = ClientConfig::new(
        Endpoint {
            host: "localhost".into(),
            port,
        },
        TlsMode::InsecureLocal,
        session_cfg(),
    );
    let (client, mut events) = connect(cfg).unwrap();
    next_matching(&mut events, |e| matches!(e, Event::Ready)).await;
    client.close().await;

    for host in ["demo.ctraderapi.com", "10.0.0.1", "192.168.1.1"] {
        let cfg = ClientConfig::new(
            Endpoint {
                host: host.into(),
                port: 5035,
            },
            TlsMode::InsecureLocal,
            session_cfg(),
        );
        assert!(
            matches!(connect(cfg), Err(ConfigError::InsecureNotLoopback(_))),
            "{host}"
        );
    }
}

#[tokio::test]
async fn self_signed_certificate_is_refused_with_webpki_roots() {
    let (port, _) = server().await;
    let cfg = ClientConfig::new(
        Endpoint {
            host: "localhost".into(),
            port,
        },
        TlsMode::WebPki,
        session_cfg(),
    );
    let (client, mut events) = connect(cfg).unwrap();
    let ev = next_matching(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        matches!(ev, Event::Disconnected { reason: DisconnectReason::ConnectFailed(ref s), .. } if s.contains("tls")),
        "{ev:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn wrong_secret_stops_with_auth_failed() {
    let (port, pem) = server().await;
    let mut s = session_cfg();
    s.credentials.client_secret = Secret::new("nope");
    let cfg = ClientConfig::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        },
        TlsMode::CustomCa(pem),
        s,
    );
    let (client, mut events) = connect(cfg).unwrap();
    let ev = next_matching(&mut events, |e| matches!(e, Event::AuthFailed { .. })).await;
    assert!(matches!(
        ev,
        Event::AuthFailed {
            code: ErrorCode::OpenApi(ProtoOaErrorCode::ChClientAuthFailure),
            ..
        }
    ));
    // The driver stops: the event stream ends and commands fail.
    tokio::time::timeout(Duration::from_secs(5), async {
        while events.recv().await.is_some() {}
    })
    .await
    .unwrap();
    assert!(client.request(ProtoOaVersionReq::default()).await.is_err());
}
