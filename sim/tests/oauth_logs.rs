//! The sim logs at TRACE through the OAuth endpoints (authorization page, code exchange, refresh,
//! a refused refresh); no client secret, code or token appears in its logs.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use oracle_sim::SimHandle;
use oracle_sim::config::AppConfig;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn get(sim: &SimHandle, target: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(sim.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = connector(&sim.ca_pem).connect(name, tcp).await.unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8(out).unwrap()
}

fn json_field(answer: &str, key: &str) -> String {
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key}: {answer}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_secrets_codes_and_tokens_never_reach_the_sim_logs() {
    let buf = Buf::default();
    let w = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .init();
    let (cid, secret) = ("cid-41ab", "sec-52cd");
    let mut cfg = config();
    cfg.broker.apps = vec![AppConfig {
        client_id: cid.into(),
        client_secret: secret.into(),
    }];
    let sim = start(cfg).await;
    let redirect = "https%3A%2F%2Flocalhost%2Fcb";
    let a = get(
        &sim,
        &format!("/apps/auth?client_id={cid}&redirect_uri={redirect}&scope=trading"),
    )
    .await;
    let location = a
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap()
        .to_string();
    let code = location.split("code=").nth(1).unwrap().to_string();
    let t = get(
        &sim,
        &format!("/apps/token?grant_type=authorization_code&code={code}&redirect_uri={redirect}&client_id={cid}&client_secret={secret}"),
    )
    .await;
    let (access, refresh) = (
        json_field(&t, "accessToken"),
        json_field(&t, "refreshToken"),
    );
    let r = get(
        &sim,
        &format!("/apps/token?grant_type=refresh_token&refresh_token={refresh}&client_id={cid}&client_secret={secret}"),
    )
    .await;
    let (access2, refresh2) = (
        json_field(&r, "accessToken"),
        json_field(&r, "refreshToken"),
    );
    let spent = get(
        &sim,
        &format!("/apps/token?grant_type=refresh_token&refresh_token={refresh}&client_id={cid}&client_secret={secret}"),
    )
    .await;
    assert!(spent.contains("INVALID_GRANT"), "{spent}");
    sim.shutdown().await;

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("OAuth endpoint"),
        "the HTTP path logged nothing:\n{logs}"
    );
    for s in [cid, secret, &code, &access, &refresh, &access2, &refresh2] {
        assert!(!logs.contains(s), "{s} in the logs:\n{logs}");
    }
}
