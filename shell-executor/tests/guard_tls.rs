//! The prop-firm guard over real TLS against `oracle-sim`: the simulator drives the account's
//! equity through a limit between two bars (a short position, then a spread so wide that its
//! floating loss passes 80% of the limit's allowance); the executor, fed the broker's spot
//! events ([`Feed::Quote`]) with no SIGNAL, closes every position and halts. The daily limit's
//! halt refuses the next entry; the maximum loss's survives a restart of the executor (a new
//! session, the state from the journal), a Prague midnight and an account back above the
//! floors, and ends only by `oracle resume` over the operator channel (`operator.sock`).
//! `cargo test -p oracle-executor --test guard_tls`.
#![cfg(feature = "live")]

mod common;

use std::time::Duration;

use common::{engine_with, tmpdir};
use oracle_executor::config::{ExecutorConfig, from_value};
use oracle_executor::engine::Engine;
use oracle_executor::live::LiveBroker;
use oracle_executor::operator;
use oracle_executor::policy::key_of;
use oracle_executor::shell::Feed;
use oracle_sim::config::DEFAULT_ACCOUNT_ID;
use tokio::sync::mpsc;

/// FTMO 2-Step on the sim's 100 000.00 account: daily allowance 5 000.00, the guard acts at
/// 4 000.00 of loss. One lot of EURUSD: 100 000 units, a point (0.00001) is 1.00.
fn cfg() -> ExecutorConfig {
    from_value(&cfg_json(serde_json::json!({
        "stale_after_secs": 100000, "max_margin_use": 100,
        "preset": "ftmo-2step", "initial_balance": 100000.0
    })))
    .expect("config")
}

/// The executor_config.json of these tests with `risk` as its risk block.
fn cfg_json(risk: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "risk": risk,
        "EURUSD": {"enabled": true, "lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0},
        "US500": {"enabled": false, "lot_weak": 0.1, "lot_moderate": 0.1, "lot_strong": 0.1},
        "AAPL": {"enabled": false, "lot_weak": 1, "lot_moderate": 1, "lot_strong": 1}
    })
}

fn engine(dir: &std::path::Path, b: LiveBroker) -> Engine<LiveBroker> {
    engine_with(dir, cfg(), b)
}

fn now(e: &Engine<LiveBroker>) -> i64 {
    e.live.as_ref().expect("live").broker.clock()()
}

/// The next EURUSD bar (time, seq); every bar goes to the engine, quotes are dropped.
async fn next_bar(
    e: &mut Engine<LiveBroker>,
    feed: &mut mpsc::Receiver<Feed>,
    last: &mut i64,
    seq: &mut u64,
) -> (i64, u64) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), feed.recv())
            .await
            .expect("a bar in time")
            .expect("feed open");
        match ev {
            Feed::Reconcile => {
                let t = now(e);
                e.reconcile(t).await.expect("reconcile");
            }
            Feed::Bar {
                symbol, tf, bar, ..
            } => {
                e.on_bar(&key_of(&symbol, tf).unwrap(), bar.time, bar.close, 0.0);
                *seq += 1;
                if symbol == "EURUSD" && bar.time > *last {
                    *last = bar.time;
                    return (bar.time, *seq);
                }
            }
            _ => {}
        }
    }
}

async fn signal(e: &mut Engine<LiveBroker>, action: &str, bt: i64, seq: u64) -> String {
    common::signal_live(e, "EURUSD", action, bt, seq).await
}

/// Feeds the broker's quotes (and bars) to the engine, no SIGNAL, until the live side holds no
/// position: the quotes fed, and the first EURUSD bar after `last` if one closed meanwhile (the
/// next transition's).
async fn quotes_until_flat(
    e: &mut Engine<LiveBroker>,
    feed: &mut mpsc::Receiver<Feed>,
    last: i64,
    seq: &mut u64,
) -> (usize, Option<(i64, u64)>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut quotes = 0;
    let mut next: Option<(i64, u64)> = None;
    loop {
        let ev = tokio::time::timeout_at(deadline, feed.recv())
            .await
            .expect("flat and halted in time")
            .expect("feed open");
        match ev {
            Feed::Quote { symbol, bid, ask } => {
                quotes += 1;
                let t = now(e);
                e.on_quote(t, &symbol, bid, ask).await;
            }
            Feed::Bar {
                symbol, tf, bar, ..
            } => {
                e.on_bar(&key_of(&symbol, tf).unwrap(), bar.time, bar.close, 0.0);
                *seq += 1;
                if symbol == "EURUSD" && bar.time > last && next.is_none() {
                    next = Some((bar.time, *seq));
                }
            }
            _ => {}
        }
        let live = e.live.as_ref().expect("live");
        if live.open_positions(None) == 0 {
            return (quotes, next);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_drives_equity_through_the_daily_limit_between_two_bars_and_the_executor_ends_flat_and_halted()
 {
    let s = common::sim3(vec![]).await;
    let d = tmpdir("guard-tls");
    let (b, mut feed) = common::live_session(&s, &common::SIM_SYMS).await;
    let mut e = engine(&d, b);
    e.reconcile(0).await.expect("reconcile");
    let (mut last, mut seq) = (0, 0);
    // Short one lot of EURUSD (WAIT, then the transition).
    let (t0, q0) = next_bar(&mut e, &mut feed, &mut last, &mut seq).await;
    assert!(signal(&mut e, "WAIT", t0, q0).await.contains("|HOLD|"));
    let (t1, q1) = next_bar(&mut e, &mut feed, &mut last, &mut seq).await;
    let ack = signal(&mut e, "SHORT_WEAK", t1, q1).await;
    assert!(ack.starts_with("ACK|EURUSD|SHORT_WEAK|OK|T:"), "{ack}");
    assert_eq!(
        s.account(DEFAULT_ACCOUNT_ID)
            .await
            .expect("account")
            .open_positions,
        1
    );
    // Between two bars: the ask 4 500 points above the bid, a floating loss of about 4 500.00
    // on the short (90% of the daily allowance). No SIGNAL from here on: only the quotes.
    assert!(s.set_spread_points("EURUSD", 4_500).await);
    let (quotes, next) = quotes_until_flat(&mut e, &mut feed, last, &mut seq).await;
    assert!(quotes > 0);
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 0, "the broker's book is flat");
    assert_eq!(acc.deals, 2, "the entry and the guard's close");
    let live = e.live.as_ref().expect("live");
    assert_eq!(
        live.halt_now().map(|h| h.code()),
        Some("HALTED_DAILY_LOSS"),
        "halted by the daily limit"
    );
    // The next transition's entry is refused with the limit's code.
    assert!(s.set_spread_points("EURUSD", 2).await);
    let (t2, q2) = match next {
        Some(b) => b,
        None => next_bar(&mut e, &mut feed, &mut last, &mut seq).await,
    };
    let ack = signal(&mut e, "LONG_WEAK", t2, q2).await;
    assert!(ack.contains("|FAIL|HALTED_DAILY_LOSS|"), "{ack}");
    assert_eq!(
        s.account(DEFAULT_ACCOUNT_ID)
            .await
            .expect("account")
            .open_positions,
        0
    );
    s.shutdown().await;
}

/// Answers the operator requests `ask` sends over `operator.sock` (a client on its own thread,
/// as `oracle resume` is its own process) on this task, as the executor's loop does; returns
/// the answers.
async fn over_the_channel(
    e: &mut Engine<LiveBroker>,
    op: &mut operator::Operator,
    ask: Vec<operator::Request>,
) -> Vec<serde_json::Value> {
    let state = op.state_dir.clone();
    let n = ask.len();
    let client = std::thread::spawn(move || {
        ask.iter()
            .map(|r| operator::request(&state, r).expect("an answer"))
            .collect::<Vec<_>>()
    });
    for _ in 0..n {
        let call = tokio::time::timeout(Duration::from_secs(20), op.rx.recv())
            .await
            .expect("a request in time")
            .expect("channel open");
        let t = now(e);
        let answer = operator::handle(e, op, t, &call.req, &call.origin).await;
        let _ = call.reply.send(answer);
    }
    client.join().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_drives_equity_through_the_max_loss_between_two_bars_and_only_oracle_resume_lifts_the_halt_after_a_restart()
 {
    // A custom rule set on the sim's 100 000.00 account: the maximum loss 4% (floor 96 000.00,
    // the guard acts at 3 200.00 of loss), the daily loss 10% (acts at 8 000.00): a loss of
    // about 3 600.00 is past 80% of the maximum loss and 36% of the daily allowance.
    let json = cfg_json(serde_json::json!({
        "stale_after_secs": 100000, "max_margin_use": 100, "preset": "custom",
        "initial_balance": 100000.0, "daily_loss_pct": 10, "max_drawdown_pct": 4
    }));
    let c = from_value(&json).expect("config");
    let s = common::sim3(vec![]).await;
    let d = tmpdir("guard-tls-max");
    let (b, mut feed) = common::live_session(&s, &common::SIM_SYMS).await;
    let mut e = engine_with(&d, c.clone(), b);
    e.reconcile(0).await.expect("reconcile");
    // The account's deposit currency, read from the broker (the sim's accounts are in USD).
    let g = e.core.guard_status().expect("a side");
    assert_eq!(g.currency.as_deref(), Some("USD"));
    assert!(g.approximate.is_empty(), "every symbol is quoted in USD");
    let (mut last, mut seq) = (0, 0);
    let (t0, q0) = next_bar(&mut e, &mut feed, &mut last, &mut seq).await;
    assert!(signal(&mut e, "WAIT", t0, q0).await.contains("|HOLD|"));
    let (t1, q1) = next_bar(&mut e, &mut feed, &mut last, &mut seq).await;
    let ack = signal(&mut e, "SHORT_WEAK", t1, q1).await;
    assert!(ack.starts_with("ACK|EURUSD|SHORT_WEAK|OK|T:"), "{ack}");
    // Between two bars: the ask 3 600 points above the bid. Only the quotes from here on.
    assert!(s.set_spread_points("EURUSD", 3_600).await);
    let (quotes, _) = quotes_until_flat(&mut e, &mut feed, last, &mut seq).await;
    assert!(quotes > 0);
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 0, "the broker's book is flat");
    assert_eq!(acc.deals, 2, "the entry and the guard's close");
    assert_eq!(
        e.live.as_ref().expect("live").halt_now().map(|h| h.code()),
        Some("HALTED_MAX_DRAWDOWN"),
        "halted by the maximum loss"
    );

    // The executor stops (its session closed); meanwhile the account is back above both floors
    // (as after a deposit) and the spread is normal again.
    drop(feed);
    drop(e);
    assert!(s.set_spread_points("EURUSD", 2).await);
    assert!(s.set_balance(DEFAULT_ACCOUNT_ID, 10_000_000).await);

    // Restarted: a new session, the state from the journal, the account read.
    let (b, mut feed) = common::live_session(&s, &common::SIM_SYMS).await;
    let mut e = engine_with(&d, c, b);
    let t = now(&e);
    e.reconcile(t).await.expect("reconcile");
    assert_eq!(
        e.live.as_ref().expect("live").halt_now().map(|h| h.code()),
        Some("HALTED_MAX_DRAWDOWN"),
        "the halt survives the restart"
    );
    // A Prague midnight does not end it (a daily halt would end there).
    let midnight = e.core.guard_day_deadline().expect("a guard day");
    e.core.handle_guard_day_end(midnight);
    let t = now(&e);
    e.drive_sides(t).await;
    assert_eq!(
        e.live.as_ref().expect("live").halt_now().map(|h| h.code()),
        Some("HALTED_MAX_DRAWDOWN"),
        "a midnight does not lift a maximum-loss halt"
    );
    // The next transition's entry is refused with the limit's code, on an account read above
    // both floors.
    let (t2, q2) = next_bar(&mut e, &mut feed, &mut last, &mut seq).await;
    let ack = signal(&mut e, "LONG_WEAK", t2, q2).await;
    assert!(ack.contains("|FAIL|HALTED_MAX_DRAWDOWN|"), "{ack}");
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!((acc.open_positions, acc.deals), (0, 2), "no order sent");

    // `oracle status` then `oracle resume` over the operator channel.
    let cfg_path = d.join("executor_config.json");
    std::fs::write(&cfg_path, json.to_string()).expect("config file");
    let mut op = operator::open(&d.join("state"), &cfg_path, Vec::new()).expect("operator.sock");
    let answers = over_the_channel(
        &mut e,
        &mut op,
        vec![operator::Request::Status, operator::Request::Resume],
    )
    .await;
    let halted = &answers[0]["status"]["guard"]["halted"];
    assert_eq!(halted["reason"], "HALTED_MAX_DRAWDOWN", "{}", answers[0]);
    assert!(halted["ends_ms"].is_null(), "until oracle resume: {halted}");
    assert_eq!(answers[1]["ok"], true, "{}", answers[1]);
    let said = answers[1]["message"].as_str().unwrap_or_default();
    assert!(said.contains("lifted HALTED_MAX_DRAWDOWN"), "{said}");
    assert!(e.live.as_ref().expect("live").halt_now().is_none());

    // The next transition's entry goes to the broker.
    let (t3, q3) = next_bar(&mut e, &mut feed, &mut last, &mut seq).await;
    let ack = signal(&mut e, "SHORT_WEAK", t3, q3).await;
    assert!(ack.starts_with("ACK|EURUSD|SHORT_WEAK|OK|T:"), "{ack}");
    let acc = s.account(DEFAULT_ACCOUNT_ID).await.expect("account");
    assert_eq!(acc.open_positions, 1, "an entry after the resume");
    s.shutdown().await;
}
