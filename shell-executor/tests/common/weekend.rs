//! The held simulator over a weekend, shared by the TLS tests of market hours, the funded
//! rules and the deposit currency: `oracle-sim --calendar realistic` (FX: Sunday 22:00 – Friday
//! 22:00 UTC) whose market clock is held (the replay waits for a start file that never comes)
//! and stepped by the test, from Friday 2024-03-08 21:00 UTC. The executor's time is a
//! parameter.

use oracle_executor::engine::Engine;
use oracle_executor::live::LiveBroker;
use oracle_ipc::{Message, Timeframe, parse};
use oracle_sim::bars::{Bar, Period, parse_iso_utc};
use oracle_sim::calendar::CalendarMode;
use oracle_sim::config::DEFAULT_ACCOUNT_ID;
use oracle_sim::market::Start;
use oracle_sim::symbols::{SymbolData, SymbolSpec};
use oracle_sim::{BrokerConfig, SimConfig, SimHandle, Speed};

/// Unix seconds of an ISO UTC instant.
pub fn t(s: &str) -> i64 {
    parse_iso_utc(s).expect("time") / 1000
}

/// `name`'s (a built-in symbol) flat M1 bars at `close` (1e-5 units) from Friday 2024-03-08
/// 20:00 UTC to Monday 00:00, through the weekend.
pub fn flat_over_a_weekend(name: &str, close: i64) -> SymbolData {
    let t0 = t("2024-03-08T20:00:00Z") * 1000;
    let bars = (0..3 * 1440 - 20 * 60)
        .map(|i| Bar {
            time_ms: t0 + i * 60_000,
            open: close - 20,
            high: close + 30,
            low: close - 40,
            close,
            volume: 4,
        })
        .collect();
    SymbolData {
        spec: SymbolSpec::builtin(name).expect("builtin"),
        period: Period::M1,
        bars,
    }
}

/// EURUSD's flat bars at 1.08420 through the weekend.
pub fn eurusd_over_a_weekend() -> SymbolData {
    flat_over_a_weekend("EURUSD", 108_420)
}

/// The held simulator over EURUSD's weekend (`name` names its start-file folder).
pub async fn held_sim(name: &str) -> SimHandle {
    held_sim_with(name, vec![eurusd_over_a_weekend()], BrokerConfig::default()).await
}

/// The held simulator over `symbols` with `broker`'s settings, its calendar realistic and its
/// speed fast.
pub async fn held_sim_with(
    name: &str,
    symbols: Vec<SymbolData>,
    broker: BrokerConfig,
) -> SimHandle {
    oracle_sim::spawn(SimConfig {
        broker: BrokerConfig {
            calendar: CalendarMode::Realistic,
            speed: Speed::Fast,
            ..broker
        },
        symbols,
        start: Start::At(t("2024-03-08T21:00:00Z") * 1000),
        // The replay never starts on its own: the test steps the market clock.
        start_file: Some(super::tmpdir(name).join("never")),
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

/// Steps the sim's market until its clock reaches `until_s` (Unix s).
pub async fn step_until(s: &SimHandle, until_s: i64) {
    s.with_broker(move |b, now| {
        while b.market().now_ms < until_s * 1000 {
            if !b.step_market(now) {
                break;
            }
        }
    })
    .await
    .expect("sim running");
}

/// Waits until the live broker has read a spot of EURUSD (the sim sent it when stepped).
pub async fn wait_quote(e: &Engine<LiveBroker>) {
    wait_quote_of(e, "EURUSD").await;
}

/// Waits until the live broker has read a spot of `symbol`.
pub async fn wait_quote_of(e: &Engine<LiveBroker>, symbol: &str) {
    use oracle_executor::broker::Broker;
    for _ in 0..500 {
        if e.live
            .as_ref()
            .expect("live")
            .broker
            .quote(symbol)
            .is_some()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no {symbol} spot from the sim");
}

/// Positions open on the sim's default account.
pub async fn open_positions(s: &SimHandle) -> usize {
    s.account(DEFAULT_ACCOUNT_ID)
        .await
        .expect("account")
        .open_positions
}

/// One SIGNAL for (EURUSD, `tf`) at bar `bt`, answered by the engine at `now`.
pub async fn signal(
    e: &mut Engine<LiveBroker>,
    now: i64,
    tf: Timeframe,
    action: &str,
    bt: i64,
) -> String {
    signal_on(e, "EURUSD", now, tf, action, bt).await
}

/// One SIGNAL for (`symbol`, `tf`) at bar `bt`, answered by the engine at `now`.
pub async fn signal_on(
    e: &mut Engine<LiveBroker>,
    symbol: &str,
    now: i64,
    tf: Timeframe,
    action: &str,
    bt: i64,
) -> String {
    let line = super::signal_line((symbol, tf.as_str()), action, 0, (bt, 1));
    let Ok(Message::Signal(s)) = parse(&line) else {
        panic!("bad test line {line}")
    };
    e.on_signal(now, &s).await.line
}
