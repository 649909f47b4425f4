//! Issue 17 item 2: `kill -9` around a token refresh, real processes. The executor binary runs
//! against `oracle-sim` over TLS (in this test's process, alive across the executor's restarts)
//! whose first access token expires seconds after it starts: the executor refreshes, and a
//! failpoint (`ORACLE_FAILPOINT`) aborts it (SIGABRT, no unwinding: a `kill -9`) before the
//! request, after the answer, or after the write. It is then started again, as systemd would,
//! with nothing changed by a person.
//!
//! Also `--broker auto` (issue 17 item 3): the executor connects to the host of the account's
//! kind (`isLive`).
//!
//! `cargo test -p oracle-executor --test refresh_kill`.
#![cfg(feature = "live")]

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oracle_ctrader::tokenfile;
use oracle_sim::config::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
};

const BIN: &str = env!("CARGO_BIN_EXE_oracle-executor");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-refresh-kill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A simulator whose first access token expires `expires_in_s` after it starts; its one account
/// live or demo.
async fn sim(expires_in_s: i64, live: bool) -> oracle_sim::SimHandle {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let symbols = vec![oracle_sim::symbols::synthetic(
        "EURUSD",
        oracle_sim::bars::Period::M1,
        3000,
        now_ms - now_ms.rem_euclid(60_000) - 500 * 60_000,
        7,
    )];
    let mut broker = oracle_sim::BrokerConfig {
        speed: oracle_sim::Speed::Times(60.0),
        ..oracle_sim::BrokerConfig::default()
    };
    broker.tokens[0].expires_in_s = expires_in_s;
    for a in &mut broker.accounts {
        a.is_live = live;
    }
    oracle_sim::spawn(oracle_sim::SimConfig {
        broker,
        symbols,
        ..oracle_sim::SimConfig::default()
    })
    .await
    .expect("sim")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// One deployment: config, CA, state folder (0750, as the units make it).
fn deployment(name: &str, s: &oracle_sim::SimHandle) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let d = tmpdir(name);
    std::fs::write(d.join("ca.pem"), &s.ca_pem).expect("ca");
    std::fs::write(
        d.join("executor_config.json"),
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("config");
    let state = d.join("state");
    std::fs::create_dir_all(&state).expect("state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    d
}

/// The executor as the unit starts it: the secrets' pair in the environment (the token file in
/// the state folder wins once it exists), `broker` args, the failpoint if any; log to `log`.
fn spawn(d: &Path, broker: &[String], failpoint: Option<&str>, log: &str) -> (Child, u16) {
    let port = free_port();
    let mut c = Command::new(BIN);
    c.env("ORACLE_IPC_TOKEN", "refresh-kill-token")
        .env("CTRADER_CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("CTRADER_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .env("CTRADER_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN)
        .env("CTRADER_REFRESH_TOKEN", DEFAULT_REFRESH_TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("ORACLE_FAILPOINT")
        .arg("--config")
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(broker)
        .arg("--account-id")
        .arg(DEFAULT_ACCOUNT_ID.to_string())
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(d.join(log)).expect("log"),
        ));
    if let Some(f) = failpoint {
        c.env("ORACLE_FAILPOINT", f);
    }
    (c.spawn().expect("spawn executor"), port)
}

/// Waits for the child to exit (at most `within`).
fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().expect("wait") {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether the executor serves its IPC port within `within`: it binds only after its broker
/// session is authorized (application and account auth, symbols, reconciliation) — an
/// authenticated session. `false` if it exits first.
fn serves(child: &mut Child, port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn sim_broker(s: &oracle_sim::SimHandle) -> Vec<String> {
    vec!["--broker".into(), format!("127.0.0.1:{}", s.addr.port())]
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// First run with `failpoint` armed: the access token expires 2 s after the simulator starts, the
/// executor refreshes and dies at the failpoint (SIGABRT, "aborting at {point}").
fn first_run_dies_at(d: &Path, s: &oracle_sim::SimHandle, failpoint: &str, point: &str) {
    let (mut child, _) = spawn(d, &sim_broker(s), Some(failpoint), "executor-1.log");
    let st = wait_exit(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "the executor did not die at {failpoint}: {}",
            std::fs::read_to_string(d.join("executor-1.log")).unwrap_or_default()
        )
    });
    let log = std::fs::read_to_string(d.join("executor-1.log")).unwrap_or_default();
    assert_eq!(st.signal(), Some(libc_sigabrt()), "{st:?}: {log}");
    assert!(log.contains(&format!("aborting at {point} #1")), "{log}");
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn a_kill_before_the_refresh_request_restarts_into_an_authenticated_session() {
    let rt = rt();
    let s = rt.block_on(sim(2, false));
    let d = deployment("before-request", &s);
    first_run_dies_at(&d, &s, "before_refresh_request:1", "BeforeRefreshRequest");
    // Nothing was spent: no token file, the secrets' refresh token still works.
    let token_file = tokenfile::path_in(&d.join("state"));
    assert_eq!(tokenfile::load(&token_file).expect("load"), None);
    let (mut child, port) = spawn(&d, &sim_broker(&s), None, "executor-2.log");
    let ok = serves(&mut child, port, Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.join("executor-2.log")).unwrap_or_default();
    assert!(ok, "the restart is not authenticated: {log}");
    // It refreshed (the old access token had expired) and stored the new pair.
    let pair = tokenfile::load(&token_file)
        .expect("load")
        .expect("a stored pair");
    assert_ne!(pair.refresh_token.expose(), DEFAULT_REFRESH_TOKEN);
    rt.block_on(s.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_kill_after_the_token_write_restarts_into_an_authenticated_session_on_the_stored_pair() {
    let rt = rt();
    let s = rt.block_on(sim(2, false));
    let d = deployment("after-write", &s);
    first_run_dies_at(&d, &s, "after_token_write:1", "AfterTokenWrite");
    let token_file = tokenfile::path_in(&d.join("state"));
    let stored = tokenfile::load(&token_file)
        .expect("load")
        .expect("the refreshed pair is on disk");
    assert_ne!(stored.refresh_token.expose(), DEFAULT_REFRESH_TOKEN);
    // The secrets' pair is spent; the restart starts on the token file's and is authorized.
    let (mut child, port) = spawn(&d, &sim_broker(&s), None, "executor-2.log");
    let ok = serves(&mut child, port, Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.join("executor-2.log")).unwrap_or_default();
    assert!(ok, "the restart is not authenticated: {log}");
    assert!(log.contains("the token file's pair is the newest"), "{log}");
    rt.block_on(s.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

/// The one window a restart cannot cover: the broker answered (the old refresh token is spent,
/// refresh tokens work once) and the process died before the new pair reached the disk. The
/// restart must not loop: it stops with exit status 78 (the units' `RestartPreventExitStatus`)
/// and says to run `oracle auth`.
#[test]
fn a_kill_between_the_refresh_answer_and_its_write_stops_the_restart_with_78_naming_oracle_auth() {
    let rt = rt();
    let s = rt.block_on(sim(2, false));
    let d = deployment("after-answer", &s);
    first_run_dies_at(&d, &s, "after_refresh_answer:1", "AfterRefreshAnswer");
    let token_file = tokenfile::path_in(&d.join("state"));
    assert_eq!(tokenfile::load(&token_file).expect("load"), None);
    let (mut child, _) = spawn(&d, &sim_broker(&s), None, "executor-2.log");
    let st = wait_exit(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the restart did not stop")
    });
    let log = std::fs::read_to_string(d.join("executor-2.log")).unwrap_or_default();
    assert_eq!(st.code(), Some(78), "{log}");
    assert!(log.contains("oracle auth"), "{log}");
    rt.block_on(s.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

/// `--broker auto`: the account list says live, the executor connects to `--live-host` (here
/// the simulator as `localhost`, the list read at `--demo-host`, the simulator as `127.0.0.1`);
/// a demo account goes to the demo host.
#[test]
fn broker_auto_connects_to_the_host_of_the_accounts_kind() {
    let rt = rt();
    for live in [true, false] {
        let s = rt.block_on(sim(2_628_000, live));
        let d = deployment(if live { "auto-live" } else { "auto-demo" }, &s);
        let live_host = format!("localhost:{}", s.addr.port());
        let demo_host = format!("127.0.0.1:{}", s.addr.port());
        let args = vec![
            "--broker".to_string(),
            "auto".into(),
            "--live-host".into(),
            live_host.clone(),
            "--demo-host".into(),
            demo_host.clone(),
        ];
        let (mut child, port) = spawn(&d, &args, None, "executor.log");
        let ok = serves(&mut child, port, Duration::from_secs(60));
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(d.join("executor.log")).unwrap_or_default();
        assert!(ok, "not authenticated: {log}");
        let line = log
            .lines()
            .find(|l| l.contains("--broker auto"))
            .unwrap_or_else(|| panic!("no --broker auto line: {log}"));
        let (kind, host) = if live {
            ("live", &live_host)
        } else {
            ("demo", &demo_host)
        };
        assert!(
            line.contains(&format!("kind={kind}")) && line.contains(&format!("host={host}")),
            "{line}"
        );
        rt.block_on(s.shutdown());
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// The runbook's path: `oracle auth` wrote the token pair to the state folder's token file and
/// the secrets hold only the application's keys (no access or refresh token): the executor
/// starts on the file's pair.
#[test]
fn the_token_file_alone_gives_the_executor_its_tokens_without_tokens_in_the_secrets() {
    let rt = rt();
    let s = rt.block_on(sim(2_628_000, false));
    let d = deployment("token-file-only", &s);
    let token_file = tokenfile::path_in(&d.join("state"));
    tokenfile::prepare_folder(&token_file).expect("tokens folder");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    tokenfile::store(
        &token_file,
        &tokenfile::TokenPair {
            access_token: DEFAULT_ACCESS_TOKEN.into(),
            refresh_token: DEFAULT_REFRESH_TOKEN.into(),
            obtained_at_ms: now_ms - 1000,
            expires_at_ms: now_ms + 20 * 86_400_000,
        },
    )
    .expect("store");
    let port = free_port();
    let mut child = Command::new(BIN)
        .env("ORACLE_IPC_TOKEN", "refresh-kill-token")
        .env("CTRADER_CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("CTRADER_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .env_remove("CTRADER_ACCESS_TOKEN")
        .env_remove("CTRADER_REFRESH_TOKEN")
        .env_remove("ORACLE_CTRADER_ACCESS_TOKEN")
        .env_remove("ORACLE_CTRADER_REFRESH_TOKEN")
        .env_remove("ORACLE_FAILPOINT")
        .arg("--config")
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(sim_broker(&s))
        .arg("--account-id")
        .arg(DEFAULT_ACCOUNT_ID.to_string())
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(d.join("executor.log")).expect("log"),
        ))
        .spawn()
        .expect("spawn executor");
    let ok = serves(&mut child, port, Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.join("executor.log")).unwrap_or_default();
    assert!(
        ok,
        "the executor did not start on the token file's pair: {log}"
    );
    assert!(log.contains("the token file's pair is the newest"), "{log}");
    // The account's deposit currency, read from the broker, recorded for `oracle report`.
    assert_eq!(
        std::fs::read_to_string(d.join("state").join("deposit-currency")).ok(),
        Some("USD\n".to_string()),
        "{log}"
    );
    rt.block_on(s.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

/// `--broker auto` (the units') and a kill before the refresh request with the access token
/// expired meanwhile: the restart cannot read the account list with it, takes the host chosen at
/// the last start (kept in the state folder), refreshes there and is authenticated.
#[test]
fn with_broker_auto_a_kill_before_the_refresh_request_restarts_authenticated_on_the_kept_host() {
    let rt = rt();
    // 3 s: the first start reads the list while the token is still valid.
    let s = rt.block_on(sim(3, true));
    let d = deployment("auto-before-request", &s);
    let live_host = format!("localhost:{}", s.addr.port());
    let args = vec![
        "--broker".to_string(),
        "auto".into(),
        "--live-host".into(),
        live_host.clone(),
        "--demo-host".into(),
        format!("127.0.0.1:{}", s.addr.port()),
    ];
    let (mut child, _) = spawn(
        &d,
        &args,
        Some("before_refresh_request:1"),
        "executor-1.log",
    );
    let st = wait_exit(&mut child, Duration::from_secs(60)).expect("died at the failpoint");
    let log = std::fs::read_to_string(d.join("executor-1.log")).unwrap_or_default();
    assert_eq!(st.signal(), Some(libc_sigabrt()), "{log}");
    assert!(log.contains("kind=live"), "{log}");
    // The access token has expired by now (the refresh came on its expiry): the list is refused.
    std::thread::sleep(Duration::from_millis(500));
    let (mut child, port) = spawn(&d, &args, None, "executor-2.log");
    let ok = serves(&mut child, port, Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.join("executor-2.log")).unwrap_or_default();
    assert!(ok, "the restart is not authenticated: {log}");
    assert!(
        log.contains("the host chosen at the last start is used")
            && log.contains(&format!("host={live_host}")),
        "{log}"
    );
    rt.block_on(s.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}
