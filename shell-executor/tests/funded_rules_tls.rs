//! Flat before the weekend over TLS: the executor's engine with its live broker against
//! `oracle-sim --calendar realistic` (FX: Sunday 22:00 - Friday 22:00 UTC), the sim's market
//! clock held and stepped by the test (as in `market_hours.rs`). The weekend comes from the
//! sim's `SymbolByIdRes` schedule; the executor's time is a parameter.
//! Needs the default `live` feature: `cargo test -p oracle-executor --test funded_rules_tls`.
#![cfg(feature = "live")]

mod common;

use std::collections::HashMap;

use common::weekend::*;
use oracle_executor::engine::{Engine, Side};
use oracle_executor::policy::key_of;
use oracle_executor_core::gather::Timer;
use oracle_executor_core::restrictions::Restrictions;
use oracle_ipc::Timeframe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_minutes_before_the_sims_friday_close_every_position_is_closed_and_entries_fail_weekend()
 {
    let s = held_sim("weekend-hold").await;
    let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "risk": {"flat_before_weekend": {"minutes": 15}},
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let rules = Restrictions::new(&cfg.risk, Vec::new());
    let live = Side::new("live", &cfg, broker, None);
    let mut e = Engine::new(cfg, Some(live), None, HashMap::new(), None);
    e.core.set_restrictions(&rules);
    // The sim at 21:01:00, a minute ahead of the engine's 21:00:02: a broker ahead of us by
    // less than the live broker's threshold (clock skew, not a replay) is judged at our clock.
    step_until(&s, t("2024-03-08T21:01:00Z")).await;
    wait_quote(&e).await;

    // Friday 21:00, open: the M15 model goes long.
    let m15 = key_of("EURUSD", Timeframe::M15).unwrap();
    for bt in ["2024-03-08T20:30:00Z", "2024-03-08T20:45:00Z"] {
        e.on_bar(&m15, t(bt), 1.0842, 0.0);
    }
    let fri = t("2024-03-08T21:00:02Z");
    signal(
        &mut e,
        fri,
        Timeframe::M15,
        "WAIT",
        t("2024-03-08T20:30:00Z"),
    )
    .await;
    let ack = signal(
        &mut e,
        fri,
        Timeframe::M15,
        "LONG_WEAK",
        t("2024-03-08T20:45:00Z"),
    )
    .await;
    assert!(ack.contains("|OK|"), "{ack}");
    assert_eq!(open_positions(&s).await, 1);

    // The week's last close from the sim's schedule (Friday 22:00 UTC): the timer is armed
    // for 21:45.
    let flat = t("2024-03-08T21:45:00Z");
    e.arm_weekend(fri, 0);
    assert_eq!(e.core.poll_timeout(), Some((flat - fri) * 1000));

    // 21:45: the position is closed, once.
    step_until(&s, flat).await;
    assert_eq!(e.core.handle_timeout((flat - fri) * 1000), [Timer::Weekend]);
    e.on_weekend(flat, (flat - fri) * 1000).await;
    assert_eq!(open_positions(&s).await, 0, "flat before the weekend");
    let st = &e.live.as_ref().expect("live").core.policy.models[&m15];
    assert!(st.real.is_none(), "{st:?}");
    e.arm_weekend(flat, (flat - fri) * 1000);
    assert_eq!(e.core.poll_timeout(), None, "nothing left to close");

    // 21:46, the market still open: a fresh transition's entry is FAIL|WEEKEND, never sent.
    let m1 = key_of("EURUSD", Timeframe::M1).unwrap();
    let (b1, b2) = (t("2024-03-08T21:44:00Z"), t("2024-03-08T21:45:00Z"));
    e.on_bar(&m1, b1, 1.0842, 0.0);
    step_until(&s, b2 + 60).await;
    let ack = signal(&mut e, b2 + 1, Timeframe::M1, "WAIT", b1).await;
    assert!(ack.contains("|HOLD"), "{ack}");
    e.on_bar(&m1, b2, 1.0842, 0.0);
    let entry = signal(&mut e, b2 + 61, Timeframe::M1, "SHORT_WEAK", b2).await;
    assert!(entry.contains("|FAIL|WEEKEND|"), "{entry}");
    let coid = format!("ot-EURUSD-M1-{b2}-O");
    assert_eq!(s.new_orders_with_client_id(&coid).await, 0);
    assert_eq!(open_positions(&s).await, 0);
}

/// The soak's case: the simulator replays days ahead of the executor's clock (ours reads Sunday
/// 2024-03-03 11:00, a weekend; the sim's Friday 2024-03-08 21:01, open). The broker's hours are
/// judged at its time: the entry goes, and the flat-before-weekend timer comes from its Friday
/// close brought back onto our clock (at the wall's weekend every entry was MARKET_CLOSED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_days_ahead_of_our_clock_has_its_hours_judged_at_its_time_entries_go_and_flat_comes_from_its_close()
 {
    // EURUSD's 21:01 bar opens at 1.08440 (every other tick is at 1.08400..1.08450 but not
    // there): once the live broker quotes that bid, it has read the sim's 21:01:00 tick, its
    // last one, and the broker's latest time seen is 21:01:00.
    let sim_now = t("2024-03-08T21:01:00Z");
    let mut eurusd = eurusd_over_a_weekend();
    let b = eurusd
        .bars
        .iter_mut()
        .find(|b| b.time_ms == sim_now * 1000)
        .expect("the 21:01 bar");
    b.open = 108_440;
    let s = held_sim_with(
        "weekend-ahead",
        vec![eurusd],
        oracle_sim::BrokerConfig::default(),
    )
    .await;
    let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "risk": {"flat_before_weekend": {"minutes": 15}},
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let rules = Restrictions::new(&cfg.risk, Vec::new());
    let live = Side::new("live", &cfg, broker, None);
    let mut e = Engine::new(cfg, Some(live), None, HashMap::new(), None);
    e.core.set_restrictions(&rules);
    step_until(&s, sim_now).await;
    wait_bid(&e, 1.0844).await;

    // Our Sunday 11:00, the sim's Friday 21:01 (open): the M15 model goes long.
    let sun = t("2024-03-03T11:00:02Z");
    let m15 = key_of("EURUSD", Timeframe::M15).unwrap();
    for bt in ["2024-03-08T20:30:00Z", "2024-03-08T20:45:00Z"] {
        e.on_bar(&m15, t(bt), 1.0842, 0.0);
    }
    signal(
        &mut e,
        sun,
        Timeframe::M15,
        "WAIT",
        t("2024-03-08T20:30:00Z"),
    )
    .await;
    let ack = signal(
        &mut e,
        sun,
        Timeframe::M15,
        "LONG_WEAK",
        t("2024-03-08T20:45:00Z"),
    )
    .await;
    assert!(ack.contains("|OK|"), "{ack}");
    assert_eq!(open_positions(&s).await, 1);

    // The sim's week closes at its Friday 22:00, 59 min after its 21:01:00: flat at its 21:45,
    // which is 44 min after our now.
    e.arm_weekend(sun, 0);
    let lead = t("2024-03-08T21:45:00Z") - sim_now;
    assert_eq!(e.core.poll_timeout(), Some(lead * 1000));
    let flat = sun + lead;
    step_until(&s, t("2024-03-08T21:45:00Z")).await;
    assert_eq!(e.core.handle_timeout(lead * 1000), [Timer::Weekend]);
    e.on_weekend(flat, lead * 1000).await;
    assert_eq!(open_positions(&s).await, 0, "flat before the sim's weekend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_inside_a_news_window_is_held_and_the_engine_sends_it_at_the_windows_end() {
    let s = held_sim("weekend-hold").await;
    let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "risk": {"news": {"file": "news.csv", "minutes": 2}},
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let events = oracle_executor_core::restrictions::parse_news(
        "news.csv",
        "2024-03-08T21:15:00Z,USD,US data\n",
    )
    .expect("news");
    let rules = Restrictions::new(&cfg.risk, events);
    let live = Side::new("live", &cfg, broker, None);
    let mut e = Engine::new(cfg, Some(live), None, HashMap::new(), None);
    e.core.set_restrictions(&rules);
    step_until(&s, t("2024-03-08T21:01:00Z")).await;
    wait_quote(&e).await;

    let m15 = key_of("EURUSD", Timeframe::M15).unwrap();
    for bt in ["2024-03-08T20:30:00Z", "2024-03-08T20:45:00Z"] {
        e.on_bar(&m15, t(bt), 1.0842, 0.0);
    }
    let fri = t("2024-03-08T21:00:02Z");
    signal(
        &mut e,
        fri,
        Timeframe::M15,
        "WAIT",
        t("2024-03-08T20:30:00Z"),
    )
    .await;
    let ack = signal(
        &mut e,
        fri,
        Timeframe::M15,
        "LONG_WEAK",
        t("2024-03-08T20:45:00Z"),
    )
    .await;
    assert!(ack.contains("|OK|"), "{ack}");
    assert_eq!(open_positions(&s).await, 1);

    // 21:15:02, inside 21:13:00-21:17:00: the exit is held, nothing sent.
    let now = t("2024-03-08T21:15:02Z");
    step_until(&s, now).await;
    e.on_bar(&m15, t("2024-03-08T21:00:00Z"), 1.0842, 0.0);
    let exit = signal(
        &mut e,
        now,
        Timeframe::M15,
        "WAIT",
        t("2024-03-08T21:00:00Z"),
    )
    .await;
    assert!(exit.contains("|WAIT_SYNC|NEWS_WINDOW|"), "{exit}");
    assert_eq!(open_positions(&s).await, 1, "held, not sent");

    // The held-exit timer: the window's end (21:17:01), the market being open.
    let end = t("2024-03-08T21:17:01Z");
    e.arm_held_exits(now, 0);
    assert_eq!(e.core.poll_timeout(), Some((end - now) * 1000));
    step_until(&s, end).await;
    assert_eq!(e.core.handle_timeout((end - now) * 1000), [Timer::HeldExit]);
    e.release_held_exits(end, (end - now) * 1000).await;
    assert_eq!(open_positions(&s).await, 0, "sent at the window's end");
    e.arm_held_exits(end, (end - now) * 1000);
    assert_eq!(e.core.poll_timeout(), None, "nothing held any more");
}

/// Waits until the live broker quotes EURUSD's bid at `bid` (the sim sent it when stepped).
async fn wait_bid(e: &Engine<oracle_executor::live::LiveBroker>, bid: f64) {
    use oracle_executor::broker::Broker;
    let broker = &e.live.as_ref().expect("live").broker;
    for _ in 0..1000 {
        if broker
            .quote("EURUSD")
            .is_some_and(|q| (q.bid - bid).abs() < 1e-9)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "no EURUSD bid at {bid} from the sim: {:?}",
        broker.quote("EURUSD")
    );
}
