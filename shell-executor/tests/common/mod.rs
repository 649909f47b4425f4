//! Shared test fixtures.
#![allow(dead_code)]

use std::path::PathBuf;

use oracle_executor::config::{ExecutorConfig, from_value};
use oracle_executor::engine::{Engine, Side};
use oracle_executor::journal::Journal;
use oracle_executor::paper::PaperBook;
use oracle_executor::volume::SymbolSpec;

#[cfg(feature = "live")]
pub mod weekend;

pub const M15: i64 = 900;
/// 2025-01-15T00:00:00Z, a Wednesday.
pub const T0: i64 = 1_736_899_200;

/// 20 models closing on the same bar: the symbols FX00..FX19 (EURUSD-like), quoted, with their
/// configuration.
pub fn fleet() -> (ExecutorConfig, PaperBook, Vec<String>) {
    let names: Vec<String> = (0..20).map(|k| format!("FX{k:02}")).collect();
    let mut json = serde_json::Map::new();
    for n in &names {
        json.insert(
            n.clone(),
            serde_json::json!({"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}),
        );
    }
    let cfg = from_value(&serde_json::Value::Object(json)).expect("config");
    let mut b = PaperBook::new(
        100_000.0,
        names.iter().map(|n| SymbolSpec {
            name: n.clone(),
            ..eurusd()
        }),
    );
    for n in &names {
        b.set_quote(n, 1.10000, 1.10008);
    }
    (cfg, b, names)
}

pub fn eurusd() -> SymbolSpec {
    SymbolSpec {
        name: "EURUSD".into(),
        id: 1,
        digits: 5,
        pip_position: 4,
        lot_size: 10_000_000,
        min_volume: 100_000,
        step_volume: 100_000,
        max_volume: 10_000_000_000,
        trading_mode: oracle_executor::symbols::TradingMode::Enabled,
    }
}
pub fn us500() -> SymbolSpec {
    SymbolSpec {
        name: "US500".into(),
        id: 2,
        digits: 2,
        pip_position: 0,
        lot_size: 100,
        min_volume: 10,
        step_volume: 10,
        max_volume: 1_000_000,
        trading_mode: oracle_executor::symbols::TradingMode::Enabled,
    }
}
pub fn aapl() -> SymbolSpec {
    SymbolSpec {
        name: "AAPL".into(),
        id: 3,
        digits: 2,
        pip_position: 2,
        lot_size: 100,
        min_volume: 100,
        step_volume: 100,
        max_volume: 500_000,
        trading_mode: oracle_executor::symbols::TradingMode::Enabled,
    }
}

pub fn cfg() -> ExecutorConfig {
    from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 60},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05, "max_spread_points": 20},
        "US500": {"enabled": true, "lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50},
        "AAPL": {"enabled": true, "lot_weak": 1, "lot_moderate": 3, "lot_strong": 5},
        "GBPUSD": {"enabled": false, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("test config is valid")
}

pub fn book() -> PaperBook {
    let mut b = PaperBook::new(
        100_000.0,
        [
            eurusd(),
            us500(),
            aapl(),
            SymbolSpec {
                name: "GBPUSD".into(),
                ..eurusd()
            },
        ],
    );
    b.set_quote("EURUSD", 1.10000, 1.10008);
    b.set_quote("US500", 5000.00, 5000.50);
    b.set_quote("AAPL", 200.00, 200.02);
    b.set_quote("GBPUSD", 1.25000, 1.25010);
    b
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-exec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A live-side engine on a paper book (the "broker"), journaled in `dir`.
pub fn engine(dir: &std::path::Path, b: PaperBook) -> Engine<PaperBook> {
    engine_with(dir, cfg(), b)
}

/// An engine with `b` as its live side, deciding with `c`, journaled in `dir/journal.jsonl` (a
/// restart reads it back, the ACKs already given too).
pub fn engine_with<B: oracle_executor::broker::Broker>(
    dir: &std::path::Path,
    c: ExecutorConfig,
    b: B,
) -> Engine<B> {
    let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
    let acks = j.1.acks.clone();
    let side = Side::new("live", &c, b, Some(j));
    Engine::new(c, Some(side), None, acks, None)
}

/// [`SIM_SYMS`] enabled (EURUSD 0.01 / 0.03 / 0.05 lot, US500 0.1 / 0.3 / 0.5, AAPL 1 / 3 / 5),
/// no stale limit or margin share in the way.
pub fn sim3_cfg() -> ExecutorConfig {
    from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 100000, "max_margin_use": 100},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
        "US500": {"enabled": true, "lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50},
        "AAPL": {"enabled": true, "lot_weak": 1, "lot_moderate": 3, "lot_strong": 5}
    }))
    .expect("config")
}

/// Hands the live engine `e` the SIGNAL `action` of `sym` M1 for the bar `bt` (`seq`) at its
/// broker's clock: the ACK line.
#[cfg(feature = "live")]
pub async fn signal_live(
    e: &mut Engine<oracle_executor::live::LiveBroker>,
    sym: &str,
    action: &str,
    bt: i64,
    seq: u64,
) -> String {
    let l = signal_line((sym, "M1"), action, 0, (bt, seq));
    let Ok(oracle_ipc::Message::Signal(s)) = oracle_ipc::parse(&l) else {
        panic!("{l}")
    };
    let now = e.live.as_ref().expect("live").broker.clock()();
    e.on_signal(now, &s).await.line
}

/// `SIGNAL|SYM|ACTION|0|0.00|TF:M15|BT:<i*900 after T0>|SEQ:i`.
pub fn sig(sym: &str, action: &str, i: i64) -> String {
    let bt = oracle_ipc::Iso(T0 + i * M15);
    format!("SIGNAL|{sym}|{action}|0|0.00|TF:M15|BT:{bt}|SEQ:{i}")
}

/// Processing time of bar i's signal: 1 s after it closed.
pub fn now(i: i64) -> i64 {
    T0 + (i + 1) * M15 + 1
}

/// A live session to `oracle-sim` `s` (its default credentials and account, trusting its CA)
/// with an M1 bar stream per symbol, connected (as the executor connects).
#[cfg(feature = "live")]
pub async fn live_session(
    s: &oracle_sim::SimHandle,
    symbols: &[&str],
) -> (
    oracle_executor::live::LiveBroker,
    tokio::sync::mpsc::Receiver<oracle_executor::shell::Feed>,
) {
    live_session_with(s, symbols, false).await
}

/// The three symbols the simulator tests trade.
pub const SIM_SYMS: [&str; 3] = ["EURUSD", "US500", "AAPL"];

/// Market time near the wall clock (the session closes bars by the live stream and the clock):
/// the minute 500 *weekday* minutes before now, Unix ms. The synthetic market leaves Saturdays
/// and Sundays out, so on a weekend its 500th bar is the next Monday's first minute (the replay
/// starts there, ahead of the wall clock, with no bar between the clock and it), and on a weekday
/// it is now.
pub fn market_start_ms() -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    weekday_minutes_before(now_ms, 500)
}

/// The start of the minute `n` weekday (Monday to Friday, UTC) minutes before `now_ms`'s minute:
/// the synthetic market's bars from there reach `now_ms` after `n` bars.
pub fn weekday_minutes_before(now_ms: i64, n: i64) -> i64 {
    let weekend = |m: i64| {
        let dow = (m.div_euclid(1440) + 4).rem_euclid(7); // 0 = Sunday
        dow == 0 || dow == 6
    };
    let mut m = now_ms.div_euclid(60_000);
    // On a weekend, count from the end of Friday.
    while weekend(m) {
        m -= 1;
    }
    let mut left = n - 1;
    while left > 0 {
        m -= 1;
        if !weekend(m) {
            left -= 1;
        }
    }
    m * 60_000
}

#[test]
fn weekday_minutes_skip_weekends() {
    // Wednesday 2025-01-15 12:00 UTC: 500 minutes back is the same day.
    let wed = T0 * 1000 + 12 * 3_600_000;
    assert_eq!(weekday_minutes_before(wed, 500), wed - 499 * 60_000);
    // Sunday 2026-12-06 12:52 UTC: 500 weekday minutes end on Friday 23:59, so they start on
    // Friday 2026-12-04 at 15:40.
    let sun = 1_796_561_520_000; // 2026-12-06T12:52:00Z
    let fri_1540 = 1_796_398_800_000; // 2026-12-04T15:40:00Z
    assert_eq!(weekday_minutes_before(sun, 500), fri_1540);
    // Monday 00:05: five minutes on Monday, the rest on Friday.
    let mon = 1_796_601_900_000; // 2026-12-07T00:05:00Z
    assert_eq!(
        weekday_minutes_before(mon, 500),
        1_796_428_800_000 - 494 * 60_000 // Friday 24:00 minus 494 minutes
    );
}

/// A simulator at 240x over `symbols` with `faults`.
pub async fn spawn_sim(
    symbols: Vec<oracle_sim::symbols::SymbolData>,
    faults: Vec<oracle_sim::Fault>,
) -> oracle_sim::SimHandle {
    oracle_sim::spawn(oracle_sim::SimConfig {
        broker: oracle_sim::BrokerConfig {
            speed: oracle_sim::Speed::Times(240.0),
            faults,
            ..oracle_sim::BrokerConfig::default()
        },
        symbols,
        ..oracle_sim::SimConfig::default()
    })
    .await
    .expect("sim")
}

/// [`spawn_sim`] over synthetic M1 bars of [`SIM_SYMS`] starting at [`market_start_ms`].
pub async fn sim3(faults: Vec<oracle_sim::Fault>) -> oracle_sim::SimHandle {
    spawn_sim(sim3_symbols(), faults).await
}

/// Synthetic M1 bars (3 000) of each of [`SIM_SYMS`] starting at [`market_start_ms`].
pub fn sim3_symbols() -> Vec<oracle_sim::symbols::SymbolData> {
    let start_ms = market_start_ms();
    SIM_SYMS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            oracle_sim::symbols::synthetic(
                s,
                oracle_sim::bars::Period::M1,
                3000,
                start_ms,
                7 + i as u64,
            )
        })
        .collect()
}

/// [`live_session`] with the session's `live_close` (`--bar-close live`) chosen.
#[cfg(feature = "live")]
pub async fn live_session_with(
    s: &oracle_sim::SimHandle,
    symbols: &[&str],
    live_close: bool,
) -> (
    oracle_executor::live::LiveBroker,
    tokio::sync::mpsc::Receiver<oracle_executor::shell::Feed>,
) {
    live_session_at(s, s.addr.port(), symbols, true, live_close).await
}

/// A live session to `s`'s simulator through `port` (its own, or a proxy's); with `streams`,
/// M1 bars (and so quotes) of every symbol.
#[cfg(feature = "live")]
pub async fn live_session_at(
    s: &oracle_sim::SimHandle,
    port: u16,
    symbols: &[&str],
    streams: bool,
    live_close: bool,
) -> (
    oracle_executor::live::LiveBroker,
    tokio::sync::mpsc::Receiver<oracle_executor::shell::Feed>,
) {
    live_session_tokens(s, port, symbols, streams, live_close, None).await
}

/// A live session to `s`'s simulator over `symbols` (M1 bars of each) that holds the sim's
/// refresh token: it refreshes when its access token is refused as expired.
#[cfg(feature = "live")]
pub async fn live_session_refreshing(
    s: &oracle_sim::SimHandle,
    symbols: &[&str],
) -> (
    oracle_executor::live::LiveBroker,
    tokio::sync::mpsc::Receiver<oracle_executor::shell::Feed>,
) {
    let refresh = Some(oracle_sim::config::DEFAULT_REFRESH_TOKEN);
    live_session_tokens(s, s.addr.port(), symbols, true, false, refresh).await
}

/// [`live_session_at`] with the sim's default access token and `refresh_token` (if any).
#[cfg(feature = "live")]
async fn live_session_tokens(
    s: &oracle_sim::SimHandle,
    port: u16,
    symbols: &[&str],
    streams: bool,
    live_close: bool,
    refresh_token: Option<&str>,
) -> (
    oracle_executor::live::LiveBroker,
    tokio::sync::mpsc::Receiver<oracle_executor::shell::Feed>,
) {
    let mut client = sim_client(s, port, sim_creds(refresh_token));
    client.session.live_close = live_close;
    oracle_executor::live::connect(oracle_executor::live::LiveConfig {
        client,
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        symbol_config: None,
        streams: if streams {
            symbols
                .iter()
                .map(|s| (s.to_string(), oracle_ipc::Timeframe::M1))
                .collect()
        } else {
            Vec::new()
        },
        fill_timeout: std::time::Duration::from_secs(5),
        ready_timeout: std::time::Duration::from_secs(10),
        hold_market: false,
        token_file: None,
    })
    .await
    .expect("live session")
}

/// The journal record of an entry order (EURUSD, LONG_WEAK, 0.01 lot) for `key`'s bar `bt`,
/// written at `ts`: what a crash right after the intent leaves behind.
pub fn long_weak_intent(
    key: &oracle_executor::policy::StreamKey,
    bt: i64,
    ts: i64,
) -> oracle_executor::journal::Record {
    use oracle_executor::journal::Op;
    oracle_executor::journal::Record::Intent {
        ts,
        coid: oracle_executor::journal::client_order_id(key, bt, Op::Open),
        model: *key,
        op: Op::Open,
        symbol: "EURUSD".into(),
        buy: true,
        action: oracle_executor::policy::ActionName(oracle_ipc::Action::LongWeak),
        volume: 100_000,
        position_id: None,
        bt,
    }
}

/// A stand-in model zip at `path`: metadata naming `symbol` and `tf`, one member.
pub fn model_zip(path: &std::path::Path, symbol: &str, tf: &str) {
    use std::io::Write as _;
    let f = std::fs::File::create(path).expect("zip file");
    let mut z = zip::ZipWriter::new(f);
    z.set_comment(format!(r#"{{"format_version":"2.0","symbol":{{"name":"{symbol}","clean":"{symbol}","timeframe":"{tf}"}}}}"#));
    z.start_file("x.txt", zip::write::SimpleFileOptions::default())
        .expect("member");
    z.write_all(b"x").expect("write");
    z.finish().expect("finish");
}

/// A local TCP port free a moment ago (for an executor's `--listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A predictor's WebSocket to the executor.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The WebSocket to the executor on `port`, retried every 100 ms while it starts, `tries` times
/// (`None`: it never listened).
pub async fn ws_connect(port: u16, tries: u32) -> Option<Ws> {
    for _ in 0..tries {
        if let Ok((w, _)) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}")).await
        {
            return Some(w);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// The next text frame within `wait` (`None`: none came, or the socket closed).
pub async fn next_text(ws: &mut Ws, wait: std::time::Duration) -> Option<String> {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message as WsMsg;
    match tokio::time::timeout(wait, ws.next()).await {
        Ok(Some(Ok(WsMsg::Text(t)))) => Some(t.to_string()),
        _ => None,
    }
}

/// The SIGNAL line of `action` in `regime` for `symbol` `tf`'s bar (`t`, `q`).
pub fn signal_line(
    (symbol, tf): (&str, &str),
    action: &str,
    regime: u8,
    (t, q): (i64, u64),
) -> String {
    format!(
        "SIGNAL|{symbol}|{action}|{regime}|0.00|TF:{tf}|BT:{}|SEQ:{q}",
        oracle_ipc::Iso(t)
    )
}

/// Sends `line` (a SIGNAL) and returns its ACK (or ERR), the frames before it skipped (`None`:
/// the send failed, or no frame came within `wait`).
pub async fn ack_of(ws: &mut Ws, line: String, wait: std::time::Duration) -> Option<String> {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message as WsMsg;
    ws.send(WsMsg::text(line)).await.ok()?;
    loop {
        let l = next_text(ws, wait).await?;
        if l.starts_with("ACK|") || l.starts_with("ERR|") {
            return Some(l);
        }
    }
}

/// Kills the executor `child` (kill -9; it may have exited already) and waits for it: its
/// exit status and its stderr (empty unless piped).
pub fn kill_and_wait(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `oracle-executor` binary with `d/executor_config.json` as its config and `d/state` as its
/// state folder, listening on `listen` (the mode and the rest are the caller's).
pub fn executor_in(d: &std::path::Path, listen: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oracle-executor"));
    cmd.arg("--config")
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .arg("--listen")
        .arg(listen);
    cmd
}

/// A fresh folder `name` for an executor on the simulator `s`: a EURUSD M1 model in `models/`,
/// the sim's CA in `ca.pem`, and `config` as `executor_config.json`.
pub fn sim_executor_dir(s: &oracle_sim::SimHandle, name: &str, config: &str) -> PathBuf {
    let d = tmpdir(name);
    let models = d.join("models");
    std::fs::create_dir_all(&models).expect("models");
    model_zip(&models.join("EURUSD_M1.zip"), "EURUSD", "M1");
    std::fs::write(d.join("ca.pem"), &s.ca_pem).expect("ca");
    std::fs::write(d.join("executor_config.json"), config).expect("config");
    d
}

/// The executor binary live on the simulator at `broker_port` over [`sim_executor_dir`]'s `d`
/// (its models, CA and config; its state in `d/state`): the sim's default credentials (no
/// refresh token) and account, IPC token `token`, listening on `port`, `args` after; its stderr
/// to `log`.
pub fn spawn_on_sim(
    d: &std::path::Path,
    broker_port: u16,
    port: u16,
    token: &str,
    args: &[&str],
    log: &std::path::Path,
) -> std::process::Child {
    use oracle_sim::config::{
        DEFAULT_ACCESS_TOKEN, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    };
    executor_in(d, &format!("127.0.0.1:{port}"))
        .env("ORACLE_IPC_TOKEN", token)
        .env("CTRADER_CLIENT_ID", DEFAULT_CLIENT_ID)
        .env("CTRADER_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
        .env("CTRADER_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN)
        .env_remove("CTRADER_REFRESH_TOKEN")
        .arg("--models")
        .arg(d.join("models"))
        .arg("--broker")
        .arg(format!("127.0.0.1:{broker_port}"))
        .arg("--account-id")
        .arg(DEFAULT_ACCOUNT_ID.to_string())
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(log).expect("log"),
        ))
        .spawn()
        .expect("spawn executor")
}

/// The lines of the journal at `path`, sorted (two runs' journals compared whatever their order).
pub fn sorted_lines(path: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .expect("journal")
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The simulator's default credentials, with `refresh_token` (if any).
#[cfg(feature = "live")]
pub fn sim_creds(refresh_token: Option<&str>) -> oracle_ctrader::Credentials {
    use oracle_sim::config::{DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    oracle_ctrader::Credentials {
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
        access_token: DEFAULT_ACCESS_TOKEN.into(),
        refresh_token: refresh_token.map(Into::into),
    }
}

/// A client of `s`'s simulator through `port` (its own, or a proxy's), trusting its CA, for its
/// default account with `creds`.
#[cfg(feature = "live")]
pub fn sim_client(
    s: &oracle_sim::SimHandle,
    port: u16,
    creds: oracle_ctrader::Credentials,
) -> oracle_ctrader::driver::ClientConfig {
    use oracle_ctrader::driver::{ClientConfig, Endpoint, TlsMode};
    ClientConfig::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        },
        TlsMode::CustomCa(s.ca_pem.clone().into_bytes()),
        oracle_ctrader::SessionConfig::new(creds, oracle_sim::config::DEFAULT_ACCOUNT_ID),
    )
}
