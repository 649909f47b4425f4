//! The engine: the driver of the executor core's decisions ([`oracle_executor_core`]) over a
//! live and/or a paper book, plus the drift ledger.
//!
//! It is async only because the broker is; it reads no clock (`now` is a parameter) so tests
//! drive it with a virtual clock against [`crate::paper::PaperBook`]. It decides nothing
//! itself: [`Engine`] holds one [`ExecutorCore`] over its two [`Side`]s, whose actions say which
//! SIGNALs form a batch (at most one per model: a model's second SIGNAL waits for the first's
//! answer, so every model sees exactly the decisions a one-at-a-time engine makes), on which
//! sides it runs and which side answers; ACKs come back in arrival order. A SIGNAL's verdict
//! before the broker (duplicate, bar not streamed, stale re-send) is
//! `oracle_executor_core::answers`'; a batch's steps are `oracle_executor_core::side`'s
//! ([`Side`] does their I/O). Live and paper are the same core.
//!
//! One log line per decision (target `oracle_executor::decision`): `signal` in, `order_sent`,
//! `order_result`, `refusal` with its reason, `ack`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use oracle_ipc::{Action, ErrCode, Iso, Signal, Timeframe};
use tracing::{debug, info, warn};

pub use oracle_executor_core::answers::FUTURE_LAST_BAR;
use oracle_executor_core::exec::{
    Answered, BarAction, ExecAction, ExecutorCore, Reply, SideId, ack_line,
};
pub use oracle_executor_core::side::{ACCOUNT_TTL, DECISION, Item, Retained};
use oracle_executor_core::side::{AccountAhead, SideAction, SideCore};
use oracle_executor_core::streams::err_line;

use crate::alerting::Telemetry;
use crate::broker::{AccountRead, Broker, OrderResult};
use crate::config::ExecutorConfig;
use crate::drift::{DriftLedger, DriftRow};
use crate::journal::{Journal, Op, Record, Replayed};
use crate::paper::PaperBook;
use crate::policy::{AckKind, KeyText, Plan, Refusal, StreamKey};
use crate::volume::SymbolSpec;
use oracle_executor_core::drift::{RowSides, quote_pnl};

/// The drift ledger's `ack` for a streamed bar no SIGNAL was handled for.
pub const NO_SIGNAL: &str = oracle_executor_core::drift::NO_SIGNAL_ACK;

/// Log target of a batch's I/O steps, at debug level (`RUST_LOG=info,oracle_executor::timing=debug`;
/// off, they cost a level check): `account_read`, `intents_synced`, `order_handed` (to the
/// broker's writer), `margins_read`, `answers_in`. Their timestamps split a batch's time between
/// the broker's round trips and the journal's fsync (`oracle-dev bench`'s simulator leg).
pub const TIMING: &str = "oracle_executor::timing";

/// One side of the engine: a policy trading one book (live broker or paper). The decisions are
/// the core's ([`SideCore`], reached through `Deref`: `side.policy`, `side.risk`…); this drives
/// it: it does the I/O the core asks for (broker requests, journal writes) and feeds the results
/// back. Live and paper are the same core behind the same [`Broker`] interface.
#[derive(Debug)]
pub struct Side<B> {
    /// The decisions and what they rest on.
    pub core: SideCore,
    /// The book.
    pub broker: B,
    journal: Option<Journal>,
    /// Orders counted and timed ([`Engine::set_telemetry`]).
    telemetry: Option<Arc<Telemetry>>,
    /// This side answers the SIGNALs (live, else paper): its guard's halts and limits are told.
    tells_guard: bool,
    /// The account read started ahead of the next batch ([`Side::read_account_ahead`]).
    ahead: Option<(AccountAhead, AccountRead)>,
}

impl<B> std::ops::Deref for Side<B> {
    type Target = SideCore;
    fn deref(&self) -> &SideCore {
        &self.core
    }
}

impl<B> std::ops::DerefMut for Side<B> {
    fn deref_mut(&mut self) -> &mut SideCore {
        &mut self.core
    }
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
        let mut core = SideCore::new(name, cfg, &rep);
        core.set_currencies(broker.currencies());
        Side {
            core,
            broker,
            journal,
            telemetry: None,
            tells_guard: false,
            ahead: None,
        }
    }

    /// Starts the account read the next batch needs (a bar went out at `now`: its SIGNAL comes
    /// after the predictor's round trip), unless one of this close instant is in flight or
    /// cached ([`SideCore::account_ahead`]): the batch then finds it answered instead of
    /// asking the broker after the last SIGNAL. Returns at once.
    pub fn read_account_ahead(&mut self, now: i64) {
        if self
            .ahead
            .as_ref()
            .is_some_and(|(a, _)| (0..=ACCOUNT_TTL).contains(&(now - a.at)))
        {
            return;
        }
        let Some(a) = self.core.account_ahead(now) else {
            return;
        };
        self.ahead = self.broker.account_ahead().map(|rx| (a, rx));
    }

    /// Takes the answer of the read started ahead, if any (awaits it when still in flight):
    /// the core keeps it unless an order filled since it started.
    async fn settle_account_ahead(&mut self) {
        let Some((a, rx)) = self.ahead.take() else {
            return;
        };
        let acc = rx.await.ok().and_then(Result::ok);
        let kept = self.core.handle_account_ahead(a, acc);
        debug!(target: TIMING, side = self.core.name, event = "account_read", ok = acc.is_some(), ahead = true, kept);
    }

    /// fsyncs of this side's journal (0 without one): a test-visible metric.
    pub fn journal_syncs(&self) -> u64 {
        self.journal.as_ref().map_or(0, Journal::syncs)
    }

    async fn spec(&mut self, symbol: &str) -> Option<SymbolSpec> {
        if let Some(s) = self.core.specs.get(symbol) {
            return Some(s.clone());
        }
        let s = self.broker.symbol(symbol).await?;
        self.core.specs.insert(symbol.to_string(), s.clone());
        Some(s)
    }

    /// (position name, unrealised P&L) of a model for the drift ledger. The P&L comes from the
    /// book when it knows it, else from the live quote: (exit side − entry) × units, in the quote
    /// currency.
    pub fn position_view(&self, key: &StreamKey) -> (String, f64) {
        let Some(r) = self
            .core
            .policy
            .models
            .get(key)
            .and_then(|m| m.real.clone())
        else {
            return ("FLAT".into(), 0.0);
        };
        let pnl = self.broker.position_pnl(r.position_id).unwrap_or_else(|| {
            let q = self
                .broker
                .quote(key.symbol.as_str())
                .map(|q| (q.bid, q.ask));
            quote_pnl(r.action.0.direction() > 0, r.price, r.volume, q)
        });
        (r.action.0.as_str().to_string(), pnl)
    }

    /// The account, read at most once per [`ACCOUNT_TTL`] while no order fills.
    async fn account(&mut self, now: i64) -> Option<crate::risk::Account> {
        self.settle_account_ahead().await;
        if let Some(a) = self.core.cached_account(now) {
            return Some(a);
        }
        let a = self.broker.account().await.ok()?;
        self.core.store_account(now, a);
        Some(a)
    }

    /// Refreshes the account and the risk guard.
    pub async fn refresh_risk(&mut self, now: i64) -> Option<crate::risk::Account> {
        let acc = self.account(now).await?;
        self.core.apply_risk(now, acc);
        self.drive(now).await;
        Some(acc)
    }

    /// Does the I/O the core asks for, feeding each result back, until it waits for nothing.
    /// Order answers are fed one at a time, each one's actions done before the next (a crash at
    /// the `after_fill` failpoint leaves the earlier outcomes written).
    async fn drive(&mut self, now: i64) {
        let mut tickets: Vec<(String, B::Ticket)> = Vec::new();
        let mut answers: VecDeque<(String, OrderResult)> = VecDeque::new();
        loop {
            while let Some(a) = self.core.poll_action() {
                self.perform(now, a, &mut tickets, &mut answers).await;
            }
            let Some((coid, r)) = answers.pop_front() else {
                break;
            };
            if self.journal.is_some() {
                crate::failpoint::hit(crate::failpoint::Point::AfterFill);
            }
            self.core.handle_order_outcome(now, &coid, r);
        }
        // The orders are answered: the guard's halt and limits to the alerts and gauges.
        if self.tells_guard
            && let Some(t) = &self.telemetry
        {
            t.guard(&self.core.guard_status(self.core.name));
        }
    }

    async fn perform(
        &mut self,
        now: i64,
        a: SideAction,
        tickets: &mut Vec<(String, B::Ticket)>,
        answers: &mut VecDeque<(String, OrderResult)>,
    ) {
        match a {
            SideAction::AskAccount => {
                let acc = self.broker.account().await.ok();
                debug!(target: TIMING, side = self.core.name, event = "account_read", ok = acc.is_some());
                self.core.handle_account(now, acc);
            }
            SideAction::AskSpec { symbol } => {
                let s = self.broker.symbol(&symbol).await;
                self.core.handle_spec(&symbol, s);
            }
            SideAction::AskMarket { symbols } => {
                let quotes: Vec<_> = symbols.iter().map(|s| self.broker.quote(s)).collect();
                let connected = self.broker.connected();
                // The trading calendar at the batch's instant: no entry into a closed market,
                // an exit held until the open.
                let utc_ms = now.saturating_mul(1000);
                let closed: Vec<_> = symbols
                    .iter()
                    .map(|s| self.broker.closed(s, utc_ms))
                    .collect();
                self.core.handle_market_hours(&quotes, connected, &closed);
            }
            SideAction::JournalIntents { records } => {
                // fsync BEFORE the wire: the whole batch's intents, one fsync.
                let side = self.core.name;
                let r = match &mut self.journal {
                    Some(j) => j
                        .write_batch(&records)
                        .and_then(|()| {
                            debug!(target: TIMING, side, event = "intents_written", records = records.len());
                            j.sync()
                        })
                        .map_err(|e| e.to_string()),
                    None => Ok(()),
                };
                debug!(target: TIMING, side = self.core.name, event = "intents_synced", records = records.len());
                self.core.handle_journaled(r);
            }
            SideAction::Journal { record, sync } => {
                if let Some(j) = &mut self.journal {
                    let r = if sync {
                        j.append(&record)
                    } else {
                        j.append_unsynced(&record)
                    };
                    if let Err(e) = r {
                        warn!(target: DECISION, side = self.core.name, error = %e, "journal write failed");
                    }
                }
            }
            SideAction::Submit(o) => {
                if self.journal.is_some() {
                    // The N-th intent is durable and its order not yet on the wire.
                    crate::failpoint::hit(crate::failpoint::Point::AfterIntent);
                }
                let req = &o.req;
                info!(target: DECISION, side = self.core.name, event = "order_sent", model = %o.key.model_name(), op = ?o.op,
                    coid = %req.client_order_id, position_id = o.position_id, buy = req.buy, volume = req.volume,
                    base_price = req.base_price, slippage_points = req.slippage_points, batch = o.batch, "order sent");
                if let Some(t) = &self.telemetry {
                    t.metrics.order_sent(self.core.name);
                }
                let t = match o.op {
                    Op::Open => self.broker.submit_open(req).await,
                    Op::Close => {
                        self.broker
                            .submit_close(
                                o.position_id.unwrap_or(0),
                                req.volume,
                                &req.client_order_id,
                            )
                            .await
                    }
                };
                debug!(target: TIMING, side = self.core.name, event = "order_handed", coid = %req.client_order_id);
                tickets.push((req.client_order_id.clone(), t));
            }
            SideAction::AskMargins { asks } => {
                let got = self.broker.expected_margins(&asks).await;
                debug!(target: TIMING, side = self.core.name, event = "margins_read", asks = asks.len());
                let margins: Vec<Option<f64>> = got.into_iter().map(Result::ok).collect();
                self.core.handle_margins(&margins);
            }
            SideAction::AwaitAnswers => {
                let (coids, ts): (Vec<String>, Vec<B::Ticket>) =
                    std::mem::take(tickets).into_iter().unzip();
                let results = self.broker.answers(ts).await;
                debug!(target: TIMING, side = self.core.name, event = "answers_in", orders = results.len());
                let mut results = results.into_iter();
                for c in coids {
                    answers.push_back((c, results.next().unwrap_or(OrderResult::Unknown)));
                }
            }
            SideAction::LookUp(lookup) => {
                let r = self
                    .broker
                    .find_order(&lookup)
                    .await
                    .map_err(|e| e.to_string());
                self.core.handle_lookup(r);
            }
        }
    }

    /// Runs one signal through policy and book. Returns the ACK and the plan.
    pub async fn handle(
        &mut self,
        cfg: &ExecutorConfig,
        now: i64,
        key: &StreamKey,
        tf: Timeframe,
        target: Action,
        bt: i64,
    ) -> (AckKind, Plan, Option<Refusal>) {
        let item = Item {
            key: *key,
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
    /// one's ACK, plan and refusal, in the items' order. The steps are the core's
    /// ([`oracle_executor_core::side`]); this does their I/O.
    pub async fn handle_batch(
        &mut self,
        cfg: &ExecutorConfig,
        now: i64,
        items: &[Item],
    ) -> Vec<(AckKind, Plan, Option<Refusal>)> {
        // A symbol's facts the broker changed (its trading mode) count from this batch on.
        for s in self.broker.changed_specs().await {
            self.core.specs.insert(s.name.clone(), s);
        }
        // The account read started when the bars went out (its answer is usually in).
        self.settle_account_ahead().await;
        self.core.handle_signals(now, cfg, items);
        self.drive(now).await;
        let result = self.core.take_batch_result();
        // A flatten the guard asked while the batch ran starts when it ends: its closes now.
        self.drive(now).await;
        result.unwrap_or_else(|| {
            items
                .iter()
                .map(|it| {
                    (
                        AckKind::Fail("INTERNAL".into()),
                        Plan::nothing(&it.key, it.target, it.bt),
                        None,
                    )
                })
                .collect()
        })
    }

    /// The first open instant (UTC ms) of a market closed at `now` (Unix s) where this side
    /// holds an exit, by this book's calendar ([`SideCore::next_held_open`]).
    pub fn next_held_open(&self, now: i64) -> Option<i64> {
        let closed = |s: &str, ms: i64| self.broker.closed(s, ms);
        self.core.next_held_open(now.saturating_mul(1000), closed)
    }

    /// Asks, off the orders' path, the margins of the entries `items`' models could make at
    /// their next transition (every intensity, both sides), so a reversal's entries find the
    /// broker's answers fresh and their batch fits the 50 requests a second
    /// ([`Broker::prefetch_margins`]: only stale ones are asked).
    pub async fn prefetch_next_entries(&mut self, cfg: &ExecutorConfig, items: &[Item]) {
        for it in items {
            let _ = self.spec(it.key.symbol.as_str()).await;
        }
        let next = self.core.next_entry_asks(cfg, items);
        self.broker.prefetch_margins(&next).await;
    }

    /// Reconciles the journal's view with the broker's positions. Run at start and after every
    /// reconnect, before any order. Symbols whose state cannot be explained are refused (listed
    /// in `policy.unreconciled`); the others go on. The decisions are the core's
    /// ([`SideCore::handle_reconciled`]).
    pub async fn reconcile(&mut self, now: i64) -> Result<(), crate::broker::BrokerError> {
        let positions = self.broker.reconcile().await?;
        self.core.handle_reconciled(positions);
        self.drive(now).await;
        Ok(())
    }
}

pub use oracle_executor_core::exec::Counters;

/// The engine: the executor core ([`ExecutorCore`]: both sides, the answers, the grouping)
/// driven over the sides' brokers and journals, plus the drift ledger. Reached through `Deref`:
/// `engine.cfg`, `engine.live`, `engine.paper`, `engine.counters` are the core's.
#[derive(Debug)]
pub struct Engine<B> {
    /// The decisions: both sides (each a core, a broker and a journal), the answers.
    pub core: ExecutorCore<Side<B>, Side<PaperBook>>,
    drift: Option<DriftLedger>,
    /// Metrics and alerts ([`Engine::set_telemetry`]; none in tests that do not ask).
    telemetry: Option<Arc<Telemetry>>,
    /// Each model's virtual unrealised P&L from its last SIGNAL handled (`oracle status`).
    virtual_pnl: HashMap<StreamKey, f64>,
}

impl<B> std::ops::Deref for Engine<B> {
    type Target = ExecutorCore<Side<B>, Side<PaperBook>>;
    fn deref(&self) -> &Self::Target {
        &self.core
    }
}

impl<B> std::ops::DerefMut for Engine<B> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.core
    }
}

impl<B> AsRef<SideCore> for Side<B> {
    fn as_ref(&self) -> &SideCore {
        &self.core
    }
}

impl<B> AsMut<SideCore> for Side<B> {
    fn as_mut(&mut self) -> &mut SideCore {
        &mut self.core
    }
}

/// Answer to a SIGNAL.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalAnswer {
    /// The line to send back.
    pub line: String,
    /// Answered from the duplicate cache.
    pub duplicate: bool,
}

impl<B: Broker> Engine<B> {
    #[allow(clippy::too_many_arguments)]
    fn write_drift(
        &mut self,
        s: &Signal<'_>,
        key: &StreamKey,
        bt: i64,
        line: &str,
        equity: Option<f64>,
        paper_equity: Option<f64>,
    ) {
        self.virtual_pnl.insert(*key, s.virtual_pnl.as_f64());
        let sides = RowSides {
            real: self.live.as_ref().map(|l| l.position_view(key)),
            paper: self.paper.as_ref().map(|p| p.position_view(key)),
            equity,
            paper_equity,
        };
        let note = self.core.answering_mut().and_then(|c| c.notes.remove(key));
        let Some(d) = &mut self.drift else { return };
        let virt = (s.action.as_str(), s.virtual_pnl.as_f64());
        let row = DriftRow::answered(bt, key, virt, sides, note, line);
        if let Err(e) = d.write(&row) {
            warn!(error = %e, "drift ledger write failed");
        }
    }

    /// A `NO_SIGNAL` ledger row: the bar was streamed but no SIGNAL was handled for it in time.
    /// No I/O besides the ledger: equities are the last ones read (`null` when none).
    fn write_no_signal(&mut self, key: &StreamKey, bt: i64) {
        let sides = RowSides {
            real: self.live.as_ref().map(|l| l.position_view(key)),
            paper: self.paper.as_ref().map(|p| p.position_view(key)),
            equity: self
                .core
                .answering()
                .and_then(|c| c.last_account().map(|a| a.equity)),
            paper_equity: self
                .paper
                .as_ref()
                .and_then(|p| p.last_account().map(|a| a.equity)),
        };
        let Some(d) = &mut self.drift else { return };
        let row = DriftRow::no_signal(bt, key, sides);
        if let Err(e) = d.write(&row) {
            warn!(error = %e, "drift ledger write failed");
        }
    }

    /// A bar was streamed to the predictor (broadcast as a live BAR): it will get a ledger row;
    /// writes the `NO_SIGNAL` rows the core says are due
    /// ([`ExecutorCore::handle_bar_streamed`]).
    pub fn bar_streamed(&mut self, key: &StreamKey, bt: i64) {
        if let Some(t) = &self.telemetry {
            t.metrics.bar_out();
        }
        let ledger = self.drift.is_some();
        for a in self.core.handle_bar_streamed(key, bt, ledger) {
            if let BarAction::LedgerRow { key, bt } = a {
                self.write_no_signal(&key, bt);
            }
        }
    }

    /// A bar went out at `now`: the live side starts the account read its SIGNAL's batch will
    /// need ([`Side::read_account_ahead`]; once per close instant), so the read's round trip
    /// runs beside the predictor's instead of after the last SIGNAL.
    pub fn read_account_ahead(&mut self, now: i64) {
        if let Some(l) = &mut self.core.live {
            l.read_account_ahead(now);
        }
    }

    /// Writes `NO_SIGNAL` rows for every streamed bar still without one (clean shutdown).
    pub fn flush_unexplained(&mut self) {
        for (k, t) in self.core.answers.flush_unexplained() {
            self.write_no_signal(&k, t);
        }
    }

    /// An engine. `acks` from the live (or paper-alone) journal.
    pub fn new(
        cfg: ExecutorConfig,
        live: Option<Side<B>>,
        paper: Option<Side<PaperBook>>,
        acks: HashMap<(StreamKey, i64), String>,
        drift: Option<DriftLedger>,
    ) -> Self {
        Engine {
            core: ExecutorCore::new(cfg, live, paper, acks),
            drift,
            telemetry: None,
            virtual_pnl: HashMap::new(),
        }
    }

    /// Counts bars, signals, orders and refusals into `t`'s metrics and tells its alerts of each
    /// refusal (after the batch is answered: never on the order path).
    pub fn set_telemetry(&mut self, t: Arc<Telemetry>) {
        let live = self.core.live.is_some();
        if let Some(l) = &mut self.core.live {
            l.telemetry = Some(t.clone());
            l.tells_guard = true;
        }
        if let Some(p) = &mut self.core.paper {
            p.telemetry = Some(t.clone());
            p.tells_guard = !live;
        }
        self.telemetry = Some(t);
    }

    /// The telemetry set, if any.
    pub fn telemetry(&self) -> Option<&Arc<Telemetry>> {
        self.telemetry.as_ref()
    }

    /// ACK lines remembered, over all models (tests: memory stays flat over a long run).
    pub fn acks_len(&self) -> usize {
        self.core.answers.acks_len()
    }

    /// Streamed bars waiting for their drift-ledger row, over all models.
    pub fn unexplained_len(&self) -> usize {
        self.core.answers.unexplained_len()
    }

    /// The answering side's journal (where its ACKs are remembered across a restart).
    fn answering_journal(&mut self) -> Option<&mut Journal> {
        match self.core.answering_id()? {
            SideId::Live => self.core.live.as_mut().and_then(|l| l.journal.as_mut()),
            SideId::Paper => self.core.paper.as_mut().and_then(|p| p.journal.as_mut()),
        }
    }

    /// Arms the core's [`oracle_executor_core::gather::Timer::HeldExit`] for the first open
    /// instant of a market where an exit is held (either side), `now` the executor's clock
    /// (Unix s) and `now_ms` the timers' clock. Called after every batch, reconciliation and
    /// release.
    pub fn arm_held_exits(&mut self, now: i64, now_ms: i64) {
        self.paper_sees_held_markets(now);
        let live = self.core.live.as_ref().and_then(|l| l.next_held_open(now));
        let paper = self.core.paper.as_ref().and_then(|p| p.next_held_open(now));
        let next = match (live, paper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.core
            .arm_held_exits(now.saturating_mul(1000), now_ms, next);
    }

    /// [`oracle_executor_core::gather::Timer::HeldExit`] fired: each side sends its held exits
    /// (a market still closed holds them again), then the timer is armed again.
    pub async fn release_held_exits(&mut self, now: i64, now_ms: i64) {
        self.paper_sees_held_markets(now);
        for id in self.core.release_held_exits(now, now_ms) {
            match id {
                SideId::Live => {
                    if let Some(l) = &mut self.core.live {
                        l.drive(now).await;
                        let _ = l.core.take_batch_result();
                    }
                }
                SideId::Paper => {
                    if let Some(p) = &mut self.core.paper {
                        p.drive(now).await;
                        let _ = p.core.take_batch_result();
                    }
                }
            }
        }
        self.arm_held_exits(now, now_ms);
    }

    /// The paper book beside live (`--with-paper`) obeys the live broker's market: for each of
    /// `symbols`, whether live's calendar has its market closed at `now` (Unix s), and until
    /// when ([`PaperBook::set_hours`]), and every symbol's trading mode as live's side holds it
    /// (a close-only symbol refuses entries on paper too). The decisions stay the side core's:
    /// the book is only told the same facts. Nothing without a live side (`--paper`,
    /// `--dry-run`: that book follows its session itself, [`PaperBook::follow`]).
    fn paper_sees_live_market<'a>(&mut self, now: i64, symbols: impl Iterator<Item = &'a str>) {
        let (Some(l), Some(p)) = (&self.core.live, &mut self.core.paper) else {
            return;
        };
        let utc_ms = now.saturating_mul(1000);
        for s in symbols {
            p.broker.set_hours(s, utc_ms, l.broker.closed(s, utc_ms));
        }
        for (name, spec) in &l.core.specs {
            let mode = spec.trading_mode;
            if let Some(b) = p.broker.specs.get_mut(name)
                && b.trading_mode != mode
            {
                b.trading_mode = mode;
            }
            if let Some(c) = p.core.specs.get_mut(name)
                && c.trading_mode != mode
            {
                c.trading_mode = mode;
            }
        }
    }

    /// [`Engine::paper_sees_live_market`] for the symbols where the paper side holds an exit.
    fn paper_sees_held_markets(&mut self, now: i64) {
        if self.core.live.is_none() {
            return;
        }
        let held: Vec<String> = self.core.paper.as_ref().map_or_else(Vec::new, |p| {
            p.held_exits().into_iter().map(|(_, s)| s).collect()
        });
        self.paper_sees_live_market(now, held.iter().map(String::as_str));
    }

    /// Is this symbol served (in the config)?
    pub fn knows(&self, symbol: &str) -> bool {
        self.cfg.symbols.contains_key(symbol)
    }

    /// A quote of `symbol` at `now` (Unix s): with a `risk.preset`, each side with a position
    /// open on the symbol evaluates its prop-firm guard, which may close every position and
    /// halt; the closes go out now ([`Engine::drive_sides`]).
    pub async fn on_quote(&mut self, now: i64, symbol: &str, bid: f64, ask: f64) {
        self.core
            .handle_quote(now.saturating_mul(1000), symbol, bid, ask);
        self.drive_sides(now).await;
    }

    /// A model's virtual unrealised P&L from its last SIGNAL handled (`None`: none yet).
    pub fn virtual_pnl(&self, key: &StreamKey) -> Option<f64> {
        self.virtual_pnl.get(key).copied()
    }

    /// Does the I/O both sides' cores ask for outside a batch (an operator command's closes and
    /// journal records), at `now` (Unix s).
    pub async fn drive_sides(&mut self, now: i64) {
        // A flatten's closes on paper meet the markets live sees.
        let paper = self
            .core
            .paper
            .as_ref()
            .filter(|_| self.core.live.is_some());
        let held: Vec<String> = paper.map_or_else(Vec::new, |p| {
            let mut v: Vec<String> = p
                .policy
                .models
                .iter()
                .filter(|(_, st)| st.real.is_some())
                .map(|(k, _)| k.symbol.to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        });
        self.paper_sees_live_market(now, held.iter().map(String::as_str));
        if let Some(l) = &mut self.core.live {
            l.drive(now).await;
        }
        if let Some(p) = &mut self.core.paper {
            p.drive(now).await;
        }
    }

    /// Reconciles both sides (start, reconnect).
    pub async fn reconcile(&mut self, now: i64) -> Result<(), crate::broker::BrokerError> {
        if let Some(p) = &mut self.core.paper {
            p.reconcile(now).await?;
        }
        if let Some(l) = &mut self.core.live {
            l.reconcile(now).await?;
        }
        // An exit held across a restart or a disconnect goes at once if its market is open.
        self.core.held_release_open = true;
        Ok(())
    }

    /// A closed bar was streamed: feeds freshness tracking and the paper prices (paper alone):
    /// the core's [`ExecutorCore::handle_bar`].
    pub fn on_bar(&mut self, key: &StreamKey, time: i64, close: f64, spread: f64) {
        if let Some(BarAction::PaperQuote { symbol, bid, ask }) =
            self.core.handle_bar(key, time, close, spread)
            && let Some(p) = &mut self.core.paper
        {
            p.broker.set_quote(&symbol, bid, ask);
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
    /// The grouping and the answers are the core's ([`ExecutorCore::poll_action`]): a signal
    /// answered without the broker (no bar time, a duplicate, a stale re-send) is answered at
    /// once; the others are executed as batches ([`Side::handle_batch`]) holding at most one
    /// signal per model. This does the I/O: the sides' batches, the ledger rows, the ACKs
    /// journaled, the margins prefetched.
    pub async fn on_signals(&mut self, now: i64, signals: &[Signal<'_>]) -> Vec<SignalAnswer> {
        self.core.handle_signals(signals.len());
        if let Some(t) = &self.telemetry {
            t.metrics.signals_in(signals.len());
        }
        while let Some(a) = self.core.poll_action(now, signals) {
            match a {
                ExecAction::RunBatch { items, sides } => {
                    self.run_batch(now, signals, &items, &sides).await;
                }
                ExecAction::Answered(a) => self.answered(now, &signals[a.index], a).await,
                ExecAction::PrefetchNextEntries { items } => {
                    if let Some(l) = &mut self.core.live {
                        l.prefetch_next_entries(&self.core.cfg, &items).await;
                    }
                }
            }
        }
        let answers: Vec<SignalAnswer> = self
            .core
            .take_replies(signals)
            .into_iter()
            .map(|r| match r {
                Reply::Line { line, duplicate } => SignalAnswer { line, duplicate },
                Reply::UnknownBar { key, bt } => SignalAnswer {
                    line: err_line(
                        ErrCode::UnknownBar,
                        &format!("{}|{}", key.model_name(), Iso(bt)),
                    ),
                    duplicate: false,
                },
            })
            .collect();
        if let Some(t) = &self.telemetry {
            crate::alerting::after_batch(t, &self.core, signals, &answers);
        }
        answers
    }

    /// Runs a batch on the sides the core names (live first, latency; then the paper book) and
    /// feeds their results back.
    async fn run_batch(
        &mut self,
        now: i64,
        signals: &[Signal<'_>],
        items: &[Item],
        sides: &[SideId],
    ) {
        // Paper beside live sees the live prices.
        if let (Some(l), Some(p)) = (&self.core.live, &mut self.core.paper) {
            for it in items {
                if let Some(q) = l.broker.quote(it.key.symbol.as_str()) {
                    p.broker.set_quote(it.key.symbol.as_str(), q.bid, q.ask);
                }
            }
        }
        let (mut live, mut paper) = (None, None);
        for id in sides {
            match id {
                SideId::Live => {
                    if let Some(l) = &mut self.core.live {
                        live = Some(l.handle_batch(&self.core.cfg, now, items).await);
                    }
                }
                SideId::Paper => {
                    // After live's batch: the facts it read for it (a trading mode changed).
                    self.paper_sees_live_market(now, items.iter().map(|it| it.key.symbol.as_str()));
                    if let Some(p) = &mut self.core.paper {
                        paper = Some(p.handle_batch(&self.core.cfg, now, items).await);
                    }
                }
            }
        }
        self.core.handle_batch_results(signals, live, paper);
    }

    /// A signal its batch answered: its drift-ledger row, its ACK journaled on the answering
    /// side (the core remembered it).
    async fn answered(&mut self, now: i64, s: &Signal<'_>, a: Answered) {
        let (key, bt, line) = (&a.key, a.bt, &a.line);
        if self.drift.is_some() {
            let live_equity = match &mut self.core.live {
                Some(l) => l.account(now).await.map(|a| a.equity),
                None => None,
            };
            let paper_equity = match &mut self.core.paper {
                Some(p) => p.account(now).await.map(|a| a.equity),
                None => None,
            };
            let equity = if self.core.live.is_some() {
                live_equity
            } else {
                paper_equity
            };
            self.write_drift(s, key, bt, line, equity, paper_equity);
            self.core.answers.explained(key, bt);
        }
        if let Some(j) = self.answering_journal() {
            let _ = j.append_unsynced(&Record::Ack {
                model: *key,
                bt,
                line: line.clone(),
            });
        }
    }
}
