//! Alerts and metrics wired into the running executor (`src/alerting.rs`, `src/metrics.rs`):
//! a local HTTPS server (rustls, a test CA from rcgen) stands in for the webhook; the metrics
//! endpoint is scraped over loopback.
//!
//! - over `oracle-sim` (TLS): an order the broker refuses arrives as an `order_refused` webhook
//!   and is counted by reason; the bar, signal and order counters and the latency histogram move
//!   by what happened; the stop arrives;
//! - the real binary replaying bars across midnight Europe/Prague (paper): `started`, the
//!   `daily_summary` of the day that ended, and `stopping` after SIGTERM (what systemd sends) arrive, and the bar
//!   counter says how many bars went out;
//! - an `alerts` / `metrics` section in `executor_config.json` is not taken for a symbol.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oracle_alerts::test_support::{Server, ca_pem};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The stand-in webhook (HTTPS, answers 200 to every POST, records the JSON bodies).

/// The webhook: `oracle_alerts::test_support::Server` (what the alerts crate's own tests use).
#[derive(Clone)]
struct Hook(Server);

impl Hook {
    fn start() -> Hook {
        Hook(Server::start())
    }

    /// The webhook URL; its path carries a key, as Slack's do.
    fn url(&self) -> String {
        format!("{}/hook/T0KEY", self.0.base())
    }

    fn bodies(&self) -> Vec<Value> {
        self.0.bodies()
    }

    /// The bodies whose `event` is `kind`.
    fn of(&self, kind: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .filter(|b| b["event"] == kind)
            .collect()
    }

    /// Waits (at most 20 s) until a body of `kind` arrived.
    fn wait_for(&self, kind: &str) -> Vec<Value> {
        for _ in 0..200 {
            let got = self.of(kind);
            if !got.is_empty() {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no {kind} alert arrived; got {:?}", self.bodies());
    }
}

/// One scrape of `addr`'s `/metrics` (blocking, plain HTTP on loopback): the body.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    body.to_string()
}

/// The value of the sample line `name` (`oracle_bars_total`, with its labels) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// The configuration file.

#[test]
fn alerts_and_metrics_sections_in_executor_config_are_not_taken_for_symbols() {
    let d = common::tmpdir("alerts-sections");
    let path = d.join("executor_config.json");
    std::fs::write(
        &path,
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
            "alerts": {"webhook_url": "https://hooks.example.com/oracle", "label": "ftmo-1"},
            "metrics": {"listen": "127.0.0.1:9464"}}"#,
    )
    .unwrap();
    let (cfg, added) =
        oracle_executor::config::load(&path, &["GBPUSD".to_string()]).expect("a valid file");
    assert_eq!(
        cfg.symbols.keys().collect::<Vec<_>>(),
        ["EURUSD", "GBPUSD"],
        "the sections are no symbols"
    );
    assert_eq!(added, ["GBPUSD"]);
    // The rewrite (GBPUSD added) keeps the sections.
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["alerts"]["label"], "ftmo-1");
    assert_eq!(doc["metrics"]["listen"], "127.0.0.1:9464");
    let (alerts, metrics) = oracle_executor::alerting::sections(&path).unwrap();
    assert_eq!(alerts.unwrap().label.as_deref(), Some("ftmo-1"));
    assert_eq!(metrics.listen.as_deref(), Some("127.0.0.1:9464"));

    // A non-loopback endpoint is refused by name, before anything starts.
    std::fs::write(&path, r#"{"metrics": {"listen": "0.0.0.0:9464"}}"#).unwrap();
    let e = oracle_executor::alerting::sections(&path).unwrap_err();
    assert!(
        e.contains("executor_config.json: metrics.listen: 0.0.0.0:9464 is not a loopback"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Over the simulator.

#[cfg(feature = "live")]
mod over_the_sim {
    use super::*;
    use oracle_alerts::AlertsConfig;
    use oracle_executor::alerting::{Telemetry, alerts_from};
    use oracle_executor::engine::Engine;
    use oracle_executor::live::LiveBroker;
    use oracle_executor::policy::key_of;
    use oracle_executor::shell::Feed;
    use oracle_metrics::MetricsConfig;
    use oracle_sim::Fault;
    use tokio::sync::mpsc;

    /// The next closed bar of `sym` newer than `last`, streamed as the shell streams it (the
    /// engine's `on_bar` and `bar_streamed`); other symbols' bars are fed, not streamed.
    async fn next_bar(
        e: &mut Engine<LiveBroker>,
        feed: &mut mpsc::Receiver<Feed>,
        sym: &str,
        last: &mut i64,
    ) -> i64 {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), feed.recv())
                .await
                .expect("a bar in time")
                .expect("feed open");
            if ev == Feed::Reconcile {
                let now = e.live.as_ref().expect("live").broker.clock()();
                e.reconcile(now).await.expect("reconcile");
                continue;
            }
            if let Feed::Bar {
                symbol, tf, bar, ..
            } = ev
            {
                let key = key_of(&symbol, tf).unwrap();
                e.on_bar(&key, bar.time, bar.close, 0.0);
                if symbol == sym && bar.time > *last {
                    *last = bar.time;
                    e.bar_streamed(&key, bar.time);
                    return bar.time;
                }
            }
        }
    }

    async fn signal(e: &mut Engine<LiveBroker>, sym: &str, action: &str, bt: i64) -> String {
        common::signal_live(e, sym, action, bt, 1).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_order_the_sim_refuses_reaches_the_webhook_and_the_metrics_count_what_happened() {
        let hook = Hook::start();
        let s = common::sim3(vec![Fault::Reject {
            code: oracle_sim::msg::ErrorCode::NotEnoughMoney,
            every: 1,
            symbol: Some("AAPL".into()),
            times: Some(1),
            via_error_res: false,
        }])
        .await;
        let alerts_cfg = AlertsConfig {
            webhook_url: Some(hook.url()),
            label: Some("sim".into()),
            ..AlertsConfig::default()
        };
        let alerts =
            alerts_from(Some(alerts_cfg.clone()), None, Some(ca_pem().as_bytes())).expect("alerts");
        let tel = Arc::new(Telemetry::new(alerts, &alerts_cfg));
        let endpoint = oracle_metrics::start(
            &MetricsConfig {
                listen: Some("127.0.0.1:0".into()),
            },
            tel.metrics.clone(),
        )
        .await
        .expect("endpoint")
        .expect("on");
        let before = tokio::task::spawn_blocking(move || scrape(endpoint))
            .await
            .unwrap();
        assert_eq!(sample(&before, "oracle_bars_total"), 0.0);

        let d = common::tmpdir("alerts-sim");
        let (b, mut feed) = common::live_session(&s, &common::SIM_SYMS).await;
        b.set_telemetry(tel.clone());
        let mut e = common::engine_with(&d, common::sim3_cfg(), b);
        e.set_telemetry(tel.clone());
        e.reconcile(0).await.expect("reconcile");

        let mut last = 0;
        let t0 = next_bar(&mut e, &mut feed, "AAPL", &mut last).await;
        let ack = signal(&mut e, "AAPL", "WAIT", t0).await;
        assert!(ack.contains("|HOLD|"), "{ack}");
        let t1 = next_bar(&mut e, &mut feed, "AAPL", &mut last).await;
        let ack = signal(&mut e, "AAPL", "SHORT_WEAK", t1).await;
        assert!(ack.contains("|FAIL|BROKER_NOT_ENOUGH_MONEY|"), "{ack}");

        // The alert: the model, the order and the broker's reason.
        let refused = tokio::task::spawn_blocking({
            let hook = hook.clone();
            move || hook.wait_for("order_refused")
        })
        .await
        .unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["model"], "AAPL_M1");
        assert_eq!(refused[0]["order"], "SHORT_WEAK AAPL");
        assert_eq!(refused[0]["reason"], "BROKER_NOT_ENOUGH_MONEY");
        assert_eq!(refused[0]["label"], "sim");
        assert_eq!(
            refused[0]["text"],
            "[sim] order refused: AAPL_M1 SHORT_WEAK AAPL: BROKER_NOT_ENOUGH_MONEY"
        );

        // The counters moved by what happened: 2 bars out, 2 signals, 1 order on the wire (the
        // one refused), 1 refusal of that reason, 1 latency observation.
        let after = tokio::task::spawn_blocking(move || scrape(endpoint))
            .await
            .unwrap();
        assert_eq!(sample(&after, "oracle_bars_total"), 2.0, "{after}");
        assert_eq!(sample(&after, "oracle_signals_total"), 2.0);
        assert_eq!(
            sample(&after, "oracle_orders_sent_total{side=\"live\"}"),
            1.0
        );
        assert_eq!(
            sample(
                &after,
                "oracle_refusals_total{reason=\"BROKER_NOT_ENOUGH_MONEY\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(&after, "oracle_bar_to_order_milliseconds_count"),
            1.0
        );
        assert!(sample(&after, "oracle_balance") > 0.0, "{after}");
        assert_eq!(sample(&after, "oracle_open_positions"), 0.0);
        assert!(sample(&after, "oracle_resident_memory_bytes") > 0.0);

        // The stop is told, and the queue drained before it returns.
        tel.stopping("test over", Duration::from_secs(10));
        let stop = hook.of("stopping");
        assert_eq!(stop.len(), 1, "{:?}", hook.bodies());
        assert_eq!(stop[0]["process"], "oracle-executor");
        assert_eq!(stop[0]["reason"], "test over");
        // Nothing carried the webhook's key.
        for b in hook.bodies() {
            assert!(!b.to_string().contains("T0KEY"), "{b}");
        }
        s.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary: start, the daily summary at midnight Europe/Prague, the stop.

const BIN: &str = env!("CARGO_BIN_EXE_oracle-executor");

#[test]
fn the_executor_tells_its_start_the_prague_midnight_summary_and_its_stop() {
    let hook = Hook::start();
    let d = common::tmpdir("alerts-bin");
    let ca = d.join("alerts-ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
            "alerts": {"webhook_url": hook.url()},
            "metrics": {"listen": format!("127.0.0.1:{metrics_port}")}
        })
        .to_string(),
    )
    .unwrap();
    // 350 M15 bars of history, then 12 replayed from 2026-12-04T21:00Z: the one of 22:45Z closes
    // at 23:00Z, midnight in Prague (CET), so the replay's clock crosses it mid-way.
    let first_live = 1_796_418_000; // 2026-12-04T21:00:00Z
    let start = first_live - 350 * 900;
    let mut csv = String::from("time,open,high,low,close,volume\n");
    for i in 0..362i64 {
        let t = oracle_ipc::Iso(start + i * 900);
        let c = 1.1 + (i % 7) as f64 * 0.0001;
        csv.push_str(&format!("{t},{c},{},{},{c},5\n", c + 0.0002, c - 0.0002));
    }
    std::fs::write(d.join("bars.csv"), csv).unwrap();
    let tokf = d.join("token");
    std::fs::write(&tokf, "paper-token-xyz").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokf, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .env_remove("ORACLE_IPC_TOKEN")
        .env(oracle_executor::alerting::CA_ENV, &ca)
        .args(["--paper", "--json", "--feed-interval-ms", "600", "--config"])
        .arg(&cfg)
        .arg("--state")
        .arg(d.join("state"))
        .arg("--token-file")
        .arg(&tokf)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--feed-csv")
        .arg(format!("EURUSD_M15={}", d.join("bars.csv").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stop = |child: std::process::Child| {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let started = hook.wait_for("started");
    assert_eq!(started[0]["process"], "oracle-executor");
    assert_eq!(started[0]["detail"], "paper, 1 stream");
    let summary = hook.wait_for("daily_summary");
    // Every bar replayed is out once the replay's last bar went (12 s at most).
    let mut metrics = String::new();
    for _ in 0..150 {
        metrics = scrape(SocketAddr::from(([127, 0, 0, 1], metrics_port)));
        if sample(&metrics, "oracle_bars_total") >= 12.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = stop(child);
    assert_eq!(
        summary.len(),
        1,
        "one midnight crossed: {summary:?}\n{logs}"
    );
    assert_eq!(summary[0]["day"], "2026-12-04", "{logs}");
    assert_eq!(summary[0]["orders"], 0);
    assert_eq!(sample(&metrics, "oracle_bars_total"), 12.0, "{metrics}");
    let stopping = hook.wait_for("stopping");
    assert_eq!(
        stopping[0]["reason"], "shutdown requested (signal)",
        "{logs}"
    );
    for b in hook.bodies() {
        assert!(!b.to_string().contains("T0KEY"), "{b}");
    }
}

// ---------------------------------------------------------------------------------------------
// The prop-firm guard, through the engine over a paper book.

#[tokio::test(flavor = "current_thread")]
async fn the_guards_halt_and_its_limit_crossings_reach_the_webhook_once() {
    use oracle_alerts::AlertsConfig;
    use oracle_executor::alerting::{Telemetry, alerts_from};
    use oracle_executor::engine::{Engine, Side};
    use oracle_executor::paper::PaperBook;
    use oracle_ipc::Message;

    let hook = Hook::start();
    let alerts_cfg = AlertsConfig {
        webhook_url: Some(hook.url()),
        ..AlertsConfig::default()
    };
    let alerts =
        alerts_from(Some(alerts_cfg.clone()), None, Some(ca_pem().as_bytes())).expect("alerts");
    let tel = Arc::new(Telemetry::new(alerts, &alerts_cfg));
    // FTMO 2-Step on 100 000: a daily allowance of 5 000, the guard acting at 80%.
    let c = oracle_executor::config::from_value(&serde_json::json!({
        "EURUSD": {"enabled": true, "lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0},
        "risk": {"preset": "ftmo-2step", "initial_balance": 100000.0, "stale_after_secs": 100000}
    }))
    .expect("config");
    let mut book = PaperBook::new(100_000.0, [common::eurusd()]);
    book.set_quote("EURUSD", 1.10000, 1.10008);
    let side = Side::new("live", &c, book, None);
    let mut e = Engine::new(c, Some(side), None, Default::default(), None);
    e.set_telemetry(tel.clone());
    let signal = async |e: &mut Engine<PaperBook>, action: &str, i: i64| {
        let line = common::sig("EURUSD", action, i);
        let Ok(Message::Signal(s)) = oracle_ipc::parse(&line) else {
            panic!("{line}")
        };
        let key = oracle_executor::policy::key_of("EURUSD", oracle_ipc::Timeframe::M15).unwrap();
        let bt = common::T0 + i * common::M15;
        e.on_bar(&key, bt, 1.1, 0.0);
        e.bar_streamed(&key, bt);
        e.on_signal(common::now(i), &s).await.line
    };
    assert!(signal(&mut e, "WAIT", 0).await.contains("|HOLD|"));
    let ack = signal(&mut e, "LONG_STRONG", 1).await;
    assert!(ack.contains("|OK|"), "{ack}");
    // 1 lot, 420.8 pips down: -4 208, 84% of the daily allowance.
    e.live
        .as_mut()
        .expect("live")
        .broker
        .set_quote("EURUSD", 1.05800, 1.05808);
    let ack = signal(&mut e, "LONG_STRONG", 2).await;
    assert!(ack.contains("|HOLD|") || ack.contains("|FAIL|"), "{ack}");
    // The guard's closes driven (as the shell drives a side's actions): the halt in force is
    // not told again.
    e.drive_sides(common::now(2)).await;
    tel.stopping("test over", Duration::from_secs(10));
    let halted = hook.of("halted");
    assert_eq!(halted.len(), 1, "{:?}", hook.bodies());
    assert!(
        halted[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("daily loss (HALTED_DAILY_LOSS) by guard")),
        "{halted:?}"
    );
    let crossings = hook.of("headroom");
    assert_eq!(
        crossings.len(),
        1,
        "a jump past 80% reports 80% once: {crossings:?}"
    );
    assert_eq!(crossings[0]["limit"], "daily loss");
    assert_eq!(crossings[0]["threshold_pct"], 80);
}

#[cfg(feature = "live")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_session_lost_and_back_is_counted_by_the_live_event_task() {
    use oracle_executor::alerting::Telemetry;
    use oracle_executor::shell::Feed;
    // The sim drops the connection once, after its 600th frame; the session comes back.
    let s = common::sim3(vec![oracle_sim::Fault::DropAfter {
        after: 600,
        times: Some(1),
    }])
    .await;
    let tel = Arc::new(Telemetry::off());
    let (b, mut feed) = common::live_session(&s, &common::SIM_SYMS).await;
    b.set_telemetry(tel.clone());
    let back = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(ev) = feed.recv().await {
            if ev == Feed::Reconnected {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(back, Ok(true), "the session came back");
    let text = tel.metrics.render();
    assert_eq!(
        sample(&text, "oracle_broker_disconnects_total"),
        1.0,
        "{text}"
    );
    drop(b);
    s.shutdown().await;
}

#[cfg(feature = "live")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refresh_inside_connect_is_counted_and_the_sessions_expiry_is_the_new_tokens() {
    use oracle_executor::alerting::Telemetry;
    use oracle_executor::broker::Broker;
    // The access token expired a minute before the start: the session refreshes before it is
    // ready, inside `live::connect`, before the metrics are attached.
    let mut broker = oracle_sim::BrokerConfig::default();
    broker.tokens[0].expires_in_s = -60;
    let ttl_s = broker.token_ttl_s;
    let start_ms = common::market_start_ms();
    let s = oracle_sim::spawn(oracle_sim::SimConfig {
        broker,
        symbols: vec![oracle_sim::symbols::synthetic(
            "EURUSD",
            oracle_sim::bars::Period::M1,
            3000,
            start_ms,
            7,
        )],
        ..oracle_sim::SimConfig::default()
    })
    .await
    .expect("sim");
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64
    };
    let before = wall_ms();
    let (b, _feed) = common::live_session_refreshing(&s, &["EURUSD"]).await;
    let after = wall_ms();
    let tel = Arc::new(Telemetry::off());
    b.set_telemetry(tel.clone());
    let text = tel.metrics.render();
    assert_eq!(sample(&text, "oracle_token_refreshes_total"), 1.0, "{text}");
    // The session's token is the refreshed one: it lives the sim's token lifetime from then.
    let e = b
        .token_expires_at_ms()
        .expect("the session knows its token's expiry");
    assert!(
        (before + ttl_s * 1000..=after + ttl_s * 1000).contains(&e),
        "{e} not within [{before}, {after}] + {ttl_s} s"
    );
    // `oracle status` shows that expiry, from the session (the state folder has no token file).
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let side = oracle_executor::engine::Side::new("live", &cfg, b, None);
    let engine =
        oracle_executor::engine::Engine::new(cfg, Some(side), None, Default::default(), None);
    let d = common::tmpdir("token-status");
    let op = oracle_executor::operator::open(
        &d.join("state"),
        &d.join("executor_config.json"),
        Vec::new(),
    )
    .expect("operator channel");
    let now = after.div_euclid(1000);
    let st = oracle_executor::operator::status(&engine, &op, now);
    let t = st.token.clone().expect("the session's token");
    assert_eq!(t.source, "session");
    assert_eq!(
        t.expires_at,
        oracle_ipc::Iso(e.div_euclid(1000)).to_string()
    );
    assert!(
        st.table().contains("s left, from the session)"),
        "{}",
        st.table()
    );
    drop(op);
    drop(engine);
    s.shutdown().await;
}
