//! The engine: policy + risk guard + journal + broker + drift ledger, one signal at a time.
//!
//! It is async only because the broker is; it reads no clock (`now` is a parameter) so tests
//! drive it with a virtual clock against [`crate::paper::PaperBook`].
//!
//! One log line per decision (target `oracle_executor::decision`): `signal` in, `order_sent`,
//! `order_result`, `refusal` with its reason, `ack`.

use std::collections::{BTreeMap, HashMap};

use oracle_ipc::{Ack, Action, Iso, Message, Outcome, Signal, Timeframe};
use tracing::{info, warn};

use crate::broker::{Broker, OrderLookup, OrderReq, OrderResult};
use crate::config::ExecutorConfig;
use crate::drift::{DriftLedger, DriftRow};
use crate::journal::{Journal, Op, Record, Replayed, client_order_id};
use crate::paper::PaperBook;
use crate::policy::{AckKind, ActionName, Exec, Market, ModelKey, Plan, Policy, Refusal};
use crate::risk::RiskGuard;
use crate::volume::SymbolSpec;

/// The drift ledger's `ack` for a streamed bar no SIGNAL was handled for.
pub const NO_SIGNAL: &str = "NO_SIGNAL";

/// Log target of the per-decision lines.
pub const DECISION: &str = "oracle_executor::decision";

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
    /// Intents journaled, by client order id (to explain positions at reconcile).
    intents: HashMap<String, Record>,
    filled: std::collections::HashSet<String>,
    pending: BTreeMap<String, Record>,
    name: &'static str,
    /// Account state and the executor time it was read; reused within [`ACCOUNT_TTL`] unless an
    /// order filled since (20 signals at a bar close cost one account read, not twenty).
    account_cache: Option<(i64, crate::risk::Account)>,
    /// Per model: why real differs from virtual since the last ledger row (e.g. a position
    /// closed outside), written to the drift ledger's `note` once.
    pub notes: HashMap<ModelKey, String>,
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
        let intents = rep.intents.clone();
        let filled = rep.filled.clone();
        Side {
            policy,
            risk,
            broker,
            journal,
            specs: HashMap::new(),
            intents,
            filled,
            pending: rep.pending,
            name,
            account_cache: None,
            notes: HashMap::new(),
        }
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
        let Some(lookup) = self.intents.get(coid).and_then(lookup_of) else {
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

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        now: i64,
        key: &ModelKey,
        bt: i64,
        op: Op,
        action: Action,
        req: OrderReq,
        position_id: Option<u64>,
    ) -> Exec {
        let coid = req.client_order_id.clone();
        let intent = Record::Intent {
            ts: now,
            coid: coid.clone(),
            model: key.clone(),
            op,
            symbol: key.symbol.clone(),
            buy: req.buy,
            action: ActionName(action),
            volume: req.volume,
            position_id,
            bt,
        };
        // fsync BEFORE the wire.
        if let Err(r) = self.journal(&intent) {
            return Exec::Refused(r);
        }
        self.intents.insert(coid.clone(), intent.clone());
        if self.journal.is_some() {
            crate::failpoint::hit(crate::failpoint::Point::AfterIntent);
        }
        info!(target: DECISION, side = self.name, event = "order_sent", model = %key, op = ?op,
            coid = %coid, buy = req.buy, volume = req.volume, base_price = req.base_price,
            slippage_points = req.slippage_points, "order sent");
        let res = match op {
            Op::Open => self.broker.open(&req).await,
            Op::Close => {
                self.broker
                    .close(position_id.unwrap_or(0), req.volume, &coid)
                    .await
            }
        };
        if self.journal.is_some() {
            crate::failpoint::hit(crate::failpoint::Point::AfterFill);
        }
        let exec = match exec_of(&res) {
            Some(e) => e,
            None => {
                let _ = self.journal(&Record::Outcome {
                    coid: coid.clone(),
                    result: "unknown".into(),
                    position_id: None,
                    price: None,
                    volume: None,
                    code: None,
                });
                warn!(target: DECISION, side = self.name, event = "order_unknown", model = %key,
                    coid = %coid, "no answer from the broker: looking the order up (never resent)");
                self.resolve_unknown(&coid).await
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
        let _ = self.journal(&Record::Outcome {
            coid: coid.clone(),
            result: result.into(),
            position_id: pid,
            price,
            volume: vol,
            code,
        });
        if result == "filled" {
            self.filled.insert(coid.clone());
            self.account_cache = None;
        }
        if result != "unknown" {
            self.pending.remove(&coid);
        }
        info!(target: DECISION, side = self.name, event = "order_result", model = %key, coid = %coid,
            result, position_id = pid, price, "order result");
        exec
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
        let acc = self.refresh_risk(now).await;
        let spec = self.spec(&key.symbol).await;
        let quote = self.broker.quote(&key.symbol).map(|q| (q.bid, q.ask));
        let market = Market {
            now,
            spec: spec.as_ref(),
            quote,
            free_margin: acc.map(|a| a.free_margin),
            halt: self.risk.halt(),
            connected: self.broker.connected(),
        };
        let mut plan = self.policy.decide(cfg, key, tf, target, bt, &market);
        // Exit first.
        let close = match plan.close.clone() {
            Some(r) => {
                let req = OrderReq {
                    symbol: key.symbol.clone(),
                    client_order_id: client_order_id(key, bt, Op::Close),
                    label: key.label(),
                    buy: r.action.0.direction() < 0,
                    volume: r.volume,
                    base_price: 0.0,
                    slippage_points: 0,
                };
                Some(
                    self.send(
                        now,
                        key,
                        bt,
                        Op::Close,
                        r.action.0,
                        req,
                        Some(r.position_id),
                    )
                    .await,
                )
            }
            None => None,
        };
        let close_failed = matches!(close, Some(Exec::Refused(_)));
        // Margin for the entry.
        if plan.check_margin
            && !close_failed
            && let Some(Ok(o)) = &plan.entry
        {
            let free = self.account(now).await.map(|a| a.free_margin);
            let need = self
                .broker
                .expected_margin(&key.symbol, o.volume, o.action.direction() > 0)
                .await
                .ok();
            match (need, free) {
                (Some(need), Some(free)) => {
                    if let Err(r) = Policy::margin_check(cfg, need, free) {
                        plan.entry = Some(Err(r));
                    }
                }
                _ => plan.entry = Some(Err(Refusal::BrokerDown)),
            }
        }
        let mut refusal = match (&close, &plan.entry) {
            (Some(Exec::Refused(r)), _) => Some(r.clone()),
            (_, Some(Err(r))) => Some(r.clone()),
            _ => None,
        };
        let open = match (&plan.entry, close_failed) {
            (Some(Ok(o)), false) => {
                let req = OrderReq {
                    symbol: key.symbol.clone(),
                    client_order_id: client_order_id(key, bt, Op::Open),
                    label: key.label(),
                    buy: o.action.direction() > 0,
                    volume: o.volume,
                    base_price: o.base_price,
                    slippage_points: o.slippage_points,
                };
                let e = self.send(now, key, bt, Op::Open, o.action, req, None).await;
                if let Exec::Refused(r) = &e {
                    refusal = Some(r.clone());
                }
                Some(e)
            }
            _ => None,
        };
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
        (ack, plan, refusal)
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
    acks: HashMap<(ModelKey, i64), String>,
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
        Engine {
            cfg,
            live,
            paper,
            drift,
            acks,
            unexplained: HashMap::new(),
            counters: Counters::default(),
        }
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
    pub async fn on_signal(&mut self, now: i64, s: &Signal<'_>) -> SignalAnswer {
        self.counters.signals += 1;
        let (Some(tf), Some(bt)) = (s.tf, s.bar_time) else {
            return SignalAnswer {
                line: ack_line(s, &AckKind::Fail("NO_BAR_TIME".into())),
                duplicate: false,
            };
        };
        let key = ModelKey::new(s.symbol, tf);
        info!(target: DECISION, event = "signal", model = %key, action = %s.action, regime = s.regime,
            virtual_pnl = %s.virtual_pnl, bt = %Iso(bt), seq = s.seq, "signal in");
        if let Some(line) = self.acks.get(&(key.clone(), bt)) {
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
            return SignalAnswer {
                line,
                duplicate: true,
            };
        }
        // Paper beside live sees the live prices.
        if let (Some(l), Some(p)) = (&self.live, &mut self.paper)
            && let Some(q) = l.broker.quote(s.symbol)
        {
            p.broker.set_quote(s.symbol, q.bid, q.ask);
        }
        // Live first (latency), then the paper book.
        let live = match &mut self.live {
            Some(l) => Some(l.handle(&self.cfg, now, &key, tf, s.action, bt).await),
            None => None,
        };
        let paper = match &mut self.paper {
            Some(p) => Some(p.handle(&self.cfg, now, &key, tf, s.action, bt).await),
            None => None,
        };
        let (ack, _plan, refusal) = match (&live, &paper) {
            (Some(l), _) => l.clone(),
            (None, Some(p)) => p.clone(),
            // Neither side: nothing to trade with.
            (None, None) => (
                AckKind::Fail("BROKER_DOWN".into()),
                Plan {
                    key: key.clone(),
                    close: None,
                    entry: None,
                    missed: false,
                    target: s.action,
                    bar_time: bt,
                    check_margin: false,
                },
                Some(Refusal::BrokerDown),
            ),
        };
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
            self.write_drift(s, &key, bt, &line, equity, paper_equity);
            self.explained(&key, bt);
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
        self.acks.insert((key, bt), line.clone());
        if self.acks.len() > 100_000 {
            // Bounded: forget the oldest bar times.
            let mut keys: Vec<_> = self.acks.keys().map(|k| k.1).collect();
            keys.sort_unstable();
            let cut = keys[keys.len() / 2];
            self.acks.retain(|k, _| k.1 > cut);
        }
        SignalAnswer {
            line,
            duplicate: false,
        }
    }
}
