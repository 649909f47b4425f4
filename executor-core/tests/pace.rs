//! Demo pacing driven with no runtime: time is a plain millisecond value.

use std::collections::HashMap;

use oracle_executor_core::config::from_value;
use oracle_executor_core::exec::ExecutorCore;
use oracle_executor_core::gather::Timer;
use oracle_executor_core::pace::Pace;
use oracle_ipc::Timeframe;

const T0: i64 = 1_614_556_800;
const TIMEOUT: i64 = 2_000;

fn streams() -> Vec<(String, Timeframe)> {
    vec![
        ("EURUSD".into(), Timeframe::M15),
        ("US500".into(), Timeframe::M15),
    ]
}

fn signal(sym: &str, bt: i64) -> String {
    format!(
        "SIGNAL|{sym}|WAIT|0|0.00|TF:M15|BT:{}|SEQ:1",
        oracle_ipc::Iso(bt)
    )
}

#[test]
fn the_market_is_held_until_every_stream_s_history_is_answered() {
    let mut p = Pace::new(TIMEOUT, &streams());
    assert!(!p.takes());
    p.history_answered(100, "EURUSD", Timeframe::M15);
    assert!(!p.takes(), "US500 has not asked yet");
    assert_eq!(p.poll_timeout(), Some(100 + TIMEOUT));
    p.history_answered(150, "US500", Timeframe::M15);
    assert!(p.takes());
    assert_eq!(p.poll_timeout(), None, "no ready timer once open");
}

#[test]
fn no_history_request_for_the_timeout_releases_the_market() {
    let mut p = Pace::new(TIMEOUT, &streams());
    p.history_answered(100, "EURUSD", Timeframe::M15);
    p.history_answered(500, "EURUSD", Timeframe::M15);
    assert_eq!(
        p.poll_timeout(),
        Some(500 + TIMEOUT),
        "each request restarts the wait"
    );
    assert!(p.handle_timeout(500 + TIMEOUT - 1).is_empty());
    assert!(!p.takes());
    assert_eq!(p.handle_timeout(500 + TIMEOUT), vec![Timer::PaceReady]);
    assert!(p.takes());
}

#[test]
fn a_bar_waits_for_its_signal_or_the_timeout_then_the_next_bar_is_taken() {
    let mut p = Pace::new(TIMEOUT, &streams());
    p.history_answered(0, "EURUSD", Timeframe::M15);
    p.history_answered(0, "US500", Timeframe::M15);
    // A stream the predictor asked for: held until its SIGNAL.
    assert!(!p.bar_sent(1_000, "EURUSD", Timeframe::M15, T0));
    assert!(!p.takes());
    assert!(!p.signal_in(&signal("US500", T0)), "another model's SIGNAL");
    assert!(p.signal_in(&signal("EURUSD", T0)), "released by its SIGNAL");
    assert!(p.takes());
    assert_eq!(p.poll_timeout(), None);
    // No SIGNAL: released by the timer.
    assert!(!p.bar_sent(5_000, "US500", Timeframe::M15, T0));
    assert_eq!(p.poll_timeout(), Some(5_000 + TIMEOUT));
    assert_eq!(p.handle_timeout(5_000 + TIMEOUT), vec![Timer::PaceSignal]);
    assert!(p.takes());
    // A stream nobody asked for goes at once.
    assert!(p.bar_sent(9_000, "GBPUSD", Timeframe::M15, T0));
}

#[test]
fn the_executor_core_s_timeout_is_the_earliest_of_gather_and_pacing() {
    let cfg = from_value(&serde_json::json!({})).expect("config");
    let mut core: ExecutorCore = ExecutorCore::new(cfg, None, None, HashMap::new());
    core.pace = Some(Pace::new(TIMEOUT, &streams()));
    core.pace
        .as_mut()
        .expect("pace")
        .history_answered(0, "EURUSD", Timeframe::M15);
    assert_eq!(core.poll_timeout(), Some(TIMEOUT));
    core.gather.arm(10);
    assert_eq!(core.poll_timeout(), Some(10 + 25));
    assert_eq!(core.handle_timeout(35), vec![Timer::Gather]);
    assert_eq!(core.handle_timeout(TIMEOUT), vec![Timer::PaceReady]);
    assert_eq!(core.poll_timeout(), None);
}
