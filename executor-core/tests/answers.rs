//! A SIGNAL's verdict before the broker, with no runtime.

use std::collections::HashMap;

use oracle_executor_core::answers::{Answers, FUTURE_LAST_BAR, Verdict};
use oracle_executor_core::config::from_value;
use oracle_executor_core::journal::Replayed;
use oracle_executor_core::key::key_of;
use oracle_executor_core::policy::{ActionName, ModelState};
use oracle_executor_core::side::SideCore;
use oracle_ipc::{Action, Cents, Signal, Timeframe};

const T0: i64 = 1_614_556_800;
const M15: i64 = 900;

fn side(last_bt: Option<i64>, streamed: &[i64]) -> SideCore {
    let cfg = from_value(&serde_json::json!({})).expect("config");
    let mut rep = Replayed::default();
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    if let Some(l) = last_bt {
        rep.models.insert(
            key,
            ModelState {
                target: Some(ActionName(Action::Wait)),
                last_bt: Some(l),
                real: None,
                missed: false,
            },
        );
    }
    let mut core = SideCore::new("live", &cfg, &rep);
    for t in streamed {
        core.policy.handle_bar(&key, *t);
    }
    core
}

fn signal(bt: Option<i64>, action: Action) -> Signal<'static> {
    Signal {
        symbol: "EURUSD",
        action,
        regime: 1,
        virtual_pnl: Cents(0),
        tf: bt.map(|_| Timeframe::M15),
        bar_time: bt,
        seq: Some(7),
    }
}

#[test]
fn an_answered_bar_gets_its_first_ack_again_and_is_not_executed() {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let line = format!("ACK|EURUSD|LONG_WEAK|HOLD|TF:M15|BT:{T0}");
    let mut a = Answers::new(HashMap::from([((key, T0), line.clone())]));
    let core = side(Some(T0), &[T0]);
    let now = T0 + M15 + 1;
    assert_eq!(
        a.admit(now, &signal(Some(T0), Action::LongWeak), Some(&core)),
        Verdict::Duplicate(line.clone())
    );
    // A different action for the same bar is still the first answer, never executed.
    assert_eq!(
        a.admit(now, &signal(Some(T0), Action::ShortStrong), Some(&core)),
        Verdict::Duplicate(line)
    );
}

#[test]
fn a_bar_not_streamed_is_unknown_and_an_old_unremembered_one_is_stale() {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let mut a = Answers::default();
    let core = side(Some(T0 + M15), &[T0, T0 + M15]);
    let now = T0 + 2 * M15 + 1;
    let future = T0 + 2 * M15;
    assert_eq!(
        a.admit(now, &signal(Some(future), Action::LongWeak), Some(&core)),
        Verdict::UnknownBar { key, bt: future }
    );
    assert_eq!(
        a.admit(now, &signal(Some(T0), Action::LongWeak), Some(&core)),
        Verdict::Stale
    );
    assert_eq!(
        a.admit(now, &signal(Some(T0 + M15), Action::LongWeak), Some(&core)),
        Verdict::Execute {
            key,
            tf: Timeframe::M15,
            bt: T0 + M15
        }
    );
    assert_eq!(
        a.admit(now, &signal(None, Action::LongWeak), Some(&core)),
        Verdict::NoBarTime
    );
    // No side at all: nothing was streamed.
    assert!(matches!(
        a.admit(now, &signal(Some(T0), Action::LongWeak), None),
        Verdict::UnknownBar { .. }
    ));
}

#[test]
fn a_journaled_last_bar_far_in_the_future_does_not_make_signals_stale() {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let now = T0 + M15 + 1;
    let far = now + FUTURE_LAST_BAR + M15;
    let core = side(Some(far), &[T0]);
    let mut a = Answers::default();
    assert_eq!(
        a.admit(now, &signal(Some(T0), Action::LongWeak), Some(&core)),
        Verdict::Execute {
            key,
            tf: Timeframe::M15,
            bt: T0
        }
    );
}

#[test]
fn a_streamed_bar_without_a_signal_is_due_its_row_after_one_bar_of_grace() {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    let mut a = Answers::default();
    assert!(a.bar_streamed(&key, T0).is_empty());
    assert!(a.bar_streamed(&key, T0 + M15).is_empty());
    a.explained(&key, T0 + M15);
    assert!(a.bar_streamed(&key, T0 + 2 * M15).is_empty());
    assert_eq!(a.bar_streamed(&key, T0 + 3 * M15), vec![T0]);
    assert_eq!(
        a.flush_unexplained(),
        vec![(key, T0 + 2 * M15), (key, T0 + 3 * M15)]
    );
    assert_eq!(a.unexplained_len(), 0);
}
