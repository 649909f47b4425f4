//! `LiveBroker::history` against `oracle-sim` whose market clock is NOT the wall clock (needs the
//! default `live` feature): `cargo test -p oracle-executor --test sim_clock`.
//!
//! What a restarted executor does (kill -9 in the chaos proof): a NEW session to a simulator that
//! has been replaying for a while, then the first HISTORY of a stream. The seed must be the latest
//! bars closed in the simulator's market time, whether that time runs ahead of the wall clock (a
//! `fast` replay started at now) or lies in the past (a replay of 2001).
#![cfg(feature = "live")]

mod common;

use std::time::Duration;

use oracle_executor::broker::Broker;
use oracle_executor::live::LiveBroker;
use oracle_executor::shell::Feed;
use oracle_ipc::Timeframe;
use oracle_sim::bars::{Bar, Period, parse_iso_utc};
use oracle_sim::market::Start;
use oracle_sim::symbols::SymbolData;
use oracle_sim::{BrokerConfig, SimConfig, SimHandle, Speed};
use tokio::sync::mpsc;

/// A log sink for `tracing_subscriber::fmt().with_writer`.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// Bars of history before the replay starts (the sim's default `--history`).
const HISTORY: usize = 500;
/// Bars asked by the restarted executor's HISTORY.
const COUNT: u32 = 50;
const M1_MS: i64 = 60_000;

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A session like the executor's: EURUSD, its M1 bar stream subscribed.
async fn live(s: &SimHandle) -> (LiveBroker, mpsc::Receiver<Feed>) {
    common::live_session(s, &["EURUSD"]).await
}

async fn spawn(data: &SymbolData, speed: Speed, live_bars: Option<usize>) -> SimHandle {
    oracle_sim::spawn(SimConfig {
        broker: BrokerConfig {
            speed,
            ..BrokerConfig::default()
        },
        symbols: vec![data.clone()],
        start: Start::AfterBars(HISTORY),
        live_bars,
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

/// The sim's market time (Unix ms), read on its broker actor.
async fn market_ms(s: &SimHandle) -> i64 {
    s.with_broker(|b, _| b.market().now_ms)
        .await
        .expect("sim running")
}

/// The latest `count` bars of `bars` closed at market time `now_ms` (open + 1 min ≤ now): what
/// the simulator's history holds, computed from its input data.
fn closed_at(bars: &[Bar], now_ms: i64, count: usize) -> Vec<&Bar> {
    let closed: Vec<&Bar> = bars
        .iter()
        .filter(|b| b.time_ms + M1_MS <= now_ms)
        .collect();
    closed[closed.len().saturating_sub(count)..].to_vec()
}

/// `got` is exactly `want`: open times (Unix s) and prices (EURUSD: 5 digits).
fn assert_bars(got: &[oracle_executor::broker::Bar], want: &[&Bar]) {
    let times = |v: &[oracle_executor::broker::Bar]| v.iter().map(|b| b.time).collect::<Vec<_>>();
    let want_times: Vec<i64> = want.iter().map(|b| b.time_ms / 1000).collect();
    assert_eq!(times(got), want_times, "bar open times");
    for (g, w) in got.iter().zip(want) {
        let px = |x: i64| x as f64 / 100_000.0;
        assert!(
            (g.open - px(w.open)).abs() < 1e-9
                && (g.high - px(w.high)).abs() < 1e-9
                && (g.low - px(w.low)).abs() < 1e-9
                && (g.close - px(w.close)).abs() < 1e-9,
            "prices of the bar at {}: got {g:?}, want {w:?}",
            g.time
        );
    }
}

/// Synthetic EURUSD M1 bars whose replay (after [`HISTORY`] bars) starts at the wall clock's
/// minute, or a few days later where the first `live` bars would cross a weekend (the synthetic
/// market has no weekend bars): so `live` bars follow the start without a gap.
fn from_now(live: usize, seed: u64) -> SymbolData {
    let first = (wall_ms() / M1_MS - HISTORY as i64) * M1_MS;
    for day in 0..4 {
        let d = oracle_sim::symbols::synthetic(
            "EURUSD",
            Period::M1,
            HISTORY + live + 100,
            first + day * 86_400_000,
            seed,
        );
        let b = &d.bars[HISTORY..=HISTORY + live];
        if b.windows(2).all(|w| w[1].time_ms - w[0].time_ms == M1_MS) {
            return d;
        }
    }
    unreachable!("four consecutive days include two weekdays")
}

/// Runs a `fast` replay of `live_bars` bars to its end with one session reading it (the executor
/// before its restart), closes that session, and returns the market time the replay stopped at.
async fn replay_then_drop_the_first_session(s: &SimHandle) -> i64 {
    let (first, feed) = live(s).await;
    tokio::time::timeout(Duration::from_secs(60), s.replay_done())
        .await
        .expect("the replay ends");
    // kill -9 of the executor: its connection goes away.
    drop(first);
    drop(feed);
    market_ms(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_history_follows_a_fast_replay_that_ran_ahead_of_the_wall_clock() {
    // Bars up to now, then a `fast` replay from now on: market time runs ahead of the wall clock
    // as fast as the session reads (here: 240 bars in a few seconds).
    let data = from_now(240, 11);
    let s = spawn(&data, Speed::Fast, Some(240)).await;
    let end = replay_then_drop_the_first_session(&s).await;
    let start = data.bars[HISTORY].time_ms;
    assert_eq!(
        end,
        start + 240 * M1_MS,
        "the replay stopped after its 240 bars"
    );
    assert!(
        end > wall_ms() + 200 * M1_MS,
        "the sim's market time ({end}) is far ahead of the wall clock"
    );
    // The restarted executor: a new session, its first HISTORY.
    let (mut b, _feed) = live(&s).await;
    let got = b
        .history("EURUSD", Timeframe::M1, COUNT)
        .await
        .expect("history");
    let want = closed_at(&data.bars, end, COUNT as usize);
    assert_eq!(got.len(), COUNT as usize);
    assert_bars(&got, &want);
    // The last bar is the one that closed most recently in the sim: it closed at `end`.
    let last = got.last().expect("bars").time;
    assert_eq!(
        last * 1000 + M1_MS,
        end,
        "the latest bar closed at the sim's market time"
    );
    assert!(
        last * 1000 > wall_ms(),
        "bars from ahead of the wall clock are served"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_history_follows_a_replay_of_the_past() {
    // A replay of 2001 (Monday 2001-03-05): the broker's clock is 24 years behind the wall clock.
    let t0 = parse_iso_utc("2001-03-05T00:00:00Z").expect("time");
    let data = oracle_sim::symbols::synthetic("EURUSD", Period::M1, 2000, t0, 5);
    let s = spawn(&data, Speed::Fast, Some(120)).await;
    let end = replay_then_drop_the_first_session(&s).await;
    let start = data.bars[HISTORY].time_ms;
    assert_eq!(
        end,
        start + 120 * M1_MS,
        "the replay stopped after its 120 bars"
    );
    assert!(end < parse_iso_utc("2002-01-01T00:00:00Z").expect("time"));
    let (mut b, _feed) = live(&s).await;
    // The executor's log, on this thread (the history future runs here).
    let log = Log::default();
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish(),
    );
    let got = b
        .history("EURUSD", Timeframe::M1, COUNT)
        .await
        .expect("history");
    assert!(
        !got.is_empty(),
        "history of a replay in the past is not empty"
    );
    let want = closed_at(&data.bars, end, COUNT as usize);
    assert_bars(&got, &want);
    assert_eq!(
        got.last().expect("bars").time * 1000 + M1_MS,
        end,
        "the latest bar closed at the sim's market time, not at the wall clock"
    );
    // A second stream's seed on the same session: the same answer (one info line, no drift).
    let again = b
        .history("EURUSD", Timeframe::M1, 10)
        .await
        .expect("history");
    assert_bars(&again, &want[want.len() - 10..]);
    let text = log.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("the broker's clock differs from ours"))
        .collect();
    assert_eq!(lines.len(), 1, "said once, naming both times:\n{text}");
    let year = oracle_ipc::Iso(wall_ms() / 1000).to_string();
    assert!(
        lines[0].contains("INFO")
            && lines[0].contains("broker_time=2001-03-05T10:20:00Z")
            && lines[0].contains(&format!("wall_clock={}", &year[..4])),
        "{}",
        lines[0]
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_history_follows_a_timed_replay_still_running_ahead() {
    // A timed replay (600× the wall clock) started at now, still running while we ask: the seed
    // ends at a bar closed in market time between the instants before and after the request.
    let now = wall_ms();
    let data = oracle_sim::symbols::synthetic(
        "EURUSD",
        Period::M1,
        20_000,
        (now / M1_MS - HISTORY as i64) * M1_MS,
        3,
    );
    let s = spawn(&data, Speed::Times(600.0), None).await;
    let (first, feed) = live(&s).await;
    // 600× for 3 s: 30 minutes of market time, ahead of the wall clock.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(first);
    drop(feed);
    let (mut b, _feed) = live(&s).await;
    let before = market_ms(&s).await;
    assert!(
        before > wall_ms() + 20 * M1_MS,
        "market time {before} runs ahead"
    );
    let got = b
        .history("EURUSD", Timeframe::M1, COUNT)
        .await
        .expect("history");
    let after = market_ms(&s).await;
    assert_eq!(got.len(), COUNT as usize);
    let last_ms = got.last().expect("bars").time * 1000;
    let lo = closed_at(&data.bars, before, 1)[0].time_ms;
    let hi = closed_at(&data.bars, after, 1)[0].time_ms;
    assert!(
        (lo..=hi).contains(&last_ms),
        "the latest bar ({last_ms}) closed between the request's market times [{lo}, {hi}]"
    );
    // Exactly the sim's bars up to that one, none skipped.
    assert_bars(
        &got,
        &closed_at(&data.bars, last_ms + M1_MS, COUNT as usize),
    );
    s.shutdown().await;
}
