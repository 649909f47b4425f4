//! The gathering of a close instant's SIGNALs and the core's timer table, driven with no
//! runtime: time is a plain millisecond value.

use std::collections::HashMap;

use oracle_executor_core::config::from_value;
use oracle_executor_core::exec::ExecutorCore;
use oracle_executor_core::gather::{GATHER_WAIT_MS, Gather, Timer, TimerTable};
use oracle_ipc::Timeframe;

/// A bar open time (a Monday, 2021-03-01 00:00 UTC); bars are M15.
const T0: i64 = 1_614_556_800;
const M15: i64 = 900;

fn signal(sym: &str, bt: i64) -> String {
    format!(
        "SIGNAL|{sym}|WAIT|0|0.00|TF:M15|BT:{}|SEQ:1",
        oracle_ipc::Iso(bt)
    )
}

#[test]
fn a_batch_waits_for_the_other_models_of_its_instant_until_the_gather_timer_fires_then_goes_alone()
{
    let mut g = Gather::default();
    g.bar_out("EURUSD", Timeframe::M15, T0);
    g.bar_out("US500", Timeframe::M15, T0);
    g.signal_in(&signal("EURUSD", T0));
    assert!(g.expects_more(), "US500's SIGNAL is on its way");
    let now = 10_000;
    g.arm(now);
    assert_eq!(g.poll_timeout(), Some(now + GATHER_WAIT_MS));
    assert!(g.handle_timeout(now + GATHER_WAIT_MS - 1).is_empty());
    assert!(g.expects_more(), "not fired yet: still waiting");
    assert_eq!(g.handle_timeout(now + GATHER_WAIT_MS), vec![Timer::Gather]);
    assert_eq!(g.poll_timeout(), None, "fired once");
    assert!(!g.expects_more(), "US500 is late: the batch goes alone");
    g.taken();
    // The next instant: US500, late once, is not waited for; EURUSD's batch goes at once.
    g.bar_out("EURUSD", Timeframe::M15, T0 + M15);
    g.bar_out("US500", Timeframe::M15, T0 + M15);
    g.signal_in(&signal("EURUSD", T0 + M15));
    assert!(!g.expects_more());
}

#[test]
fn a_model_late_once_is_waited_for_again_after_it_signals() {
    let mut g = Gather::default();
    g.bar_out("US500", Timeframe::M15, T0);
    g.bar_out("EURUSD", Timeframe::M15, T0);
    g.signal_in(&signal("EURUSD", T0));
    g.arm(0);
    g.handle_timeout(GATHER_WAIT_MS);
    g.taken();
    // US500's SIGNAL comes after all: from its next bar on it is awaited again.
    g.signal_in(&signal("US500", T0));
    g.taken();
    g.bar_out("EURUSD", Timeframe::M15, T0 + M15);
    g.bar_out("US500", Timeframe::M15, T0 + M15);
    g.signal_in(&signal("EURUSD", T0 + M15));
    assert!(g.expects_more());
}

#[test]
fn a_batch_goes_at_once_when_every_signal_of_its_instant_is_in() {
    let mut g = Gather::default();
    g.bar_out("EURUSD", Timeframe::M15, T0);
    g.bar_out("US500", Timeframe::M15, T0);
    g.signal_in(&signal("EURUSD", T0));
    g.signal_in(&signal("US500", T0));
    assert!(!g.expects_more());
    assert_eq!(g.poll_timeout(), None, "nothing armed");
}

#[test]
fn the_gather_timer_is_armed_once_per_batch_and_disarmed_when_the_batch_goes() {
    let mut g = Gather::default();
    g.arm(1_000);
    g.arm(1_010);
    assert_eq!(
        g.poll_timeout(),
        Some(1_000 + GATHER_WAIT_MS),
        "a later SIGNAL does not extend the wait"
    );
    g.taken();
    assert_eq!(g.poll_timeout(), None);
    assert!(g.handle_timeout(i64::MAX).is_empty());
    g.arm(2_000);
    assert_eq!(g.poll_timeout(), Some(2_000 + GATHER_WAIT_MS));
}

#[test]
fn the_timer_table_gives_the_earliest_deadline_and_expires_only_due_timers() {
    let mut t = TimerTable::default();
    assert_eq!(t.next(), None);
    t.set(Timer::Gather, 50);
    assert_eq!(t.next(), Some(50));
    assert_eq!(t.get(Timer::Gather), Some(50));
    assert!(t.expire(49).is_empty());
    assert_eq!(t.expire(51), vec![Timer::Gather]);
    assert_eq!(t.get(Timer::Gather), None);
}

#[test]
fn the_executor_core_s_timeout_is_its_gather_timer() {
    let cfg = from_value(&serde_json::json!({})).expect("config");
    let mut core: ExecutorCore = ExecutorCore::new(cfg, None, None, HashMap::new());
    assert_eq!(core.poll_timeout(), None);
    core.gather.bar_out("EURUSD", Timeframe::M15, T0);
    core.gather.bar_out("US500", Timeframe::M15, T0);
    core.gather.signal_in(&signal("EURUSD", T0));
    core.gather.arm(7);
    assert_eq!(core.poll_timeout(), Some(7 + GATHER_WAIT_MS));
    assert_eq!(core.handle_timeout(7 + GATHER_WAIT_MS), vec![Timer::Gather]);
    assert!(!core.gather.expects_more());
}
