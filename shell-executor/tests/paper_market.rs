//! The paper book obeys the market facts a live broker reports: trading hours (an entry into a
//! closed market refused `FAIL|MARKET_CLOSED`) and symbol trading modes (an entry on a
//! close-only symbol refused `FAIL|TRADING_MODE_CLOSE_ONLY_MODE`), alone on a live feed (`--dry-run`:
//! the book follows the session, [`PaperBook::follow`]) and beside live (`--with-paper`: the
//! engine tells the book live's facts). The decisions are the side core's; the book is told the
//! facts. Time is a parameter (`common::T0`, a Wednesday).

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use common::*;
use oracle_executor::broker::{Closed, WeekEnd};
use oracle_executor::engine::{Engine, Side};
use oracle_executor::paper::{Market, PaperBook};
use oracle_executor::policy::key_of;
use oracle_executor::symbols::TradingMode;
use oracle_executor::volume::SymbolSpec;
use oracle_executor_core::gather::Timer;
use oracle_executor_core::restrictions::Restrictions;
use oracle_ipc::{Message, Timeframe, parse};

/// A broker's market as a test states it: EURUSD in `mode`, closed from `closed.0` until
/// `closed.1` (UTC ms) when given.
struct Stated {
    mode: TradingMode,
    closed: Option<(i64, i64)>,
}

impl Market for Stated {
    fn closed(&self, _symbol: &str, utc_ms: i64) -> Option<Closed> {
        let (from, until) = self.closed?;
        (from..until).contains(&utc_ms).then_some(Closed {
            until_ms: Some(until),
        })
    }
    fn week_end(&self, _symbol: &str, _utc_ms: i64) -> Option<WeekEnd> {
        None
    }
    fn changed_specs(&mut self) -> Pin<Box<dyn Future<Output = Vec<SymbolSpec>> + '_>> {
        let spec = SymbolSpec {
            trading_mode: self.mode,
            ..eurusd()
        };
        Box::pin(async move { vec![spec] })
    }
}

async fn step<B: oracle_executor::broker::Broker>(
    e: &mut Engine<B>,
    action: &str,
    i: i64,
) -> String {
    let key = key_of("EURUSD", Timeframe::M15).unwrap();
    e.on_bar(&key, T0 + i * M15, 1.1, 0.0);
    let line = sig("EURUSD", action, i);
    let Ok(Message::Signal(s)) = parse(&line) else {
        panic!("bad test line {line}")
    };
    e.on_signal(now(i), &s).await.line
}

fn paper_alone(market: Stated) -> Engine<PaperBook> {
    let mut b = book();
    b.follow(market);
    let c = cfg();
    let paper = Side::new("paper", &c, b, None);
    Engine::new(c, None, Some(paper), HashMap::new(), None)
}

fn paper_orders<B>(e: &Engine<B>) -> u64 {
    e.paper.as_ref().expect("paper").broker.orders_total
}

#[tokio::test]
async fn a_paper_book_following_a_close_only_symbol_refuses_the_entry_naming_the_mode() {
    let mut e = paper_alone(Stated {
        mode: TradingMode::CloseOnly,
        closed: None,
    });
    step(&mut e, "WAIT", 1).await;
    let ack = step(&mut e, "LONG_WEAK", 2).await;
    assert!(ack.contains("|FAIL|TRADING_MODE_CLOSE_ONLY_MODE|"), "{ack}");
    assert_eq!(paper_orders(&e), 0, "no order reached the paper book");
}

#[tokio::test]
async fn a_paper_book_following_a_closed_market_refuses_the_entry_and_trades_after_the_open() {
    // Closed over bar 2's decision, open again from bar 3's close.
    let (from, until) = (now(1) * 1000 + 1, now(2) * 1000 + 500);
    let mut e = paper_alone(Stated {
        mode: TradingMode::Enabled,
        closed: Some((from, until)),
    });
    step(&mut e, "WAIT", 1).await;
    let ack = step(&mut e, "LONG_WEAK", 2).await;
    assert!(ack.contains("|FAIL|MARKET_CLOSED|"), "{ack}");
    assert_eq!(paper_orders(&e), 0);
    // The missed entry is not chased; the next transition trades in the open market.
    step(&mut e, "WAIT", 3).await;
    let ack = step(&mut e, "SHORT_WEAK", 4).await;
    assert!(ack.contains("|SHORT_WEAK|OK|"), "{ack}");
    assert_eq!(paper_orders(&e), 1);
}

#[tokio::test]
async fn beside_live_the_paper_book_refuses_an_entry_on_a_symbol_live_has_close_only() {
    // The "live" broker is a book following a broker that put EURUSD close-only.
    let mut live_book = book();
    live_book.follow(Stated {
        mode: TradingMode::CloseOnly,
        closed: None,
    });
    let c = cfg();
    let live = Side::new("live", &c, live_book, None);
    let paper = Side::new("paper", &c, book(), None);
    let mut e = Engine::new(c, Some(live), Some(paper), HashMap::new(), None);
    step(&mut e, "WAIT", 1).await;
    let ack = step(&mut e, "LONG_WEAK", 2).await;
    assert!(ack.contains("|FAIL|TRADING_MODE_CLOSE_ONLY_MODE|"), "{ack}");
    assert_eq!(
        paper_orders(&e),
        0,
        "the paper book beside live refuses the entry live refuses"
    );
    assert_eq!(e.live.as_ref().expect("live").broker.orders_total, 0);
}

/// A week of milliseconds.
const WEEK_MS: i64 = 7 * 86_400_000;
/// Friday 1970-01-02 22:00 UTC: every FX weekend starts a whole number of weeks after it.
const FRIDAY_CLOSE_MS: i64 = 86_400_000 + 22 * 3_600_000;
/// The FX weekend's length: Friday 22:00 to Sunday 22:00 UTC.
const WEEKEND_MS: i64 = 2 * 86_400_000;

/// An FX broker's schedule (open Sunday 22:00 to Friday 22:00 UTC), every symbol enabled: its
/// weekend is computed from the schedule as the live session computes it from its calendar.
struct FxSchedule;

impl FxSchedule {
    fn is_closed(utc_ms: i64) -> bool {
        (utc_ms - FRIDAY_CLOSE_MS).rem_euclid(WEEK_MS) < WEEKEND_MS
    }
    fn next_close(t: i64) -> Option<i64> {
        if Self::is_closed(t) {
            return Some(t);
        }
        Some(FRIDAY_CLOSE_MS + (t - FRIDAY_CLOSE_MS).div_euclid(WEEK_MS) * WEEK_MS + WEEK_MS)
    }
    fn next_open(t: i64) -> Option<i64> {
        if !Self::is_closed(t) {
            return Some(t);
        }
        Some(FRIDAY_CLOSE_MS + (t - FRIDAY_CLOSE_MS).div_euclid(WEEK_MS) * WEEK_MS + WEEKEND_MS)
    }
}

impl Market for FxSchedule {
    fn closed(&self, _symbol: &str, utc_ms: i64) -> Option<Closed> {
        Self::is_closed(utc_ms).then(|| Closed {
            until_ms: Self::next_open(utc_ms),
        })
    }
    fn week_end(&self, _symbol: &str, utc_ms: i64) -> Option<WeekEnd> {
        oracle_executor_core::restrictions::week_end(utc_ms, Self::next_close, Self::next_open)
    }
    fn changed_specs(&mut self) -> Pin<Box<dyn Future<Output = Vec<SymbolSpec>> + '_>> {
        Box::pin(async { Vec::new() })
    }
}

#[tokio::test]
async fn the_paper_book_alone_flattens_n_minutes_before_the_schedules_friday_close_and_fails_entries_until_the_open()
 {
    // `--dry-run` with `risk.flat_before_weekend`: no live side, the book follows the session.
    let c = oracle_executor::config::from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 60, "flat_before_weekend": {"minutes": 15}},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    let rules = Restrictions::new(&c.risk, Vec::new());
    let mut b = book();
    b.follow(FxSchedule);
    let paper = Side::new("paper", &c, b, None);
    let mut e: Engine<PaperBook> = Engine::new(c, None, Some(paper), HashMap::new(), None);
    e.core.set_restrictions(&rules);

    // T0 is a Wednesday 00:00 UTC: bar 280 starts at Friday 22:00, the schedule's close.
    let close = T0 + 280 * M15;
    let flat = close - 15 * 60;
    // Friday 20:00:01: the model goes long on paper.
    step(&mut e, "WAIT", 270).await;
    let ack = step(&mut e, "LONG_WEAK", 271).await;
    assert!(ack.contains("|LONG_WEAK|OK|"), "{ack}");
    assert_eq!(paper_orders(&e), 1);

    // The weekend comes from the followed schedule: the timer is armed for 21:45.
    let at = now(271);
    e.arm_weekend(at, 0);
    assert_eq!(e.core.poll_timeout(), Some((flat - at) * 1000));
    assert_eq!(e.core.handle_timeout((flat - at) * 1000), [Timer::Weekend]);
    e.on_weekend(flat, (flat - at) * 1000).await;
    let side = e.paper.as_ref().expect("paper");
    assert_eq!(paper_orders(&e), 2, "the close went to the paper book");
    assert!(
        side.broker.open_positions().is_empty(),
        "flat before the weekend"
    );
    let m15 = key_of("EURUSD", Timeframe::M15).unwrap();
    assert!(side.core.policy.models[&m15].real.is_none());
    e.arm_weekend(flat, (flat - at) * 1000);
    assert_eq!(e.core.poll_timeout(), None, "nothing left to close");

    // 21:45:01, the market still open: a fresh transition's entry is FAIL|WEEKEND.
    step(&mut e, "WAIT", 277).await;
    let ack = step(&mut e, "SHORT_WEAK", 278).await;
    assert!(ack.contains("|FAIL|WEEKEND|"), "{ack}");
    // Sunday 21:45:01, closed: still refused.
    let sunday_open = close + 2 * 86_400;
    let i = (sunday_open - T0) / M15 - 2;
    step(&mut e, "WAIT", i - 1).await;
    let ack = step(&mut e, "LONG_WEAK", i).await;
    assert!(ack.contains("|FAIL|WEEKEND|"), "{ack}");
    assert_eq!(paper_orders(&e), 2, "no entry while the weekend lasts");
    // Sunday 22:15:01, open again: the next transition trades.
    step(&mut e, "WAIT", i + 1).await;
    let ack = step(&mut e, "SHORT_WEAK", i + 2).await;
    assert!(ack.contains("|SHORT_WEAK|OK|"), "{ack}");
    assert_eq!(paper_orders(&e), 3);
}

#[tokio::test]
async fn status_shows_each_held_symbols_flat_instant_and_the_active_or_next_news_windows() {
    let c = oracle_executor::config::from_value(&serde_json::json!({
        "risk": {"stale_after_secs": 60, "flat_before_weekend": {"minutes": 15},
                 "news": {"file": "news.csv", "minutes": 2}},
        "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
        "GBPUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("config");
    // Friday 2025-01-17: US data at 13:30 (EURUSD and GBPUSD), the ECB at 15:00 (EURUSD).
    let events = oracle_executor_core::restrictions::parse_news(
        "news.csv",
        "2025-01-17T13:30:00Z,USD,US data\n2025-01-17T15:00:00Z,EUR,ECB\n",
    )
    .expect("news");
    let rules = Restrictions::new(&c.risk, events);
    let mut b = book();
    b.follow(FxSchedule);
    let paper = Side::new("paper", &c, b, None);
    let mut e: Engine<PaperBook> = Engine::new(c, None, Some(paper), HashMap::new(), None);
    e.core.set_restrictions(&rules);
    // Friday 12:15:01: EURUSD long on paper; GBPUSD holds nothing.
    step(&mut e, "WAIT", 239).await;
    let ack = step(&mut e, "LONG_WEAK", 240).await;
    assert!(ack.contains("|LONG_WEAK|OK|"), "{ack}");
    e.arm_weekend(now(240), 0);

    let dir = tmpdir("paper-status");
    let op = oracle_executor::operator::open(&dir, &dir.join("executor_config.json"), Vec::new())
        .expect("operator");
    let friday = T0 + 2 * 86_400;
    let st = oracle_executor::operator::status(&e, &op, friday + 13 * 3600 + 29 * 60);
    let r = st.restrictions.as_ref().expect("the rules are on");
    assert_eq!(r.flat_before_weekend_minutes, Some(15));
    assert_eq!(r.weekend.len(), 1, "only the held symbol: {r:?}");
    let w = &r.weekend[0];
    assert_eq!(w.symbol, "EURUSD");
    let close_ms = (friday + 22 * 3600) * 1000;
    assert_eq!(
        (w.flat_at_ms, w.close_ms, w.open_ms),
        (
            Some(close_ms - 15 * 60_000),
            Some(close_ms),
            Some(close_ms + 2 * 86_400_000)
        )
    );
    let windows: Vec<(&str, bool, &str, i64)> = r
        .news
        .iter()
        .map(|n| (n.symbol.as_str(), n.active, n.title.as_str(), n.start_ms))
        .collect();
    let us_data = (friday + 13 * 3600 + 28 * 60) * 1000;
    assert_eq!(
        windows,
        [
            ("EURUSD", true, "US data", us_data),
            ("GBPUSD", true, "US data", us_data)
        ]
    );
    let json = serde_json::to_value(&st).expect("json");
    assert_eq!(
        json["restrictions"]["weekend"][0]["flat_at_ms"],
        close_ms - 15 * 60_000
    );
    let t = st.table();
    assert!(
        t.contains("RESTRICTIONS")
            && t.contains("EURUSD       flat at 2025-01-17T21:45:00Z")
            && t.contains("entries refused until 2025-01-19T22:00:00Z")
            && t.contains("ACTIVE 2025-01-17T13:28:00Z - 2025-01-17T13:32:00Z US data"),
        "{t}"
    );

    // 13:33: EURUSD's next window is the ECB's; GBPUSD has none to come.
    let st = oracle_executor::operator::status(&e, &op, friday + 13 * 3600 + 33 * 60);
    let r = st.restrictions.clone().expect("the rules are on");
    assert_eq!(r.news.len(), 1, "{r:?}");
    assert_eq!(
        (
            r.news[0].symbol.as_str(),
            r.news[0].active,
            r.news[0].title.as_str()
        ),
        ("EURUSD", false, "ECB")
    );
    assert!(
        st.table().contains("next   2025-01-17T14:58:00Z"),
        "{}",
        st.table()
    );
    drop(op);
    let _ = std::fs::remove_dir_all(dir);
}
