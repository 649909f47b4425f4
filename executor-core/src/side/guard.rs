//! The prop-firm guard in a side's core, and the flatten (sans-IO).
//!
//! With a `risk.preset`, the side holds a [`Guard`] instead of the plain risk guard's limits:
//! created at the first account read (initial balance: the config's, else the journal's, else
//! that balance) or restored from the journal's last [`Record::Guard`]; fed every account read
//! ([`SideCore::apply_risk`]) and every quote of a symbol with an open position
//! ([`SideCore::handle_quote`]: the last account read's equity moved by the change of each open
//! position's floating P&L since that read); each fill that opens is a trading day. When the
//! guard halts (a limit's used share reached its action share, 80% by default) every position
//! is closed ([`SideCore::start_flatten`]: a batch of closes only, intents journaled and synced
//! before the wire, never refused by the halt) and entries are refused with the limit's code
//! until the halt ends: a daily one at the next midnight (Europe/Prague), a maximum-loss one by
//! a person ([`SideCore::resume`]). The guard's state is journaled each time it changes (its day,
//! anchor, halt, trading days), so a halt survives a restart.
//!
//! **Invariants:** halted ⇒ no entry is sent; a close is never refused by a halt; a client order
//! id is sent at most once (a flatten's ids are per model and second, `…-F`).

use std::collections::{HashMap, HashSet};

use oracle_ipc::Action;
use tracing::{info, warn};

use super::{Batch, DECISION, Order, Phase, SideAction, SideCore, Stage};
use crate::broker::OrderReq;
use crate::config::ExecutorConfig;
use crate::currency::Currencies;
use crate::journal::{Op, Record, Replayed, flatten_order_id};
use crate::key::{KeyText, StreamKey, by_name};
use crate::operator::{GuardStatus, HaltStatus, risk_headroom};
use crate::policy::{Exec, RealPos};
use crate::propfirm::{Guard, GuardState, Limit, Rules, Verdict};
use crate::risk::{Account, Halt};

/// What a side keeps for its prop-firm guard besides the guard.
#[derive(Debug)]
pub(super) struct GuardSide {
    /// The preset's rules (`None`: no preset, the plain risk guard).
    pub(super) rules: Option<Rules>,
    /// The initial balance: the config's, else the journal's (else the first balance read).
    initial: Option<f64>,
    /// The config a flatten's batch carries (its closes use none of it).
    cfg: ExecutorConfig,
    /// The last account read's balance, and its equity less the positions' P&L at the quotes
    /// known then (commissions, swaps; 0 when a position had no quote).
    mark: Option<(f64, f64)>,
    /// Each open position's floating P&L at the last account read.
    marks: HashMap<u64, f64>,
    /// Latest quote (bid, ask) per symbol.
    quotes: HashMap<String, (f64, f64)>,
    /// The deposit currency and the symbols' assets (live: the broker's), to convert a
    /// position's P&L from its quote currency ([`SideCore::set_currencies`]); `None`: as quoted.
    currencies: Option<Currencies>,
    /// Positions closed (filled) whose model still holds them until its batch completes: their
    /// P&L is in the balance now, not in the equity's floating part.
    closed: HashSet<u64>,
    /// The balance and equity the guard last saw.
    seen: Option<(f64, f64)>,
    /// The guard's day (its start, UTC ms) and the lowest equity it saw in it: the day's
    /// [`Record::GuardDay`] at its end.
    low: Option<(i64, f64)>,
    /// Flattens asked while a batch ran (symbol filter, why): started when it ends.
    pending: Vec<(Option<String>, String)>,
    /// The second of the last flatten and the models it closed (their ids are per second).
    flattened: (i64, HashSet<StreamKey>),
}

impl GuardSide {
    /// The guard restored from the journal (with a preset), and the rest.
    pub(super) fn new(
        name: &'static str,
        cfg: &ExecutorConfig,
        rep: &Replayed,
    ) -> (Option<Guard>, GuardSide) {
        let rules = Rules::from_risk(&cfg.risk);
        let guard = match (&rules, &rep.guard) {
            (Some(rules), Some(st)) => match Guard::restore(rules.clone(), st.clone()) {
                Ok(g) => Some(g),
                Err(e) => {
                    warn!(target: DECISION, side = name, error = %e,
                        "the journal's prop-firm guard state cannot be restored: a fresh guard starts at the first account read");
                    None
                }
            },
            _ => None,
        };
        let initial = cfg
            .risk
            .initial_balance
            .or(rep.guard.as_ref().map(|g| g.initial))
            .or(rep.risk.map(|r| r.0));
        (
            guard,
            GuardSide {
                rules,
                initial,
                cfg: cfg.clone(),
                mark: None,
                marks: HashMap::new(),
                quotes: HashMap::new(),
                currencies: None,
                closed: HashSet::new(),
                seen: None,
                low: None,
                pending: Vec::new(),
                flattened: (i64::MIN, HashSet::new()),
            },
        )
    }
}

/// A position's floating P&L at a quote: (exit side − entry) × units, in the quote currency.
fn pnl(r: &RealPos, (bid, ask): (f64, f64)) -> f64 {
    let units = r.volume as f64 / 100.0;
    if r.action.0.direction() > 0 {
        (bid - r.price) * units
    } else {
        (r.price - ask) * units
    }
}

/// The state changed in more than its last balance (journal it).
fn changed(before: &GuardState, after: &GuardState) -> bool {
    let mut b = before.clone();
    b.last_balance = after.last_balance;
    b != *after
}

impl SideCore {
    /// Queues an action (for the operator's commands).
    pub(crate) fn push_action(&mut self, a: SideAction) {
        self.actions.push_back(a);
    }

    /// The account's deposit currency and the traded symbols' assets (the live broker's, read at
    /// start): the guard then converts each position's P&L between two account reads from its
    /// quote currency at a conversion symbol's quote ([`Currencies::to_deposit`]). `None` (paper,
    /// not read): the P&L as quoted.
    pub fn set_currencies(&mut self, c: Option<Currencies>) {
        self.gs.currencies = c;
    }

    /// What [`SideCore::set_currencies`] gave.
    pub fn currencies(&self) -> Option<&Currencies> {
        self.gs.currencies.as_ref()
    }

    /// `r`'s P&L at quote `q` in the deposit currency when it can be converted (see
    /// [`Currencies`]), else in `symbol`'s quote currency (the next account read corrects it).
    fn deposit_pnl(&self, symbol: &str, r: &RealPos, q: (f64, f64)) -> f64 {
        let p = pnl(r, q);
        self.gs
            .currencies
            .as_ref()
            .and_then(|c| c.to_deposit(symbol, p, &self.gs.quotes))
            .unwrap_or(p)
    }

    /// Open positions on this side (of `symbol`, or all).
    pub fn open_positions(&self, symbol: Option<&str>) -> usize {
        self.policy
            .models
            .iter()
            .filter(|(k, st)| st.real.is_some() && symbol.is_none_or(|s| k.symbol == s))
            .count()
    }

    /// The halt entries are refused with now: a person's, else the prop-firm guard's (with a
    /// preset), else the plain risk guard's.
    pub fn halt_now(&self) -> Option<Halt> {
        if let Some(h) = &self.operator_halt {
            return Some(Halt::Operator { at_ms: h.at_ms });
        }
        if self.gs.rules.is_none() {
            return self.risk.halt();
        }
        let g = self.guard.as_ref()?;
        let h = g.halted()?;
        Some(match h.limit {
            Limit::DailyLoss => Halt::DailyLoss {
                equity: h.equity,
                floor: g.daily_floor().unwrap_or(f64::NAN),
                day_start: g.state().day_start_ms.div_euclid(1000),
            },
            Limit::MaxLoss => Halt::MaxDrawdown {
                equity: h.equity,
                floor: g.max_loss_floor(),
            },
        })
    }

    /// Each open position's floating P&L at the quotes known (positions without one: none).
    fn position_pnls(&self) -> HashMap<u64, f64> {
        self.policy
            .models
            .iter()
            .filter_map(|(k, st)| {
                let r = st.real.as_ref()?;
                if self.gs.closed.contains(&r.position_id) {
                    return None;
                }
                let q = self.gs.quotes.get(k.symbol.as_str())?;
                Some((r.position_id, self.deposit_pnl(k.symbol.as_str(), r, *q)))
            })
            .collect()
    }

    /// An account read at `now` (Unix s) with a preset: the guard's base for the quotes, then
    /// the guard.
    pub(super) fn apply_guard_account(&mut self, now: i64, acc: Account) {
        let held: HashSet<u64> = self
            .policy
            .models
            .values()
            .filter_map(|st| st.real.as_ref().map(|r| r.position_id))
            .collect();
        self.gs.closed.retain(|id| held.contains(id));
        let open = held.len() - self.gs.closed.len();
        let marks = self.position_pnls();
        // What the broker's equity has beyond the positions' P&L at the quotes known
        // (commissions, swaps, conversion): kept while the quotes move, when every position
        // had a quote at the read.
        let residual = if marks.len() == open {
            acc.equity - acc.balance - marks.values().sum::<f64>()
        } else {
            0.0
        };
        self.gs.mark = Some((acc.balance, residual));
        self.gs.marks = marks;
        self.apply_guard(now.saturating_mul(1000), acc.balance, acc.equity);
    }

    /// An order of this side filled: an entry is a trading day; an exit's realised P&L moves
    /// the guard's balance until the next account read (the quotes no longer carry it).
    pub(super) fn guard_on_fill(
        &mut self,
        now: i64,
        op: Op,
        key: &StreamKey,
        position_id: Option<u64>,
        exec: &Exec,
    ) {
        let Exec::Filled { price, .. } = exec else {
            return;
        };
        match op {
            Op::Open => {
                if let Some(g) = &mut self.guard {
                    g.on_open(now.saturating_mul(1000));
                }
            }
            Op::Close if self.gs.rules.is_some() => {
                let Some(r) = self
                    .policy
                    .models
                    .get(key)
                    .and_then(|st| st.real.as_ref())
                    .filter(|r| Some(r.position_id) == position_id)
                else {
                    return;
                };
                let realised = self.deposit_pnl(key.symbol.as_str(), r, (*price, *price));
                let id = r.position_id;
                if let Some((balance, _)) = &mut self.gs.mark {
                    *balance += realised;
                }
                self.gs.marks.remove(&id);
                self.gs.closed.insert(id);
            }
            Op::Close => {}
        }
    }

    /// An account read outside a batch (asked after a flatten): the guard's, with a preset.
    pub(super) fn apply_guard_read(&mut self, now: i64, acc: Account) {
        if self.gs.rules.is_some() {
            self.apply_guard_account(now, acc);
        }
    }

    /// Balance and equity now: the last account read's balance and residual (see
    /// [`SideCore::apply_guard_account`]) plus each open position's floating P&L at its latest
    /// quote; `None` while a position has had no quote at all (just after a restart).
    fn estimate(&self) -> Option<(f64, f64)> {
        let (balance, residual) = self.gs.mark?;
        let mut equity = balance + residual;
        for (k, st) in &self.policy.models {
            let Some(r) = &st.real else { continue };
            if self.gs.closed.contains(&r.position_id) {
                continue;
            }
            equity += match self.gs.quotes.get(k.symbol.as_str()) {
                Some(q) => self.deposit_pnl(k.symbol.as_str(), r, *q),
                // Not quoted since the read: its P&L then; never quoted (just after a restart):
                // not known, the guard waits for its quote or the next account read.
                None => *self.gs.marks.get(&r.position_id)?,
            };
        }
        Some((balance, equity))
    }

    /// A quote of `symbol` at `now_ms` (UTC ms). With a preset and an open position on the
    /// symbol, the guard is evaluated on the equity estimated from the last account read (its
    /// equity moved by the change of each open position's floating P&L since) and may halt and
    /// flatten (drive the side after this). Returns the guard's verdict when it was evaluated.
    pub fn handle_quote(
        &mut self,
        now_ms: i64,
        symbol: &str,
        bid: f64,
        ask: f64,
    ) -> Option<Verdict> {
        if !(bid.is_finite() && ask.is_finite() && bid > 0.0 && ask > 0.0) {
            warn!(target: DECISION, side = self.name, symbol, bid, ask, "quote ignored: not a price");
            return None;
        }
        self.gs.quotes.insert(symbol.to_string(), (bid, ask));
        self.gs.rules.as_ref()?;
        if self.open_positions(Some(symbol)) == 0 {
            return None;
        }
        let (balance, equity) = self.estimate()?;
        self.apply_guard(now_ms, balance, equity)
    }

    /// The guard at `now_ms` with `balance` and `equity`: journals its state when it changed,
    /// and while it is halted closes every open position.
    fn apply_guard(&mut self, now_ms: i64, balance: f64, equity: f64) -> Option<Verdict> {
        let rules = self.gs.rules.clone()?;
        if self.guard.is_none() {
            let initial = self.gs.initial.unwrap_or(balance);
            match Guard::new(rules, initial, now_ms) {
                Ok(g) => self.guard = Some(g),
                Err(e) => {
                    warn!(target: DECISION, side = self.name, error = %e, "prop-firm guard not started");
                    return None;
                }
            }
        }
        let g = self.guard.as_mut()?;
        let before = g.state().clone();
        let floor_before = g.daily_floor();
        let v = match g.on_equity(now_ms, balance, equity) {
            Ok(v) => v,
            Err(e) => {
                warn!(target: DECISION, side = self.name, error = %e, "prop-firm guard: update ignored");
                return None;
            }
        };
        let after = g.state().clone();
        self.gs.seen = Some((balance, equity));
        self.last_verdict = Some(v);
        if let Some(dc) = v.day_closed {
            self.journal_guard_day(dc, before.day_anchor, floor_before);
        }
        self.gs.low = Some(match self.gs.low {
            Some((day, low)) if day == after.day_start_ms => (day, low.min(equity)),
            _ => (after.day_start_ms, equity),
        });
        if changed(&before, &after) {
            self.push_action(SideAction::Journal {
                record: Record::Guard { state: after },
                sync: true,
            });
        }
        match (before.halted, v.halted) {
            (None, Some(h)) | (Some(_), Some(h)) if before.halted != Some(h) => {
                let head = match h.limit {
                    Limit::DailyLoss => v.daily,
                    Limit::MaxLoss => v.max_loss,
                };
                warn!(target: DECISION, side = self.name, event = "halted", reason = h.limit.code(),
                    equity, floor = head.floor, share_used = head.share_used,
                    "prop-firm guard: {} at {:.0}% of its allowance (acts at {:.0}%): closing every position, entries refused",
                    h.limit.code(), head.share_used * 100.0, self.gs.rules.as_ref().map_or(0.0, |r| r.act_at_share) * 100.0);
            }
            (Some(h), None) => {
                info!(target: DECISION, side = self.name, event = "halt_lifted", reason = h.limit.code(),
                    "prop-firm guard: the day ended, its halt is lifted");
            }
            _ => {}
        }
        if let Some(h) = v.halted
            && self.open_positions(None) > 0
        {
            let why = format!("prop-firm guard {}", h.limit.code());
            self.start_flatten(now_ms.div_euclid(1000), None, &why);
        }
        Some(v)
    }

    /// Midnight of the guard's day (`now_ms` at or after [`Guard::next_day_start`]): closes the
    /// day with the last balance seen (a daily halt ends). Returns whether a day was closed.
    pub fn handle_guard_day_end(&mut self, now_ms: i64) -> bool {
        let balance = self.gs.seen.map(|s| s.0);
        let Some(g) = self.guard.as_mut() else {
            return false;
        };
        let balance = balance
            .or(g.state().last_balance)
            .unwrap_or(g.state().initial);
        let before = g.state().halted;
        let anchor = g.state().day_anchor;
        let floor = g.daily_floor();
        let dc = match g.on_day_end(now_ms, balance) {
            Ok(Some(dc)) => dc,
            _ => return false,
        };
        let state = g.state().clone();
        self.journal_guard_day(dc, anchor, floor);
        if let (Some(h), None) = (before, state.halted) {
            info!(target: DECISION, side = self.name, event = "halt_lifted", reason = h.limit.code(),
                "prop-firm guard: midnight, its daily halt is lifted");
        }
        self.push_action(SideAction::Journal {
            record: Record::Guard { state },
            sync: true,
        });
        true
    }

    /// The day `dc` closed as one [`Record::GuardDay`] (its anchor and floor as they were in
    /// it, the lowest equity seen in it).
    fn journal_guard_day(
        &mut self,
        dc: crate::propfirm::DayClosed,
        anchor: Option<f64>,
        floor: Option<f64>,
    ) {
        let low_equity = self
            .gs
            .low
            .filter(|(day, _)| *day == dc.day_start_ms)
            .map(|(_, low)| low);
        self.push_action(SideAction::Journal {
            record: Record::GuardDay {
                day_start_ms: dc.day_start_ms,
                anchor,
                floor,
                low_equity,
                eod_balance: dc.eod_balance,
            },
            sync: true,
        });
    }

    /// Lifts a person's halt and the guard's (journaled); the codes lifted.
    pub fn resume(&mut self, _now_ms: i64) -> Vec<String> {
        let mut lifted = Vec::new();
        if let Some(h) = self.operator_halt.take() {
            lifted.push(format!("HALTED_OPERATOR (by {})", h.origin));
        }
        if let Some(g) = self.guard.as_mut()
            && let Some(h) = g.resume()
        {
            lifted.push(h.limit.code().to_string());
            let state = g.state().clone();
            self.push_action(SideAction::Journal {
                record: Record::Guard { state },
                sync: true,
            });
        }
        if let Some(h) = self.risk.halt() {
            // The plain guard: a person's resume lifts its halt too (it re-trips while the loss
            // stays past its floor).
            self.risk.clear_halt();
            lifted.push(h.code().to_string());
        }
        lifted
    }

    /// Closes every open position (of `symbol`, or all) at `now` (Unix s): a batch of closes
    /// only, never refused by a halt; each closed model then waits for its next transition
    /// (never chased). While a batch runs, it starts when the batch's result is taken. Returns
    /// the positions it closes.
    pub fn start_flatten(&mut self, now: i64, symbol: Option<&str>, why: &str) -> usize {
        if self.gs.flattened.0 != now {
            self.gs.flattened = (now, HashSet::new());
        }
        let mut targets: Vec<(StreamKey, RealPos)> = self
            .policy
            .models
            .iter()
            .filter(|(k, _)| symbol.is_none_or(|s| k.symbol == s))
            .filter(|(k, _)| !self.gs.flattened.1.contains(*k))
            .filter_map(|(k, st)| Some((*k, st.real.clone()?)))
            .collect();
        targets.sort_by(|a, b| by_name(&a.0, &b.0));
        if targets.is_empty() {
            return 0;
        }
        if self.batch.is_some() {
            let p = (symbol.map(str::to_string), why.to_string());
            if !self.gs.pending.contains(&p) {
                self.gs.pending.push(p);
            }
            return targets.len();
        }
        let n = targets.len();
        let orders: Vec<Order> = targets
            .into_iter()
            .enumerate()
            .map(|(idx, (key, r))| {
                self.gs.flattened.1.insert(key);
                Order {
                    idx,
                    bt: now,
                    op: Op::Close,
                    action: r.action.0,
                    req: OrderReq {
                        symbol: key.symbol.to_string(),
                        client_order_id: flatten_order_id(&key, now),
                        label: key.label(),
                        buy: r.action.0.direction() < 0,
                        volume: r.volume,
                        base_price: 0.0,
                        slippage_points: 0,
                    },
                    key,
                    position_id: Some(r.position_id),
                    batch: 0,
                }
            })
            .collect();
        warn!(target: DECISION, side = self.name, event = "flatten", positions = n, symbol, "flatten: closing {n} position(s) ({why})");
        let mut b = Batch::new(now, &self.gs.cfg, &[]);
        b.flatten = Some(why.to_string());
        b.phase = Phase {
            orders,
            ..Phase::default()
        };
        b.stage = Stage::Exits;
        self.batch = Some(b);
        self.advance();
        n
    }

    /// The flattens asked while a batch ran.
    pub(super) fn start_pending_flatten(&mut self, now: i64) {
        for (symbol, why) in std::mem::take(&mut self.gs.pending) {
            self.start_flatten(now, symbol.as_deref(), &why);
        }
    }

    /// A flatten's closes are answered: each closed model is FLAT and waits for its next
    /// transition (journaled); a refused close stays open (retried while the guard is halted).
    pub(super) fn finish_flatten(&mut self) {
        let Some(b) = self.batch.take() else { return };
        let why = b.flatten.unwrap_or_default();
        let mut filled = false;
        for (o, e) in b.phase.orders.iter().zip(b.phase.execs) {
            match e {
                Exec::Filled { .. } => {
                    filled = true;
                    if let Some(st) = self.policy.models.get_mut(&o.key) {
                        if st.real.as_ref().map(|r| r.position_id) == o.position_id {
                            st.real = None;
                            st.missed = st.target.is_some_and(|t| t.0 != Action::Wait);
                        }
                        let state = st.clone();
                        self.actions.push_back(SideAction::Journal {
                            record: Record::Model {
                                model: o.key,
                                state,
                            },
                            sync: true,
                        });
                    }
                    self.notes.insert(
                        o.key,
                        format!(
                            "position {} closed by a flatten ({why})",
                            o.position_id.unwrap_or(0)
                        ),
                    );
                    info!(target: DECISION, side = self.name, event = "flattened", model = %o.key.model_name(),
                        position_id = o.position_id, "position closed by a flatten ({why}); the model waits for its next transition");
                }
                Exec::Refused(r) => {
                    warn!(target: DECISION, side = self.name, event = "flatten_refused", model = %o.key.model_name(),
                        position_id = o.position_id, reason = %r.code(),
                        "flatten: the close was refused ({r}); retried at the next update while halted");
                }
            }
        }
        if filled {
            // The closes realised their P&L: the guard's balance (the next day's anchor) from
            // the broker now, not at the next bar.
            self.actions.push_back(SideAction::AskAccount);
        }
        self.start_pending_flatten(b.now);
    }

    /// The guard as `oracle status` shows it.
    pub fn guard_status(&self, side: &str) -> GuardStatus {
        let g = self.guard.as_ref();
        let v = self.last_verdict.as_ref();
        let progress = g.map(Guard::progress);
        let halted = if let Some(h) = &self.operator_halt {
            Some(HaltStatus {
                reason: "HALTED_OPERATOR".into(),
                since_ms: h.at_ms,
                by: h.origin.clone(),
                ends_ms: None,
            })
        } else if let Some((g, h)) = g.and_then(|g| Some((g, g.halted()?))) {
            Some(HaltStatus {
                reason: h.limit.code().into(),
                since_ms: h.at_ms,
                by: "guard".into(),
                ends_ms: (h.limit == Limit::DailyLoss).then(|| g.next_day_start()),
            })
        } else {
            self.risk.halt().map(|h| HaltStatus {
                reason: h.code().into(),
                since_ms: 0,
                by: "risk".into(),
                ends_ms: None,
            })
        };
        // Without a preset: the plain risk guard's headroom at the last account read.
        let plain = self
            .gs
            .rules
            .is_none()
            .then(|| self.last_account())
            .flatten();
        let (daily, max_loss) = match plain {
            Some(acc) => risk_headroom(&self.risk, acc.equity),
            None => (v.map(|v| v.daily), v.map(|v| v.max_loss)),
        };
        GuardStatus {
            side: side.to_string(),
            preset: self.gs.rules.as_ref().map(|r| r.preset.name().to_string()),
            halted,
            balance: self.gs.seen.map(|s| s.0).or(plain.map(|a| a.balance)),
            equity: self.gs.seen.map(|s| s.1).or(plain.map(|a| a.equity)),
            daily,
            max_loss,
            act_at_share: self.gs.rules.as_ref().map(|r| r.act_at_share),
            next_day_start_ms: g.map(Guard::next_day_start),
            trading_days: progress.map(|p| p.trading_days),
            min_trading_days: progress.map(|p| p.min_trading_days),
            best_day_share: progress.and_then(|p| p.best_day_share),
            best_day_max_share: progress.and_then(|p| p.best_day_max_share),
            open_positions: self.open_positions(None),
            currency: self.gs.currencies.as_ref().map(|c| c.deposit.clone()),
            approximate: self
                .gs
                .currencies
                .as_ref()
                .map(|c| c.approximate(&self.gs.quotes))
                .unwrap_or_default(),
        }
    }
}
