//! The project's own client (`oracle-ctrader`'s session + Tokio driver) against the sim over TLS:
//! every closed bar exactly once, in order, across a connection the sim drops mid-stream.

mod support;

use std::time::Duration;

use oracle_ctrader::driver::{ClientConfig, Endpoint, TlsMode, connect};
use oracle_ctrader::proto::ProtoOaTrendbarPeriod;
use oracle_ctrader::{Credentials, Event, Secret, SessionConfig};
use oracle_sim::bars::Period;
use oracle_sim::config::{DEFAULT_ACCESS_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault};
use oracle_sim::market::Start;
use oracle_sim::symbols::synthetic;
use oracle_sim::{SimConfig, Speed};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_sees_every_closed_bar_once_across_a_drop() {
    // Bars shifted to start tomorrow (whole days), so the market clock is ahead of the wall clock
    // the client also closes bars by, as a live server's would never be behind it.
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
        live_bars: Some(12),
        ..SimConfig::default()
    };
    cfg.broker.speed = Speed::BarsPerSecond(4.0);
    cfg.broker.faults = vec![Fault::DropAfter {
        after: 40,
        times: Some(1),
    }];
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
    let mut disconnects = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("bars in time")
            .expect("driver alive");
        match ev {
            Event::BarClosed {
                symbol_id: 1,
                period: ProtoOaTrendbarPeriod::M15,
                bar,
                ..
            } => got.push(bar),
            Event::Disconnected { .. } => disconnects += 1,
            Event::AuthFailed { code, .. } => panic!("auth failed: {code}"),
            _ => {}
        }
    }
    assert!(disconnects >= 1, "the sim dropped the connection once");
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
    assert_eq!(got, want);
    client.close().await;
    sim.shutdown().await;
}
