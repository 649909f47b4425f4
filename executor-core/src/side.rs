//! One book's decisions (live or paper: the same core), sans-IO: the six steps of a batch of
//! SIGNALs as a state machine.
//!
//! [`SideCore`] holds what a side knows (policy, risk guard, symbol facts, the intents it
//! journaled and their outcomes, the last account read). A batch starts with
//! [`SideCore::handle_signals`]; from then on the shell loops: [`SideCore::poll_action`] says what
//! I/O to do ([`SideAction`]), the shell does it and feeds the result back through the matching
//! `handle_*` method, until [`SideCore::poll_action`] returns `None`; then
//! [`SideCore::take_batch_result`] gives each signal's ACK, plan and refusal. Time is a
//! parameter (`now`, Unix seconds): the core reads no clock, does no I/O and never awaits.
//!
//! The steps of a batch (the one-signal path is a batch of one):
//!
//! 1. The account (reused within [`ACCOUNT_TTL`] while no order filled) feeds the risk guard;
//!    symbol facts are asked once per symbol; every plan is decided against that one read.
//! 2. The exits: every intent of the batch, its exits' and its entries', is journaled and
//!    synced together ([`SideAction::JournalIntents`], one fsync: a reversal's entries wait for
//!    no second one) BEFORE the first order is submitted; then every exit is submitted; while
//!    they are on the wire the entries' expected margins are asked together
//!    ([`SideAction::AskMargins`]); then the answers are awaited ([`SideAction::AwaitAnswers`]).
//!    An unknown outcome is looked up ([`SideAction::LookUp`]), never submitted again.
//! 3. With more than one signal, the risk guard is refreshed and an entry is refused when the
//!    guard is now halted or its symbol became unreconciled.
//! 4. Each entry must fit in the free margin less the expected margins of the batch's earlier
//!    entries.
//! 5. The entries (not for a model whose exit failed) go out as the exits did; an entry whose
//!    intent was written and that does not go out gets a `withdrawn` outcome (a restart does
//!    not look it up, and no position is explained by it).
//! 6. Each model's outcome is applied and its state journaled, in the items' order.
//!
//! **Invariant:** an order is submitted only after its intent's journal write was confirmed,
//! and a client order id is submitted at most once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use oracle_ipc::{Action, Timeframe};
use tracing::{info, warn};

use crate::broker::{BrokerPosition, OrderLookup, OrderReq, OrderResult, Quote};
use crate::config::ExecutorConfig;
use crate::journal::{INTENT_MEMORY, Op, Record, Replayed, client_order_id, intent_rank};
use crate::key::{KeyText, StreamKey, by_name};
use crate::operator::OperatorHalt;
use crate::policy::{AckKind, ActionName, Closed, Exec, Market, Plan, Policy, RealPos, Refusal};
use crate::propfirm::{Guard, Verdict};
use crate::restrictions::Restrictions;
use crate::risk::{Account, RiskGuard};
use crate::volume::SymbolSpec;

mod guard;

/// Log target of the per-decision lines.
pub const DECISION: &str = "oracle_executor::decision";

/// How long (executor seconds) an account read is reused.
pub const ACCOUNT_TTL: i64 = 1;

/// An account read started ahead of the batch that will need it ([`SideCore::account_ahead`]):
/// when it started and the fills the side had seen then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountAhead {
    /// When the read started (executor seconds).
    pub at: i64,
    fills: u64,
}

/// One SIGNAL of a batch, as a side sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The model.
    pub key: StreamKey,
    /// Its timeframe.
    pub tf: Timeframe,
    /// The virtual target.
    pub target: Action,
    /// The signal's bar time.
    pub bt: i64,
}

/// What a side keeps per order and per model (see [`SideCore::retained`]).
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

/// An order of a batch, ready for the wire (its intent is journaled).
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    /// Index of its signal in the batch.
    idx: usize,
    /// The model.
    pub key: StreamKey,
    /// The signal's bar time.
    pub bt: i64,
    /// Entry or exit.
    pub op: Op,
    /// The target action of the signal.
    pub action: Action,
    /// The request (`client_order_id` identifies the order).
    pub req: OrderReq,
    /// For an exit: the position it closes.
    pub position_id: Option<u64>,
    /// Orders in its phase (the batch's exits, or its entries), for the `order_sent` line.
    pub batch: usize,
}

/// The I/O a side asks the shell to do. Each one that needs an answer names the `handle_*`
/// method that takes it; until then [`SideCore::poll_action`] returns `None`.
#[derive(Clone, Debug, PartialEq)]
pub enum SideAction {
    /// Read balance, equity and free margin → [`SideCore::handle_account`].
    AskAccount,
    /// Read a symbol's facts → [`SideCore::handle_spec`].
    AskSpec {
        /// Symbol.
        symbol: String,
    },
    /// Read the latest quote of each symbol and whether the session is up (no round trip) →
    /// [`SideCore::handle_market`].
    AskMarket {
        /// Symbols, one quote each in this order.
        symbols: Vec<String>,
    },
    /// Append these intents with one write and ONE fsync, before any of their orders is
    /// submitted → [`SideCore::handle_journaled`].
    JournalIntents {
        /// The intents.
        records: Vec<Record>,
    },
    /// Append one record (`sync`: fsynced). No answer: a failed write is logged by the shell.
    Journal {
        /// The record.
        record: Record,
        /// fsync after the write.
        sync: bool,
    },
    /// Put this order on the wire (its intent is durable) and log it (`order_sent`, target
    /// [`DECISION`]: the line says it is on the wire). Its answer comes with
    /// [`SideAction::AwaitAnswers`].
    Submit(Order),
    /// The expected margins of these new orders (symbol, volume, buy), all in flight together
    /// → [`SideCore::handle_margins`].
    AskMargins {
        /// The asks.
        asks: Vec<(String, i64, bool)>,
    },
    /// Every order submitted since the last `AwaitAnswers` is on the wire: await their answers
    /// and feed each, in submission order, to [`SideCore::handle_order_outcome`] (draining the
    /// actions after each).
    AwaitAnswers,
    /// Look up what became of an order whose answer never came, or that was in flight at a
    /// restart (never resend it) → [`SideCore::handle_lookup`].
    LookUp(OrderLookup),
}

/// Each signal's ACK, plan and refusal, in the batch's order.
pub type BatchResult = Vec<(AckKind, Plan, Option<Refusal>)>;

/// What a side knows, and the batch it is running.
#[derive(Debug)]
pub struct SideCore {
    /// Policy state.
    pub policy: Policy,
    /// Risk guard (its limits unused with a `risk.preset`: then `guard` decides).
    pub risk: RiskGuard,
    /// The prop-firm guard, with a `risk.preset` (created at the first account read, or restored
    /// from the journal): evaluated on every account read and on every quote of a symbol with an
    /// open position; at its action share it closes every position and halts (`side/guard.rs`).
    pub guard: Option<Guard>,
    /// A person's halt (`oracle halt`): entries refused until `oracle resume`.
    pub operator_halt: Option<OperatorHalt>,
    /// The guard's last verdict.
    pub last_verdict: Option<Verdict>,
    gs: guard::GuardSide,
    /// Per model: why real differs from virtual since the last ledger row (e.g. a position
    /// closed outside), written to the drift ledger's `note` once.
    pub notes: HashMap<StreamKey, String>,
    /// Symbol facts known.
    pub specs: HashMap<String, SymbolSpec>,
    /// Intents journaled, by client order id (to explain positions at reconcile): the last
    /// [`INTENT_MEMORY`] per model, and every pending one.
    pub intents: HashMap<String, Record>,
    /// Per model, the client order ids in `intents`, oldest first.
    intent_order: HashMap<StreamKey, VecDeque<String>>,
    /// Client order ids in `intents` whose outcome is `filled`.
    pub filled: HashSet<String>,
    /// Models whose exit was held (or refused `MARKET_CLOSED`) while their market was closed:
    /// [`SideCore::held_exits`]. After a restart: those whose last ACK journaled said
    /// `MARKET_CLOSED` (a position adopted at reconciliation is not one).
    held: BTreeSet<StreamKey>,
    /// Of `held`, the models whose exit a news window held (`risk.news`): sent at the window's
    /// end ([`SideCore::news_hold_until`]).
    news_held: BTreeSet<StreamKey>,
    /// The funded account's optional rules (`risk.flat_before_weekend`, `risk.news`) as values:
    /// set by [`crate::exec::ExecutorCore::set_restrictions`].
    pub restrict: Restrictions,
    /// Intents whose outcome is not known yet (in flight, or unknown and not yet found):
    /// reconciliation looks them up. Never trimmed; an entry leaves when its outcome is known.
    pub pending: BTreeMap<String, Record>,
    /// `live` or `paper` (log lines).
    pub name: &'static str,
    /// Account state and the executor time it was read; reused within [`ACCOUNT_TTL`] unless an
    /// order filled since (20 signals at a bar close cost one account read, not twenty).
    account_cache: Option<(i64, Account)>,
    /// Orders filled since the side was made: an account read started before a fill
    /// ([`SideCore::handle_account_ahead`]) does not see it and is not kept.
    fills: u64,
    actions: VecDeque<SideAction>,
    batch: Option<Batch>,
    reconcile: Option<Reconcile>,
}

/// The result of an order request as the policy sees it (`None`: unknown).
pub fn exec_of(r: &OrderResult) -> Option<Exec> {
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
        // The broker's calendar said no: counted as the calendar's refusal (a missed entry,
        // never chased; an exit stays held until the open).
        OrderResult::Rejected { code, .. } if code == "MARKET_CLOSED" => {
            Some(Exec::Refused(Refusal::MarketClosed { until_ms: None }))
        }
        OrderResult::Rejected { code, msg } => Some(Exec::Refused(Refusal::Broker {
            code: code.clone(),
            msg: msg.clone(),
        })),
        OrderResult::Unknown => None,
    }
}

/// The lookup of a journaled intent.
pub fn lookup_of(r: &Record) -> Option<OrderLookup> {
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

/// Where a batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Account,
    Specs,
    Market,
    Decide,
    Exits,
    ExitMargins,
    ExitAnswers,
    Recheck,
    Margins,
    Entries,
    EntryAnswers,
    Complete,
    Done,
}

/// The input a batch waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Account,
    Spec,
    Market,
    Journaled,
    Margins,
    Outcomes,
    LookUp,
}

/// The orders of one phase (the exits, or the entries).
#[derive(Debug, Default)]
struct Phase {
    orders: Vec<Order>,
    /// The journal refused the intents: nothing was sent, these are the outcomes.
    refused: Option<Exec>,
    awaited: bool,
    outcomes: VecDeque<(String, OrderResult)>,
    execs: Vec<Exec>,
}

#[derive(Debug)]
struct Batch {
    now: i64,
    cfg: ExecutorConfig,
    items: Vec<Item>,
    stage: Stage,
    wait: Option<Wait>,
    /// An account answer not yet consumed by the stage that asked (`Some(None)`: it failed).
    fresh: Option<Option<Account>>,
    acc: Option<Account>,
    item_specs: Vec<Option<SymbolSpec>>,
    quotes: Vec<Option<(f64, f64)>>,
    connected: bool,
    /// Per item: its market closed now (from the shell's calendars).
    closed: Vec<Option<Closed>>,
    /// The held exits' release at the open (not SIGNALs): closes only, a fresh order id.
    release: bool,
    plans: Vec<Plan>,
    asked: Vec<(usize, (String, i64, bool))>,
    margins: Vec<Option<f64>>,
    phase: Phase,
    close_exec: Vec<Option<Exec>>,
    open_exec: Vec<Option<Exec>>,
    close_failed: Vec<bool>,
    /// The entries whose intents went to the journal with the exits' (one group commit for the
    /// batch, `journal_phase`); those not sent get a `withdrawn` outcome.
    early: Vec<String>,
    /// Those intents while their write is awaited.
    early_pending: Vec<String>,
    committed: f64,
    cursor: usize,
    result: Option<BatchResult>,
    /// A flatten (not a batch of signals): why (the guard's limit, a person's command).
    flatten: Option<String>,
}

impl Batch {
    /// A batch of `items` at its first stage.
    fn new(now: i64, cfg: &ExecutorConfig, items: &[Item]) -> Batch {
        let n = items.len();
        Batch {
            now,
            cfg: cfg.clone(),
            items: items.to_vec(),
            stage: Stage::Account,
            wait: None,
            fresh: None,
            acc: None,
            item_specs: Vec::with_capacity(n),
            quotes: Vec::new(),
            connected: false,
            closed: Vec::new(),
            release: false,
            plans: Vec::with_capacity(n),
            asked: Vec::new(),
            margins: vec![None; n],
            phase: Phase::default(),
            close_exec: vec![None; n],
            open_exec: vec![None; n],
            close_failed: vec![false; n],
            early: Vec::new(),
            early_pending: Vec::new(),
            committed: 0.0,
            cursor: 0,
            result: None,
            flatten: None,
        }
    }
}

impl SideCore {
    /// A side; its state from a journal's replay (`Replayed::default()` without one).
    pub fn new(name: &'static str, cfg: &ExecutorConfig, rep: &Replayed) -> Self {
        let mut policy = Policy::new();
        policy.models = rep.models.clone();
        let mut risk = RiskGuard::new(cfg.risk.clone(), rep.risk.map(|r| r.0));
        if let Some((_, ds, anchor)) = rep.risk {
            risk.restore_day(ds, anchor);
        }
        let mut order: Vec<(&String, &Record)> = rep.intents.iter().collect();
        order.sort_by_key(|(_, r)| intent_rank(r));
        let (guard, gs) = guard::GuardSide::new(name, cfg, rep);
        let mut side = SideCore {
            policy,
            risk,
            guard,
            operator_halt: rep.operator_halt.clone(),
            last_verdict: None,
            gs,
            notes: HashMap::new(),
            specs: HashMap::new(),
            intents: HashMap::new(),
            intent_order: HashMap::new(),
            filled: HashSet::new(),
            held: BTreeSet::new(),
            news_held: BTreeSet::new(),
            restrict: Restrictions::default(),
            pending: rep.pending.clone(),
            name,
            account_cache: None,
            fills: 0,
            actions: VecDeque::new(),
            batch: None,
            reconcile: None,
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
        side.held = rep
            .models
            .iter()
            .filter(|(k, st)| {
                st.last_bt.is_some_and(|bt| {
                    rep.acks.get(&(**k, bt)).is_some_and(|l| {
                        ["|MARKET_CLOSED", "|NEWS_WINDOW", "|WEEKEND"]
                            .iter()
                            .any(|r| l.contains(r))
                    })
                })
            })
            .map(|(k, _)| *k)
            .collect();
        side
    }

    /// Remembers an intent; forgets the model's oldest beyond [`INTENT_MEMORY`] that are not
    /// pending.
    pub fn remember_intent(&mut self, coid: &str, r: Record) {
        let Record::Intent { model, .. } = &r else {
            return;
        };
        let q = self.intent_order.entry(*model).or_default();
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

    /// The account read within [`ACCOUNT_TTL`] of `now`, if any (no order filled since).
    pub fn cached_account(&self, now: i64) -> Option<Account> {
        self.account_cache
            .filter(|(t, _)| (0..=ACCOUNT_TTL).contains(&(now - t)))
            .map(|(_, a)| a)
    }

    /// The last account read, however old (`None` after an order filled: it is stale).
    pub fn last_account(&self) -> Option<Account> {
        self.account_cache.map(|(_, a)| a)
    }

    /// An account read at `now`: remembered for [`ACCOUNT_TTL`].
    pub fn store_account(&mut self, now: i64, a: Account) {
        self.account_cache = Some((now, a));
    }

    /// Whether to start reading the account now, ahead of the batch that will need it (at a
    /// bar out: the read then runs while the predictor answers, off the orders' path): `Some`
    /// when no read within [`ACCOUNT_TTL`] is cached and no batch is running. The answer goes
    /// to [`SideCore::handle_account_ahead`] with the ticket.
    pub fn account_ahead(&self, now: i64) -> Option<AccountAhead> {
        if self.batch.is_some() || self.cached_account(now).is_some() {
            return None;
        }
        Some(AccountAhead {
            at: now,
            fills: self.fills,
        })
    }

    /// The answer of an account read started at `ahead` ([`SideCore::account_ahead`]; `None`:
    /// the read failed). Kept as read at its start (so [`ACCOUNT_TTL`] counts from then) unless
    /// an order filled since it started (the read may not show the fill: the batch asks again);
    /// never replaces a newer read. True when kept.
    pub fn handle_account_ahead(&mut self, ahead: AccountAhead, acc: Option<Account>) -> bool {
        let Some(a) = acc else { return false };
        if ahead.fills != self.fills || self.account_cache.is_some_and(|(t, _)| t > ahead.at) {
            return false;
        }
        self.store_account(ahead.at, a);
        true
    }

    /// Feeds an account read to the risk guard; a new broker day's anchors are journaled
    /// (queued as a [`SideAction::Journal`], synced).
    pub fn apply_risk(&mut self, now: i64, acc: Account) {
        if self.gs.rules.is_some() {
            return self.apply_guard_account(now, acc);
        }
        let before = self.risk.day();
        let (halt, _) = self.risk.update(now, acc);
        if let Some(h) = halt {
            warn!(target: DECISION, side = self.name, event = "halted", reason = h.code(),
                equity = acc.equity, "{}", Refusal::Halted(h));
        }
        if self.risk.day() != before
            && let (Some(initial), Some((ds, anchor))) = (self.risk.initial(), self.risk.day())
        {
            self.actions.push_back(SideAction::Journal {
                record: Record::Risk {
                    initial,
                    day_start: ds,
                    anchor,
                },
                sync: true,
            });
        }
    }

    /// The margins the entries of `items`' models could ask at their next transition (every
    /// intensity, both sides; symbol, volume, buy), deduplicated, for the symbols whose facts
    /// are known: asked off the orders' path, a reversal's entries then find the broker's
    /// answers fresh.
    pub fn next_entry_asks(
        &self,
        cfg: &ExecutorConfig,
        items: &[Item],
    ) -> Vec<(String, i64, bool)> {
        let mut next: Vec<(String, i64, bool)> = Vec::new();
        for it in items {
            let (Some(sc), Some(spec)) = (
                cfg.symbols.get(it.key.symbol.as_str()),
                self.specs.get(it.key.symbol.as_str()),
            ) else {
                continue;
            };
            for lots in sc.lots {
                let Ok(v) = crate::volume::lots_to_volume(lots, spec) else {
                    continue;
                };
                for buy in [true, false] {
                    let ask = (it.key.symbol.to_string(), v, buy);
                    if !next.contains(&ask) {
                        next.push(ask);
                    }
                }
            }
        }
        next
    }

    /// Starts a batch of signals (at most one per model; see the module's steps). Any action
    /// still queued is kept before the batch's. The shell drives one batch at a time: a batch
    /// started while another is still waiting for an input replaces it.
    pub fn handle_signals(&mut self, now: i64, cfg: &ExecutorConfig, items: &[Item]) {
        self.batch = Some(Batch::new(now, cfg, items));
        self.advance();
    }

    /// The next I/O to do, or `None` while the core waits for an input (or has nothing to do).
    pub fn poll_action(&mut self) -> Option<SideAction> {
        self.actions.pop_front()
    }

    /// The batch's result once it is complete (then the batch is over).
    pub fn take_batch_result(&mut self) -> Option<BatchResult> {
        if self.batch.as_ref()?.stage != Stage::Done || !self.actions.is_empty() {
            return None;
        }
        let b = self.batch.take()?;
        // A flatten asked while the batch ran starts now (the shell drives the side again).
        self.start_pending_flatten(b.now);
        b.result
    }

    /// The answer of [`SideAction::AskAccount`] (`None`: the read failed).
    pub fn handle_account(&mut self, now: i64, acc: Option<Account>) {
        if let Some(a) = acc {
            self.store_account(now, a);
        }
        if let Some(b) = &mut self.batch
            && b.wait == Some(Wait::Account)
        {
            b.wait = None;
            b.fresh = Some(acc);
            self.advance();
        } else if let Some(a) = acc {
            // Asked outside a batch (after a flatten): the prop-firm guard's update.
            self.apply_guard_read(now, a);
        }
    }

    /// The answer of [`SideAction::AskSpec`] (`None`: unknown symbol or the read failed).
    pub fn handle_spec(&mut self, symbol: &str, spec: Option<SymbolSpec>) {
        if let Some(s) = &spec {
            self.specs.insert(symbol.to_string(), s.clone());
        }
        if let Some(b) = &mut self.batch
            && b.wait == Some(Wait::Spec)
        {
            b.wait = None;
            b.item_specs.push(spec);
            self.advance();
        }
    }

    /// The answer of [`SideAction::AskMarket`]: one quote per symbol asked, and whether the
    /// session is up (every market open: no calendar known; see
    /// [`SideCore::handle_market_hours`]).
    pub fn handle_market(&mut self, quotes: &[Option<Quote>], connected: bool) {
        self.handle_market_hours(quotes, connected, &[]);
    }

    /// The answer of [`SideAction::AskMarket`] with the trading calendar: one quote per symbol
    /// asked, whether the session is up, and per symbol whether its market is closed at the
    /// batch's `now` (`None` or missing: open), as the shell computed it from the broker's
    /// schedule and holidays. An entry into a closed market is not sent (missed, never chased);
    /// an exit is held until the open ([`SideCore::held_exits`]).
    pub fn handle_market_hours(
        &mut self,
        quotes: &[Option<Quote>],
        connected: bool,
        closed: &[Option<Closed>],
    ) {
        if let Some(b) = &mut self.batch
            && b.wait == Some(Wait::Market)
        {
            b.wait = None;
            b.quotes = (0..b.items.len())
                .map(|k| quotes.get(k).copied().flatten().map(|q| (q.bid, q.ask)))
                .collect();
            b.closed = (0..b.items.len())
                .map(|k| closed.get(k).copied().flatten())
                .collect();
            b.connected = connected;
            self.advance();
        }
    }

    /// The models whose real position differs from their virtual target with no order on the
    /// way: an exit held while the market was closed (or refused by the broker), still due.
    /// Derived from the journaled model states, so a restart finds them too. Listed by symbol,
    /// then timeframe name ([`by_name`]).
    pub fn held_exits(&self) -> Vec<(StreamKey, String)> {
        let mut v: Vec<(StreamKey, String)> = self
            .policy
            .models
            .iter()
            .filter(|(k, _)| self.held.contains(*k))
            .filter(|(_, st)| matches!((&st.real, st.target), (Some(r), Some(t)) if r.action != t))
            .filter(|(k, _)| {
                !self
                    .pending
                    .values()
                    .any(|r| matches!(r, Record::Intent { model, .. } if model == *k))
            })
            .map(|(k, _)| (*k, k.symbol.to_string()))
            .collect();
        v.sort_by(|a, b| by_name(&a.0, &b.0));
        v
    }

    /// `risk.flat_before_weekend` at `now_ms` (UTC ms): every open position on a symbol in its
    /// flat window, before its week's last close, is closed (a flatten: never held, never
    /// refused by a halt); the models then wait for their next transition (never chased).
    /// Returns the positions it closes.
    pub fn handle_weekend(&mut self, now_ms: i64) -> usize {
        let symbols: BTreeSet<String> = self
            .policy
            .models
            .iter()
            .filter(|(_, st)| st.real.is_some())
            .map(|(k, _)| k.symbol.to_string())
            .collect();
        let mut n = 0;
        for sym in symbols {
            let Some(we) = self.restrict.weekend(&sym, now_ms) else {
                continue;
            };
            if now_ms >= we.close_ms {
                warn!(target: DECISION, side = self.name, event = "weekend_open_position", symbol = %sym,
                    "flat before the weekend: a position on {sym} is still open and its market closed at {}: it is held over the weekend", oracle_ipc::Iso(we.close_ms.div_euclid(1000)));
                continue;
            }
            let why = format!(
                "flat before the weekend: {sym} closes at {}, opens at {} (risk.flat_before_weekend)",
                oracle_ipc::Iso(we.close_ms.div_euclid(1000)),
                oracle_ipc::Iso(we.open_ms.div_euclid(1000))
            );
            n += self.start_flatten(now_ms.div_euclid(1000), Some(&sym), &why);
        }
        n
    }

    /// The first instant (UTC ms, `now_ms` at the earliest) at which
    /// [`SideCore::handle_weekend`] has a position to close: a symbol with an open position at
    /// its flat instant, before its week's last close. `None`: nothing to close (rule off, no
    /// position, no weekend known).
    pub fn weekend_deadline(&self, now_ms: i64) -> Option<i64> {
        self.policy
            .models
            .iter()
            .filter(|(_, st)| st.real.is_some())
            .filter_map(|(k, _)| {
                let (at, we) = self.restrict.flat_at(k.symbol.as_str())?;
                (now_ms < we.close_ms).then_some(at.max(now_ms))
            })
            .min()
    }

    /// When the exits a news window held on `symbol` go (UTC ms): the window's end, or
    /// `utc_ms` when it has ended; `None` when no exit on it is held by a news window.
    pub fn news_hold_until(&self, symbol: &str, utc_ms: i64) -> Option<i64> {
        if !self
            .held_exits()
            .iter()
            .any(|(k, s)| s == symbol && self.news_held.contains(k))
        {
            return None;
        }
        Some(
            self.restrict
                .news_window(symbol, utc_ms.div_euclid(1000))
                .map_or(utc_ms, |w| w.until_ms()),
        )
    }

    /// The first open instant (UTC ms) of a market closed at `utc_ms` where this side holds an
    /// exit; `utc_ms` itself when such a market is open already (after a restart or a
    /// reconnect, or a broker that refused `MARKET_CLOSED` while its calendar says open: the
    /// core tries it again [`HELD_EXIT_RETRY_MS`] after the last release, never waiting for the
    /// model's next SIGNAL); an exit a news window held at the window's end. `closed` is the
    /// broker's calendar (`Broker::closed`: a symbol's market closed at an instant, and until
    /// when). `None`: nothing held, or no calendar knows an open.
    ///
    /// [`HELD_EXIT_RETRY_MS`]: crate::exec::HELD_EXIT_RETRY_MS
    pub fn next_held_open(
        &self,
        utc_ms: i64,
        closed: impl Fn(&str, i64) -> Option<Closed>,
    ) -> Option<i64> {
        self.held_exits()
            .iter()
            .filter_map(|(_, symbol)| {
                // An exit a news window held goes at the window's end (at once once past it).
                if let Some(at) = self.news_hold_until(symbol, utc_ms) {
                    return Some(at);
                }
                match closed(symbol, utc_ms) {
                    None => Some(utc_ms),
                    Some(c) => c.until_ms,
                }
            })
            .min()
    }

    /// Starts the release of the held exits ([`SideCore::held_exits`]) at `now` (the market's
    /// open): a batch of closes only, driven like a SIGNALs' batch (its result is not an ACK:
    /// take it with [`SideCore::take_batch_result`] and drop it). A market still closed holds
    /// them again. Each close gets a client order id of its own instant (never one used).
    /// Returns false when nothing is held (no batch started).
    pub fn handle_held_exits(&mut self, now: i64, cfg: &ExecutorConfig) -> bool {
        let items: Vec<Item> = self
            .held_exits()
            .into_iter()
            .filter_map(|(key, _)| {
                let st = self.policy.models.get(&key)?;
                Some(Item {
                    tf: key.timeframe,
                    target: st.target?.0,
                    bt: st.last_bt?,
                    key,
                })
            })
            .collect();
        if items.is_empty() {
            return false;
        }
        info!(target: DECISION, side = self.name, event = "held_exits_release", exits = items.len(),
            "market open: sending the exits held while it was closed");
        self.handle_signals(now, cfg, &items);
        if let Some(b) = &mut self.batch {
            b.release = true;
        }
        true
    }

    /// The phase's orders to the wire, their intents durable: each pending until its outcome.
    fn submit_phase(&mut self) {
        let Some(b) = &self.batch else { return };
        let orders = b.phase.orders.clone();
        for o in &orders {
            let coid = &o.req.client_order_id;
            if let Some(r) = self.intent_of(o) {
                self.pending.insert(coid.clone(), r.clone());
                self.remember_intent(coid, r);
            }
        }
        let n = orders.len();
        for mut o in orders {
            o.batch = n;
            self.actions.push_back(SideAction::Submit(o));
        }
    }

    /// The answer of [`SideAction::JournalIntents`]: `Err(why)` when the write or its fsync
    /// failed (then none of the orders is submitted: each is refused `JOURNAL`).
    pub fn handle_journaled(&mut self, result: Result<(), String>) {
        let Some(b) = &mut self.batch else { return };
        if b.wait != Some(Wait::Journaled) {
            return;
        }
        b.wait = None;
        let orders = b.phase.orders.len();
        let early = std::mem::take(&mut b.early_pending);
        match result {
            Ok(()) => {
                b.early.extend(early);
                self.submit_phase();
            }
            Err(e) => {
                warn!(target: DECISION, side = self.name, error = %e, orders,
                    "journal write failed: orders not sent");
                if let Some(b) = &mut self.batch {
                    b.phase.refused = Some(Exec::Refused(Refusal::Broker {
                        code: "JOURNAL".into(),
                        msg: e,
                    }));
                }
            }
        }
        self.advance();
    }

    /// The answer of [`SideAction::AskMargins`], one per ask in the asks' order (`None`: the
    /// broker did not give it).
    pub fn handle_margins(&mut self, margins: &[Option<f64>]) {
        if let Some(b) = &mut self.batch
            && b.wait == Some(Wait::Margins)
        {
            b.wait = None;
            for ((k, _), m) in b.asked.iter().zip(margins) {
                b.margins[*k] = *m;
            }
            self.advance();
        }
    }

    /// The answer of one submitted order ([`OrderResult::Unknown`]: none came in time).
    pub fn handle_order_outcome(&mut self, _now: i64, client_order_id: &str, result: OrderResult) {
        if let Some(b) = &mut self.batch {
            b.phase
                .outcomes
                .push_back((client_order_id.to_string(), result));
            if b.wait == Some(Wait::Outcomes) {
                b.wait = None;
                self.advance();
            }
        }
    }

    /// The answer of [`SideAction::LookUp`]: `Ok(None)` when the broker has no trace of the
    /// order (it never executed), `Err(why)` when the lookup failed.
    pub fn handle_lookup(&mut self, result: Result<Option<OrderResult>, String>) {
        if self
            .reconcile
            .as_ref()
            .is_some_and(|rc| rc.current.is_some())
        {
            return self.reconciled_lookup(result);
        }
        let Some(b) = &mut self.batch else { return };
        if b.wait != Some(Wait::LookUp) {
            return;
        }
        b.wait = None;
        let k = b.phase.execs.len();
        let Some(o) = b.phase.orders.get(k) else {
            return;
        };
        let (coid, symbol) = (o.req.client_order_id.clone(), o.key.symbol.to_string());
        let exec = match result {
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
        };
        self.finish_order(exec);
        self.advance();
    }

    fn intent_of(&self, o: &Order) -> Option<Record> {
        let now = self.batch.as_ref()?.now;
        Some(Record::Intent {
            ts: now,
            coid: o.req.client_order_id.clone(),
            model: o.key,
            op: o.op,
            symbol: o.key.symbol.to_string(),
            buy: o.req.buy,
            action: ActionName(o.action),
            volume: o.req.volume,
            position_id: o.position_id,
            bt: o.bt,
        })
    }

    /// The account for the current stage: cached, just answered, or asked (`None` = waiting).
    fn batch_account(&mut self) -> Option<Option<Account>> {
        let b = self.batch.as_mut()?;
        if let Some(a) = b.fresh.take() {
            return Some(a);
        }
        if let Some((t, a)) = self.account_cache
            && (0..=ACCOUNT_TTL).contains(&(b.now - t))
        {
            return Some(Some(a));
        }
        b.wait = Some(Wait::Account);
        self.actions.push_back(SideAction::AskAccount);
        None
    }

    /// Runs the batch until it needs an input or is done.
    ///
    /// Each arm below runs right after the loop's head found `self.batch` to be `Some`, and
    /// nothing in between takes it, so their `expect("batch")` cannot fire.
    fn advance(&mut self) {
        loop {
            let Some(b) = &self.batch else { return };
            if b.wait.is_some() {
                return;
            }
            match b.stage {
                Stage::Account => {
                    let Some(acc) = self.batch_account() else {
                        return;
                    };
                    let now = self.batch.as_ref().map_or(0, |b| b.now);
                    if let Some(a) = acc {
                        self.apply_risk(now, a);
                    }
                    let b = self.batch.as_mut().expect("batch");
                    b.acc = acc;
                    b.stage = Stage::Specs;
                }
                Stage::Specs => {
                    let b = self.batch.as_mut().expect("batch");
                    let k = b.item_specs.len();
                    if k == b.items.len() {
                        b.stage = Stage::Market;
                        continue;
                    }
                    let symbol = b.items[k].key.symbol.as_str();
                    if let Some(s) = self.specs.get(symbol) {
                        b.item_specs.push(Some(s.clone()));
                    } else {
                        b.wait = Some(Wait::Spec);
                        self.actions.push_back(SideAction::AskSpec {
                            symbol: symbol.to_string(),
                        });
                    }
                }
                Stage::Market => {
                    let b = self.batch.as_mut().expect("batch");
                    b.wait = Some(Wait::Market);
                    b.stage = Stage::Decide;
                    let symbols = b.items.iter().map(|i| i.key.symbol.to_string()).collect();
                    self.actions.push_back(SideAction::AskMarket { symbols });
                }
                Stage::Decide => self.decide(),
                Stage::Exits | Stage::Entries => self.journal_phase(),
                Stage::ExitMargins => {
                    let b = self.batch.as_mut().expect("batch");
                    b.stage = Stage::ExitAnswers;
                    if !b.asked.is_empty() {
                        b.wait = Some(Wait::Margins);
                        let asks = b.asked.iter().map(|(_, a)| a.clone()).collect();
                        self.actions.push_back(SideAction::AskMargins { asks });
                    }
                }
                Stage::ExitAnswers | Stage::EntryAnswers => {
                    if !self.settle_phase() {
                        return;
                    }
                    if self.batch.as_ref().is_some_and(|b| b.flatten.is_some()) {
                        return self.finish_flatten();
                    }
                    let b = self.batch.as_mut().expect("batch");
                    let phase = std::mem::take(&mut b.phase);
                    let exits = b.stage == Stage::ExitAnswers;
                    for (o, e) in phase.orders.iter().zip(phase.execs) {
                        if exits {
                            b.close_exec[o.idx] = Some(e);
                        } else {
                            b.open_exec[o.idx] = Some(e);
                        }
                    }
                    if exits {
                        b.close_failed = b
                            .close_exec
                            .iter()
                            .map(|c| matches!(c, Some(Exec::Refused(_))))
                            .collect();
                        b.stage = Stage::Recheck;
                    } else {
                        b.stage = Stage::Complete;
                    }
                }
                Stage::Recheck => {
                    if b.items.len() > 1 {
                        let Some(acc) = self.batch_account() else {
                            return;
                        };
                        let now = self.batch.as_ref().map_or(0, |b| b.now);
                        if let Some(a) = acc {
                            self.apply_risk(now, a);
                        }
                        let halt = self.halt_now();
                        let b = self.batch.as_mut().expect("batch");
                        for (k, plan) in b.plans.iter_mut().enumerate() {
                            if b.close_failed[k] || !matches!(plan.entry, Some(Ok(_))) {
                                continue;
                            }
                            let refused = match (
                                halt,
                                self.policy.unreconciled.get(b.items[k].key.symbol.as_str()),
                            ) {
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
                    let b = self.batch.as_mut().expect("batch");
                    b.stage = Stage::Margins;
                    b.cursor = 0;
                }
                Stage::Margins => {
                    let k = b.cursor;
                    if k == b.items.len() {
                        self.build_entries();
                        continue;
                    }
                    let plan = &b.plans[k];
                    if !plan.check_margin || b.close_failed[k] || !matches!(plan.entry, Some(Ok(_)))
                    {
                        self.batch.as_mut().expect("batch").cursor += 1;
                        continue;
                    }
                    let Some(acc) = self.batch_account() else {
                        return;
                    };
                    let b = self.batch.as_mut().expect("batch");
                    let plan = &mut b.plans[k];
                    match (b.margins[k], acc.map(|a| a.free_margin)) {
                        (Some(need), Some(free)) => {
                            match Policy::margin_check(&b.cfg, need, free - b.committed) {
                                Ok(()) => b.committed += need,
                                Err(r) => plan.entry = Some(Err(r)),
                            }
                        }
                        _ => plan.entry = Some(Err(Refusal::BrokerDown)),
                    }
                    b.cursor += 1;
                }
                Stage::Complete => self.complete(),
                Stage::Done => return,
            }
        }
    }

    /// Step 1's plans, and the exits to send.
    fn decide(&mut self) {
        let halt = self.halt_now();
        let Some(b) = &mut self.batch else { return };
        let now = b.now;
        for (k, it) in b.items.iter().enumerate() {
            let market = Market {
                now,
                spec: b.item_specs.get(k).and_then(Option::as_ref),
                quote: b.quotes.get(k).copied().flatten(),
                free_margin: b.acc.map(|a| a.free_margin),
                halt,
                connected: b.connected,
                closed: b.closed.get(k).copied().flatten(),
            };
            let mut plan = self
                .policy
                .decide(&b.cfg, &it.key, it.tf, it.target, it.bt, &market);
            let mut why = Vec::new();
            let mut news_hold = false;
            // The funded account's optional rules: a news window holds an exit until its end;
            // the weekend or a news window refuses an entry (a closed market's included).
            if plan.close.is_some()
                && let Some(w) = self.restrict.news_window(it.key.symbol.as_str(), now)
            {
                plan.close = None;
                plan.held = Some(Closed {
                    until_ms: Some(w.until_ms()),
                });
                self.held.insert(it.key);
                self.news_held.insert(it.key);
                news_hold = true;
                why.push(format!(
                    "exit held: news window of \"{}\" until {}",
                    w.title,
                    oracle_ipc::Iso(w.end + 1)
                ));
                info!(target: DECISION, side = self.name, event = "exit_held", model = %it.key.model_name(),
                    until_ms = w.until_ms(), reason = "NEWS_WINDOW",
                    "exit held: news window of \"{}\"; sent at its end", w.title);
            }
            if matches!(
                plan.entry,
                Some(Ok(_)) | Some(Err(Refusal::MarketClosed { .. }))
            ) && let Some(r) = self.restrict.entry_refusal(it.key.symbol.as_str(), now)
            {
                why.push(format!("entry missed: {r}"));
                plan.entry = Some(Err(r));
                plan.check_margin = false;
            }
            if let Some(c) = plan.held
                && !news_hold
            {
                self.news_held.remove(&it.key);
                self.held.insert(it.key);
                why.push(format!("exit held: {c}"));
                info!(target: DECISION, side = self.name, event = "exit_held", model = %it.key.model_name(),
                    until_ms = c.until_ms, "exit held: {c}; sent at the first open instant");
            }
            if let Some(Err(Refusal::MarketClosed { until_ms })) = &plan.entry {
                let c = Closed {
                    until_ms: *until_ms,
                };
                why.push(format!("entry missed: {c} (never chased)"));
            }
            if b.release && plan.close.is_some() {
                why.push(if self.news_held.remove(&it.key) {
                    format!(
                        "exit held by a news window, sent at its end ({})",
                        oracle_ipc::Iso(now)
                    )
                } else {
                    format!(
                        "exit held while the market was closed, sent at the open ({})",
                        oracle_ipc::Iso(now)
                    )
                });
            }
            if !why.is_empty() {
                self.notes.insert(it.key, why.join("; "));
            }
            b.plans.push(plan);
        }
        let (items, release) = (&b.items, b.release);
        let closes: Vec<Order> = b
            .plans
            .iter()
            .enumerate()
            .filter_map(|(k, p)| {
                let r = p.close.as_ref()?;
                let key = &items[k].key;
                Some(Order {
                    idx: k,
                    key: *key,
                    bt: items[k].bt,
                    op: Op::Close,
                    action: r.action.0,
                    req: OrderReq {
                        symbol: key.symbol.to_string(),
                        // A held exit's release: an id of its own instant (the signal's
                        // close id may have gone out and been refused MARKET_CLOSED).
                        client_order_id: client_order_id(
                            key,
                            if release { now } else { items[k].bt },
                            Op::Close,
                        ),
                        label: key.label(),
                        buy: r.action.0.direction() < 0,
                        volume: r.volume,
                        base_price: 0.0,
                        slippage_points: 0,
                    },
                    position_id: Some(r.position_id),
                    batch: 0,
                })
            })
            .collect();
        // The entries' margins, asked together while the exits are on the wire: the margin an
        // entry needs does not depend on the exits (only the free margin does, read after them).
        b.asked = b
            .plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.check_margin)
            .filter_map(|(k, p)| {
                let Some(Ok(o)) = &p.entry else { return None };
                Some((
                    k,
                    (
                        items[k].key.symbol.to_string(),
                        o.volume,
                        o.action.direction() > 0,
                    ),
                ))
            })
            .collect();
        b.phase = Phase {
            orders: closes,
            ..Phase::default()
        };
        b.stage = Stage::Exits;
    }

    /// The entry of item `k` as an order, when its plan enters.
    fn entry_order(items: &[Item], k: usize, p: &Plan) -> Option<Order> {
        let Some(Ok(o)) = &p.entry else { return None };
        let key = &items[k].key;
        Some(Order {
            idx: k,
            key: *key,
            bt: items[k].bt,
            op: Op::Open,
            action: o.action,
            req: OrderReq {
                symbol: key.symbol.to_string(),
                client_order_id: client_order_id(key, items[k].bt, Op::Open),
                label: key.label(),
                buy: o.action.direction() > 0,
                volume: o.volume,
                base_price: o.base_price,
                slippage_points: o.slippage_points,
            },
            position_id: None,
            batch: 0,
        })
    }

    /// Step 5's entries (not for a model whose exit failed). An entry whose intent went to the
    /// journal with the exits' and that is not sent now (its exit failed, the guard halted, its
    /// margin did not fit) gets a `withdrawn` outcome, so a restart does not look it up.
    fn build_entries(&mut self) {
        let Some(b) = &mut self.batch else { return };
        let items = &b.items;
        let opens: Vec<Order> = b
            .plans
            .iter()
            .enumerate()
            .filter(|(k, _)| !b.close_failed[*k])
            .filter_map(|(k, p)| Self::entry_order(items, k, p))
            .collect();
        for (k, p) in b.plans.iter().enumerate() {
            let coid = client_order_id(&items[k].key, items[k].bt, Op::Open);
            if !b.early.contains(&coid) || opens.iter().any(|o| o.req.client_order_id == coid) {
                continue;
            }
            let code = match &p.entry {
                Some(Err(r)) => r.code(),
                _ => "EXIT_FAILED".to_string(),
            };
            info!(target: DECISION, side = self.name, event = "entry_withdrawn", model = %items[k].key.model_name(),
                coid = %coid, code = %code, "entry not sent: its intent is closed as withdrawn");
            self.actions.push_back(SideAction::Journal {
                record: Record::Outcome {
                    coid,
                    result: "withdrawn".into(),
                    position_id: None,
                    price: None,
                    volume: None,
                    code: Some(code),
                },
                sync: false,
            });
        }
        b.phase = Phase {
            orders: opens,
            ..Phase::default()
        };
        b.stage = Stage::Entries;
    }

    /// The phase's intents, all in one synced write, before any of its orders goes out. A
    /// non-empty exits' write also carries the intents of the batch's entries (one group commit
    /// for the batch: a reversal's entries then wait for no second fsync); the entries' phase
    /// writes only the intents not already written.
    fn journal_phase(&mut self) {
        let Some(b) = self.batch.as_mut() else { return };
        let exits = b.stage == Stage::Exits;
        b.stage = if exits {
            Stage::ExitMargins
        } else {
            Stage::EntryAnswers
        };
        // With exits only: a batch of entries alone asks their margins first and writes their
        // intents after, one fsync either way. (A flatten or a release of held exits has no
        // entries.)
        let early: Vec<Order> = if exits && !b.phase.orders.is_empty() {
            let items = &b.items;
            b.plans
                .iter()
                .enumerate()
                .filter_map(|(k, p)| Self::entry_order(items, k, p))
                .collect()
        } else {
            Vec::new()
        };
        let b = self.batch.as_ref().expect("batch");
        let intents: Vec<Record> = b
            .phase
            .orders
            .iter()
            .filter(|o| !b.early.contains(&o.req.client_order_id))
            .chain(&early)
            .filter_map(|o| self.intent_of(o))
            .collect();
        let b = self.batch.as_mut().expect("batch");
        b.early_pending = early.into_iter().map(|o| o.req.client_order_id).collect();
        if !intents.is_empty() {
            b.wait = Some(Wait::Journaled);
            self.actions
                .push_back(SideAction::JournalIntents { records: intents });
        } else {
            // Every intent of the phase is durable already (written with the exits').
            self.submit_phase();
        }
    }

    /// Settles the phase's answers in submission order; `true` when every order has its
    /// outcome.
    fn settle_phase(&mut self) -> bool {
        loop {
            let Some(b) = &mut self.batch else {
                return false;
            };
            let p = &mut b.phase;
            if let Some(r) = &p.refused {
                p.execs = p.orders.iter().map(|_| r.clone()).collect();
                return true;
            }
            let k = p.execs.len();
            if k == p.orders.len() {
                return true;
            }
            if !p.awaited {
                p.awaited = true;
                b.wait = Some(Wait::Outcomes);
                self.actions.push_back(SideAction::AwaitAnswers);
                return false;
            }
            let coid = p.orders[k].req.client_order_id.clone();
            let Some((_, res)) = p
                .outcomes
                .iter()
                .position(|(c, _)| *c == coid)
                .and_then(|i| p.outcomes.remove(i))
            else {
                b.wait = Some(Wait::Outcomes);
                return false;
            };
            match exec_of(&res) {
                Some(e) => self.finish_order(e),
                None => {
                    let key = p.orders[k].key;
                    self.actions.push_back(SideAction::Journal {
                        record: Record::Outcome {
                            coid: coid.clone(),
                            result: "unknown".into(),
                            position_id: None,
                            price: None,
                            volume: None,
                            code: None,
                        },
                        sync: false,
                    });
                    warn!(target: DECISION, side = self.name, event = "order_unknown", model = %key.model_name(),
                        coid = %coid, "no answer from the broker: looking the order up (never resent)");
                    match self
                        .intents
                        .get(&coid)
                        .or_else(|| self.pending.get(&coid))
                        .and_then(lookup_of)
                    {
                        Some(lookup) => {
                            let b = self.batch.as_mut().expect("batch");
                            b.wait = Some(Wait::LookUp);
                            self.actions.push_back(SideAction::LookUp(lookup));
                            return false;
                        }
                        None => self.finish_order(Exec::Refused(Refusal::OutcomeUnknown)),
                    }
                }
            }
        }
    }

    /// Journals the outcome of the phase's next order and records it.
    fn finish_order(&mut self, exec: Exec) {
        let Some(b) = &mut self.batch else { return };
        let k = b.phase.execs.len();
        let Some(o) = b.phase.orders.get(k) else {
            return;
        };
        let (coid, key) = (o.req.client_order_id.clone(), o.key);
        let fill = (o.op, o.position_id, b.now, exec.clone());
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
        b.phase.execs.push(exec);
        self.actions.push_back(SideAction::Journal {
            record: Record::Outcome {
                coid: coid.clone(),
                result: result.into(),
                position_id: pid,
                price,
                volume: vol,
                code,
            },
            sync: false,
        });
        if result == "filled" {
            if self.intents.contains_key(&coid) {
                self.filled.insert(coid.clone());
            }
            self.account_cache = None;
            self.fills += 1;
        }
        if result != "unknown" {
            self.pending.remove(&coid);
        }
        info!(target: DECISION, side = self.name, event = "order_result", model = %key.model_name(), coid = %coid,
            result, position_id = pid, price, "order result");
        let (op, position_id, now, exec) = fill;
        self.guard_on_fill(now, op, &key, position_id, &exec);
    }

    /// Step 6: each model's outcome applied and its state journaled, in the items' order.
    fn complete(&mut self) {
        let Some(b) = &mut self.batch else { return };
        let plans = std::mem::take(&mut b.plans);
        let mut out = Vec::with_capacity(plans.len());
        for (k, plan) in plans.into_iter().enumerate() {
            let key = &b.items[k].key;
            let (close, open) = (b.close_exec[k].take(), b.open_exec[k].take());
            if matches!(close, Some(Exec::Refused(Refusal::MarketClosed { .. }))) {
                // The broker's hours said no: held for the open like the calendar's.
                self.held.insert(*key);
            }
            let mut refusal = match (&close, &plan.entry) {
                (Some(Exec::Refused(r)), _) => Some(r.clone()),
                (_, Some(Err(r))) => Some(r.clone()),
                _ => None,
            };
            if let Some(Exec::Refused(r)) = &open {
                refusal = Some(r.clone());
            }
            let ack = match self.policy.complete(&plan, close, open) {
                // Held by a news window, not by a closed market.
                AckKind::WaitSync(r)
                    if r == "MARKET_CLOSED"
                        && plan.held.is_some()
                        && self.news_held.contains(key) =>
                {
                    AckKind::WaitSync("NEWS_WINDOW".into())
                }
                a => a,
            };
            if let Some(state) = self.policy.models.get(key).cloned() {
                self.actions.push_back(SideAction::Journal {
                    record: Record::Model { model: *key, state },
                    sync: false,
                });
            }
            out.push((ack, plan, refusal));
        }
        b.result = Some(out);
        b.stage = Stage::Done;
    }
}

/// A reconciliation under way: the pending intents still to look up, then the positions.
#[derive(Debug)]
struct Reconcile {
    positions: Vec<BrokerPosition>,
    queue: VecDeque<Record>,
    /// The intent whose lookup is in flight.
    current: Option<Record>,
}

impl SideCore {
    /// The broker's open positions (at start and after every reconnect, before any order):
    /// reconciles the journal's view with them. Each intent whose outcome is unknown is looked
    /// up first ([`SideAction::LookUp`] → [`SideCore::handle_lookup`], one at a time), never
    /// resent; then positions the journal says we hold and positions with our label are
    /// explained. A symbol whose state cannot be explained is refused (listed in
    /// `policy.unreconciled`); the others go on. Done when [`SideCore::reconciling`] is false.
    pub fn handle_reconciled(&mut self, positions: Vec<BrokerPosition>) {
        self.policy.unreconciled.clear();
        self.reconcile = Some(Reconcile {
            positions,
            queue: self.pending.values().cloned().collect(),
            current: None,
        });
        self.advance_reconcile();
    }

    /// A reconciliation is under way (waiting for a lookup).
    pub fn reconciling(&self) -> bool {
        self.reconcile.is_some()
    }

    fn advance_reconcile(&mut self) {
        loop {
            let Some(rc) = &mut self.reconcile else {
                return;
            };
            if rc.current.is_some() {
                return;
            }
            match rc.queue.pop_front() {
                Some(r) => {
                    if let Some(lookup) = lookup_of(&r) {
                        rc.current = Some(r);
                        self.actions.push_back(SideAction::LookUp(lookup));
                        return;
                    }
                }
                None => {
                    if let Some(rc) = self.reconcile.take() {
                        self.reconcile_positions(&rc.positions);
                    }
                    return;
                }
            }
        }
    }

    /// Step 1: what became of an order sent before a restart or a disconnect.
    fn reconciled_lookup(&mut self, found: Result<Option<OrderResult>, String>) {
        let Some(r) = self.reconcile.as_mut().and_then(|rc| rc.current.take()) else {
            return;
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
            return self.advance_reconcile();
        };
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                warn!(target: DECISION, side = self.name, event = "unreconciled", symbol = %symbol,
                    coid = %coid, "order outcome unknown and the lookup failed ({e}): symbol not traded");
                self.policy.unreconciled.insert(
                    symbol.clone(),
                    format!("lookup of order {coid} failed: {e}"),
                );
                return self.advance_reconcile();
            }
        };
        let st = self.policy.models.entry(model).or_default();
        let outcome = match (op, found) {
            (
                Op::Open,
                Some(OrderResult::Filled {
                    position_id: pid,
                    price,
                    volume,
                }),
            ) => {
                info!(target: DECISION, side = self.name, event = "reconciled", model = %model.model_name(), coid = %coid,
                    position_id = pid, "order sent before the restart was filled: position adopted (not resent)");
                if st.real.is_none() {
                    st.real = Some(RealPos {
                        position_id: pid,
                        action,
                        volume,
                        price,
                    });
                    st.missed = false;
                }
                Record::Outcome {
                    coid: coid.clone(),
                    result: "filled".into(),
                    position_id: Some(pid),
                    price: Some(price),
                    volume: Some(volume),
                    code: None,
                }
            }
            (Op::Close, Some(OrderResult::Filled { .. })) => {
                if st.real.as_ref().map(|r| r.position_id) == position_id {
                    st.real = None;
                }
                Record::Outcome {
                    coid: coid.clone(),
                    result: "filled".into(),
                    position_id,
                    price: None,
                    volume: None,
                    code: None,
                }
            }
            _ => {
                info!(target: DECISION, side = self.name, event = "reconciled", model = %model.model_name(), coid = %coid,
                    "order sent before the restart never executed: not resent (entry missed)");
                if op == Op::Open {
                    st.missed = true;
                }
                Record::Outcome {
                    coid: coid.clone(),
                    result: "not_executed".into(),
                    position_id: None,
                    price: None,
                    volume: None,
                    code: None,
                }
            }
        };
        self.actions.push_back(SideAction::Journal {
            record: outcome,
            sync: true,
        });
        self.pending.remove(&coid);
        self.advance_reconcile();
    }

    /// Steps 2 and 3: positions the journal says we hold, then positions with our label that
    /// nothing explains; then every model's state is journaled.
    fn reconcile_positions(&mut self, positions: &[BrokerPosition]) {
        // 2. Positions the journal says we hold.
        let by_id: HashMap<u64, &BrokerPosition> =
            positions.iter().map(|p| (p.position_id, p)).collect();
        let mut known = HashSet::new();
        for (model, st) in self.policy.models.iter_mut() {
            if let Some(r) = &st.real {
                if by_id.contains_key(&r.position_id) {
                    known.insert(r.position_id);
                } else {
                    warn!(target: DECISION, side = self.name, event = "reconciled", model = %model.model_name(),
                        position_id = r.position_id,
                        "position closed outside the executor (stop-out, manual close): real is now FLAT, waiting for the next transition");
                    self.notes.insert(
                        *model,
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
        for p in positions {
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
                    let st = self.policy.models.entry(model).or_default();
                    st.real = Some(RealPos {
                        position_id: p.position_id,
                        action,
                        volume: p.volume,
                        price: p.price,
                    });
                    st.missed = false;
                    self.filled.insert(coid.clone());
                    info!(target: DECISION, side = self.name, event = "reconciled", model = %model.model_name(),
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
            self.actions.push_back(SideAction::Journal {
                record: Record::Model {
                    model: *model,
                    state: st.clone(),
                },
                sync: true,
            });
        }
    }
}
