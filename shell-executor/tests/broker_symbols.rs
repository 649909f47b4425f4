//! Broker symbols over `oracle-sim` and real TLS (needs the default `live` feature): a model's
//! symbol traded under the broker's name (`US500` → `US500.cash`), a symbol missing at the
//! broker named at start with its close matches, and a symbol the broker puts in close-only
//! mode between two bars (entries refused naming the mode, the exit goes on).
//! `cargo test -p oracle-executor --test broker_symbols`.
#![cfg(feature = "live")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{signal_live as signal, tmpdir};
use oracle_executor::broker::Broker;
use oracle_executor::config::{ExecutorConfig, from_value};
use oracle_executor::engine::Engine;
use oracle_executor::live::{LiveBroker, LiveConfig};
use oracle_executor::policy::key_of;
use oracle_executor::shell::Feed;
use oracle_ipc::Timeframe;
use oracle_sim::config::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use oracle_sim::{BrokerConfig, SimConfig, SimHandle, Speed};
use tokio::sync::mpsc;

/// The three test symbols over synthetic M1 bars, `renamed` listed under the broker's names.
async fn sim(renamed: &[(&str, &str)]) -> SimHandle {
    let symbols = common::sim3_symbols();
    oracle_sim::spawn(SimConfig {
        broker: BrokerConfig {
            speed: Speed::Times(240.0),
            broker_names: renamed
                .iter()
                .map(|(m, b)| (m.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..BrokerConfig::default()
        },
        symbols,
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

fn cfg(us500: serde_json::Value) -> ExecutorConfig {
    let mut us = serde_json::json!({"enabled": true, "lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50});
    if let (Some(m), Some(extra)) = (us.as_object_mut(), us500.as_object()) {
        m.extend(extra.clone());
    }
    from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 100000, "max_margin_use": 100},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
        "US500": us,
    }))
    .expect("config")
}

/// Connects as the executor does, with `config`'s broker names, streaming M1 bars of `symbols`.
async fn connect(
    s: &SimHandle,
    symbols: &[&str],
    config: &ExecutorConfig,
) -> anyhow::Result<(LiveBroker, mpsc::Receiver<Feed>)> {
    let client = common::sim_client(s, s.addr.port(), common::sim_creds(None));
    oracle_executor::live::connect(LiveConfig {
        client,
        symbols: config.symbols.keys().cloned().collect(),
        symbol_config: Some(config.clone()),
        streams: symbols
            .iter()
            .map(|s| (s.to_string(), Timeframe::M1))
            .collect(),
        fill_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(10),
        hold_market: false,
        token_file: None,
    })
    .await
}

fn engine(dir: &std::path::Path, c: &ExecutorConfig, b: LiveBroker) -> Engine<LiveBroker> {
    common::engine_with(dir, c.clone(), b)
}

/// The model's streams seen so far: the next closed bar of `sym` newer than any before (every
/// bar goes to the engine, as the shell's `Streams` does).
struct Bars {
    last: BTreeMap<String, i64>,
}

impl Bars {
    async fn next(
        &mut self,
        e: &mut Engine<LiveBroker>,
        feed: &mut mpsc::Receiver<Feed>,
        sym: &str,
    ) -> (i64, u64) {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), feed.recv())
                .await
                .expect("a bar in time")
                .expect("feed open");
            if let Some(r) = self.take(e, ev, sym).await {
                return r;
            }
        }
    }

    /// Feeds one event to the engine; `Some` for a new bar of `sym`.
    async fn take(
        &mut self,
        e: &mut Engine<LiveBroker>,
        ev: Feed,
        sym: &str,
    ) -> Option<(i64, u64)> {
        if ev == Feed::Reconcile {
            let now = e.live.as_ref().expect("live").broker.clock()();
            e.reconcile(now).await.expect("reconcile");
            return None;
        }
        let Feed::Bar {
            symbol, tf, bar, ..
        } = ev
        else {
            return None;
        };
        e.on_bar(&key_of(&symbol, tf).unwrap(), bar.time, bar.close, 0.0);
        if self.last.get(&symbol).is_some_and(|t| bar.time <= *t) {
            return None;
        }
        self.last.insert(symbol.clone(), bar.time);
        (symbol == sym).then_some((bar.time, 1))
    }
}

async fn positions(s: &SimHandle) -> Vec<(String, i64)> {
    s.with_broker(|b, _| b.open_positions(DEFAULT_ACCOUNT_ID))
        .await
        .expect("sim up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_go_out_on_the_brokers_name_and_the_journal_says_the_models() {
    let s = sim(&[("US500", "US500.cash")]).await;
    let d = tmpdir("broker-symbols-mapped");
    let c = cfg(serde_json::json!({"broker_symbol": "US500.cash"}));
    let (b, mut feed) = connect(&s, &["US500"], &c).await.expect("connect");
    assert_eq!(b.spec("US500").expect("US500 loaded").name, "US500");
    let mut e = engine(&d, &c, b);
    e.reconcile(0).await.expect("reconcile");
    let mut bars = Bars {
        last: BTreeMap::new(),
    };
    let mut seq = 0;
    let (t0, _) = bars.next(&mut e, &mut feed, "US500").await;
    seq += 1;
    assert!(
        signal(&mut e, "US500", "WAIT", t0, seq)
            .await
            .contains("|HOLD|")
    );
    let (t1, _) = bars.next(&mut e, &mut feed, "US500").await;
    seq += 1;
    let ack = signal(&mut e, "US500", "LONG_STRONG", t1, seq).await;
    assert!(ack.starts_with("ACK|US500|LONG_STRONG|OK|T:"), "{ack}");
    // On the wire and at the broker: the broker's name.
    assert_eq!(positions(&s).await, [("US500.cash".to_string(), 50)]);
    // The executor's own records: the model's name only.
    let journal = std::fs::read_to_string(d.join("journal.jsonl")).expect("journal");
    assert!(journal.contains("US500"), "{journal}");
    assert!(!journal.contains("US500.cash"), "{journal}");
    let pos = e
        .live
        .as_mut()
        .expect("live")
        .broker
        .reconcile()
        .await
        .expect("positions");
    assert_eq!(pos.len(), 1);
    assert_eq!(pos[0].symbol, "US500");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_missing_at_the_broker_stops_the_start_naming_it_with_close_matches() {
    let s = sim(&[("US500", "US500.cash")]).await;
    // executor_config.json without broker_symbol: US500 is not in the broker's list.
    let c = cfg(serde_json::json!({}));
    let Err(e) = connect(&s, &["US500"], &c).await else {
        panic!("the start must be refused")
    };
    let text = format!("{e:#}");
    assert!(
        text.contains("US500: not at the broker; close matches: US500.cash"),
        "{text}"
    );
    assert!(text.contains("broker_symbol"), "{text}");
    // Disabled, it is no reason to stop.
    let c = cfg(serde_json::json!({"enabled": false}));
    let (b, _feed) = connect(&s, &["EURUSD"], &c).await.expect("connect");
    assert!(b.spec("US500").is_none());
    assert!(b.spec("EURUSD").is_some());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_only_between_two_bars_refuses_the_entry_naming_the_mode_and_the_exit_goes_on() {
    let s = sim(&[]).await;
    let d = tmpdir("broker-symbols-close-only");
    let c = cfg(serde_json::json!({}));
    let (b, mut feed) = connect(&s, &["EURUSD"], &c).await.expect("connect");
    let mut e = engine(&d, &c, b);
    e.reconcile(0).await.expect("reconcile");
    let mut bars = Bars {
        last: BTreeMap::new(),
    };
    let mut seq = 0;
    let (t0, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    signal(&mut e, "EURUSD", "WAIT", t0, seq).await;
    let (t1, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    let ack = signal(&mut e, "EURUSD", "LONG_WEAK", t1, seq).await;
    assert!(ack.contains("|OK|T:"), "{ack}");
    assert_eq!(positions(&s).await.len(), 1);

    // The broker puts EURUSD in close-only mode (SymbolChangedEvent) between two bars.
    assert!(s.set_trading_mode("EURUSD", 3).await);
    let seen = async {
        while !e.live.as_ref().expect("live").broker.symbols_stale() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .expect("the SymbolChangedEvent reaches the executor");
    // Bars that arrived before the event: the position is held.
    while let Ok(ev) = feed.try_recv() {
        if let Some((t, _)) = bars.take(&mut e, ev, "EURUSD").await {
            seq += 1;
            let ack = signal(&mut e, "EURUSD", "LONG_WEAK", t, seq).await;
            assert!(ack.contains("|HOLD|"), "{ack}");
        }
    }
    // A reversal: the exit goes on, the entry is refused naming the mode.
    let (t2, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    let ack = signal(&mut e, "EURUSD", "SHORT_WEAK", t2, seq).await;
    assert!(ack.contains("|FAIL|TRADING_MODE_CLOSE_ONLY_MODE|"), "{ack}");
    assert!(positions(&s).await.is_empty(), "the exit went on");
    // Never chased, even once the symbol is enabled again.
    assert!(s.set_trading_mode("EURUSD", 0).await);
    let (t3, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    let ack = signal(&mut e, "EURUSD", "SHORT_WEAK", t3, seq).await;
    assert!(ack.contains("|WAIT_SYNC|MISSED_ENTRY|"), "{ack}");
    assert!(positions(&s).await.is_empty());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_the_broker_renames_while_running_is_reported_and_takes_no_entry_but_exits() {
    let s = sim(&[]).await;
    let d = tmpdir("broker-symbols-renamed");
    let c = cfg(serde_json::json!({}));
    let (b, mut feed) = connect(&s, &["EURUSD"], &c).await.expect("connect");
    let mut e = engine(&d, &c, b);
    e.reconcile(0).await.expect("reconcile");
    let mut bars = Bars {
        last: BTreeMap::new(),
    };
    let mut seq = 0;
    let (t0, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    signal(&mut e, "EURUSD", "WAIT", t0, seq).await;
    let (t1, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    let ack = signal(&mut e, "EURUSD", "LONG_WEAK", t1, seq).await;
    assert!(ack.contains("|OK|T:"), "{ack}");

    // FTMO-style: the broker lists EURUSD under another name from now on.
    assert!(s.rename_symbol("EURUSD", "EURUSD.x").await);
    let seen = async {
        while !e.live.as_ref().expect("live").broker.symbols_stale() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .expect("the SymbolChangedEvent reaches the executor");
    while let Ok(ev) = feed.try_recv() {
        if let Some((t, _)) = bars.take(&mut e, ev, "EURUSD").await {
            seq += 1;
            let ack = signal(&mut e, "EURUSD", "LONG_WEAK", t, seq).await;
            assert!(ack.contains("|HOLD|"), "{ack}");
        }
    }
    let (t2, _) = bars.next(&mut e, &mut feed, "EURUSD").await;
    seq += 1;
    let ack = signal(&mut e, "EURUSD", "SHORT_WEAK", t2, seq).await;
    assert!(
        ack.contains("|FAIL|TRADING_MODE_DISABLED_WITHOUT_PENDINGS_EXECUTION|"),
        "{ack}"
    );
    assert!(positions(&s).await.is_empty(), "the exit went on");
    s.shutdown().await;
}

/// The binary: an enabled symbol the broker lists under another name stops the start with exit
/// status 1 (as any config error), naming it and the broker's close match; with `broker_symbol`
/// set it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_refuses_to_start_on_a_missing_symbol_naming_its_close_matches() {
    use std::process::{Command, Stdio};
    let s = sim(&[("US500", "US500.cash")]).await;
    let d = tmpdir("broker-symbols-bin");
    let models = d.join("models");
    std::fs::create_dir_all(&models).expect("models");
    common::model_zip(&models.join("US500_M1.zip"), "US500", "M1");
    std::fs::write(d.join("ca.pem"), &s.ca_pem).expect("ca");
    let run = |config: &str, name: &str| {
        std::fs::write(d.join("executor_config.json"), config).expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let log = d.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_oracle-executor"))
            .env("ORACLE_IPC_TOKEN", "symbols-token")
            .env("CTRADER_CLIENT_ID", DEFAULT_CLIENT_ID)
            .env("CTRADER_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .env("CTRADER_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN)
            .env_remove("CTRADER_REFRESH_TOKEN")
            .arg("--config")
            .arg(d.join("executor_config.json"))
            .arg("--models")
            .arg(&models)
            .arg("--state")
            .arg(d.join(format!("state-{name}")))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--broker")
            .arg(format!("127.0.0.1:{}", s.addr.port()))
            .arg("--account-id")
            .arg(DEFAULT_ACCOUNT_ID.to_string())
            .arg("--ca")
            .arg(d.join("ca.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("spawn executor");
        (child, log, port)
    };
    let lots = r#""lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5"#;
    let risk = r#""risk": {"stale_after_secs": 100000, "max_margin_use": 100}"#;
    let (mut child, log, _) = run(&format!(r#"{{{risk}, "US500": {{{lots}}}}}"#), "missing");
    let mut status = None;
    for _ in 0..600 {
        if let Some(st) = child.try_wait().expect("wait") {
            status = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the executor did not stop: {text}")
    };
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("US500: not at the broker; close matches: US500.cash"),
        "{text}"
    );
    // Mapped: it starts and listens.
    let (mut child, log, port) = run(
        &format!(r#"{{{risk}, "US500": {{"broker_symbol": "US500.cash", {lots}}}}}"#),
        "mapped",
    );
    let mut up = false;
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(up, "the mapped executor listens: {text}");
    assert!(!text.contains("not at the broker"), "{text}");
    s.shutdown().await;
}
