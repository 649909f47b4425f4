//! The broker seam: what the engine needs from a cTrader session.
//!
//! Implemented by [`crate::paper::PaperBook`] (paper mode and tests) and by `LiveBroker`
//! (`live.rs`, feature `live`), which maps each method to Open API requests over `oracle-ctrader`:
//! `symbol` → `SymbolByIdReq`, `account` → `TraderReq`, `expected_margin` → `ExpectedMarginReq`
//! (`expected_margins`: one per symbol, all in flight together),
//! `submit_open` → `NewOrderReq(MARKET_RANGE, slippageInPoints, baseSlippagePrice, clientOrderId,
//! label)`, `submit_close` → `ClosePositionReq`, `answers` → their execution events, `reconcile` → `ReconcileReq`, `find_order` → `DealListReq` /
//! `OrderListReq`, `history` → `GetTrendbarsReq`.

pub use oracle_executor_core::broker::{
    Bar, BrokerError, BrokerPosition, OrderLookup, OrderReq, OrderResult, Quote, tick_volume,
};

pub use oracle_executor_core::policy::Closed;
pub use oracle_executor_core::restrictions::WeekEnd;

use crate::risk::Account;
use crate::volume::SymbolSpec;

/// An account read in flight ([`Broker::account_ahead`]); a dropped sender is a failed read.
pub type AccountRead = tokio::sync::oneshot::Receiver<Result<Account, BrokerError>>;

/// What the engine needs from a broker session.
///
/// Orders are split in two steps so that a batch of them can be in flight together: `submit_*`
/// puts one order on the wire and returns at once with a [`Broker::Ticket`]; [`Broker::answers`]
/// awaits the answers of a set of tickets (all of them concurrently). The engine journals (and
/// fsyncs) an order's intent before its `submit_*`, and never submits the same client order id
/// twice.
#[allow(async_fn_in_trait)]
pub trait Broker {
    /// An order on the wire whose answer has not been read yet.
    type Ticket;
    /// Session up (authenticated, reconciled).
    fn connected(&self) -> bool;
    /// Symbol facts.
    async fn symbol(&mut self, name: &str) -> Option<SymbolSpec>;
    /// The facts of symbols given before by [`Broker::symbol`] that the broker changed since
    /// (read again after a reconnect or a `SymbolChangedEvent`: a `tradingMode` now close-only,
    /// say). Default: none.
    async fn changed_specs(&mut self) -> Vec<SymbolSpec> {
        Vec::new()
    }
    /// Latest quote.
    fn quote(&self, symbol: &str) -> Option<Quote>;
    /// Whether `symbol`'s market is closed at `utc_ms` (UTC Unix ms), and until when, from the
    /// broker's trading calendar (`schedule`, `holiday`, `scheduleTimeZone`). Default: `None`,
    /// open (no calendar known: a paper book on replayed bars, a broker that states none).
    fn closed(&self, _symbol: &str, _utc_ms: i64) -> Option<Closed> {
        None
    }
    /// `symbol`'s next weekend at `utc_ms` (the last close of its trading week and the open
    /// after it), from the broker's trading calendar
    /// ([`oracle_executor_core::restrictions::week_end`]). Default: `None` (no calendar).
    fn week_end(&self, _symbol: &str, _utc_ms: i64) -> Option<WeekEnd> {
        None
    }
    /// The account's deposit currency and the traded symbols' assets (the live broker's, read
    /// at start): the guard converts P&L between account reads with them. Default: `None`
    /// (P&L taken as in the deposit currency).
    fn currencies(&self) -> Option<oracle_executor_core::currency::Currencies> {
        None
    }
    /// When the session's current access token expires (Unix ms): the stored pair's at start,
    /// then each refresh's. Default: `None` (no token, or not known).
    fn token_expires_at_ms(&self) -> Option<i64> {
        None
    }
    /// Balance, equity, free margin.
    async fn account(&mut self) -> Result<Account, BrokerError>;
    /// Starts reading the account ([`Broker::account`]'s answer) without waiting for it: the
    /// engine starts it when a bar goes out, so the read runs while the predictor answers and
    /// the batch finds it done ([`oracle_executor_core::side::SideCore::account_ahead`]).
    /// `None`: not supported (the batch reads it then). Default: `None`.
    fn account_ahead(&mut self) -> Option<AccountRead> {
        None
    }
    /// Margin a new order would use.
    async fn expected_margin(
        &mut self,
        symbol: &str,
        volume: i64,
        buy: bool,
    ) -> Result<f64, BrokerError>;
    /// The margins of several new orders, one answer per ask in the asks' order: each ask is
    /// (symbol, volume, buy) and its answer means what [`Broker::expected_margin`]'s does.
    /// A broker with a network round trip asks them all at once (requests in flight together);
    /// this default asks them one after the other.
    async fn expected_margins(
        &mut self,
        asks: &[(String, i64, bool)],
    ) -> Vec<Result<f64, BrokerError>> {
        let mut out = Vec::with_capacity(asks.len());
        for (symbol, volume, buy) in asks {
            out.push(self.expected_margin(symbol, *volume, *buy).await);
        }
        out
    }
    /// Asks, off the orders' path, the margins of entries a later batch may make (symbol,
    /// volume, buy), where a broker that reuses its answers ([`Broker::expected_margins`]) holds
    /// none fresh enough, so those entries need no request on their own path. Default: nothing.
    async fn prefetch_margins(&mut self, _asks: &[(String, i64, bool)]) {}
    /// Puts a MARKET_RANGE order on the wire; its answer comes from [`Broker::answers`].
    async fn submit_open(&mut self, req: &OrderReq) -> Self::Ticket;
    /// Puts the full close of a position on the wire; its answer comes from [`Broker::answers`].
    async fn submit_close(
        &mut self,
        position_id: u64,
        volume: i64,
        client_order_id: &str,
    ) -> Self::Ticket;
    /// The answers of submitted orders, in the order of `tickets`, awaited concurrently.
    /// [`OrderResult::Unknown`] where no answer came in time (the order may have executed).
    async fn answers(&mut self, tickets: Vec<Self::Ticket>) -> Vec<OrderResult>;
    /// Sends a MARKET_RANGE order and awaits its answer.
    async fn open(&mut self, req: &OrderReq) -> OrderResult {
        let t = self.submit_open(req).await;
        self.answers(vec![t])
            .await
            .pop()
            .unwrap_or(OrderResult::Unknown)
    }
    /// Closes a position fully and awaits the answer.
    async fn close(&mut self, position_id: u64, volume: i64, client_order_id: &str) -> OrderResult {
        let t = self
            .submit_close(position_id, volume, client_order_id)
            .await;
        self.answers(vec![t])
            .await
            .pop()
            .unwrap_or(OrderResult::Unknown)
    }
    /// Open positions.
    async fn reconcile(&mut self) -> Result<Vec<BrokerPosition>, BrokerError>;
    /// Looks up what became of an order whose outcome is unknown (reconcile / deal list).
    /// `Ok(None)`: the broker has no trace of it (it never executed).
    async fn find_order(&mut self, order: &OrderLookup)
    -> Result<Option<OrderResult>, BrokerError>;
    /// Unrealised P&L of a position, when the session knows it (drift ledger).
    fn position_pnl(&self, _position_id: u64) -> Option<f64> {
        None
    }
    /// The last `count` closed bars of a stream, oldest first.
    async fn history(
        &mut self,
        symbol: &str,
        tf: oracle_ipc::Timeframe,
        count: u32,
    ) -> Result<Vec<Bar>, BrokerError>;
}
