//! The market-data side's events ([`Feed`]: the broker session's, or a replay's) and the
//! executor's clock seam ([`Clock`]).

use std::sync::Arc;

use oracle_ipc::Timeframe;

use crate::broker::Bar;

/// The executor's clock seam: Unix seconds. Tests pass a virtual clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    })
}

/// Events from the market-data side (the broker session, or a replay).
#[derive(Clone, Debug, PartialEq)]
pub enum Feed {
    /// A bar closed.
    Bar {
        /// Symbol.
        symbol: String,
        /// Timeframe.
        tf: Timeframe,
        /// The bar.
        bar: Bar,
        /// Spread (price units) for the paper book's ask when it runs alone.
        spread: f64,
    },
    /// `--bar-close live`: the broker's history differs from a bar already sent from the live
    /// stream's final snapshot. History counts: the bar is replaced in what HISTORY serves and
    /// sent again to the predictor with `REV:1` (docs/ipc.md "Revisions").
    BarRevised {
        /// Symbol.
        symbol: String,
        /// Timeframe.
        tf: Timeframe,
        /// History's bar (same open time as the one sent).
        bar: Bar,
        /// The bar that was sent.
        sent: Bar,
    },
    /// The broker session came back: reconcile before anything else, then the gap fill arrives
    /// as ordinary `Bar`s (already-sent bars are dropped by [`oracle_executor_core::streams::Streams::offer`]).
    Reconnected,
    /// The broker reported a change nobody asked for (a position closed by a stop-out or by
    /// hand elsewhere): reconcile.
    Reconcile,
    /// A symbol's quote (a spot event, at most one a second per symbol): the prop-firm guard is
    /// evaluated on it when a position is open on the symbol (it may close everything and halt).
    Quote {
        /// Symbol (as in executor_config.json).
        symbol: String,
        /// Bid.
        bid: f64,
        /// Ask.
        ask: f64,
    },
}
