//! The engine: policy + risk guard + journal + broker + drift ledger.
//!
//! It is async only because the broker is; it reads no clock (`now` is a parameter) so tests
//! drive it with a virtual clock against [`crate::paper::PaperBook`].
//!
//! SIGNALs that wait together are handled as one batch ([`Engine::on_signals`]; the shell takes
//! every SIGNAL already queued after the first): every model's plan is decided, then the batch's
//! exits go out together (all intents written with one fsync, all orders on the wire, then all
//! answers awaited; the entries' expected margins are asked together meanwhile), then its
//! entries the same way (an entry whose model's exit failed is not sent). Two SIGNALs of one
//! model never share a batch (the second waits for the first's answer), so every model sees
//! exactly the sequence of decisions a one-at-a-time engine makes; ACKs come back in arrival
//! order. A batch of one is the one-signal path.
//!
//! Memory is flat over a long run: per model, the ACKs of the last [`ACK_MEMORY`] answered bars
//! (a re-sent SIGNAL for an older bar than the model's latest is refused `STALE_SIGNAL`, never
//! executed) and the last [`INTENT_MEMORY`] intents (plus every intent whose outcome is still
//! unknown, until it is resolved).
//!
//! A SIGNAL for a bar later than the latest one streamed on its model's stream (not closed yet,
//! in the future) is answered `ERR|UNKNOWN_BAR` before the policy sees it: it changes no state
//! and is not journaled, so it can never make the model's later signals stale (docs/ipc.md).
//!
//! One log line per decision (target `oracle_executor::decision`): `signal` in, `order_sent`,
//! `order_result`, `refusal` with its reason, `ack`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use oracle_ipc::{Ack, Action, ErrCode, Iso, Message, Outcome, Signal, Timeframe};
use tracing::{info, warn};

use crate::broker::{Broker, OrderLookup, OrderReq, OrderResult};
use crate::config::ExecutorConfig;
use crate::drift::{DriftLedger, DriftRow};
use crate::journal::{
    ACK_MEMORY, INTENT_MEMORY, Journal, Op, Record, Replayed, client_order_id, intent_rank,
};
use crate::paper::PaperBook;
use crate::policy::{AckKind, ActionName, Exec, Market, ModelKey, Plan, Policy, Refusal};
use crate::risk::RiskGuard;
use crate::server::err_line;
use crate::volume::SymbolSpec;

/// The drift ledger's `ack` for a streamed bar no SIGNAL was handled for.
pub const NO_SIGNAL: &str = "NO_SIGNAL";

/// Log target of the per-decision lines.
pub const DECISION: &str = "oracle_executor::decision";

/// A model's journaled last bar this far (seconds) after the executor's clock, and later than
/// every bar streamed, is not a bar that was ever streamed (a future-dated SIGNAL journaled by
/// an executor before bar times were checked): it is ignored rather than refusing every later
/// signal of the model `STALE_SIGNAL`. A week: far beyond any broker clock running ahead.
pub const FUTURE_LAST_BAR: i64 = 7 * 86_400;

/// One side of the engine: a policy trading one book (live broker or paper).
#[derive(Debug)]
pub struct Side<B> {
    /// Policy state.
    pub policy: Policy,
    /// Risk guard.
    pub risk: RiskGuard,
    /// The book.
    pub broker: B,
    journal: Option<Journal>,
    specs: HashMap<String, SymbolSpec>,
    /// Intents journaled, by client order id (to explain positions at reconcile): the last
    /// [`INTENT_MEMORY`] per model, and every pending one.
    intents: HashMap<String, Record>,
    /// Per model, the client order ids in `intents`, oldest first.
    intent_order: HashMap<ModelKey, VecDeque<String>>,
    /// Client order ids in `intents` whose outcome is `filled`.
    filled: HashSet<String>,
    /// Intents whose outcome is not known yet (in flight, or unknown and not yet found):
    /// reconciliation looks them up. Never trimmed; an entry leaves when its outcome is known.
    pending: BTreeMap<String, Record>,
    name: &'static str,
    /// Account state and the executor time it was read; reused within [`ACCOUNT_TTL`] unless an
    /// order filled since (20 signals at a bar close cost one account read, not twenty).
    account_cache: Option<(i64, crate::risk::Account)>,
    /// Per model: why real differs from virtual since the last ledger row (e.g. a position
    /// closed outside), written to the drift ledger's `note` once.
    pub notes: HashMap<ModelKey, String>,
}

/// What a [`Side`] keeps per order and per model (see [`Side::retained`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Intents remembered.
    pub intents: usize,
    /// Filled client order ids remembered.
    pub filled: usize,
    /// Intents whose outcome is not known yet.
    pub pending: usize,
    /// Model states.
    pub models: usize,
    /// Drift notes not yet written.
    pub notes: usize,
}

/// One SIGNAL of a batch, as a side sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The model.
    pub key: ModelKey,
    /// Its timeframe.
    pub tf: Timeframe,
    /// The virtual target.
    pub target: Action,
    /// The signal's bar time.
    pub bt: i64,
}

/// An order of a batch, ready for the journal and the wire.
struct Order {
    /// Index of its signal in the batch.
    idx: usize,
    key: ModelKey,
    bt: i64,
    op: Op,
    action: Action,
    req: OrderReq,
    position_id: Option<u64>,
}

/// How long (executor seconds) an account read is reused.
pub const ACCOUNT_TTL: i64 = 1;

fn exec_of(r: &OrderResult) -> Option<Exec> {
    match r {
        OrderResult::Filled {
            position_id,
            price,
            volume,
        } => Some(Exec::Filled {
            position_id: *position_id,
            price: *price,
            volume: *volume,
        }),
        OrderResult::Rejected { code, msg } => Some(Exec::Refused(Refusal::Broker {
            code: code.clone(),
            msg: msg.clone(),
        })),
        OrderResult::Unknown => None,
    }
}

/// The lookup of a journaled intent.
fn lookup_of(r: &Record) -> Option<OrderLookup> {
    let Record::Intent {
        ts,
        coid,
        model,
        symbol,
        buy,
        volume,
        position_id,
        op,
        ..
    } = r
    else {
        return None;
    };
    Some(OrderLookup {
        client_order_id: coid.clone(),
        label: model.label(),
        symbol: symbol.clone(),
        buy: *buy,
        volume: *volume,
        closes: if *op == Op::Close { *position_id } else { None },
        since: ts - 60,
    })
}

impl<B: Broker> Side<B> {
    /// A side; `replayed` from its journal (if any).
    pub fn new(
        name: &'static str,
        cfg: &ExecutorConfig,
        broker: B,
        journal: Option<(Journal, Replayed)>,
    ) -> Self {
        let (journal, rep) = match journal {
            Some((j, r)) => (Some(j), r),
            None => (None, Replayed::default()),
        };
        let mut policy = Policy::new();
        policy.models = rep.models.clone();
        let mut risk = RiskGuard::new(cfg.risk.clone(), rep.risk.map(|r| r.0));
        if let Some((_, ds, anchor)) = rep.risk {
            risk.restore_day(ds, anchor);
        }
        let mut order: Vec<(&String, &Record)> = rep.intents.iter().collect();
        order.sort_by_key(|(_, r)| intent_rank(r));
        let mut side = Side {
            policy,
            risk,
            broker,
            journal,
            specs: HashMap::new(),
            intents: HashMap::new(),
            intent_order: HashMap::new(),
            filled: HashSet::new(),
            pending: rep.pending.clone(),
            name,
            account_cache: None,
            notes: HashMap::new(),
        };
        for (coid, r) in order {
            side.remember_intent(coid, r.clone());
        }
        side.filled = rep
            .filled
            .iter()
            .filter(|c| side.intents.contains_key(*c))
            .cloned()
            .collect();
        side
    }

    /// Remembers an intent; forgets the model's oldest beyond [`INTENT_MEMORY`] that are not
    /// pending.
    fn remember_intent(&mut self, coid: &str, r: Record) {
        let Record::Intent { model, .. } = &r else {
            return;
        };
        let q = self.intent_order.entry(model.clone()).or_default();
        if self.intents.insert(coid.to_string(), r).is_none() {
            q.push_back(coid.to_string());
        }
        while q.len() > INTENT_MEMORY {
            let Some(i) = q.iter().position(|c| !self.pending.contains_key(c)) else {
                break;
            };
            if let Some(c) = q.remove(i) {
                self.intents.remove(&c);
                self.filled.remove(&c);
            }
        }
    }

    /// Sizes of what this side keeps per order (tests: memory stays flat over a long run).
    pub fn retained(&self) -> Retained {
        Retained {
            intents: self.intents.len(),
            filled: self.filled.len(),
            pending: self.pending.len(),
            models: self.policy.models.len(),
            notes: self.notes.len(),
        }
    }

    /// fsyncs of this side's journal (0 without one): a test-visible metric.
    pub fn journal_syncs(&self) -> u64 {
        self.journal.as_ref().map_or(0, Journal::syncs)
    }

    fn journal(&mut self, r: &Record) -> Result<(), Refusal> {
        if let Some(j) = &mut self.journal
            && let Err(e) = j.append(r)
        {
            warn!(target: DECISION, side = self.name, error = %e, "journal write failed: order not sent");
            return Err(Refusal::Broker {
                code: "JOURNAL".into(),
                msg: e.to_string(),
            });
        }
        Ok(())
    }

    async fn spec(&mut self, symbol: &str) -> Option<SymbolSpec> {
        if let Some(s) = self.specs.get(symbol) {
            return Some(s.clone());
        }
        let s = self.broker.symbol(symbol).await?;
        self.specs.insert(symbol.to_string(), s.clone());
        Some(s)
    }

    /// (position name, unrealised P&L) of a model for the drift ledger. The P&L comes from the
    /// book when it knows it, else from the live quote: (exit side − entry) × units, in the quote
    /// currency.
    pub fn position_view(&self, key: &ModelKey) -> (String, f64) {
        let Some(r) = self.policy.models.get(key).and_then(|m| m.real.clone()) else {
            return ("FLAT".into(), 0.0);
        };
        let pnl = self.broker.position_pnl(r.position_id).unwrap_or_else(|| {
            let units = r.volume as f64 / 100.0;
            match self.broker.quote(&key.symbol) {
                Some(q) if r.action.0.direction() > 0 => (q.bid - r.price) * units,
                Some(q) => (r.price - q.ask) * units,
                None => 0.0,
            }
        });
        (r.action.0.as_str().to_string(), pnl)
    }

    /// The account, read at most once per [`ACCOUNT_TTL`] while no order fills.
    async fn account(&mut self, now: i64) -> Option<crate::risk::Account> {
        if let Some((t, a)) = self.account_cache
            && (0..=ACCOUNT_TTL).contains(&(now - t))
        {
            return Some(a);
        }
        let a = self.broker.account().await.ok()?;
        self.account_cache = Some((now, a));
        Some(a)
    }

    /// Refreshes the account and the risk guard.
    pub async fn refresh_risk(&mut self, now: i64) -> Option<crate::risk::Account> {
        let acc = self.account(now).await?;
        let before = self.risk.day();
        let (halt, _) = self.risk.update(now, acc);
        if let Some(h) = halt {
            warn!(target: DECISION, side = self.name, event = "halted", reason = h.code(),
                equity = acc.equity, "{}", Refusal::Halted(h));
        }
        if self.risk.day() != before
            && let (Some(initial), Some((ds, anchor))) = (self.risk.initial(), self.risk.day())
        {
            let _ = self.journal(&Record::Risk {
                initial,
                day_start: ds,
                anchor,
            });
        }
        Some(acc)
    }

    /// Resolves an order whose answer never came: looks it up, never resends.
    async fn resolve_unknown(&mut self, coid: &str) -> Exec {
        let Some(lookup) = self
            .intents
            .get(coid)
            .or_else(|| self.pending.get(coid))
            .and_then(lookup_of)
        else {
            return Exec::Refused(Refusal::OutcomeUnknown);
        };
        let symbol = lookup.symbol.clone();
        match self.broker.find_order(&lookup).await {
            Ok(Some(r)) => exec_of(&r).unwrap_or(Exec::Refused(Refusal::OutcomeUnknown)),
            Ok(None) => Exec::Refused(Refusal::Broker {
                code: "NO_ANSWER".into(),
                msg: "no answer and no trace in the deal list: not executed".into(),
            }),
            Err(e) => {
                self.policy.unreconciled.insert(
                    symbol,
                    format!("order {coid} outcome unknown and the lookup failed: {e}"),
                );
                Exec::Refused(Refusal::OutcomeUnknown)
            }
        }
    }

    /// Sends one batch of orders (all exits, or all entries, of a batch of signals): every
    /// intent is written and fsynced at once (group commit) BEFORE the first order goes on the
    /// wire; then every order is submitted; then all answers are awaited together; then each
    /// outcome is journaled (unsynced, see [`Journal::append_unsynced`]). An unknown outcome is
    /// looked up, never resent. Returns the outcomes in the orders' order.
    async fn send_batch(&mut self, now: i64, orders: &[Order]) -> Vec<Exec> {
        let sent = self.submit_batch(now, orders).await;
        self.finish_batch(orders, sent).await
    }

    /// The first half of [`Side::send_batch`]: the intents fsynced, then the orders on the wire.
    /// `Err`: the journal write failed, nothing was sent (the orders' outcomes).
    async fn submit_batch(
        &mut self,
        now: i64,
        orders: &[Order],
    ) -> Result<Vec<B::Ticket>, Vec<Exec>> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let intents: Vec<Record> = orders
            .iter()
            .map(|o| Record::Intent {
                ts: now,
                coid: o.req.client_order_id.clone(),
                model: o.key.clone(),
                op: o.op,
                symbol: o.key.symbol.clone(),
                buy: o.req.buy,
                action: ActionName(o.action),
                volume: o.req.volume,
                position_id: o.position_id,
                bt: o.bt,
            })
            .collect();
        // fsync BEFORE the wire: the whole batch's intents, one fsync.
        if let Some(j) = &mut self.journal
            && let Err(e) = j.append_batch(&intents)
        {
            warn!(target: DECISION, side = self.name, error = %e, orders = orders.len(),
                "journal write failed: orders not sent");
            let r = Refusal::Broker {
                code: "JOURNAL".into(),
                msg: e.to_string(),
            };
            return Err(orders.iter().map(|_| Exec::Refused(r.clone())).collect());
        }
        for (o, r) in orders.iter().zip(intents) {
            let coid = &o.req.client_order_id;
            self.pending.insert(coid.clone(), r.clone());
            self.remember_intent(coid, r);
        }
        let mut tickets = Vec::with_capacity(orders.len());
        for o in orders {
            if self.journal.is_some() {
                // The N-th intent is durable and its order not yet on the wire.
                crate::failpoint::hit(crate::failpoint::Point::AfterIntent);
            }
            let req = &o.req;
            info!(target: DECISION, side = self.name, event = "order_sent", model = %o.key, op = ?o.op,
                coid = %req.client_order_id, buy = req.buy, volume = req.volume, base_price = req.base_price,
                slippage_points = req.slippage_points, batch = orders.len(), "order sent");
            tickets.push(match o.op {
                Op::Open => self.broker.submit_open(req).await,
                Op::Close => {
                    self.broker
                        .submit_close(o.position_id.unwrap_or(0), req.volume, &req.client_order_id)
                        .await
                }
            });
        }
        Ok(tickets)
    }

    /// The second half of [`Side::send_batch`]: all answers awaited together, then each outcome
    /// journaled (looked up when unknown).
    async fn finish_batch(
        &mut self,
        orders: &[Order],
        sent: Result<Vec<B::Ticket>, Vec<Exec>>,
    ) -> Vec<Exec> {
        let tickets = match sent {
            Ok(t) => t,
            Err(refused) => return refused,
        };
        if orders.is_empty() {
            return Vec::new();
        }
        let results = self.broker.answers(tickets).await;
        let mut out = Vec::with_capacity(orders.len());
        for (o, res) in orders.iter().zip(results) {
            if self.journal.is_some() {
                crate::failpoint::hit(crate::failpoint::Point::AfterFill);
            }
            out.push(self.settle(o, res).await);
        }
        out
    }

    /// Journals the outcome of one answered order (looking it up when the answer is unknown).
    async fn settle(&mut self, o: &Order, res: OrderResult) -> Exec {
        let coid = &o.req.client_order_id;
        let key = &o.key;
        let exec = match exec_of(&res) {
            Some(e) => e,
            None => {
                self.journal_outcome(Record::Outcome {
                    coid: coid.clone(),
                    result: "unknown".into(),
                    position_id: None,
                    price: None,
                    volume: None,
                    code: None,
                });
                warn!(target: DECISION, side = self.name, event = "order_unknown", model = %key,
                    coid = %coid, "no answer from the broker: looking the order up (never resent)");
                self.resolve_unknown(coid).await
            }
        };
        let (result, pid, price, vol, code) = match &exec {
            Exec::Filled {
                position_id,
                price,
                volume,
            } => (
                "filled",
                Some(*position_id),
                Some(*price),
                Some(*volume),
                None,
            ),
            Exec::Refused(Refusal::OutcomeUnknown) => ("unknown", None, None, None, None),
            Exec::Refused(r) => ("rejected", None, None, None, Some(r.code())),
        };
        self.journal_outcome(Record::Outcome {
            coid: coid.clone(),
            result: result.into(),
            position_id: pid,
            price,
            volume: vol,
            code,
        });
        if result == "filled" {
            if self.intents.contains_key(coid) {
                self.filled.insert(coid.clone());
            }
            self.account_cache = None;
        }
        if result != "unknown" {
            self.pending.remove(coid);
        }
        info!(target: DECISION, side = self.name, event = "order_result", model = %key, coid = %coid,
            result, position_id = pid, price, "order result");
        exec
    }

    /// An order outcome, unsynced (the next batch's fsync makes it durable; see
    /// [`Journal::append_unsynced`] for why losing it to a power cut is safe).
    fn journal_outcome(&mut self, r: Record) {
        if let Some(j) = &mut self.journal
            && let Err(e) = j.append_unsynced(&r)
        {
            warn!(target: DECISION, side = self.name, error = %e, "journal write failed (order outcome)");
        }
    }

    /// Runs one signal through policy and book. Returns the ACK and the plan.
    pub async fn handle(
        &mut self,
        cfg: &ExecutorConfig,
        now: i64,
        key: &ModelKey,
        tf: Timeframe,
        target: Action,
        bt: i64,
    ) -> (AckKind, Plan, Option<Refusal>) {
        let item = Item {
            key: key.clone(),
            tf,
            target,
            bt,
        };
        let mut v = self
            .handle_batch(cfg, now, std::slice::from_ref(&item))
            .await;
        v.pop().unwrap_or_else(|| {
            (
                AckKind::Fail("INTERNAL".into()),
                Plan::nothing(key, target, bt),
                None,
            )
        })
    }

    /// Runs a batch of signals (at most one per model) through policy and book; returns each
    /// one's ACK, plan and refusal, in the items' order.
    ///
    /// 1. Every plan is decided against one account read (as the one-signal path would, since
    ///    no order of the batch has been sent yet).
    /// 2. The exits go out as one batch ([`Side::send_batch`]); while they are on the wire, the
    ///    expected margins of the entries are asked, all together (see step 4).
    /// 3. With more than one signal: the risk guard is refreshed (the account is read again when
    ///    an exit filled), and an entry is refused when the guard is now HALTED or its symbol
    ///    became unreconciled (conservative: a one-at-a-time engine would have seen that before
    ///    deciding the later models).
    /// 4. Margin: each entry, in arrival order, must fit in the free margin less the expected
    ///    margin of the entries before it in the batch. The expected margins are asked together
    ///    ([`Broker::expected_margins`]: one round trip, not one per entry), for every entry the
    ///    plans of step 1 left to check, while the exits of step 2 are on the wire (intents
    ///    fsynced, orders submitted, answers not yet awaited): the margin an entry needs does not
    ///    depend on the exits; the free margin does, and is read after them. An entry whose
    ///    margin the broker did not give is refused `BROKER_DOWN`.
    /// 5. The entries (those whose model's exit did not fail) go out as one batch.
    /// 6. Each model's outcome is applied and its state journaled, in the items' order.
    pub async fn handle_batch(
        &mut self,
        cfg: &ExecutorConfig,
        now: i64,
        items: &[Item],
    ) -> Vec<(AckKind, Plan, Option<Refusal>)> {
        let n = items.len();
        let acc = self.refresh_risk(now).await;
        let mut plans = Vec::with_capacity(n);
        for it in items {
            let spec = self.spec(&it.key.symbol).await;
            let quote = self.broker.quote(&it.key.symbol).map(|q| (q.bid, q.ask));
            let market = Market {
                now,
                spec: spec.as_ref(),
                quote,
                free_margin: acc.map(|a| a.free_margin),
                halt: self.risk.halt(),
                connected: self.broker.connected(),
            };
            plans.push(
                self.policy
                    .decide(cfg, &it.key, it.tf, it.target, it.bt, &market),
            );
        }
        // Exits first, all together.
        let closes: Vec<Order> = plans
            .iter()
            .enumerate()
            .filter_map(|(k, p)| {
                let r = p.close.as_ref()?;
                let key = &items[k].key;
                Some(Order {
                    idx: k,
                    key: key.clone(),
                    bt: items[k].bt,
                    op: Op::Close,
                    action: r.action.0,
                    req: OrderReq {
                        symbol: key.symbol.clone(),
                        client_order_id: client_order_id(key, items[k].bt, Op::Close),
                        label: key.label(),
                        buy: r.action.0.direction() < 0,
                        volume: r.volume,
                        base_price: 0.0,
                        slippage_points: 0,
                    },
                    position_id: Some(r.position_id),
                })
            })
            .collect();
        // The entries' margins, asked together while the exits are on the wire: the margin an
        // entry needs does not depend on the exits (only the free margin does, read after them).
        let asked: Vec<(usize, (String, i64, bool))> = plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.check_margin)
            .filter_map(|(k, p)| {
                let Some(Ok(o)) = &p.entry else { return None };
                Some((
                    k,
                    (
                        items[k].key.symbol.clone(),
                        o.volume,
                        o.action.direction() > 0,
                    ),
                ))
            })
            .collect();
        let sent = self.submit_batch(now, &closes).await;
        let mut margins: Vec<Option<f64>> = vec![None; n];
        if !asked.is_empty() {
            let asks: Vec<(String, i64, bool)> = asked.iter().map(|(_, a)| a.clone()).collect();
            let answers = self.broker.expected_margins(&asks).await;
            for ((k, _), a) in asked.iter().zip(answers) {
                margins[*k] = a.ok();
            }
        }
        let mut close_exec: Vec<Option<Exec>> = vec![None; n];
        for (o, e) in closes.iter().zip(self.finish_batch(&closes, sent).await) {
            close_exec[o.idx] = Some(e);
        }
        let close_failed: Vec<bool> = close_exec
            .iter()
            .map(|c| matches!(c, Some(Exec::Refused(_))))
            .collect();
        // What the exits changed, for the entries of the other models (see step 3).
        if n > 1 {
            let _ = self.refresh_risk(now).await;
            let halt = self.risk.halt();
            for (k, plan) in plans.iter_mut().enumerate() {
                if close_failed[k] || !matches!(plan.entry, Some(Ok(_))) {
                    continue;
                }
                let refused = match (halt, self.policy.unreconciled.get(&items[k].key.symbol)) {
                    (Some(h), _) => Some(Refusal::Halted(h)),
                    (None, Some(why)) => Some(Refusal::Unreconciled(why.clone())),
                    (None, None) => None,
                };
                if let Some(r) = refused {
                    plan.entry = Some(Err(r));
                    plan.check_margin = false;
                }
            }
        }
        // Margin for the entries, each counting the batch's earlier entries as used.
        let mut committed = 0.0;
        for (k, plan) in plans.iter_mut().enumerate() {
            if !plan.check_margin || close_failed[k] || !matches!(plan.entry, Some(Ok(_))) {
                continue;
            }
            let free = self.account(now).await.map(|a| a.free_margin);
            match (margins[k], free) {
                (Some(need), Some(free)) => {
                    match Policy::margin_check(cfg, need, free - committed) {
                        Ok(()) => committed += need,
                        Err(r) => plan.entry = Some(Err(r)),
                    }
                }
                _ => plan.entry = Some(Err(Refusal::BrokerDown)),
            }
        }
        // Then the entries, all together (not for a model whose exit failed).
        let opens: Vec<Order> = plans
            .iter()
            .enumerate()
            .filter(|(k, _)| !close_failed[*k])
            .filter_map(|(k, p)| {
                let Some(Ok(o)) = &p.entry else { return None };
                let key = &items[k].key;
                Some(Order {
                    idx: k,
                    key: key.clone(),
                    bt: items[k].bt,
                    op: Op::Open,
                    action: o.action,
                    req: OrderReq {
                        symbol: key.symbol.clone(),
                        client_order_id: client_order_id(key, items[k].bt, Op::Open),
                        label: key.label(),
                        buy: o.action.direction() > 0,
                        volume: o.volume,
                        base_price: o.base_price,
                        slippage_points: o.slippage_points,
                    },
                    position_id: None,
                })
            })
            .collect();
        let mut open_exec: Vec<Option<Exec>> = vec![None; n];
        for (o, e) in opens.iter().zip(self.send_batch(now, &opens).await) {
            open_exec[o.idx] = Some(e);
        }
        let mut out = Vec::with_capacity(n);
        for (k, plan) in plans.into_iter().enumerate() {
            let key = &items[k].key;
            let (close, open) = (close_exec[k].take(), open_exec[k].take());
            let mut refusal = match (&close, &plan.entry) {
                (Some(Exec::Refused(r)), _) => Some(r.clone()),
                (_, Some(Err(r))) => Some(r.clone()),
                _ => None,
            };
            if let Some(Exec::Refused(r)) = &open {
                refusal = Some(r.clone());
            }
            let ack = self.policy.complete(&plan, close, open);
            if let Some(state) = self.policy.models.get(key).cloned()
                && let Some(j) = &mut self.journal
                && let Err(e) = j.append_unsynced(&Record::Model {
                    model: key.clone(),
                    state,
                })
            {
                warn!(target: DECISION, side = self.name, error = %e, "journal write failed (model state)");
            }
            out.push((ack, plan, refusal));
        }
        out
    }

    /// Asks, off the orders' path, the margins of the entries `items`' models could make at
    /// their next transition (every intensity, both sides), so a reversal's entries find the
    /// broker's answers fresh and their batch fits the 50 requests a second
    /// ([`Broker::prefetch_margins`]: only stale ones are asked).
    pub async fn prefetch_next_entries(&mut self, cfg: &ExecutorConfig, items: &[Item]) {
        let mut next: Vec<(String, i64, bool)> = Vec::new();
        for it in items {
            let (Some(sc), Some(spec)) = (
                cfg.symbols.get(&it.key.symbol),
                self.spec(&it.key.symbol).await,
            ) else {
                continue;
            };
            for lots in sc.lots {
                let Ok(v) = crate::volume::lots_to_volume(lots, &spec) else {
                    continue;
                };
                for buy in [true, false] {
                    let ask = (it.key.symbol.clone(), v, buy);
                    if !next.contains(&ask) {
                        next.push(ask);
                    }
                }
            }
        }
        self.broker.prefetch_margins(&next).await;
    }

    /// Reconciles the journal's view with the broker's positions. Run at start and after every
    /// reconnect, before any order. Symbols whose state cannot be explained are refused (listed
    /// in `policy.unreconciled`); the others go on.
    pub async fn reconcile(&mut self, _now: i64) -> Result<(), crate::broker::BrokerError> {
        let positions = self.broker.reconcile().await?;
        self.policy.unreconciled.clear();
        // 1. Orders whose outcome is unknown: look them up.
        let pending: Vec<Record> = self.pending.values().cloned().collect();
        for r in pending {
            let Some(lookup) = lookup_of(&r) else {
                continue;
            };
            let Record::Intent {
                coid,
                model,
                op,
                action,
                position_id,
                symbol,
                ..
            } = r
            else {
                continue;
            };
            let found = match self.broker.find_order(&lookup).await {
                Ok(f) => f,
                Err(e) => {
                    warn!(target: DECISION, side = self.name, event = "unreconciled", symbol = %symbol,
                        coid = %coid, "order outcome unknown and the lookup failed ({e}): symbol not traded");
                    self.policy.unreconciled.insert(
                        symbol.clone(),
                        format!("lookup of order {coid} failed: {e}"),
                    );
                    continue;
                }
            };
            let st = self.policy.models.entry(model.clone()).or_default();
            match (op, found) {
                (
                    Op::Open,
                    Some(OrderResult::Filled {
                        position_id: pid,
                        price,
                        volume,
                    }),
                ) => {
                    info!(target: DECISION, side = self.name, event = "reconciled", model = %model, coid = %coid,
                        position_id = pid, "order sent before the restart was filled: position adopted (not resent)");
                    if st.real.is_none() {
                        st.real = Some(crate::policy::RealPos {
                            position_id: pid,
                            action,
                            volume,
                            price,
                        });
                        st.missed = false;
                    }
                    let _ = self.journal(&Record::Outcome {
                        coid: coid.clone(),
                        result: "filled".into(),
                        position_id: Some(pid),
                        price: Some(price),
                        volume: Some(volume),
                        code: None,
                    });
                }
                (Op::Close, Some(OrderResult::Filled { .. })) => {
                    if st.real.as_ref().map(|r| r.position_id) == position_id {
                        st.real = None;
                    }
                    let _ = self.journal(&Record::Outcome {
                        coid: coid.clone(),
                        result: "filled".into(),
                        position_id,
                        price: None,
                        volume: None,
                        code: None,
                    });
                }
                _ => {
                    info!(target: DECISION, side = self.name, event = "reconciled", model = %model, coid = %coid,
                        "order sent before the restart never executed: not resent (entry missed)");
                    if op == Op::Open {
                        st.missed = true;
                    }
                    let _ = self.journal(&Record::Outcome {
                        coid: coid.clone(),
                        result: "not_executed".into(),
                        position_id: None,
                        price: None,
                        volume: None,
                        code: None,
                    });
                }
            }
            self.pending.remove(&coid);
        }
        // 2. Positions the journal says we hold.
        let by_id: HashMap<u64, &crate::broker::BrokerPosition> =
            positions.iter().map(|p| (p.position_id, p)).collect();
        let mut known = std::collections::HashSet::new();
        for (model, st) in self.policy.models.iter_mut() {
            if let Some(r) = &st.real {
                if by_id.contains_key(&r.position_id) {
                    known.insert(r.position_id);
                } else {
                    warn!(target: DECISION, side = self.name, event = "reconciled", model = %model,
                        position_id = r.position_id,
                        "position closed outside the executor (stop-out, manual close): real is now FLAT, waiting for the next transition");
                    self.notes.insert(
                        model.clone(),
                        format!(
                            "position {} closed outside the executor (stop-out, manual close)",
                            r.position_id
                        ),
                    );
                    st.real = None;
                    st.missed = st.target.is_some_and(|t| t.0 != Action::Wait);
                }
            }
        }
        // 3. Positions with our label that nothing explains.
        for p in &positions {
            if !p.label.starts_with("oracle:") || known.contains(&p.position_id) {
                continue;
            }
            // Explained by its client order id, or (brokers that do not echo it on positions) by
            // label, side and volume against an Open intent whose fill was never recorded.
            let by_coid = self.intents.get(&p.client_order_id).cloned();
            let by_label = || {
                self.intents
                    .iter()
                    .filter(|(c, _)| !self.filled.contains(*c))
                    .filter_map(|(_, r)| match r {
                        Record::Intent {
                            model,
                            op: Op::Open,
                            buy,
                            volume,
                            ts,
                            ..
                        } if model.label() == p.label && *buy == p.buy && *volume == p.volume => {
                            Some((*ts, r.clone()))
                        }
                        _ => None,
                    })
                    .max_by_key(|(ts, _)| *ts)
                    .map(|(_, r)| r)
            };
            let adopt = by_coid.or_else(by_label);
            match adopt {
                Some(Record::Intent {
                    model,
                    op: Op::Open,
                    action,
                    coid,
                    ..
                }) if self
                    .policy
                    .models
                    .get(&model)
                    .is_none_or(|s| s.real.is_none()) =>
                {
                    let st = self.policy.models.entry(model.clone()).or_default();
                    st.real = Some(crate::policy::RealPos {
                        position_id: p.position_id,
                        action,
                        volume: p.volume,
                        price: p.price,
                    });
                    st.missed = false;
                    self.filled.insert(coid.clone());
                    info!(target: DECISION, side = self.name, event = "reconciled", model = %model,
                        position_id = p.position_id, coid = %coid, "position of a journaled order adopted");
                }
                _ => {
                    let why = format!(
                        "position {} ({} {} volume {}) carries our label {} but no journaled order explains it",
                        p.position_id,
                        p.symbol,
                        if p.buy { "BUY" } else { "SELL" },
                        p.volume,
                        p.label
                    );
                    warn!(target: DECISION, side = self.name, event = "unreconciled", symbol = %p.symbol,
                        "symbol not traded: {why}");
                    self.policy.unreconciled.insert(p.symbol.clone(), why);
                }
            }
        }
        for (model, st) in &self.policy.models {
            if let Some(j) = &mut self.journal {
                let _ = j.append(&Record::Model {
                    model: model.clone(),
                    state: st.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Counters exposed for tests and the status line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Signals received.
    pub signals: u64,
    /// Duplicate signals answered from the cache.
    pub duplicates: u64,
    /// Signals whose entry or exit was refused (a `refusal` log line each).
    pub refusals: u64,
}

/// The engine.
#[derive(Debug)]
pub struct Engine<B> {
    /// Configuration.
    pub cfg: ExecutorConfig,
    /// Live side (None in `--paper` alone).
    pub live: Option<Side<B>>,
    /// Paper side (alone or beside live).
    pub paper: Option<Side<PaperBook>>,
    drift: Option<DriftLedger>,
    /// Per model, the ACK lines of its last [`ACK_MEMORY`] answered bars, by bar time.
    acks: HashMap<ModelKey, BTreeMap<i64, String>>,
    /// Per model: streamed bars without a drift-ledger row yet (oldest first).
    unexplained: HashMap<ModelKey, std::collections::VecDeque<i64>>,
    /// Counters.
    pub counters: Counters,
}

/// Answer to a SIGNAL.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalAnswer {
    /// The line to send back.
    pub line: String,
    /// Answered from the duplicate cache.
    pub duplicate: bool,
}

fn ack_line(s: &Signal<'_>, kind: &AckKind) -> String {
    let outcome = match kind {
        AckKind::Ok { ticket, price } => Outcome::Ok {
            ticket: *ticket,
            price: *price,
        },
        AckKind::Fail(r) => Outcome::Fail { reason: r },
        AckKind::WaitSync(r) => Outcome::WaitSync { reason: r },
        AckKind::Hold => Outcome::Hold,
    };
    let m = Message::Ack(Ack {
        symbol: s.symbol,
        action: s.action,
        outcome,
        tf: s.tf,
        bar_time: s.bar_time,
        seq: s.seq,
    });
    // A reason code or price that would not encode is a bug; fall back to a plain FAIL.
    m.to_line()
        .unwrap_or_else(|_| format!("ACK|{}|{}|FAIL|INTERNAL", s.symbol, s.action))
}

impl<B: Broker> Engine<B> {
    #[allow(clippy::too_many_arguments)]
    fn write_drift(
        &mut self,
        s: &Signal<'_>,
        key: &ModelKey,
        bt: i64,
        line: &str,
        equity: Option<f64>,
        paper_equity: Option<f64>,
    ) {
        let real = self.live.as_ref().map(|l| l.position_view(key));
        let paper = self.paper.as_ref().map(|p| p.position_view(key));
        let note = match (&mut self.live, &mut self.paper) {
            (Some(l), _) => l.notes.remove(key),
            (None, Some(p)) => p.notes.remove(key),
            _ => None,
        };
        let Some(d) = &mut self.drift else { return };
        let row = DriftRow {
            bar_time: Iso(bt).to_string(),
            model: key.to_string(),
            virtual_pos: s.action.as_str().into(),
            virtual_pnl: s.virtual_pnl.as_f64(),
            real_pos: real.as_ref().map_or("-".into(), |r| r.0.clone()),
            real_pnl: real.map_or(0.0, |r| r.1),
            paper_pos: paper.as_ref().map_or("-".into(), |r| r.0.clone()),
            paper_pnl: paper.map_or(0.0, |r| r.1),
            equity,
            paper_equity,
            note,
            // Status and reason: `OK`, `HOLD`, `FAIL|SPREAD`, `WAIT_SYNC|MISSED_ENTRY`.
            ack: {
                let f: Vec<&str> = line.split('|').collect();
                match f.get(3).copied() {
                    Some(st @ ("FAIL" | "WAIT_SYNC")) => {
                        format!("{st}|{}", f.get(4).copied().unwrap_or(""))
                    }
                    Some(st) => st.to_string(),
                    None => String::new(),
                }
            },
        };
        if let Err(e) = d.write(&row) {
            warn!(error = %e, "drift ledger write failed");
        }
    }

    /// A `NO_SIGNAL` ledger row: the bar was streamed but no SIGNAL was handled for it in time.
    /// No I/O besides the ledger: equities are the last ones read (`null` when none).
    fn write_no_signal(&mut self, key: &ModelKey, bt: i64) {
        let real = self.live.as_ref().map(|l| l.position_view(key));
        let paper = self.paper.as_ref().map(|p| p.position_view(key));
        let equity = match (&self.live, &self.paper) {
            (Some(l), _) => l.account_cache.map(|(_, a)| a.equity),
            (None, Some(p)) => p.account_cache.map(|(_, a)| a.equity),
            _ => None,
        };
        let paper_equity = self
            .paper
            .as_ref()
            .and_then(|p| p.account_cache.map(|(_, a)| a.equity));
        let Some(d) = &mut self.drift else { return };
        let row = DriftRow {
            bar_time: Iso(bt).to_string(),
            model: key.to_string(),
            virtual_pos: "-".into(),
            virtual_pnl: 0.0,
            real_pos: real.as_ref().map_or("-".into(), |r| r.0.clone()),
            real_pnl: real.map_or(0.0, |r| r.1),
            paper_pos: paper.as_ref().map_or("-".into(), |r| r.0.clone()),
            paper_pnl: paper.map_or(0.0, |r| r.1),
            equity,
            paper_equity,
            note: Some(
                "no SIGNAL for this streamed bar (predictor down, not connected, or late)".into(),
            ),
            ack: NO_SIGNAL.into(),
        };
        if let Err(e) = d.write(&row) {
            warn!(error = %e, "drift ledger write failed");
        }
    }

    /// A bar was streamed to the predictor (broadcast as a live BAR): it will get a ledger row.
    /// A bar with no SIGNAL handled by the time its stream's next bar but one is streamed gets a
    /// `NO_SIGNAL` row (one bar of grace, so a slow but present predictor is never reported).
    pub fn bar_streamed(&mut self, key: &ModelKey, bt: i64) {
        if self.drift.is_none() {
            return;
        }
        let q = self.unexplained.entry(key.clone()).or_default();
        q.push_back(bt);
        let mut due = Vec::new();
        while q.len() > 2 {
            due.extend(q.pop_front());
        }
        for t in due {
            self.write_no_signal(key, t);
        }
    }

    /// Writes `NO_SIGNAL` rows for every streamed bar still without one (clean shutdown).
    pub fn flush_unexplained(&mut self) {
        let mut all: Vec<(ModelKey, i64)> = self
            .unexplained
            .drain()
            .flat_map(|(k, q)| q.into_iter().map(move |t| (k.clone(), t)))
            .collect();
        all.sort_by_key(|(k, t)| (*t, k.to_string()));
        for (k, t) in all {
            self.write_no_signal(&k, t);
        }
    }

    fn explained(&mut self, key: &ModelKey, bt: i64) {
        if let Some(q) = self.unexplained.get_mut(key) {
            q.retain(|&t| t != bt);
        }
    }

    /// An engine. `acks` from the live (or paper-alone) journal.
    pub fn new(
        cfg: ExecutorConfig,
        live: Option<Side<B>>,
        paper: Option<Side<PaperBook>>,
        acks: HashMap<(ModelKey, i64), String>,
        drift: Option<DriftLedger>,
    ) -> Self {
        let mut e = Engine {
            cfg,
            live,
            paper,
            drift,
            acks: HashMap::new(),
            unexplained: HashMap::new(),
            counters: Counters::default(),
        };
        for ((key, bt), line) in acks {
            e.remember_ack(key, bt, line);
        }
        e
    }

    /// Remembers an answered bar's ACK; forgets the model's oldest beyond [`ACK_MEMORY`].
    fn remember_ack(&mut self, key: ModelKey, bt: i64, line: String) {
        let m = self.acks.entry(key).or_default();
        m.insert(bt, line);
        while m.len() > ACK_MEMORY {
            m.pop_first();
        }
    }

    /// ACK lines remembered, over all models (tests: memory stays flat over a long run).
    pub fn acks_len(&self) -> usize {
        self.acks.values().map(BTreeMap::len).sum()
    }

    /// Streamed bars waiting for their drift-ledger row, over all models.
    pub fn unexplained_len(&self) -> usize {
        self.unexplained.values().map(VecDeque::len).sum()
    }

    /// Is this symbol served (in the config)?
    pub fn knows(&self, symbol: &str) -> bool {
        self.cfg.symbols.contains_key(symbol)
    }

    /// Reconciles both sides (start, reconnect).
    pub async fn reconcile(&mut self, now: i64) -> Result<(), crate::broker::BrokerError> {
        if let Some(p) = &mut self.paper {
            p.reconcile(now).await?;
        }
        if let Some(l) = &mut self.live {
            l.reconcile(now).await?;
        }
        Ok(())
    }

    /// A closed bar was streamed: feeds freshness tracking and the paper prices (paper alone).
    pub fn on_bar(&mut self, key: &ModelKey, time: i64, close: f64, spread: f64) {
        if let Some(l) = &mut self.live {
            l.policy.handle_bar(key, time);
        }
        if let Some(p) = &mut self.paper {
            p.policy.handle_bar(key, time);
            if self.live.is_none() {
                p.broker.set_quote(&key.symbol, close, close + spread);
            }
        }
    }

    /// Handles one SIGNAL (TF and BT required, checked by the caller). Logs one line per step.
    /// A batch of one: see [`Engine::on_signals`].
    pub async fn on_signal(&mut self, now: i64, s: &Signal<'_>) -> SignalAnswer {
        let mut v = self.on_signals(now, std::slice::from_ref(s)).await;
        v.pop().unwrap_or_else(|| SignalAnswer {
            line: ack_line(s, &AckKind::Fail("INTERNAL".into())),
            duplicate: false,
        })
    }

    /// Handles the SIGNALs that were waiting together, in arrival order; returns one answer per
    /// signal, in the same order, each the line the one-at-a-time path gives for the same broker
    /// answers.
    ///
    /// A signal answered without the broker (no bar time, a duplicate, a stale re-send) is
    /// answered at once; the others are executed as batches ([`Side::handle_batch`]) holding at
    /// most one signal per model: a second signal of a model already in the batch first waits
    /// for the batch to complete (its duplicate check and its policy see the first one's result).
    pub async fn on_signals(&mut self, now: i64, signals: &[Signal<'_>]) -> Vec<SignalAnswer> {
        let mut answers: Vec<Option<SignalAnswer>> = vec![None; signals.len()];
        let mut group: Vec<(usize, ModelKey, Timeframe, i64)> = Vec::new();
        for (i, s) in signals.iter().enumerate() {
            if let (Some(tf), Some(_)) = (s.tf, s.bar_time) {
                let key = ModelKey::new(s.symbol, tf);
                if group.iter().any(|g| g.1 == key) {
                    let g = std::mem::take(&mut group);
                    self.run_group(now, signals, &g, &mut answers).await;
                }
            }
            match self.answer_at_once(now, s) {
                Ok(a) => answers[i] = Some(a),
                Err((key, tf, bt)) => group.push((i, key, tf, bt)),
            }
        }
        self.run_group(now, signals, &group, &mut answers).await;
        answers
            .into_iter()
            .zip(signals)
            .map(|(a, s)| {
                a.unwrap_or_else(|| SignalAnswer {
                    line: ack_line(s, &AckKind::Fail("INTERNAL".into())),
                    duplicate: false,
                })
            })
            .collect()
    }

    /// The answer of a signal that needs no order (`Ok`), else its model, timeframe and bar
    /// time (`Err`: it goes to the broker).
    fn answer_at_once(
        &mut self,
        now: i64,
        s: &Signal<'_>,
    ) -> Result<SignalAnswer, (ModelKey, Timeframe, i64)> {
        self.counters.signals += 1;
        let (Some(tf), Some(bt)) = (s.tf, s.bar_time) else {
            return Ok(SignalAnswer {
                line: ack_line(s, &AckKind::Fail("NO_BAR_TIME".into())),
                duplicate: false,
            });
        };
        let key = ModelKey::new(s.symbol, tf);
        info!(target: DECISION, event = "signal", model = %key, action = %s.action, regime = s.regime,
            virtual_pnl = %s.virtual_pnl, bt = %Iso(bt), seq = s.seq, "signal in");
        if let Some(line) = self.acks.get(&key).and_then(|m| m.get(&bt)) {
            self.counters.duplicates += 1;
            if line.split('|').nth(2) != Some(s.action.as_str()) {
                warn!(target: DECISION, event = "conflicting_duplicate", model = %key, bt = %Iso(bt),
                    action = %s.action, ack = %line,
                    "SIGNAL for an already answered bar with a different action: answered with the first ACK, not executed (predictor inconsistency)");
            }
            info!(target: DECISION, event = "duplicate", model = %key, bt = %Iso(bt), ack = %line,
                "duplicate SIGNAL: same ACK again, not re-executed");
            let line = line.clone();
            // Its row was written when it was first answered (possibly before a restart).
            self.explained(&key, bt);
            return Ok(SignalAnswer {
                line,
                duplicate: true,
            });
        }
        let (last, streamed) = match (&self.live, &self.paper) {
            (Some(l), _) => (
                l.policy.models.get(&key).and_then(|m| m.last_bt),
                l.policy.last_bar(&key),
            ),
            (None, Some(p)) => (
                p.policy.models.get(&key).and_then(|m| m.last_bt),
                p.policy.last_bar(&key),
            ),
            _ => (None, None),
        };
        // A bar later than the latest one streamed on the model's stream (not closed yet, in the
        // future): refused before the policy, so it changes nothing and is not journaled (a
        // future bar time kept as the model's last would refuse every later signal).
        if streamed.is_none_or(|t| bt > t) {
            self.counters.refusals += 1;
            let line = err_line(ErrCode::UnknownBar, &format!("{key}|{}", Iso(bt)));
            warn!(target: DECISION, event = "refusal", model = %key, action = %s.action, reason = "UNKNOWN_BAR",
                bt = %Iso(bt), last_streamed = ?streamed.map(Iso),
                "{}: {} refused: its bar time is not a bar streamed on this model's stream (not closed yet, or in the future): not executed, not journaled", key, s.action);
            return Ok(SignalAnswer {
                line,
                duplicate: false,
            });
        }
        // A model's last bar later than every bar streamed and more than [`FUTURE_LAST_BAR`]
        // after the executor's clock was never a streamed bar: a future-dated SIGNAL an older
        // executor journaled. It must not refuse the model's signals (exits are never
        // refused): ignored here, replaced by this signal's bar.
        let last = match (last, streamed) {
            (Some(l), Some(t)) if l > t && l > now.saturating_add(FUTURE_LAST_BAR) => {
                warn!(target: DECISION, event = "future_last_bar_ignored", model = %key, last_bt = %Iso(l),
                    last_streamed = %Iso(t),
                    "{}: the journaled last bar {} is later than any bar streamed: ignored (a future-dated SIGNAL journaled by an older executor)", key, Iso(l));
                None
            }
            (l, _) => l,
        };
        // Older than the model's latest handled bar and no longer remembered: a re-send of an
        // old bar (or an out-of-order one). The newer signal governs the position; this one is
        // refused and changes nothing (its bar's ledger row was written back then).
        if let Some(last) = last.filter(|&l| bt < l) {
            self.counters.refusals += 1;
            let line = ack_line(s, &AckKind::Fail("STALE_SIGNAL".into()));
            warn!(target: DECISION, event = "refusal", model = %key, action = %s.action, reason = "STALE_SIGNAL",
                bt = %Iso(bt), last_bt = %Iso(last),
                "{}: {} refused: signal for a bar older than the model's latest handled one ({}) and no longer remembered: not executed", key, s.action, Iso(last));
            info!(target: DECISION, event = "ack", model = %key, ack = %line, "ack out");
            return Ok(SignalAnswer {
                line,
                duplicate: false,
            });
        }
        Err((key, tf, bt))
    }

    /// Executes a group of signals (at most one per model) as one batch on each side, then
    /// writes their ledger rows, journals and remembers their ACKs, in arrival order.
    async fn run_group(
        &mut self,
        now: i64,
        signals: &[Signal<'_>],
        group: &[(usize, ModelKey, Timeframe, i64)],
        answers: &mut [Option<SignalAnswer>],
    ) {
        if group.is_empty() {
            return;
        }
        let items: Vec<Item> = group
            .iter()
            .map(|(i, key, tf, bt)| Item {
                key: key.clone(),
                tf: *tf,
                target: signals[*i].action,
                bt: *bt,
            })
            .collect();
        // Paper beside live sees the live prices.
        if let (Some(l), Some(p)) = (&self.live, &mut self.paper) {
            for it in &items {
                if let Some(q) = l.broker.quote(&it.key.symbol) {
                    p.broker.set_quote(&it.key.symbol, q.bid, q.ask);
                }
            }
        }
        // Live first (latency), then the paper book.
        let mut live = match &mut self.live {
            Some(l) => Some(l.handle_batch(&self.cfg, now, &items).await),
            None => None,
        };
        let mut paper = match &mut self.paper {
            Some(p) => Some(p.handle_batch(&self.cfg, now, &items).await),
            None => None,
        };
        for (k, (i, key, _, bt)) in group.iter().enumerate() {
            let (s, bt) = (&signals[*i], *bt);
            let answered = match (&mut live, &mut paper) {
                (Some(l), _) => l.get_mut(k).map(|x| (x.0.clone(), x.2.take())),
                (None, Some(p)) => p.get_mut(k).map(|x| (x.0.clone(), x.2.take())),
                (None, None) => None,
            };
            // Neither side: nothing to trade with.
            let (ack, refusal) = answered.unwrap_or((
                AckKind::Fail("BROKER_DOWN".into()),
                Some(Refusal::BrokerDown),
            ));
            let line = ack_line(s, &ack);
            if let Some(r) = &refusal {
                self.counters.refusals += 1;
                warn!(target: DECISION, event = "refusal", model = %key, action = %s.action, reason = %r.code(),
                    bt = %Iso(bt), "{}: {} refused: {r}", key, s.action);
            }
            if let AckKind::WaitSync(reason) = &ack {
                info!(target: DECISION, event = "wait_sync", model = %key, action = %s.action, reason = %reason,
                    "{}: {} not entered: the entry at the transition was missed or refused; waiting for the next transition (never chased)", key, s.action);
            }
            info!(target: DECISION, event = "ack", model = %key, ack = %line, "ack out");
            // Drift ledger.
            if self.drift.is_some() {
                let equity = match (&mut self.live, &mut self.paper) {
                    (Some(l), _) => l.account(now).await.map(|a| a.equity),
                    (None, Some(p)) => p.account(now).await.map(|a| a.equity),
                    _ => None,
                };
                let paper_equity = match &mut self.paper {
                    Some(p) => p.account(now).await.map(|a| a.equity),
                    None => None,
                };
                self.write_drift(s, key, bt, &line, equity, paper_equity);
                self.explained(key, bt);
            }
            // Remember the answer (journal of the answering side).
            let side_journal = match (&mut self.live, &mut self.paper) {
                (Some(l), _) => l.journal.as_mut(),
                (None, Some(p)) => p.journal.as_mut(),
                _ => None,
            };
            if let Some(j) = side_journal {
                let _ = j.append_unsynced(&Record::Ack {
                    model: key.clone(),
                    bt,
                    line: line.clone(),
                });
            }
            self.remember_ack(key.clone(), bt, line.clone());
            answers[*i] = Some(SignalAnswer {
                line,
                duplicate: false,
            });
        }
        // Both sides' orders are out and answered: prepare the next transitions' margins.
        if let Some(l) = &mut self.live {
            l.prefetch_next_entries(&self.cfg, &items).await;
        }
    }
}
