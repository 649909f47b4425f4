//! The project's client (session + Tokio driver) against the sim over TLS with the broker faults
//! of issue 17 item 6 injected together: CONNECTIONS_LIMIT_EXCEEDED at the first application
//! auth, ProtoOAClientDisconnectEvent, a maintenance window (SERVER_IS_UNDER_MAINTENANCE with its
//! end), BLOCKED_PAYLOAD_TYPE with retryAfter on history and on an order, and a history answer
//! that never comes. Every closed bar arrives once, in order; the order fills once; each fault
//! has its log line. No timing assertion: the waits are proven on the virtual clock
//! (`ctrader/tests/session.rs`), here that the whole path survives them.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oracle_ctrader::driver::{ClientConfig, Endpoint, Outcome, TlsMode, connect};
use oracle_ctrader::proto::{
    ProtoOaNewOrderReq, ProtoOaOrderType, ProtoOaTradeSide, ProtoOaTrendbarPeriod,
};
use oracle_ctrader::session::DisconnectReason;
use oracle_ctrader::{Credentials, Event, Secret, SessionConfig};
use oracle_sim::bars::Period;
use oracle_sim::config::{DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault};
use oracle_sim::market::Start;
use oracle_sim::symbols::synthetic;
use oracle_sim::{SimConfig, Speed};
use support::*;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_survives_every_broker_fault_with_no_missed_bar_and_no_duplicate_order() {
    // The only test in this binary: it owns the global subscriber.
    let logs = Logs::default();
    let w = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish(),
    )
    .unwrap();

    // Bars shifted to start tomorrow (whole days): the market clock is ahead of the wall clock.
    let mut data = synthetic("EURUSD", Period::M15, 400, t0(), 1);
    let day = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let shift = ((now - data.bars[300].time_ms) / day + 1) * day;
    for b in &mut data.bars {
        b.time_ms += shift;
    }
    let want: Vec<_> = data.bars[300..312].to_vec();
    let mut cfg = SimConfig {
        symbols: vec![data.clone()],
        start: Start::At(data.bars[300].time_ms),
        live_bars: Some(200),
        ..SimConfig::default()
    };
    cfg.broker.speed = Speed::BarsPerSecond(4.0);
    cfg.broker.faults = vec![
        Fault::ConnectionsLimit {
            max: 0,
            times: Some(1),
        },
        Fault::ClientDisconnect {
            after: 25,
            times: Some(1),
        },
        Fault::Maintenance {
            after_s: 1,
            for_s: 2,
        },
        Fault::Blocked {
            kind: Some("GetTrendbarsReq".into()),
            retry_after_s: 1,
            every: 2,
            times: Some(2),
        },
        Fault::Blocked {
            kind: Some("NewOrderReq".into()),
            retry_after_s: 1,
            every: 1,
            times: Some(1),
        },
        Fault::NoAnswer {
            kind: "GetTrendbarsReq".into(),
            every: 3,
            times: Some(1),
        },
    ];
    let sim = start(cfg).await;

    let creds = Credentials {
        client_id: Secret::new(DEFAULT_CLIENT_ID),
        client_secret: Secret::new(DEFAULT_CLIENT_SECRET),
        access_token: Secret::new(DEFAULT_ACCESS_TOKEN),
        refresh_token: None,
    };
    let mut session = SessionConfig::new(creds, ACC);
    session.backoff_initial = Duration::from_millis(100);
    session.backoff_max = Duration::from_millis(500);
    session.request_timeout = Duration::from_secs(2);
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: sim.addr.port(),
    };
    let (client, mut events) = connect(ClientConfig::new(
        endpoint,
        TlsMode::CustomCa(sim.ca_pem.clone().into_bytes()),
        session,
    ))
    .unwrap();
    client
        .subscribe_bars(
            1,
            ProtoOaTrendbarPeriod::M15,
            Some(data.bars[299].time_ms / 1000),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut reasons = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while got.len() < want.len() {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "bars in time: {} of {}, disconnects {reasons:?}",
                    got.len(),
                    want.len()
                )
            })
            .expect("driver alive");
        match ev {
            Event::BarClosed {
                symbol_id: 1,
                period: ProtoOaTrendbarPeriod::M15,
                bar,
                ..
            } => got.push(bar),
            Event::Disconnected { reason, .. } => reasons.push(reason),
            Event::AuthFailed { code, .. } => panic!("auth failed: {code}"),
            _ => {}
        }
    }
    let got: Vec<_> = got
        .iter()
        .map(|b| oracle_sim::bars::Bar {
            time_ms: b.open_time * 1000,
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            volume: b.volume,
        })
        .collect();
    assert_eq!(got, want, "every bar once, in order");
    assert!(
        reasons.iter().any(|r| matches!(r, DisconnectReason::AuthError(c) if c.as_str() == "CONNECTIONS_LIMIT_EXCEEDED")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, DisconnectReason::ServerDisconnect(_))),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, DisconnectReason::Maintenance { until_ms: Some(_) })),
        "{reasons:?}"
    );

    // An order refused once with BLOCKED_PAYLOAD_TYPE is resent after retryAfter and fills once.
    let order = ProtoOaNewOrderReq {
        ctid_trader_account_id: ACC,
        symbol_id: 1,
        order_type: ProtoOaOrderType::Market as i32,
        trade_side: ProtoOaTradeSide::Buy as i32,
        volume: 100_000,
        client_order_id: Some("EURUSD-FAULTS-1".into()),
        ..Default::default()
    };
    let outcome = client.request(order).await.unwrap();
    assert!(matches!(outcome, Outcome::Execution(_)), "{outcome:?}");
    assert_eq!(
        sim.new_orders_with_client_id("EURUSD-FAULTS-1").await,
        1,
        "executed once (the blocked one was refused before execution)"
    );
    assert_eq!(
        sim.position_ids(ACC).await.len(),
        1,
        "one position: no duplicate"
    );
    client.close().await;
    sim.shutdown().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for line in [
        "too many open connections",
        "SERVER_IS_UNDER_MAINTENANCE",
        "request refused by rate limit; re-queued",
        "fault: request executed, its answer never sent",
    ] {
        assert!(logs.contains(line), "no log line `{line}`:\n{logs}");
    }
    let blocked_order = logs
        .lines()
        .filter(|l| l.contains("fault: BLOCKED_PAYLOAD_TYPE") && l.contains("NewOrderReq"))
        .count();
    assert_eq!(blocked_order, 1, "the order was refused once:\n{logs}");
}
