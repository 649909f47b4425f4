//! [`Link`]: one side's core ([`SideCore`]) driven against an `oracle_ctrader` [`Session`],
//! sans-IO. The side's actions become Open API requests queued on the session; the session's
//! answers and events become the side's `handle_*` inputs. Time is a parameter (the session's
//! `Instant`, and Unix ms for the executor's clock); the journal is the caller's
//! ([`JournalSink`]).
//!
//! - [`SideAction::AskAccount`]: `TraderReq` and `ReconcileReq` together ([`account_of`]);
//! - [`SideAction::AskSpec`]: `SymbolByIdReq` ([`spec_of`]);
//! - [`SideAction::AskMarket`]: the latest spot quotes kept from [`Event::Spot`] (no round trip);
//! - [`SideAction::JournalIntents`] / [`SideAction::Journal`]: the record bytes to the sink;
//! - [`SideAction::Submit`]: `NewOrderReq` (client order id, label) or `ClosePositionReq`; the
//!   order's outcome is its first answer ([`fill_of`], [`order_error_result`]), or, after
//!   `ORDER_ACCEPTED`, the fill event awaited under its [`fill_key`] for at most the fill
//!   timeout; no answer (`RequestOutcomeUnknown`, a fill never seen) is
//!   [`OrderResult::Unknown`]: the side looks it up, never resends;
//! - [`SideAction::AskMargins`]: one `ExpectedMarginReq` per ask, all in flight together; with
//!   the margin-rate cache on ([`Link::with_margin_cache`], the live shell's rule) an ask whose
//!   (symbol, volume, side) the broker answered less than the cache's life ago is not asked
//!   again: its margin is that answer's, scaled to the current price;
//! - the margins of the next transitions' entries ([`Link::prefetch_margins`], the core's
//!   `ExecAction::PrefetchNextEntries`): asked off the orders' path where the cache's rate is
//!   missing or half its life old, so a reversal's entries find them fresh;
//! - [`SideAction::LookUp`]: an entry by its client order id (`OrderListReq`), then, not found
//!   or a close, by the open positions and the deals since its intent (`ReconcileReq` +
//!   `DealListReq`, [`lookup_in_positions_and_deals`]);
//! - reconciliation ([`Link::reconcile`]): `ReconcileReq` → [`SideCore::handle_reconciled`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use oracle_ctrader::proto::{
    ProtoOaDealListReq, ProtoOaDealListRes, ProtoOaExpectedMarginReq, ProtoOaOrderListReq,
    ProtoOaReconcileReq, ProtoOaReconcileRes, ProtoOaSymbolByIdReq, ProtoOaTraderReq,
    ProtoOaTraderRes,
};
use oracle_ctrader::session::{Event, RequestId};
use oracle_ctrader::{Payload, Session};
use oracle_executor_core::broker::{OrderLookup, OrderResult, Quote};
use oracle_executor_core::journal::{Op, encode_lines};
use oracle_executor_core::side::{SideAction, SideCore};

use crate::wire::{
    account_of, close_key, close_position_req, fill_key, fill_of, lookup_in_positions_and_deals,
    margin_of, new_order_req, order_error_result, order_outcome, order_with_coid, positions_of,
    spec_of,
};

/// Where the journal's bytes go: `append` writes them, `sync` makes them durable (an fsync).
/// `Err(why)`: the write (or its sync) failed.
pub trait JournalSink {
    /// Appends `bytes`; with `sync` they are durable when it returns `Ok`.
    fn append(&mut self, bytes: &[u8], sync: bool) -> Result<(), String>;

    /// Makes every byte appended so far durable.
    fn sync(&mut self) -> Result<(), String> {
        self.append(&[], true)
    }
}

/// The largest timestamp the Open API accepts (ms).
const MAX_TIMESTAMP_MS: i64 = 2_147_483_646_000;

/// What a request of ours is for.
#[derive(Clone, Debug)]
enum Purpose {
    Trader,
    AccountPositions,
    Spec(String),
    Margin(usize),
    /// A prefetch of the margin of (symbol, volume, buy).
    Prefetch(String, i64, bool),
    Order(String),
    LookupOrders,
    LookupPositions,
    LookupDeals,
    Reconcile,
}

/// An account read under way: its two answers.
#[derive(Debug, Default)]
struct AccountRead {
    trader: Option<Option<ProtoOaTraderRes>>,
    positions: Option<Option<ProtoOaReconcileRes>>,
}

/// The expected margins under way.
#[derive(Debug)]
struct MarginRead {
    asks: Vec<(String, i64, bool)>,
    got: Vec<Option<f64>>,
    left: usize,
}

/// A lookup under way.
#[derive(Debug)]
struct LookupRead {
    o: OrderLookup,
    positions: Option<Result<ProtoOaReconcileRes, String>>,
    deals: Option<Result<ProtoOaDealListRes, String>>,
}

/// Counters of what went over the link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Orders put on the session.
    pub orders: u64,
    /// Orders the broker refused.
    pub refused: u64,
    /// Orders whose outcome was unknown (looked up).
    pub unknown: u64,
    /// Lookups asked.
    pub lookups: u64,
    /// Reconciliations handed to the side (the broker's positions read).
    pub reconciles: u64,
    /// Entries' margins taken from the margin-rate cache (not asked again).
    pub margins_cached: u64,
    /// Margins prefetched (`ExpectedMarginReq`s sent off the orders' path).
    pub margins_prefetched: u64,
}

/// The margin-rate cache's life, the live shell's too (`shell-executor`'s `MARGIN_RATE_TTL` is it), 900 s:
/// a broker's margin answer is reused, scaled to the current price, for this long (executor ms);
/// a prefetch asks again the ones at least half this old.
pub const MARGIN_RATE_TTL_MS: i64 = 900_000;

/// A margin ask: symbol, volume, buy.
type MarginKey = (String, i64, bool);

/// One side's core against a session (see the module's docs).
#[derive(Debug)]
pub struct Link {
    account: i64,
    money_digits: u32,
    fill_timeout: Duration,
    /// Broker symbol ids by name, and names by id.
    ids: BTreeMap<String, i64>,
    names: BTreeMap<i64, String>,
    /// Latest spot quote by symbol id (1e-5 units).
    quotes: BTreeMap<i64, (Option<u64>, Option<u64>)>,
    requests: BTreeMap<RequestId, Purpose>,
    /// Orders accepted whose fill is awaited: fill key → (client order id, deadline).
    fills: BTreeMap<String, (String, Instant)>,
    /// Orders whose answers are awaited, in submission order: (client order id, fill key,
    /// outcome once known).
    awaited: VecDeque<(String, String, Option<OrderResult>)>,
    /// The first `released` of `awaited` were submitted before the side's last
    /// `AwaitAnswers`: their outcomes are handed to it (in order) once known.
    released: usize,
    /// A symbol's facts asked.
    spec: Option<String>,
    account_read: Option<AccountRead>,
    /// Margins asked: the asks, their answers so far, answers still awaited.
    margins: Option<MarginRead>,
    lookup: Option<LookupRead>,
    ready: bool,
    /// The margin-rate cache's life (executor ms); `None`: off, every entry's margin is asked.
    margin_ttl_ms: Option<i64>,
    /// The broker's margins per unit of price and when it answered (executor ms).
    margin_rates: BTreeMap<MarginKey, (f64, i64)>,
    /// For each margin handed to the side: when the broker gave the answer it came from, and
    /// when it was handed (executor ms).
    margins_used: BTreeMap<MarginKey, (i64, i64)>,
    /// The entries put on the session since the last [`Link::take_sent_entries`]: (client
    /// order id, symbol, volume, buy), for a checker of what was sent (not of what was decided).
    sent_entries: Vec<(String, String, i64, bool)>,
    /// What went over the link.
    pub counters: LinkCounters,
    /// The deterministic simulation's experiment ([`Link::set_sync_after_submit`]): a
    /// batch's intents are written unsynced, its orders go out, and the sync follows before the
    /// next input.
    sync_after_submit: bool,
    /// Intents written and not yet synced (with `sync_after_submit`).
    owe_sync: bool,
}

impl Link {
    /// A link for `account`; `symbols`: the broker symbols the side trades (name, id).
    /// `fill_timeout`: how long a fill is awaited after `ORDER_ACCEPTED`.
    pub fn new(
        account: i64,
        symbols: impl IntoIterator<Item = (String, i64)>,
        fill_timeout: Duration,
    ) -> Link {
        let ids: BTreeMap<String, i64> = symbols.into_iter().collect();
        let names = ids.iter().map(|(n, i)| (*i, n.clone())).collect();
        Link {
            account,
            money_digits: 2,
            fill_timeout,
            ids,
            names,
            quotes: BTreeMap::new(),
            requests: BTreeMap::new(),
            fills: BTreeMap::new(),
            awaited: VecDeque::new(),
            released: 0,
            spec: None,
            account_read: None,
            margins: None,
            lookup: None,
            ready: false,
            margin_ttl_ms: None,
            margin_rates: BTreeMap::new(),
            margins_used: BTreeMap::new(),
            sent_entries: Vec::new(),
            counters: LinkCounters::default(),
            sync_after_submit: false,
            owe_sync: false,
        }
    }

    /// An experiment of the deterministic simulation, not a rule of the product: a batch's
    /// intents are written without a sync, the side is told they are journaled, its orders go
    /// on the session, and the sync is done before the next input (a session event or a
    /// timeout) is handed to the side, so no answer of those orders is seen before their
    /// intents are durable. A power loss between the orders and the sync loses the intents of
    /// orders the broker has. Off by default (every intent synced before its order).
    pub fn set_sync_after_submit(&mut self, on: bool) {
        self.sync_after_submit = on;
    }

    /// Intents written whose sync is still owed (with [`Link::set_sync_after_submit`]).
    pub fn owes_sync(&self) -> bool {
        self.owe_sync
    }

    /// The owed sync, before an input reaches the side.
    fn settle(&mut self, j: &mut impl JournalSink) {
        if std::mem::take(&mut self.owe_sync) {
            // The orders are out: a failed sync cannot refuse them any more (the product's rule
            // would have to stop the process here).
            let _ = j.sync();
        }
    }

    /// The entries put on the session since the last call: (client order id, symbol, volume,
    /// buy).
    pub fn take_sent_entries(&mut self) -> Vec<(String, String, i64, bool)> {
        std::mem::take(&mut self.sent_entries)
    }

    /// The margin-rate cache on, with a life of `ttl_ms` (the live shell's:
    /// [`MARGIN_RATE_TTL_MS`]).
    pub fn with_margin_cache(mut self, ttl_ms: i64) -> Link {
        self.margin_ttl_ms = Some(ttl_ms);
        self
    }

    /// The last margin of (symbol, volume, buy) handed to the side: when the broker gave the
    /// answer it came from and when it was handed to the side's margin check (executor ms). An
    /// entry's margin is never older than the cache's life at its check.
    pub fn margin_answered_at(&self, symbol: &str, volume: i64, buy: bool) -> Option<(i64, i64)> {
        self.margins_used
            .get(&(symbol.to_string(), volume, buy))
            .copied()
    }

    /// When the cache's rate of (symbol, volume, buy) was answered (executor ms), if held.
    pub fn margin_rate_at(&self, symbol: &str, volume: i64, buy: bool) -> Option<i64> {
        self.margin_rates
            .get(&(symbol.to_string(), volume, buy))
            .map(|r| r.1)
    }

    /// A margin prefetch of (symbol, volume, buy) is under way.
    pub fn prefetching(&self, symbol: &str, volume: i64, buy: bool) -> bool {
        self.requests.values().any(
            |p| matches!(p, Purpose::Prefetch(s, v, b) if s == symbol && *v == volume && *b == buy),
        )
    }

    /// A spot price of `symbol` on `buy`'s side is known (a margin's rate can be kept).
    pub fn has_price(&self, symbol: &str, buy: bool) -> bool {
        self.price(symbol, buy).is_some()
    }

    /// The price an order of `symbol` on `buy`'s side would get now (the latest spot).
    fn price(&self, symbol: &str, buy: bool) -> Option<f64> {
        let (bid, ask) = *self.quotes.get(self.ids.get(symbol)?)?;
        let p = if buy { ask? } else { bid? };
        (p > 0).then(|| p as f64 / 100_000.0)
    }

    /// The margin of `k` from the cache: answered less than its life ago, scaled to the
    /// current price.
    fn cached_margin(&self, now_ms: i64, k: &MarginKey) -> Option<(f64, i64)> {
        let ttl = self.margin_ttl_ms?;
        let (rate, at) = *self.margin_rates.get(k)?;
        (now_ms - at < ttl)
            .then(|| self.price(&k.0, k.2).map(|p| (rate * p, at)))
            .flatten()
    }

    /// A broker's margin answer for `k` at `now_ms`: the cache's rate (with the cache on).
    fn remember_margin(&mut self, now_ms: i64, k: MarginKey, margin: f64) {
        if self.margin_ttl_ms.is_some()
            && let Some(p) = self.price(&k.0, k.2)
        {
            self.margin_rates.insert(k, (margin / p, now_ms));
        }
    }

    /// Asks, off the orders' path, the margins `asks` (the core's next transitions' entries,
    /// `SideCore::next_entry_asks`) whose cached rate is missing or at least half its life old
    /// (the live shell's `prefetch_margins`): those are dropped from the cache and asked again;
    /// the answers only refresh it (a lost one is asked again at the entry). Nothing with the
    /// cache off. Returns how many were asked.
    pub fn prefetch_margins(
        &mut self,
        inst: Instant,
        now_ms: i64,
        s: &mut Session,
        asks: &[(String, i64, bool)],
    ) -> usize {
        let Some(ttl) = self.margin_ttl_ms else {
            return 0;
        };
        let mut sent = 0;
        for k in asks {
            let stale = self
                .margin_rates
                .get(k)
                .is_none_or(|(_, at)| now_ms - at >= ttl / 2);
            let (symbol, volume, buy) = k.clone();
            if !stale
                || self.price(&symbol, buy).is_none()
                || self.prefetching(&symbol, volume, buy)
            {
                continue;
            }
            let Some(id) = self.ids.get(&symbol).copied() else {
                continue;
            };
            self.margin_rates.remove(k);
            let req = ProtoOaExpectedMarginReq {
                ctid_trader_account_id: self.account,
                symbol_id: id,
                volume: vec![volume],
                ..Default::default()
            };
            if self.send(inst, s, req, Purpose::Prefetch(symbol, volume, buy)) {
                sent += 1;
            }
        }
        self.counters.margins_prefetched += sent as u64;
        sent
    }

    fn name_of(&self, id: i64) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Requests of ours still unanswered, and orders whose outcome is awaited.
    pub fn in_flight(&self) -> usize {
        self.requests.len() + self.fills.len() + self.awaited.len()
    }

    /// A reconciliation's `ReconcileReq` is under way.
    pub fn reconciling(&self) -> bool {
        self.requests
            .values()
            .any(|p| matches!(p, Purpose::Reconcile))
    }

    /// Whether the session was `Ready` at the last event seen.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The earliest fill deadline (an accepted order whose fill is awaited).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fills.values().map(|(_, d)| *d).min()
    }

    fn send(
        &mut self,
        inst: Instant,
        s: &mut Session,
        p: impl Into<Payload>,
        why: Purpose,
    ) -> bool {
        match s.send_request(inst, p) {
            Ok(id) => {
                self.requests.insert(id, why);
                true
            }
            Err(_) => false,
        }
    }

    /// Asks the broker's open positions: the answer reconciles the side
    /// ([`SideCore::handle_reconciled`]). Not asked again while one is under way.
    pub fn reconcile(&mut self, inst: Instant, s: &mut Session) {
        if self.reconciling() {
            return;
        }
        let req = ProtoOaReconcileReq {
            ctid_trader_account_id: self.account,
            ..Default::default()
        };
        self.send(inst, s, req, Purpose::Reconcile);
    }

    /// An ask whose answer the side needs before its next action is under way (the account,
    /// a symbol's facts, margins, a lookup): the side's actions are done one after the other,
    /// as the shell awaits each.
    fn blocked(&self) -> bool {
        self.account_read.is_some()
            || self.spec.is_some()
            || self.margins.is_some()
            || self.lookup.is_some()
    }

    /// Does every action the side asks, one after the other, until one waits for an answer
    /// (or the side has nothing to do); with the side idle, hands it the next order outcome
    /// known (submission order, after its `AwaitAnswers`) and goes on.
    pub fn drive(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        j: &mut impl JournalSink,
    ) {
        loop {
            if self.blocked() {
                return;
            }
            if let Some(a) = side.poll_action() {
                self.act(inst, now_ms, side, s, j, a);
                continue;
            }
            if self.released > 0 && self.awaited.front().is_some_and(|a| a.2.is_some()) {
                let (coid, _, r) = self.awaited.pop_front().expect("front");
                self.released -= 1;
                side.handle_order_outcome(now_ms / 1000, &coid, r.expect("known"));
                continue;
            }
            return;
        }
    }

    fn act(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        j: &mut impl JournalSink,
        a: SideAction,
    ) {
        match a {
            SideAction::AskAccount => {
                self.account_read = Some(AccountRead::default());
                let t = ProtoOaTraderReq {
                    ctid_trader_account_id: self.account,
                    ..Default::default()
                };
                let r = ProtoOaReconcileReq {
                    ctid_trader_account_id: self.account,
                    ..Default::default()
                };
                let ok = self.send(inst, s, t, Purpose::Trader)
                    && self.send(inst, s, r, Purpose::AccountPositions);
                if !ok {
                    self.account_read = None;
                    side.handle_account(now_ms / 1000, None);
                }
            }
            SideAction::AskSpec { symbol } => {
                let sent = self.ids.get(&symbol).copied().is_some_and(|id| {
                    let req = ProtoOaSymbolByIdReq {
                        ctid_trader_account_id: self.account,
                        symbol_id: vec![id],
                        ..Default::default()
                    };
                    self.send(inst, s, req, Purpose::Spec(symbol.clone()))
                });
                if sent {
                    self.spec = Some(symbol);
                } else {
                    side.handle_spec(&symbol, None);
                }
            }
            SideAction::AskMarket { symbols } => {
                let q: Vec<Option<Quote>> = symbols
                    .iter()
                    .map(|name| {
                        let (bid, ask) = *self.quotes.get(self.ids.get(name)?)?;
                        Some(Quote {
                            bid: bid? as f64 / 100_000.0,
                            ask: ask? as f64 / 100_000.0,
                        })
                    })
                    .collect();
                side.handle_market(&q, self.ready);
            }
            SideAction::JournalIntents { records } => {
                let later = self.sync_after_submit;
                let r = encode_lines(&records)
                    .map_err(|e| e.to_string())
                    .and_then(|b| j.append(&b, !later));
                self.owe_sync |= later && r.is_ok();
                side.handle_journaled(r);
            }
            SideAction::Journal { record, sync } => {
                // A failed write is the sink's to report (the side goes on).
                if let Ok(b) = encode_lines(&[record]) {
                    let _ = j.append(&b, sync);
                }
            }
            SideAction::Submit(o) => {
                let coid = o.req.client_order_id.clone();
                let (key, sent) = match (o.op, o.position_id) {
                    (Op::Close, Some(pid)) => {
                        let req = close_position_req(self.account, pid, o.req.volume);
                        (
                            close_key(pid),
                            self.send(inst, s, req, Purpose::Order(coid.clone())),
                        )
                    }
                    _ => match self.ids.get(&o.req.symbol).copied() {
                        Some(id) => {
                            let req = new_order_req(self.account, id, &o.req);
                            (
                                coid.clone(),
                                self.send(inst, s, req, Purpose::Order(coid.clone())),
                            )
                        }
                        None => (coid.clone(), false),
                    },
                };
                self.counters.orders += u64::from(sent);
                if sent && o.op == Op::Open {
                    self.sent_entries.push((
                        coid.clone(),
                        o.req.symbol.clone(),
                        o.req.volume,
                        o.req.buy,
                    ));
                }
                let known = (!sent).then(|| OrderResult::Rejected {
                    code: "NOT_SENT".into(),
                    msg: format!("{} not queued on the session", o.req.symbol),
                });
                self.awaited.push_back((coid, key, known));
            }
            SideAction::AskMargins { asks } => {
                let mut left = 0;
                let mut got = vec![None; asks.len()];
                for (i, (symbol, volume, _)) in asks.iter().enumerate() {
                    if let Some((m, at)) = self.cached_margin(now_ms, &asks[i]) {
                        got[i] = Some(m);
                        self.margins_used.insert(asks[i].clone(), (at, now_ms));
                        self.counters.margins_cached += 1;
                        continue;
                    }
                    let Some(id) = self.ids.get(symbol).copied() else {
                        continue;
                    };
                    let req = ProtoOaExpectedMarginReq {
                        ctid_trader_account_id: self.account,
                        symbol_id: id,
                        volume: vec![*volume],
                        ..Default::default()
                    };
                    left += usize::from(self.send(inst, s, req, Purpose::Margin(i)));
                }
                self.margins = Some(MarginRead { got, asks, left });
                self.finish_margins(side);
            }
            SideAction::AwaitAnswers => {
                // Every order is on the session; their answers come as events.
                self.released = self.awaited.len();
            }
            SideAction::LookUp(o) => {
                self.counters.lookups += 1;
                let by_coid = o.closes.is_none();
                self.lookup = Some(LookupRead {
                    o: o.clone(),
                    positions: None,
                    deals: None,
                });
                if by_coid {
                    let req = ProtoOaOrderListReq {
                        ctid_trader_account_id: self.account,
                        from_timestamp: Some((o.since * 1000 - 86_400_000).max(0)),
                        to_timestamp: Some(MAX_TIMESTAMP_MS),
                        ..Default::default()
                    };
                    if self.send(inst, s, req, Purpose::LookupOrders) {
                        return;
                    }
                }
                self.lookup_by_positions(inst, now_ms, side, s);
            }
        }
    }

    fn finish_margins(&mut self, side: &mut SideCore) {
        if self.margins.as_ref().is_some_and(|m| m.left == 0) {
            let m = self.margins.take().expect("margins");
            side.handle_margins(&m.got);
        }
    }

    fn lookup_by_positions(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
    ) {
        let Some(since) = self.lookup.as_ref().map(|l| l.o.since) else {
            return;
        };
        let r = ProtoOaReconcileReq {
            ctid_trader_account_id: self.account,
            ..Default::default()
        };
        let d = ProtoOaDealListReq {
            ctid_trader_account_id: self.account,
            from_timestamp: Some(since * 1000),
            to_timestamp: Some(now_ms.min(MAX_TIMESTAMP_MS)),
            max_rows: Some(1000),
            ..Default::default()
        };
        if !(self.send(inst, s, r, Purpose::LookupPositions)
            && self.send(inst, s, d, Purpose::LookupDeals))
        {
            self.lookup = None;
            side.handle_lookup(Err("the session refused the lookup's requests".into()));
        }
    }

    fn finish_lookup(&mut self, side: &mut SideCore) {
        let Some(l) = &self.lookup else { return };
        let (Some(p), Some(d)) = (&l.positions, &l.deals) else {
            return;
        };
        let r = match (p, d) {
            (Ok(p), Ok(d)) => Ok(lookup_in_positions_and_deals(&l.o, p, d, |id| {
                self.name_of(id)
            })),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        self.lookup = None;
        side.handle_lookup(r);
    }

    /// An order's outcome: recorded against its awaited entry (by client order id).
    fn outcome(&mut self, coid: &str, r: OrderResult) {
        match &r {
            OrderResult::Rejected { .. } => self.counters.refused += 1,
            OrderResult::Unknown => self.counters.unknown += 1,
            OrderResult::Filled { .. } => {}
        }
        if let Some(a) = self
            .awaited
            .iter_mut()
            .find(|a| a.0 == coid && a.2.is_none())
        {
            a.2 = Some(r);
        }
    }

    /// A request of ours failed (`why`): its purpose gets a failed answer.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        why: Purpose,
        e: String,
        order: OrderResult,
    ) {
        match why {
            Purpose::Trader => self.account_part(now_ms, side, Some(None), None),
            Purpose::AccountPositions => self.account_part(now_ms, side, None, Some(None)),
            Purpose::Spec(sym) => {
                self.spec = None;
                side.handle_spec(&sym, None);
            }
            Purpose::Margin(_) => {
                if let Some(m) = &mut self.margins {
                    m.left = m.left.saturating_sub(1);
                }
                self.finish_margins(side);
            }
            // Asked again at the entry.
            Purpose::Prefetch(..) => {}
            Purpose::Order(coid) => self.outcome(&coid, order),
            Purpose::LookupOrders => self.lookup_by_positions(inst, now_ms, side, s),
            Purpose::LookupPositions => {
                if let Some(l) = &mut self.lookup {
                    l.positions = Some(Err(e));
                }
                self.finish_lookup(side);
            }
            Purpose::LookupDeals => {
                if let Some(l) = &mut self.lookup {
                    l.deals = Some(Err(e));
                }
                self.finish_lookup(side);
            }
            // Asked again at the next `Ready`.
            Purpose::Reconcile => {}
        }
    }

    fn account_part(
        &mut self,
        now_ms: i64,
        side: &mut SideCore,
        trader: Option<Option<ProtoOaTraderRes>>,
        positions: Option<Option<ProtoOaReconcileRes>>,
    ) {
        let Some(a) = &mut self.account_read else {
            return;
        };
        if trader.is_some() {
            a.trader = trader;
        }
        if positions.is_some() {
            a.positions = positions;
        }
        let (Some(t), Some(p)) = (&a.trader, &a.positions) else {
            return;
        };
        let acc = match (t, p) {
            (Some(t), Some(p)) => {
                if let Some(md) = t.trader.money_digits {
                    self.money_digits = md;
                }
                Some(account_of(t, p, None, self.money_digits))
            }
            _ => None,
        };
        self.account_read = None;
        side.handle_account(now_ms / 1000, acc);
    }

    /// One session event at `inst` (executor clock `now_ms`, Unix ms). The events that answer
    /// the side (its requests' answers, its orders' execution events, spots) are consumed and
    /// the side driven on; the others are handed back (bars, `Ready`, …: the caller's; on
    /// `Ready` the caller reconciles).
    pub fn handle_event(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        j: &mut impl JournalSink,
        ev: Event,
    ) -> Option<Event> {
        self.settle(j);
        let rest = self.consume(inst, now_ms, side, s, ev);
        self.drive(inst, now_ms, side, s, j);
        rest
    }

    fn consume(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        ev: Event,
    ) -> Option<Event> {
        match ev {
            Event::Ready => {
                self.ready = true;
                return Some(Event::Ready);
            }
            Event::Disconnected {
                reason,
                reconnect_in,
            } => {
                self.ready = false;
                return Some(Event::Disconnected {
                    reason,
                    reconnect_in,
                });
            }
            Event::Spot {
                symbol_id,
                bid,
                ask,
                timestamp,
            } => {
                let q = self.quotes.entry(symbol_id).or_default();
                q.0 = bid.or(q.0);
                q.1 = ask.or(q.1);
                return Some(Event::Spot {
                    symbol_id,
                    bid,
                    ask,
                    timestamp,
                });
            }
            Event::Response { id, payload } => {
                let Some(why) = self.requests.remove(&id) else {
                    return Some(Event::Response { id, payload });
                };
                self.answered(inst, now_ms, side, s, why, payload);
            }
            Event::RequestError {
                id,
                code,
                description,
            } => {
                let Some(why) = self.requests.remove(&id) else {
                    return Some(Event::RequestError {
                        id,
                        code,
                        description,
                    });
                };
                let order = OrderResult::Rejected {
                    code: code.to_string(),
                    msg: description.clone().unwrap_or_default(),
                };
                self.failed(inst, now_ms, side, s, why, format!("{code}"), order);
            }
            Event::RequestOutcomeUnknown {
                id,
                payload_type,
                reason,
            } => {
                let Some(why) = self.requests.remove(&id) else {
                    return Some(Event::RequestOutcomeUnknown {
                        id,
                        payload_type,
                        reason,
                    });
                };
                let e = format!("no answer: {reason:?}");
                self.failed(inst, now_ms, side, s, why, e, OrderResult::Unknown);
            }
            Event::RequestNotSent { id, reason } => {
                let Some(why) = self.requests.remove(&id) else {
                    return Some(Event::RequestNotSent { id, reason });
                };
                let order = OrderResult::Rejected {
                    code: "NOT_SENT".into(),
                    msg: format!("{reason:?}"),
                };
                self.failed(
                    inst,
                    now_ms,
                    side,
                    s,
                    why,
                    format!("not sent: {reason:?}"),
                    order,
                );
            }
            Event::Execution { request, event } => {
                let ours = request.and_then(|id| match self.requests.get(&id) {
                    Some(Purpose::Order(c)) => Some((id, c.clone())),
                    _ => None,
                });
                if let Some((id, coid)) = ours {
                    self.requests.remove(&id);
                    match fill_of(&event) {
                        Some(r) => self.outcome(&coid, r),
                        None => {
                            // Accepted: the fill follows under its key.
                            let key = self
                                .awaited
                                .iter()
                                .find(|a| a.0 == coid)
                                .map_or_else(|| coid.clone(), |a| a.1.clone());
                            self.fills.insert(key, (coid, inst + self.fill_timeout));
                        }
                    }
                    return None;
                }
                let (Some(key), Some(r)) = (fill_key(&event), fill_of(&event)) else {
                    return Some(Event::Execution { request, event });
                };
                match self.fills.remove(&key) {
                    Some((coid, _)) => self.outcome(&coid, r),
                    // Not awaited (a late fill of an order looked up): the lookup decides.
                    None => return Some(Event::Execution { request, event }),
                }
            }
            Event::OrderError { request, event } => {
                let ours = request.and_then(|id| match self.requests.get(&id) {
                    Some(Purpose::Order(c)) => Some((id, c.clone())),
                    _ => None,
                });
                let Some((id, coid)) = ours else {
                    return Some(Event::OrderError { request, event });
                };
                self.requests.remove(&id);
                self.outcome(&coid, order_error_result(&event));
            }
            other => return Some(other),
        }
        None
    }

    fn answered(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        why: Purpose,
        payload: Payload,
    ) {
        match (why, payload) {
            (Purpose::Trader, Payload::TraderRes(t)) => {
                self.account_part(now_ms, side, Some(Some(t)), None);
            }
            (Purpose::AccountPositions, Payload::ReconcileRes(r)) => {
                self.account_part(now_ms, side, None, Some(Some(r)));
            }
            (Purpose::Spec(name), Payload::SymbolByIdRes(r)) => {
                let spec = r.symbol.first().map(|x| spec_of(&name, x));
                self.spec = None;
                side.handle_spec(&name, spec);
            }
            (Purpose::Margin(i), Payload::ExpectedMarginRes(m)) => {
                let md = self.money_digits;
                let mut answered = None;
                if let Some(mr) = &mut self.margins {
                    if let Some(k) = mr.asks.get(i) {
                        let v = margin_of(&m, k.1, k.2, md);
                        if let Some(g) = mr.got.get_mut(i) {
                            *g = v;
                        }
                        answered = v.map(|v| (k.clone(), v));
                    }
                    mr.left = mr.left.saturating_sub(1);
                }
                if let Some((k, v)) = answered {
                    self.margins_used.insert(k.clone(), (now_ms, now_ms));
                    self.remember_margin(now_ms, k, v);
                }
                self.finish_margins(side);
            }
            (Purpose::Prefetch(symbol, volume, buy), Payload::ExpectedMarginRes(m)) => {
                if let Some(v) = margin_of(&m, volume, buy, self.money_digits) {
                    self.remember_margin(now_ms, (symbol, volume, buy), v);
                }
            }
            (Purpose::LookupOrders, Payload::OrderListRes(l)) => {
                let coid = self
                    .lookup
                    .as_ref()
                    .map(|l| l.o.client_order_id.clone())
                    .unwrap_or_default();
                match order_with_coid(&l.order, &coid).and_then(|o| order_outcome(o, &[])) {
                    Some(r) => {
                        self.lookup = None;
                        side.handle_lookup(Ok(Some(r)));
                    }
                    None => self.lookup_by_positions(inst, now_ms, side, s),
                }
            }
            (Purpose::LookupPositions, Payload::ReconcileRes(r)) => {
                if let Some(l) = &mut self.lookup {
                    l.positions = Some(Ok(r));
                }
                self.finish_lookup(side);
            }
            (Purpose::LookupDeals, Payload::DealListRes(d)) => {
                if let Some(l) = &mut self.lookup {
                    l.deals = Some(Ok(d));
                }
                self.finish_lookup(side);
            }
            (Purpose::Reconcile, Payload::ReconcileRes(r)) => {
                let positions = positions_of(&r, |id| self.name_of(id));
                self.counters.reconciles += 1;
                side.handle_reconciled(positions);
            }
            (why, p) => {
                let e = format!("unexpected answer {}", p.payload_type());
                let order = OrderResult::Unknown;
                self.failed(inst, now_ms, side, s, why, e, order);
            }
        }
    }

    /// Fills awaited past their deadline at `inst`: their outcome is unknown (looked up by the
    /// side, never resent).
    pub fn handle_timeout(
        &mut self,
        inst: Instant,
        now_ms: i64,
        side: &mut SideCore,
        s: &mut Session,
        j: &mut impl JournalSink,
    ) {
        self.settle(j);
        let due: Vec<String> = self
            .fills
            .iter()
            .filter(|(_, (_, d))| *d <= inst)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some((coid, _)) = self.fills.remove(&k) {
                self.outcome(&coid, OrderResult::Unknown);
            }
        }
        self.drive(inst, now_ms, side, s, j);
    }
}
