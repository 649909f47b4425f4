//! Token rotation against `oracle-sim` over real TLS (issue 17 item 2): a refreshed pair is on
//! disk before the session uses it, and a restart takes the newest pair (the token file's) over
//! the secrets' spent one. `cargo test -p oracle-executor --test token_rotation`.
#![cfg(feature = "live")]

mod common;

use std::path::Path;
use std::time::Duration;

use oracle_ctrader::Credentials;
use oracle_ctrader::tokenfile;
use oracle_executor::broker::Broker;
use oracle_executor::live::{self, AuthStop, LiveConfig};
use oracle_sim::config::{DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_REFRESH_TOKEN};

/// A simulator whose first access token expires `expires_in_s` after it starts.
async fn sim_expiring(expires_in_s: i64) -> oracle_sim::SimHandle {
    let start_ms = common::market_start_ms();
    let symbols = vec![oracle_sim::symbols::synthetic(
        "EURUSD",
        oracle_sim::bars::Period::M1,
        3000,
        start_ms,
        7,
    )];
    let mut broker = oracle_sim::BrokerConfig {
        speed: oracle_sim::Speed::Times(240.0),
        ..oracle_sim::BrokerConfig::default()
    };
    broker.tokens[0].expires_in_s = expires_in_s;
    oracle_sim::spawn(oracle_sim::SimConfig {
        broker,
        symbols,
        ..oracle_sim::SimConfig::default()
    })
    .await
    .expect("sim")
}

/// The secrets' pair (what `--secrets` holds: the sim's first pair).
fn secrets_creds() -> Credentials {
    common::sim_creds(Some(DEFAULT_REFRESH_TOKEN))
}

fn live_cfg(s: &oracle_sim::SimHandle, creds: Credentials, token_file: &Path) -> LiveConfig {
    let client = common::sim_client(s, s.addr.port(), creds);
    LiveConfig {
        client,
        symbols: vec!["EURUSD".into()],
        symbol_config: None,
        streams: Vec::new(),
        fill_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(10),
        hold_market: false,
        token_file: Some(token_file.to_path_buf()),
    }
}

/// A state folder as the units make it (0750).
fn state_dir(name: &str) -> std::path::PathBuf {
    let d = common::tmpdir(name);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_pair_is_stored_and_a_restart_authenticates_with_it_not_the_spent_one() {
    let sim = sim_expiring(2).await;
    let state = state_dir("token-rotation");
    let path = tokenfile::path_in(&state);
    let now = common::now(0);
    // First start: no token file yet, the secrets' pair is used.
    let (creds, expires) = live::startup_credentials(secrets_creds(), &path, now).unwrap();
    assert_eq!(expires, None);
    assert_eq!(creds.access_token.expose(), DEFAULT_ACCESS_TOKEN);
    let (mut broker, _feed) = live::connect(live_cfg(&sim, creds, &path))
        .await
        .expect("first start");
    // The access token expires; the session refreshes and the executor stores the new pair.
    let mut stored = None;
    for _ in 0..200 {
        if let Some(p) = tokenfile::load(&path).unwrap() {
            stored = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = stored.expect("the refreshed pair is in the state folder's token file");
    assert_ne!(stored.refresh_token.expose(), DEFAULT_REFRESH_TOKEN);
    assert_ne!(stored.access_token.expose(), DEFAULT_ACCESS_TOKEN);
    assert!(stored.expires_at_ms > stored.obtained_at_ms);
    // The session goes on with the stored token.
    let mut ok = false;
    for _ in 0..100 {
        if broker.connected() && broker.account().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the session is authorized again with the stored pair");
    drop(broker);

    // Restart: the token file's pair is newer than the secrets' (whose refresh token is spent).
    let (creds, expires) = live::startup_credentials(secrets_creds(), &path, now).unwrap();
    assert_eq!(expires, Some(stored.expires_at_ms));
    assert_eq!(creds.access_token.expose(), stored.access_token.expose());
    let (mut again, _feed) = live::connect(live_cfg(&sim, creds, &path))
        .await
        .expect("a restart authenticates with the stored pair");
    assert!(again.account().await.is_ok());
    drop(again);

    // Without the token file, the secrets' pair cannot start any more: a stop for good.
    let other = state_dir("token-rotation-nofile");
    let other_path = tokenfile::path_in(&other);
    let (creds, _) = live::startup_credentials(secrets_creds(), &other_path, now).unwrap();
    let err = match live::connect(live_cfg(&sim, creds, &other_path)).await {
        Ok(_) => panic!("the spent pair authenticated"),
        Err(e) => e,
    };
    assert!(
        err.downcast_ref::<AuthStop>().is_some(),
        "an authentication that fails for good is an AuthStop: {err:#}"
    );
    sim.shutdown().await;
}

/// A token file open to group or others is refused at start, naming the file and the fix.
#[test]
fn a_token_file_others_can_read_is_refused_at_start_naming_it() {
    let state = state_dir("token-rotation-mode");
    let path = tokenfile::path_in(&state);
    tokenfile::prepare_folder(&path).unwrap();
    let pair = tokenfile::TokenPair {
        access_token: "at-SECRET".into(),
        refresh_token: "rt-SECRET".into(),
        obtained_at_ms: 1_000,
        expires_at_ms: 2_000,
    };
    tokenfile::store(&path, &pair).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = live::startup_credentials(secrets_creds(), &path, 1_500).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("ctrader-token.json") && text.contains("chmod 0600"),
            "{text}"
        );
        assert!(!text.contains("SECRET"), "{text}");
    }
}

/// Of the token file's pair and the secrets', the newest wins: a stored pair beats the secrets'.
#[test]
fn at_start_the_token_files_pair_wins_over_the_secrets_and_its_expiry_is_known() {
    let state = state_dir("token-rotation-newest");
    let path = tokenfile::path_in(&state);
    tokenfile::prepare_folder(&path).unwrap();
    let pair = tokenfile::TokenPair {
        access_token: "at-stored".into(),
        refresh_token: "rt-stored".into(),
        obtained_at_ms: 1_000,
        expires_at_ms: 1_000 + 10 * 86_400_000,
    };
    tokenfile::store(&path, &pair).unwrap();
    let (creds, expires) = live::startup_credentials(secrets_creds(), &path, 2_000).unwrap();
    assert_eq!(creds.access_token.expose(), "at-stored");
    assert_eq!(
        creds.refresh_token.as_ref().map(|s| s.expose()),
        Some("rt-stored")
    );
    assert_eq!(expires, Some(pair.expires_at_ms));
    assert_eq!(creds.client_id.expose(), DEFAULT_CLIENT_ID, "app keys kept");
}

/// The deployed units do not restart an executor whose authentication failed for good (its own
/// exit status), and limit restarts: no endless loop while positions stay open unmanaged.
#[test]
fn the_units_never_restart_an_auth_stop_and_limit_restarts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for unit in ["oracle-executor.service", "oracle-predictor.service"] {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
                .map(str::trim)
                .unwrap_or_else(|| panic!("{unit}: no {key}="))
                .to_string()
        };
        let prevented = value("RestartPreventExitStatus");
        assert!(
            prevented
                .split_whitespace()
                .any(|s| s == live::EXIT_AUTH_STOP.to_string()),
            "{unit}: RestartPreventExitStatus={prevented} lacks {}",
            live::EXIT_AUTH_STOP
        );
        let interval: u64 = value("StartLimitIntervalSec").parse().unwrap();
        let burst: u64 = value("StartLimitBurst").parse().unwrap();
        assert!(
            interval > 0 && burst > 0,
            "{unit}: restarts unlimited ({interval} s, {burst})"
        );
    }
}

/// A stored pair whose access token expires within the refresh margin is refreshed ahead, at
/// start, though the broker still accepts it (the simulator's token lives 30 days here), and
/// the new pair is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_pair_near_its_expiry_is_refreshed_ahead_and_the_new_pair_stored() {
    let sim = sim_expiring(2_628_000).await;
    let state = state_dir("token-rotation-ahead");
    let path = tokenfile::path_in(&state);
    tokenfile::prepare_folder(&path).unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let near = tokenfile::TokenPair {
        access_token: DEFAULT_ACCESS_TOKEN.into(),
        refresh_token: DEFAULT_REFRESH_TOKEN.into(),
        obtained_at_ms: wall - 1_000,
        expires_at_ms: wall + 3_600_000, // within the default margin (1 day)
    };
    tokenfile::store(&path, &near).unwrap();
    let (creds, expires) = live::startup_credentials(secrets_creds(), &path, wall).unwrap();
    assert_eq!(expires, Some(near.expires_at_ms));
    let (_broker, _feed) = live::connect(live_cfg(&sim, creds, &path))
        .await
        .expect("start");
    let mut refreshed = None;
    for _ in 0..200 {
        if let Some(p) = tokenfile::load(&path).unwrap()
            && p.refresh_token.expose() != DEFAULT_REFRESH_TOKEN
        {
            refreshed = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = refreshed.expect("refreshed ahead of the expiry and stored");
    assert!(p.expires_at_ms > near.expires_at_ms);
    sim.shutdown().await;
}
