//! The OAuth flow end to end against the simulator over TLS, with the project's own client
//! (`oracle_ctrader::oauth`, `tokenfile`, `accounts`): authorization page → code → token pair
//! → token file → refresh → the old refresh token refused → the new access token opens an Open
//! API session. And the core's lifetimes with time as a parameter.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use oracle_ctrader::Secret;
use oracle_ctrader::driver::{Endpoint, TlsMode};
use oracle_ctrader::oauth::{OAuthError, TokenEndpoint};
use oracle_ctrader::proto::{self as pb, Payload};
use oracle_ctrader::tokenfile;
use oracle_sim::broker::Broker;
use oracle_sim::config::{BrokerConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use oracle_sim::market::Market;
use oracle_sim::msg::{ConnId, ErrorCode, Event, Request, Scope};
use oracle_sim::{Output, SimHandle};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const REDIRECT: &str = "https://localhost/callback";

/// GETs `target` from the sim over TLS; the whole answer as text.
async fn https_get(sim: &SimHandle, target: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(sim.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = connector(&sim.ca_pem).connect(name, tcp).await.unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8(out).unwrap()
}

/// The authorization page's redirect: the code in `Location`.
async fn authorize(sim: &SimHandle, client_id: &str) -> String {
    let url = oracle_ctrader::oauth::authorization_url(
        "/apps/auth",
        &Secret::new(client_id),
        REDIRECT,
        oracle_ctrader::oauth::Scope::Trading,
    );
    let answer = https_get(sim, &url).await;
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    let location = answer
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap_or_else(|| panic!("no Location: {answer}"));
    assert!(location.starts_with(REDIRECT), "{location}");
    oracle_ctrader::oauth::code_from(location)
        .unwrap()
        .expose()
        .to_string()
}

fn private_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-sim-oauth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    d
}

/// Runs a blocking token request off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn account_auth(sim: &SimHandle, access: &Secret) -> Payload {
    let mut c = Client::connect(sim).await;
    c.app_auth().await;
    c.request(pb::ProtoOaAccountAuthReq {
        ctid_trader_account_id: ACC,
        access_token: access.expose().to_string(),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_to_pair_to_file_to_refresh_old_refresh_refused_and_the_new_access_token_authenticates()
 {
    let sim = start(config()).await;
    let url = format!("https://127.0.0.1:{}/apps/token", sim.addr.port());
    let ca = sim.ca_pem.clone().into_bytes();
    let endpoint = std::sync::Arc::new(TokenEndpoint::new(&url, Some(&ca)).unwrap());
    let (id, secret) = (
        Secret::new(DEFAULT_CLIENT_ID),
        Secret::new(DEFAULT_CLIENT_SECRET),
    );
    let now_ms = 1_800_000_000_000; // the client's clock, a parameter

    // code → pair
    let code = Secret::new(authorize(&sim, DEFAULT_CLIENT_ID).await);
    let (e, i, s, c) = (endpoint.clone(), id.clone(), secret.clone(), code.clone());
    let first = blocking(move || e.exchange_code(&i, &s, REDIRECT, &c, now_ms))
        .await
        .unwrap();
    assert_eq!(first.obtained_at_ms, now_ms);
    assert_eq!(first.expires_at_ms, now_ms + 2_628_000_000);

    // the code works once
    let (e, i, s, c) = (endpoint.clone(), id.clone(), secret.clone(), code.clone());
    let again = blocking(move || e.exchange_code(&i, &s, REDIRECT, &c, now_ms)).await;
    assert!(
        matches!(&again, Err(OAuthError::Refused { code, .. }) if code == "INVALID_GRANT"),
        "{again:?}"
    );

    // pair → file
    let dir = private_dir("flow");
    let file = tokenfile::path_in(&dir);
    tokenfile::prepare_folder(&file).unwrap();
    tokenfile::store(&file, &first).unwrap();
    assert_eq!(tokenfile::load(&file).unwrap().as_ref(), Some(&first));

    // refresh → new pair → file
    let (e, i, s, r) = (
        endpoint.clone(),
        id.clone(),
        secret.clone(),
        first.refresh_token.clone(),
    );
    let second = blocking(move || e.refresh(&i, &s, &r, now_ms + 1))
        .await
        .unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token);
    tokenfile::store(&file, &second).unwrap();
    assert_eq!(tokenfile::load(&file).unwrap().as_ref(), Some(&second));

    // the old refresh token is spent
    let (e, i, s, r) = (
        endpoint.clone(),
        id.clone(),
        secret.clone(),
        first.refresh_token.clone(),
    );
    let spent = blocking(move || e.refresh(&i, &s, &r, now_ms + 2)).await;
    assert!(
        matches!(&spent, Err(OAuthError::Refused { code, .. }) if code == "INVALID_GRANT"),
        "{spent:?}"
    );
    assert!(!format!("{spent:?}").contains(first.refresh_token.expose()));

    // a wrong client secret is refused
    let (e, i, r) = (endpoint.clone(), id.clone(), second.refresh_token.clone());
    let denied = blocking(move || e.refresh(&i, &Secret::new("wrong"), &r, now_ms)).await;
    assert!(
        matches!(&denied, Err(OAuthError::Refused { code, .. }) if code == "ACCESS_DENIED"),
        "{denied:?}"
    );

    // the Open API takes the new access token, not the old one
    let stored = tokenfile::load(&file).unwrap().unwrap();
    let r = account_auth(&sim, &stored.access_token).await;
    assert!(matches!(r, Payload::AccountAuthRes(_)), "{r:?}");
    let r = account_auth(&sim, &first.access_token).await;
    assert_eq!(error_code(&r), "CH_ACCESS_TOKEN_INVALID");

    // and lists the accounts it grants, with balance and currency
    let list = oracle_ctrader::accounts::list_accounts(
        &Endpoint {
            host: "127.0.0.1".into(),
            port: sim.addr.port(),
        },
        &TlsMode::CustomCa(ca.clone()),
        &id,
        &secret,
        &stored.access_token,
        true,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(list.scope, Some("trade"));
    assert_eq!(list.accounts.len(), 1);
    let a = &list.accounts[0];
    assert_eq!(a.ctid_trader_account_id, ACC);
    assert_eq!(a.is_live, Some(false));
    assert_eq!(a.trader_login, Some(7_001_001));
    assert_eq!(a.broker.as_deref(), Some("oracle-sim"));
    assert_eq!(a.balance, Some(100_000.0));
    assert_eq!(a.currency.as_deref(), Some("USD"));
    assert_eq!(a.note, None);

    // the spent token cannot list
    let e = oracle_ctrader::accounts::list_accounts(
        &Endpoint {
            host: "127.0.0.1".into(),
            port: sim.addr.port(),
        },
        &TlsMode::CustomCa(ca),
        &id,
        &secret,
        &first.access_token,
        false,
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(e.contains("CH_ACCESS_TOKEN_INVALID"), "{e}");
    assert!(!e.contains(first.access_token.expose()), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_page_refuses_an_unknown_client_and_a_bad_scope_and_open_api_still_works() {
    let sim = start(config()).await;
    let a = https_get(
        &sim,
        "/apps/auth?client_id=nobody&redirect_uri=https%3A%2F%2Fx&scope=trading",
    )
    .await;
    assert!(
        a.starts_with("HTTP/1.1 400") && a.contains("ACCESS_DENIED"),
        "{a}"
    );
    let a = https_get(
        &sim,
        &format!("/apps/auth?client_id={DEFAULT_CLIENT_ID}&redirect_uri=https%3A%2F%2Fx&scope=all"),
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 400") && a.contains("scope"), "{a}");
    let a = https_get(&sim, "/nothing").await;
    assert!(a.starts_with("HTTP/1.1 404"), "{a}");
    // the listener still speaks the Open API
    let mut c = Client::connect(&sim).await;
    c.login().await;
    sim.shutdown().await;
}

// ---------------------------------------------------------------- the core, time a parameter

struct Core {
    b: Broker,
}

impl Core {
    fn new(now: i64) -> Self {
        let cfg = BrokerConfig {
            token_ttl_s: 100,
            ..BrokerConfig::default()
        };
        let market = Market::new(three_symbols(), oracle_sim::market::Start::AfterBars(300));
        Core {
            b: Broker::new(cfg, market, now).unwrap(),
        }
    }

    fn account_auth(&mut self, now: i64, token: &str) -> Event {
        let c: ConnId = self.b.connect(now);
        for req in [
            Request::ApplicationAuth {
                client_id: DEFAULT_CLIENT_ID.into(),
                client_secret: DEFAULT_CLIENT_SECRET.into(),
            },
            Request::AccountAuth {
                account_id: ACC,
                access_token: token.into(),
            },
        ] {
            self.b.handle_request(now, c, None, req);
        }
        let mut last = None;
        while let Some(o) = self.b.poll_output() {
            if let Output::Send { conn, event, .. } = o
                && conn == c
            {
                last = Some(event);
            }
        }
        last.unwrap()
    }
}

#[test]
fn a_code_lives_one_minute_and_an_issued_access_token_expires_after_the_ttl() {
    let t = 1_700_000_000_000;
    let mut core = Core::new(t);
    let (id, secret) = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);
    let late = core
        .b
        .oauth_authorize(t, id, REDIRECT, Scope::Trade)
        .unwrap();
    let e = core
        .b
        .oauth_exchange_code(t + 60_000, id, secret, &late, REDIRECT)
        .unwrap_err();
    assert!(
        e.code == "INVALID_GRANT" && e.description.contains("expired"),
        "{e:?}"
    );

    let code = core
        .b
        .oauth_authorize(t, id, REDIRECT, Scope::Trade)
        .unwrap();
    let e = core
        .b
        .oauth_exchange_code(t + 1_000, id, secret, &code, "https://elsewhere/")
        .unwrap_err();
    assert_eq!(e.code, "INVALID_GRANT");
    let code = core
        .b
        .oauth_authorize(t, id, REDIRECT, Scope::Trade)
        .unwrap();
    let issued = core
        .b
        .oauth_exchange_code(t + 59_999, id, secret, &code, REDIRECT)
        .unwrap();
    assert_eq!(issued.expires_in_s, 100);
    let end = t + 59_999 + 100_000;
    assert_eq!(
        core.account_auth(end - 1, &issued.access_token),
        Event::AccountAuthRes { account_id: ACC }
    );
    match core.account_auth(end, &issued.access_token) {
        Event::Error { code, .. } => assert_eq!(code, ErrorCode::OaAuthTokenExpired),
        other => panic!("{other:?}"),
    }
    // an expired access token's refresh token still works, once
    let next = core
        .b
        .oauth_refresh(end + 5_000, id, secret, &issued.refresh_token)
        .unwrap();
    assert_eq!(
        core.account_auth(end + 5_000, &next.access_token),
        Event::AccountAuthRes { account_id: ACC }
    );
    assert_eq!(
        core.b
            .oauth_refresh(end + 6_000, id, secret, &issued.refresh_token)
            .unwrap_err()
            .code,
        "INVALID_GRANT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_list_over_tls_refuses_a_demo_account_on_the_live_host_naming_the_demo_host() {
    use oracle_ctrader::accounts::{HostCheck, check_account_host};
    let sim = start(config()).await;
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: sim.addr.port(),
    };
    let tls = TlsMode::CustomCa(sim.ca_pem.clone().into_bytes());
    let (id, secret) = (
        Secret::new(DEFAULT_CLIENT_ID),
        Secret::new(DEFAULT_CLIENT_SECRET),
    );
    let token = Secret::new(oracle_sim::config::DEFAULT_ACCESS_TOKEN);
    let check = |account, live, token: Secret| {
        let (endpoint, tls, id, secret) =
            (endpoint.clone(), tls.clone(), id.clone(), secret.clone());
        async move {
            check_account_host(
                &endpoint,
                &tls,
                &id,
                &secret,
                &token,
                account,
                live,
                Duration::from_secs(10),
            )
            .await
        }
    };
    // the sim's account 1001 is demo: refused as if this were the live host
    match check(ACC, Some(true), token.clone()).await {
        HostCheck::Refused(why) => {
            assert!(why.contains("--broker demo.ctraderapi.com:5035"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(check(ACC, Some(false), token.clone()).await, HostCheck::Ok);
    assert_eq!(check(ACC, None, token.clone()).await, HostCheck::Ok);
    match check(7_001_001, None, token.clone()).await {
        HostCheck::Refused(why) => assert!(why.contains("1001 demo"), "{why}"),
        other => panic!("{other:?}"),
    }
    match check(ACC, Some(true), Secret::new("not-a-token")).await {
        HostCheck::Unchecked(why) => assert!(why.contains("CH_ACCESS_TOKEN_INVALID"), "{why}"),
        other => panic!("{other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_request_is_no_disconnect_for_the_timing_hook() {
    let dir = private_dir("timing");
    let file = dir.join("timing.jsonl");
    let mut cfg = config();
    cfg.timing_out = Some(file.clone());
    let sim = start(cfg).await;
    let a = https_get(&sim, "/apps/token?grant_type=refresh_token&refresh_token=x").await;
    assert!(a.starts_with("HTTP/1.1 400"), "{a}");
    let mut c = Client::connect(&sim).await;
    c.login().await;
    drop(c);
    // the Open API client's disconnect is stamped, the HTTP request's is not
    let deadline = std::time::Instant::now() + WAIT;
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let client = text
            .lines()
            .any(|l| l.contains("\"disconnect\"") && !l.contains("OAuth"));
        if client || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sim.shutdown().await;
    let disconnects: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("\"disconnect\""))
        .collect();
    assert_eq!(disconnects.len(), 1, "{lines}");
    let _ = std::fs::remove_dir_all(&dir);
}
