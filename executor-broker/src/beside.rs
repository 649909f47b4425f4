//! The paper book over a live session (feature `live`): beside live (`--with-paper`,
//! [`paper_beside`]) and alone on the session's feed (`--dry-run`, [`dry_run_book`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use oracle_executor_core::config::ExecutorConfig;
use oracle_executor_core::volume::SymbolSpec;
use oracle_ipc::Timeframe;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::live::{LiveBroker, SessionEvents};
use crate::paper::PaperBook;

/// `--dry-run`: history requests tried at start per stream before the run gives up (waits
/// 2, 4, 8, 16, 16 s between them).
const DRY_RUN_HISTORY_TRIES: u32 = 5;

/// The paper book beside a live session (`--with-paper`): the session's symbols' facts; the
/// engine then tells it live's trading hours and symbol modes before each of its decisions
/// (`Engine::paper_sees_live_market`).
pub fn paper_beside(live: &LiveBroker, cfg: &ExecutorConfig, balance: f64) -> PaperBook {
    let specs: Vec<SymbolSpec> = cfg.symbols.keys().filter_map(|s| live.spec(s)).collect();
    PaperBook::new(balance, specs)
}

/// `--dry-run`'s paper book (`balance`): the broker account `account_id` read and its open
/// positions listed (logged; they are left alone), the session's facts of `symbols`, the last
/// `count` bars of each stream of `streams` from the broker's history (asked again with a
/// backoff, the start refused naming the stream when it never comes), then the session itself
/// (told of `telemetry`) as the book's market: its trading hours and symbol modes. The session
/// is reachable through nothing else, so it gets no order.
pub async fn dry_run_book(
    mut session: LiveBroker,
    account_id: i64,
    symbols: &[String],
    streams: &[(String, Timeframe)],
    count: u32,
    balance: f64,
    telemetry: Arc<dyn SessionEvents>,
) -> anyhow::Result<PaperBook> {
    match session.account().await {
        Ok(a) => info!(
            account = account_id,
            balance = a.balance,
            equity = a.equity,
            paper_balance = balance,
            "dry run: the broker account as read (the paper book trades its own balance, --paper-balance)"
        ),
        Err(e) => {
            warn!(account = account_id, error = %e, "dry run: the broker account could not be read")
        }
    }
    match session.reconcile().await {
        Ok(open) => {
            for p in &open {
                info!(
                    account = account_id,
                    position_id = p.position_id,
                    symbol = %p.symbol,
                    side = if p.buy { "BUY" } else { "SELL" },
                    volume = p.volume,
                    label = %p.label,
                    "dry run: a position open on the broker account, left alone"
                );
            }
            info!(
                account = account_id,
                positions = open.len(),
                "dry run: {} position(s) open on the broker account are left alone (the paper book trades, not the account)",
                open.len()
            );
        }
        Err(e) => {
            warn!(account = account_id, error = %e, "dry run: the broker account's open positions could not be listed (they are left alone)")
        }
    }
    let specs: Vec<SymbolSpec> = symbols.iter().filter_map(|s| session.spec(s)).collect();
    let mut book = PaperBook::new(balance, specs);
    // The streams' history comes from the broker: the paper book serves it (HISTORY, the seed).
    // It is asked again while the session reconnects; without it the dry run does not start
    // (the book would answer a predictor's HISTORY with nothing, and a restored twin would
    // prime on the live bars alone).
    for (sym, tf) in streams {
        let mut tries = 0u32;
        let bars = loop {
            match session.history(sym, *tf, count).await {
                Ok(bars) => break bars,
                Err(e) if tries < DRY_RUN_HISTORY_TRIES => {
                    tries += 1;
                    let wait = Duration::from_secs(1 << tries.min(4));
                    warn!(symbol = %sym, tf = tf.as_str(), error = %e, try_n = tries, retry_s = wait.as_secs(),
                        "dry run: history request to the broker failed; asking again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => bail!(
                    "dry run: the broker's history of {sym} {} could not be loaded ({} tries): {e}; the paper book cannot serve its predictor without it: start again when the broker answers",
                    tf.as_str(),
                    tries + 1
                ),
            }
        };
        book.bars.insert((sym.clone(), *tf), bars);
    }
    session.set_telemetry(telemetry);
    // The book obeys the session's trading hours and symbol modes, as live would.
    book.follow(session);
    Ok(book)
}
