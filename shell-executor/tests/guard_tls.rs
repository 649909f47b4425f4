//! The prop-firm guard over real TLS against `oracle-sim`: the simulator drives the account's
//! equity through the daily limit between two bars (a short position, then a spread so wide
//! that its floating loss passes 80% of the daily allowance); the executor, fed the broker's
//! spot events ([`Feed::Quote`]) with no SIGNAL, closes every position and halts.
//! `cargo test -p oracle-executor --test guard_tls`.
#![cfg(feature = "live")]

mod common;

use std::time::Duration;

use common::tmpdir;
use oracle_executor::config::{ExecutorConfig, from_value};
use oracle_executor::engine::{Engine, Side};
use oracle_executor::journal::Journal;
use oracle_executor::live::LiveBroker;
use oracle_executor::policy::ModelKey;
use oracle_executor::shell::Feed;
use oracle_ipc::{Message, parse};
use oracle_sim::config::DEFAULT_ACCOUNT_ID;
use tokio::sync::mpsc;

/// FTMO 2-Step on the sim's 100 000.00 account: daily allowance 5 000.00, the guard acts at
/// 4 000.00 of loss. One lot of EURUSD: 100 000 units, a point (0.00001) is 1.00.
fn cfg() -> ExecutorConfig {
    from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 100000, "max_margin_use": 100,
                 "preset": "ftmo-2step", "initial_balance": 100000.0},
        "EURUSD": {"enabled": true, "lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0},
        "US500": {"enabled": false, "lot_weak": 0.1, "lot_moderate": 0.1, "lot_strong": 0.1},
        "AAPL": {"enabled": false, "lot_weak": 1, "lot_moderate": 1, "lot_strong": 1}
    }))
    .expect("config")
}

fn engine(dir: &std::path::Path, b: LiveBroker) -> Engine<LiveBroker> {
    let c = cfg();
    let j = Journal::open(&dir.join("journal.jsonl")).expect("journal");
    let acks = j.1.acks.clone();
    let side = Side::new("live", &c, b, Some(j));
    Engine::new(c, Some(side), None, acks, None)
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
                e.on_bar(&ModelKey::new(&symbol, tf), bar.time, bar.close, 0.0);
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
    let l = format!(
        "SIGNAL|EURUSD|{action}|0|0.00|TF:M1|BT:{}|SEQ:{seq}",
        oracle_ipc::Iso(bt)
    );
    let Ok(Message::Signal(s)) = parse(&l) else {
        panic!("{l}")
    };
    let t = now(e);
    e.on_signal(t, &s).await.line
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut quotes = 0;
    // The first EURUSD bar after the entry's, if one closes meanwhile (the next transition's).
    let mut next: Option<(i64, u64)> = None;
    loop {
        let ev = tokio::time::timeout_at(deadline, feed.recv())
            .await
            .expect("flat and halted in time")
            .expect("feed open");
        match ev {
            Feed::Quote { symbol, bid, ask } => {
                quotes += 1;
                let t = now(&e);
                e.on_quote(t, &symbol, bid, ask).await;
            }
            Feed::Bar {
                symbol, tf, bar, ..
            } => {
                e.on_bar(&ModelKey::new(&symbol, tf), bar.time, bar.close, 0.0);
                seq += 1;
                if symbol == "EURUSD" && bar.time > last && next.is_none() {
                    next = Some((bar.time, seq));
                }
            }
            _ => {}
        }
        let live = e.live.as_ref().expect("live");
        if live.open_positions(None) == 0 {
            break;
        }
    }
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
