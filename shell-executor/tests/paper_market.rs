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
use oracle_executor::broker::Closed;
use oracle_executor::engine::{Engine, Side};
use oracle_executor::paper::{Market, PaperBook};
use oracle_executor::policy::ModelKey;
use oracle_executor::symbols::TradingMode;
use oracle_executor::volume::SymbolSpec;
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
    let key = ModelKey::new("EURUSD", Timeframe::M15);
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
