//! The paper book: an internal simulated account fed by live prices. It implements
//! [`Broker`], so the same policy runs against it alone (`--paper`) or beside live, and tests use
//! it (with scripted faults) as a deterministic broker.
//!
//! Fills: a buy at the ask, a sell at the bid, whole volume, no slippage beyond the quote.
//! P&L: price difference × units (volume / 100), in the quote currency, taken as the account
//! currency (no conversion); margin: notional / leverage.
//!
//! Market hours and symbol modes: the book answers [`Broker::closed`], [`Broker::week_end`] and
//! [`Broker::changed_specs`] with the live broker's facts (beside live, told by the engine before
//! each of its decisions; in a dry run, from the session it follows: [`PaperBook::follow`]), so
//! its side refuses and holds what live's does. Alone on replayed bars every market is open.

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::future::Future;
use std::pin::Pin;

use crate::broker::{
    Bar, Broker, BrokerError, BrokerPosition, Closed, OrderLookup, OrderReq, OrderResult, Quote,
    WeekEnd,
};
use crate::risk::Account;
use crate::volume::SymbolSpec;

/// Deals kept for `find_order` (the most recent ones; an order is looked up right after its
/// answer was lost, or at a reconcile: the book is in memory only, so nothing older matters).
pub const DEAL_MEMORY: usize = 256;

/// Client order ids kept in [`PaperBook::orders_seen`] (the most recent ones).
pub const ORDERS_SEEN_MEMORY: usize = 1024;

/// A scripted fault for the next order request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// No fault: this request is answered normally (to place a fault later in a batch).
    Pass,
    /// Refuse with this error code.
    Reject(String),
    /// Execute (or not) and answer nothing: the outcome is unknown to the caller.
    Lost {
        /// Whether the order really executed.
        executed: bool,
    },
}

/// A live broker's market facts that a paper book follows (`--dry-run`: the live session the
/// book trades on, [`PaperBook::follow`]): its trading hours (each day's, and each symbol's
/// weekend for `risk.flat_before_weekend`) and its symbols' trading modes, so the side's core
/// refuses, holds and flattens on paper what it refuses, holds and flattens live. Only these
/// are reachable through it: the book sends no order anywhere.
pub trait Market {
    /// Whether `symbol`'s market is closed at `utc_ms` and until when ([`Broker::closed`]).
    fn closed(&self, symbol: &str, utc_ms: i64) -> Option<Closed>;
    /// `symbol`'s next weekend at `utc_ms` from its trading calendar ([`Broker::week_end`]):
    /// the paper book alone flattens before it as live does.
    fn week_end(&self, symbol: &str, utc_ms: i64) -> Option<WeekEnd>;
    /// The symbols' facts the broker changed since last asked (a trading mode now close-only,
    /// say: [`Broker::changed_specs`]).
    fn changed_specs(&mut self) -> Pin<Box<dyn Future<Output = Vec<SymbolSpec>> + '_>>;
}

/// The market a book follows ([`PaperBook::follow`]).
struct Follows(Box<dyn Market>);

impl std::fmt::Debug for Follows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Follows(market)")
    }
}

/// One executed order, kept for `find_order` (the deal list).
#[derive(Clone, Debug, PartialEq)]
struct Deal {
    client_order_id: String,
    position_id: u64,
    price: f64,
    volume: i64,
}

/// The simulated account.
#[derive(Debug)]
pub struct PaperBook {
    /// Symbols served.
    pub specs: HashMap<String, SymbolSpec>,
    quotes: HashMap<String, Quote>,
    positions: BTreeMap<u64, BrokerPosition>,
    /// The last [`DEAL_MEMORY`] deals.
    deals: VecDeque<Deal>,
    balance: f64,
    next_id: u64,
    /// Account leverage (margin = notional / leverage).
    pub leverage: f64,
    /// Faults applied to the next order requests, in order.
    pub faults: VecDeque<Fault>,
    /// Session state (tests flip it).
    pub up: bool,
    /// Bars per (symbol, tf) for `history`.
    pub bars: HashMap<(String, oracle_ipc::Timeframe), Vec<Bar>>,
    /// The next this many `history` requests fail as a dropped session's would (tests set it).
    pub history_faults: u32,
    /// Client order ids of the orders received, oldest first: the last [`ORDERS_SEEN_MEMORY`]
    /// (for tests: no duplicate order). [`PaperBook::orders_total`] counts them all.
    pub orders_seen: VecDeque<String>,
    /// Orders received since the book was made.
    pub orders_total: u64,
    /// When false, behaves like a broker that links nothing to client order ids: positions come
    /// back without it and `find_order` finds nothing (tests the label-based reconciliation).
    pub echo_client_order_id: bool,
    /// Account reads asked of the book (what a broker answers with three requests: trader,
    /// positions, unrealised P&L); shared, so a test can count them after the book has moved
    /// into an engine.
    pub account_reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The live market followed (`--dry-run`), if any.
    market: Option<Follows>,
    /// Per symbol, the live broker's calendar as the engine last read it for the book beside
    /// live (`--with-paper`, [`PaperBook::set_hours`]): (at, closed then).
    hours: HashMap<String, (i64, Option<Closed>)>,
}

impl PaperBook {
    /// A book with `balance` and the given symbols.
    pub fn new(balance: f64, specs: impl IntoIterator<Item = SymbolSpec>) -> Self {
        PaperBook {
            specs: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            quotes: HashMap::new(),
            positions: BTreeMap::new(),
            deals: VecDeque::new(),
            balance,
            next_id: 1,
            leverage: 30.0,
            faults: VecDeque::new(),
            up: true,
            bars: HashMap::new(),
            history_faults: 0,
            orders_seen: VecDeque::new(),
            orders_total: 0,
            echo_client_order_id: true,
            account_reads: std::sync::Arc::default(),
            market: None,
            hours: HashMap::new(),
        }
    }

    /// Follows a live broker's market facts (`--dry-run`: the session itself): its calendar
    /// answers [`Broker::closed`], its changed symbol facts [`Broker::changed_specs`]. Without
    /// one (and without [`PaperBook::set_hours`]) every market is open and no mode changes:
    /// `--paper` on replayed bars.
    pub fn follow(&mut self, market: impl Market + 'static) {
        self.market = Some(Follows(Box::new(market)));
    }

    /// The live broker beside the book (`--with-paper`) says `symbol`'s market is `closed` (or
    /// open: `None`) at `utc_ms`: [`Broker::closed`] answers from it at that instant and
    /// after, a closed market opening at its `until_ms`. The engine sets it before the book's
    /// side asks (the executor's `Engine`).
    pub fn set_hours(&mut self, symbol: &str, utc_ms: i64, closed: Option<Closed>) {
        self.hours.insert(symbol.to_string(), (utc_ms, closed));
    }

    /// Feeds a live price.
    pub fn set_quote(&mut self, symbol: &str, bid: f64, ask: f64) {
        self.quotes.insert(symbol.to_string(), Quote { bid, ask });
    }

    /// Deals remembered for `find_order` (at most [`DEAL_MEMORY`]).
    pub fn deals_len(&self) -> usize {
        self.deals.len()
    }

    fn push_deal(&mut self, d: Deal) {
        self.deals.push_back(d);
        while self.deals.len() > DEAL_MEMORY {
            self.deals.pop_front();
        }
    }

    /// Position ids open now.
    pub fn open_positions(&self) -> Vec<BrokerPosition> {
        let mut v: Vec<BrokerPosition> = self.positions.values().cloned().collect();
        if !self.echo_client_order_id {
            v.iter_mut().for_each(|p| p.client_order_id.clear());
        }
        v
    }

    /// Adds a position that is not ours (manual trade) or a foreign one, for reconciliation tests.
    pub fn inject_position(&mut self, p: BrokerPosition) {
        self.next_id = self.next_id.max(p.position_id + 1);
        self.positions.insert(p.position_id, p);
    }

    /// Puts back into a fresh book the positions its journal (`rep`) says the models hold (the
    /// book lives in memory; a restart would otherwise find them gone and take them as closed
    /// outside). Returns how many.
    pub fn resume(&mut self, rep: &oracle_executor_core::journal::Replayed) -> usize {
        use oracle_executor_core::key::KeyText;
        let mut n = 0;
        for (key, st) in &rep.models {
            let Some(r) = &st.real else { continue };
            self.inject_position(BrokerPosition {
                position_id: r.position_id,
                symbol: key.symbol.to_string(),
                label: key.label(),
                client_order_id: String::new(),
                buy: r.action.0.direction() > 0,
                volume: r.volume,
                price: r.price,
            });
            n += 1;
        }
        n
    }

    /// Closes a position outside the executor (stop-out, manual close).
    pub fn external_close(&mut self, position_id: u64) {
        if let Some(p) = self.positions.remove(&position_id) {
            self.balance += self.pnl(&p);
        }
    }

    /// New positions are numbered after `last` (a book resumed from its journal does not reuse
    /// the ids of its earlier positions).
    pub fn reserve_ids(&mut self, last: u64) {
        self.next_id = self.next_id.max(last + 1);
    }

    /// Sets the balance (tests: drive the daily-loss limit).
    pub fn set_balance(&mut self, b: f64) {
        self.balance = b;
    }

    fn pnl(&self, p: &BrokerPosition) -> f64 {
        let Some(q) = self.quotes.get(&p.symbol) else {
            return 0.0;
        };
        let units = p.volume as f64 / 100.0;
        if p.buy {
            (q.bid - p.price) * units
        } else {
            (p.price - q.ask) * units
        }
    }

    /// Unrealised P&L of one position.
    pub fn position_pnl(&self, position_id: u64) -> f64 {
        self.positions
            .get(&position_id)
            .map_or(0.0, |p| self.pnl(p))
    }

    fn margin_of(&self, symbol: &str, volume: i64) -> f64 {
        let px = self.quotes.get(symbol).map_or(0.0, |q| q.ask);
        volume as f64 / 100.0 * px / self.leverage
    }

    fn execute_open(&mut self, req: &OrderReq) -> OrderResult {
        let Some(q) = self.quotes.get(&req.symbol).copied() else {
            return OrderResult::Rejected {
                code: "MARKET_CLOSED".into(),
                msg: "no price".into(),
            };
        };
        let price = if req.buy { q.ask } else { q.bid };
        let spec = self.specs.get(&req.symbol);
        let point = spec.map_or(1e-5, SymbolSpec::point);
        // MARKET_RANGE: refuse when the price moved beyond slippageInPoints from the base price.
        if (price - req.base_price).abs() > f64::from(req.slippage_points) * point + 1e-12 {
            return OrderResult::Rejected {
                code: "MARKET_RANGE_EXCEEDED".into(),
                msg: "price moved beyond slippageInPoints".into(),
            };
        }
        let acc = self.account_now();
        if self.margin_of(&req.symbol, req.volume) > acc.free_margin {
            return OrderResult::Rejected {
                code: "NOT_ENOUGH_MONEY".into(),
                msg: "free margin".into(),
            };
        }
        let id = self.next_id;
        self.next_id += 1;
        self.positions.insert(
            id,
            BrokerPosition {
                position_id: id,
                symbol: req.symbol.clone(),
                label: req.label.clone(),
                client_order_id: req.client_order_id.clone(),
                buy: req.buy,
                volume: req.volume,
                price,
            },
        );
        self.push_deal(Deal {
            client_order_id: req.client_order_id.clone(),
            position_id: id,
            price,
            volume: req.volume,
        });
        OrderResult::Filled {
            position_id: id,
            price,
            volume: req.volume,
        }
    }

    fn execute_close(&mut self, position_id: u64, coid: &str) -> OrderResult {
        let Some(p) = self.positions.get(&position_id).cloned() else {
            return OrderResult::Rejected {
                code: "POSITION_NOT_FOUND".into(),
                msg: format!("position {position_id}"),
            };
        };
        let Some(q) = self.quotes.get(&p.symbol).copied() else {
            return OrderResult::Rejected {
                code: "MARKET_CLOSED".into(),
                msg: "no price".into(),
            };
        };
        let price = if p.buy { q.bid } else { q.ask };
        self.balance += self.pnl(&p);
        self.positions.remove(&position_id);
        self.push_deal(Deal {
            client_order_id: coid.to_string(),
            position_id,
            price,
            volume: p.volume,
        });
        OrderResult::Filled {
            position_id,
            price,
            volume: p.volume,
        }
    }

    fn account_now(&self) -> Account {
        let floating: f64 = self.positions.values().map(|p| self.pnl(p)).sum();
        let used: f64 = self
            .positions
            .values()
            .map(|p| self.margin_of(&p.symbol, p.volume))
            .sum();
        let equity = self.balance + floating;
        Account {
            balance: self.balance,
            equity,
            free_margin: equity - used,
        }
    }

    fn faulted(&mut self, coid: &str, run: impl FnOnce(&mut Self) -> OrderResult) -> OrderResult {
        self.orders_seen.push_back(coid.to_string());
        self.orders_total += 1;
        while self.orders_seen.len() > ORDERS_SEEN_MEMORY {
            self.orders_seen.pop_front();
        }
        if !self.up {
            return OrderResult::Rejected {
                code: "NOT_CONNECTED".into(),
                msg: "no session".into(),
            };
        }
        match self.faults.pop_front() {
            Some(Fault::Reject(code)) => OrderResult::Rejected {
                code,
                msg: "scripted".into(),
            },
            Some(Fault::Lost { executed }) => {
                if executed {
                    run(self);
                }
                OrderResult::Unknown
            }
            None | Some(Fault::Pass) => run(self),
        }
    }
}

impl Broker for PaperBook {
    fn connected(&self) -> bool {
        self.up
    }
    fn closed(&self, symbol: &str, utc_ms: i64) -> Option<Closed> {
        if let Some(m) = &self.market {
            return m.0.closed(symbol, utc_ms);
        }
        match self.hours.get(symbol) {
            Some(&(at, Some(c))) if utc_ms >= at && c.until_ms.is_none_or(|u| utc_ms < u) => {
                Some(c)
            }
            _ => None,
        }
    }
    /// The followed market's weekend (`--dry-run`); none otherwise (beside live the engine asks
    /// the live broker; alone on replayed bars no market closes).
    fn week_end(&self, symbol: &str, utc_ms: i64) -> Option<WeekEnd> {
        self.market.as_ref()?.0.week_end(symbol, utc_ms)
    }
    async fn changed_specs(&mut self) -> Vec<SymbolSpec> {
        let got = match &mut self.market {
            Some(m) => m.0.changed_specs().await,
            None => return Vec::new(),
        };
        let mut changed = Vec::new();
        for s in got {
            if self.specs.get(&s.name).is_some_and(|have| *have != s) {
                self.specs.insert(s.name.clone(), s.clone());
                changed.push(s);
            }
        }
        changed
    }
    async fn symbol(&mut self, name: &str) -> Option<SymbolSpec> {
        self.specs.get(name).cloned()
    }
    fn quote(&self, symbol: &str) -> Option<Quote> {
        self.quotes.get(symbol).copied()
    }
    async fn account(&mut self) -> Result<Account, BrokerError> {
        self.account_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.account_now())
    }
    fn account_ahead(&mut self) -> Option<crate::broker::AccountRead> {
        // Answered at once (the book is here); counted as a read, like `account`.
        self.account_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Ok(self.account_now()));
        Some(rx)
    }
    async fn expected_margin(
        &mut self,
        symbol: &str,
        volume: i64,
        _buy: bool,
    ) -> Result<f64, BrokerError> {
        Ok(self.margin_of(symbol, volume))
    }
    /// The paper book executes an order when it is submitted (the "wire" is a function call):
    /// the ticket is the answer.
    type Ticket = OrderResult;
    async fn submit_open(&mut self, req: &OrderReq) -> OrderResult {
        let r = req.clone();
        self.faulted(&req.client_order_id, move |b| b.execute_open(&r))
    }
    async fn submit_close(&mut self, position_id: u64, _volume: i64, coid: &str) -> OrderResult {
        let c = coid.to_string();
        self.faulted(coid, move |b| b.execute_close(position_id, &c))
    }
    async fn answers(&mut self, tickets: Vec<OrderResult>) -> Vec<OrderResult> {
        tickets
    }
    async fn reconcile(&mut self) -> Result<Vec<BrokerPosition>, BrokerError> {
        if !self.up {
            return Err(BrokerError("not connected".into()));
        }
        Ok(self.open_positions())
    }
    async fn find_order(
        &mut self,
        order: &OrderLookup,
    ) -> Result<Option<OrderResult>, BrokerError> {
        if !self.up {
            return Err(BrokerError("not connected".into()));
        }
        if !self.echo_client_order_id {
            return Ok(None);
        }
        Ok(self
            .deals
            .iter()
            .find(|d| d.client_order_id == order.client_order_id)
            .map(|d| OrderResult::Filled {
                position_id: d.position_id,
                price: d.price,
                volume: d.volume,
            }))
    }
    fn position_pnl(&self, position_id: u64) -> Option<f64> {
        Some(PaperBook::position_pnl(self, position_id))
    }
    async fn history(
        &mut self,
        symbol: &str,
        tf: oracle_ipc::Timeframe,
        count: u32,
    ) -> Result<Vec<Bar>, BrokerError> {
        if self.history_faults > 0 {
            self.history_faults -= 1;
            return Err(BrokerError(
                "history: session lost before the answer".into(),
            ));
        }
        let v = self
            .bars
            .get(&(symbol.to_string(), tf))
            .cloned()
            .unwrap_or_default();
        let n = v.len().saturating_sub(count as usize);
        Ok(v[n..].to_vec())
    }
}
