//! Market hours over TLS: the executor's engine with its live broker against `oracle-sim
//! --calendar realistic` (FX: Sunday 22:00 – Friday 22:00 UTC), whose market clock is held
//! (the replay waits for a start file that never comes) and stepped by the test. The trading
//! hours come from the sim's `SymbolByIdRes`; the executor's time is a parameter.
//! Needs the default `live` feature: `cargo test -p oracle-executor --test market_hours`.
#![cfg(feature = "live")]

mod common;

use std::collections::HashMap;

use common::weekend::*;
use oracle_executor::engine::{Engine, Side};
use oracle_executor::journal::Journal;
use oracle_executor::live::LiveBroker;
use oracle_executor::policy::key_of;
use oracle_ipc::Timeframe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_saturday_an_exit_is_held_until_sunday_2200_utc_and_an_entry_is_never_sent() {
    let s = held_sim("hours-hold").await;
    let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let live = Side::new("live", &cfg, broker, None);
    let mut e = Engine::new(cfg, Some(live), None, HashMap::new(), None);
    // A spot for the Friday entry's price.
    step_until(&s, t("2024-03-08T21:01:00Z")).await;
    wait_quote(&e).await;

    // Friday evening, open: the M15 model goes long.
    let (m15, h1) = (
        key_of("EURUSD", Timeframe::M15).unwrap(),
        key_of("EURUSD", Timeframe::H1).unwrap(),
    );
    for bt in ["2024-03-08T20:30:00Z", "2024-03-08T20:45:00Z"] {
        e.on_bar(&m15, t(bt), 1.0842, 0.0);
    }
    for bt in ["2024-03-08T19:00:00Z", "2024-03-08T20:00:00Z"] {
        e.on_bar(&h1, t(bt), 1.0842, 0.0);
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
    let ack = signal(
        &mut e,
        fri,
        Timeframe::H1,
        "WAIT",
        t("2024-03-08T19:00:00Z"),
    )
    .await;
    assert!(ack.contains("|HOLD"), "{ack}");
    assert_eq!(open_positions(&s).await, 1);

    // Saturday noon (market time too): the M15 model exits, the H1 model enters.
    let sat = t("2024-03-09T12:00:00Z");
    step_until(&s, sat).await;
    e.on_bar(&m15, t("2024-03-08T21:00:00Z"), 1.0842, 0.0);
    let exit = signal(
        &mut e,
        sat,
        Timeframe::M15,
        "WAIT",
        t("2024-03-08T21:00:00Z"),
    )
    .await;
    assert!(exit.contains("|WAIT_SYNC|MARKET_CLOSED|"), "{exit}");
    let entry_bt = t("2024-03-08T20:00:00Z");
    let entry = signal(&mut e, sat, Timeframe::H1, "LONG_WEAK", entry_bt).await;
    assert!(entry.contains("|FAIL|MARKET_CLOSED|"), "{entry}");
    assert_eq!(
        open_positions(&s).await,
        1,
        "the exit is held, nothing sent"
    );
    let entry_coid = format!("ot-EURUSD-H1-{entry_bt}-O");
    assert_eq!(s.new_orders_with_client_id(&entry_coid).await, 0);

    // The timer is armed for Sunday 22:00 UTC, from the sim's own hours.
    let sun = t("2024-03-10T22:00:00Z");
    e.arm_held_exits(sat, 0);
    assert_eq!(e.core.poll_timeout(), Some((sun - sat) * 1000));

    // Sunday 22:00: the held exit goes, once; the entry is never chased.
    step_until(&s, sun + 60).await;
    let due = e.core.handle_timeout((sun - sat) * 1000);
    assert_eq!(due, [oracle_executor_core::gather::Timer::HeldExit]);
    e.release_held_exits(sun, (sun - sat) * 1000).await;
    assert_eq!(
        open_positions(&s).await,
        0,
        "the held exit was sent and filled"
    );
    assert_eq!(e.core.poll_timeout(), None, "nothing held any more");
    e.on_bar(&h1, entry_bt + 3600, 1.0842, 0.0);
    let later = signal(&mut e, sun + 2, Timeframe::H1, "LONG_WEAK", entry_bt + 3600).await;
    assert!(later.contains("|WAIT_SYNC|MISSED_ENTRY|"), "{later}");
    assert_eq!(s.new_orders_with_client_id(&entry_coid).await, 0);
    assert_eq!(open_positions(&s).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_held_on_saturday_survives_a_restart_and_goes_at_sunday_2200_utc() {
    let s = held_sim("hours-hold").await;
    let dir = common::tmpdir("hours-restart");
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let engine = |broker: LiveBroker| {
        let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
        let acks = j.1.acks.clone();
        let live = Side::new("live", &cfg, broker, Some(j));
        Engine::new(cfg.clone(), Some(live), None, acks, None)
    };
    let m15 = key_of("EURUSD", Timeframe::M15).unwrap();
    let sat = t("2024-03-09T12:00:00Z");
    let sun = t("2024-03-10T22:00:00Z");
    {
        let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
        let mut e = engine(broker);
        step_until(&s, t("2024-03-08T21:01:00Z")).await;
        wait_quote(&e).await;
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
        step_until(&s, sat).await;
        e.on_bar(&m15, t("2024-03-08T21:00:00Z"), 1.0842, 0.0);
        let exit = signal(
            &mut e,
            sat,
            Timeframe::M15,
            "WAIT",
            t("2024-03-08T21:00:00Z"),
        )
        .await;
        assert!(exit.contains("|WAIT_SYNC|MARKET_CLOSED|"), "{exit}");
    }
    // Restarted on Saturday: a new session, the state from the journal, reconciled.
    let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
    let mut e = engine(broker);
    e.reconcile(sat + 60).await.expect("reconcile");
    assert_eq!(open_positions(&s).await, 1);
    e.arm_held_exits(sat + 60, 0);
    assert_eq!(
        e.core.poll_timeout(),
        Some((sun - sat - 60) * 1000),
        "still held, for Sunday 22:00 UTC"
    );
    step_until(&s, sun + 60).await;
    let at = (sun - sat - 60) * 1000;
    assert_eq!(
        e.core.handle_timeout(at),
        [oracle_executor_core::gather::Timer::HeldExit]
    );
    e.release_held_exits(sun, at).await;
    assert_eq!(
        open_positions(&s).await,
        0,
        "sent at the open after the restart"
    );
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal");
    let close = format!("ot-EURUSD-M15-{sun}-C");
    assert!(
        journal
            .lines()
            .any(|l| l.contains(&close) && l.contains("\"filled\"")),
        "the release's close is journaled filled: {journal}"
    );
}

/// The paper book's open positions and the orders it received.
fn paper_book(e: &Engine<LiveBroker>) -> (usize, u64) {
    let p = &e.paper.as_ref().expect("paper").broker;
    (p.open_positions().len(), p.orders_total)
}

/// `--with-paper`: the paper book beside live takes the live broker's trading hours (as the
/// shell wires it, [`oracle_executor::shell::paper_beside`]): on Saturday its entry is refused
/// and its exit held like live's, and the held exit goes at Sunday 22:00 UTC, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paper_book_beside_live_refuses_a_saturday_entry_and_sends_its_held_exit_at_sunday_2200_utc()
 {
    let s = held_sim("hours-hold").await;
    let (broker, _feed) = common::live_session(&s, &["EURUSD"]).await;
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let book = oracle_executor::shell::paper_beside(&broker, &cfg, 100_000.0);
    let paper = Side::new("paper", &cfg, book, None);
    let live = Side::new("live", &cfg, broker, None);
    let mut e = Engine::new(cfg, Some(live), Some(paper), HashMap::new(), None);
    step_until(&s, t("2024-03-08T21:01:00Z")).await;
    wait_quote(&e).await;

    let (m15, h1) = (
        key_of("EURUSD", Timeframe::M15).unwrap(),
        key_of("EURUSD", Timeframe::H1).unwrap(),
    );
    for bt in ["2024-03-08T20:30:00Z", "2024-03-08T20:45:00Z"] {
        e.on_bar(&m15, t(bt), 1.0842, 0.0);
    }
    for bt in ["2024-03-08T19:00:00Z", "2024-03-08T20:00:00Z"] {
        e.on_bar(&h1, t(bt), 1.0842, 0.0);
    }
    // Friday evening, open: the M15 model goes long, live and paper.
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
    signal(
        &mut e,
        fri,
        Timeframe::H1,
        "WAIT",
        t("2024-03-08T19:00:00Z"),
    )
    .await;
    assert_eq!(paper_book(&e), (1, 1), "the paper long");

    // Saturday noon: the M15 exit is held and the H1 entry refused, on paper too.
    let sat = t("2024-03-09T12:00:00Z");
    step_until(&s, sat).await;
    e.on_bar(&m15, t("2024-03-08T21:00:00Z"), 1.0842, 0.0);
    let exit = signal(
        &mut e,
        sat,
        Timeframe::M15,
        "WAIT",
        t("2024-03-08T21:00:00Z"),
    )
    .await;
    assert!(exit.contains("|WAIT_SYNC|MARKET_CLOSED|"), "{exit}");
    let entry_bt = t("2024-03-08T20:00:00Z");
    let entry = signal(&mut e, sat, Timeframe::H1, "LONG_WEAK", entry_bt).await;
    assert!(entry.contains("|FAIL|MARKET_CLOSED|"), "{entry}");
    assert_eq!(
        paper_book(&e),
        (1, 1),
        "on Saturday the paper book got no order: its exit held, its entry refused"
    );
    let paper_exits = e.paper.as_ref().expect("paper").held_exits();
    assert_eq!(paper_exits, vec![(m15, "EURUSD".to_string())]);

    // The timer is armed for Sunday 22:00 UTC; there both held exits go.
    let sun = t("2024-03-10T22:00:00Z");
    e.arm_held_exits(sat, 0);
    assert_eq!(e.core.poll_timeout(), Some((sun - sat) * 1000));
    step_until(&s, sun + 60).await;
    let due = e.core.handle_timeout((sun - sat) * 1000);
    assert_eq!(due, [oracle_executor_core::gather::Timer::HeldExit]);
    e.release_held_exits(sun, (sun - sat) * 1000).await;
    assert_eq!(open_positions(&s).await, 0, "live's held exit filled");
    assert_eq!(
        paper_book(&e),
        (0, 2),
        "the paper book's held exit filled at the open"
    );
    // The refused entry is never chased, on paper either.
    e.on_bar(&h1, entry_bt + 3600, 1.0842, 0.0);
    let later = signal(&mut e, sun + 2, Timeframe::H1, "LONG_WEAK", entry_bt + 3600).await;
    assert!(later.contains("|WAIT_SYNC|MISSED_ENTRY|"), "{later}");
    assert_eq!(paper_book(&e), (0, 2));
}
