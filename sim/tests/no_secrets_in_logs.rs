//! The sim logs at TRACE through a full auth + refresh session; no credential appears in the logs.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use oracle_ctrader::proto::{self as pb, Payload};
use oracle_sim::config::{AppConfig, TokenConfig};
use oracle_sim::msg::Scope;
use support::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_logs() {
    let buf = Buf::default();
    let w = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .init();

    let (cid, secret, access, refresh) = ("cid-77aa11", "sec-88bb22", "acc-99cc33", "ref-00dd44");
    let mut cfg = config();
    cfg.broker.apps = vec![AppConfig {
        client_id: cid.into(),
        client_secret: secret.into(),
    }];
    cfg.broker.tokens = vec![TokenConfig {
        access_token: access.into(),
        refresh_token: refresh.into(),
        scope: Scope::Trade,
        accounts: vec![ACC],
        expires_in_s: 3600,
    }];
    tracing::info!(config = ?cfg.broker, "starting");
    let sim = start(cfg).await;
    let mut c = Client::connect(&sim).await;
    let r = c
        .request(pb::ProtoOaApplicationAuthReq {
            client_id: cid.into(),
            client_secret: "wrong-ee55".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&r), "CH_CLIENT_AUTH_FAILURE");
    let mut c = Client::connect(&sim).await;
    let r = c
        .request(pb::ProtoOaApplicationAuthReq {
            client_id: cid.into(),
            client_secret: secret.into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::ApplicationAuthRes(_)));
    let r = c
        .request(pb::ProtoOaGetAccountListByAccessTokenReq {
            access_token: access.into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::GetAccountListByAccessTokenRes(_)));
    let r = c
        .request(pb::ProtoOaAccountAuthReq {
            ctid_trader_account_id: ACC,
            access_token: "bad-ff66".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&r), "CH_ACCESS_TOKEN_INVALID");
    let r = c
        .request(pb::ProtoOaAccountAuthReq {
            ctid_trader_account_id: ACC,
            access_token: access.into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::AccountAuthRes(_)));
    let r = c
        .request(pb::ProtoOaRefreshTokenReq {
            refresh_token: refresh.into(),
            ..Default::default()
        })
        .await;
    let Payload::RefreshTokenRes(new) = r else {
        panic!("{r:?}")
    };
    let e = c
        .wait_for(|e| matches!(e.payload, Payload::AccountsTokenInvalidatedEvent(_)))
        .await;
    assert!(e.client_msg_id.is_none());
    let r = c
        .request(pb::ProtoOaRefreshTokenReq {
            refresh_token: refresh.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        error_code(&r),
        "CH_ACCESS_TOKEN_INVALID",
        "a refresh token works once"
    );
    let r = c
        .request(pb::ProtoOaAccountAuthReq {
            ctid_trader_account_id: ACC,
            access_token: new.access_token.clone(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::AccountAuthRes(_)));
    c.request(market_order(1, 1, 100_000)).await;
    sim.shutdown().await;

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("application authorized") && logs.contains("order filled"),
        "logs were captured:\n{logs}"
    );
    for s in [
        cid,
        secret,
        access,
        refresh,
        "wrong-ee55",
        "bad-ff66",
        new.access_token.as_str(),
        new.refresh_token.as_str(),
    ] {
        assert!(!logs.contains(s), "`{s}` is in the logs:\n{logs}");
    }
}
