//! The engine: the driver of the executor core's decisions ([`oracle_executor_core`]) over a
//! live and/or a paper book, plus the drift ledger.
//!
//! It is async only because the broker is; it reads no clock (`now` is a parameter) so tests
//! drive it with a virtual clock against [`crate::paper::PaperBook`]. What it decides itself is
//! only the grouping: the SIGNALs that wait together are one batch ([`Engine::on_signals`]),
//! two SIGNALs of one model never share a batch (the second waits for the first's answer), so
//! every model sees exactly the decisions a one-at-a-time engine makes; ACKs come back in
//! arrival order. A SIGNAL's verdict before the broker (duplicate, bar not streamed, stale
//! re-send) is `oracle_executor_core::answers`'; a batch's steps are
//! `oracle_executor_core::side`'s ([`Side`] does their I/O). Live and paper are the same core.
//!
//! One log line per decision (target `oracle_executor::decision`): `signal` in, `order_sent`,
//! `order_result`, `refusal` with its reason, `ack`.

use std::collections::{HashMap, VecDeque};

use oracle_ipc::{Ack, Action, ErrCode, Iso, Message, Outcome, Signal, Timeframe};
use tracing::{info, warn};

pub use oracle_executor_core::answers::FUTURE_LAST_BAR;
use oracle_executor_core::answers::{Answers, Verdict};
pub use oracle_executor_core::side::{ACCOUNT_TTL, DECISION, Item, Retained};
use oracle_executor_core::side::{SideAction, SideCore};

use crate::broker::{Broker, OrderResult};
use crate::config::ExecutorConfig;
use crate::drift::{DriftLedger, DriftRow};
use crate::journal::{Journal, Op, Record, Replayed};
use crate::paper::PaperBook;
use crate::policy::{AckKind, ModelKey, Plan, Refusal};
use crate::server::err_line;
use crate::volume::SymbolSpec;

/// The drift ledger's `ack` for a streamed bar no SIGNAL was handled for.
pub const NO_SIGNAL: &str = "NO_SIGNAL";

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
        Side {
            core: SideCore::new(name, cfg, &rep),
            broker,
            journal,
        }
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
    pub fn position_view(&self, key: &ModelKey) -> (String, f64) {
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
                self.core.handle_account(now, acc);
            }
            SideAction::AskSpec { symbol } => {
                let s = self.broker.symbol(&symbol).await;
                self.core.handle_spec(&symbol, s);
            }
            SideAction::AskMarket { symbols } => {
                let quotes: Vec<_> = symbols.iter().map(|s| self.broker.quote(s)).collect();
                let connected = self.broker.connected();
                self.core.handle_market(&quotes, connected);
            }
            SideAction::JournalIntents { records } => {
                // fsync BEFORE the wire: the whole batch's intents, one fsync.
                let r = match &mut self.journal {
                    Some(j) => j.append_batch(&records).map_err(|e| e.to_string()),
                    None => Ok(()),
                };
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
                info!(target: DECISION, side = self.core.name, event = "order_sent", model = %o.key, op = ?o.op,
                    coid = %req.client_order_id, buy = req.buy, volume = req.volume, base_price = req.base_price,
                    slippage_points = req.slippage_points, batch = o.batch, "order sent");
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
                tickets.push((req.client_order_id.clone(), t));
            }
            SideAction::AskMargins { asks } => {
                let got = self.broker.expected_margins(&asks).await;
                let margins: Vec<Option<f64>> = got.into_iter().map(Result::ok).collect();
                self.core.handle_margins(&margins);
            }
            SideAction::AwaitAnswers => {
                let (coids, ts): (Vec<String>, Vec<B::Ticket>) =
                    std::mem::take(tickets).into_iter().unzip();
                let results = self.broker.answers(ts).await;
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
    /// one's ACK, plan and refusal, in the items' order. The steps are the core's
    /// ([`oracle_executor_core::side`]); this does their I/O.
    pub async fn handle_batch(
        &mut self,
        cfg: &ExecutorConfig,
        now: i64,
        items: &[Item],
    ) -> Vec<(AckKind, Plan, Option<Refusal>)> {
        self.core.handle_signals(now, cfg, items);
        self.drive(now).await;
        self.core.take_batch_result().unwrap_or_else(|| {
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

    /// Asks, off the orders' path, the margins of the entries `items`' models could make at
    /// their next transition (every intensity, both sides), so a reversal's entries find the
    /// broker's answers fresh and their batch fits the 50 requests a second
    /// ([`Broker::prefetch_margins`]: only stale ones are asked).
    pub async fn prefetch_next_entries(&mut self, cfg: &ExecutorConfig, items: &[Item]) {
        for it in items {
            let _ = self.spec(&it.key.symbol).await;
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
    /// The ACKs remembered and the streamed bars waiting for their ledger row (the core's).
    answers: Answers,
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
        let note = self.answering_mut().and_then(|c| c.notes.remove(key));
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
        let equity = self
            .answering()
            .and_then(|c| c.last_account().map(|a| a.equity));
        let paper_equity = self
            .paper
            .as_ref()
            .and_then(|p| p.last_account().map(|a| a.equity));
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
        for t in self.answers.bar_streamed(key, bt) {
            self.write_no_signal(key, t);
        }
    }

    /// Writes `NO_SIGNAL` rows for every streamed bar still without one (clean shutdown).
    pub fn flush_unexplained(&mut self) {
        for (k, t) in self.answers.flush_unexplained() {
            self.write_no_signal(&k, t);
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
            answers: Answers::new(acks),
            counters: Counters::default(),
        }
    }

    /// ACK lines remembered, over all models (tests: memory stays flat over a long run).
    pub fn acks_len(&self) -> usize {
        self.answers.acks_len()
    }

    /// Streamed bars waiting for their drift-ledger row, over all models.
    pub fn unexplained_len(&self) -> usize {
        self.answers.unexplained_len()
    }

    /// The side whose answers the predictor gets: live, else paper (the same core either way).
    fn answering(&self) -> Option<&SideCore> {
        match &self.live {
            Some(l) => Some(&l.core),
            None => self.paper.as_ref().map(|p| &p.core),
        }
    }

    /// [`Engine::answering`], to change.
    fn answering_mut(&mut self) -> Option<&mut SideCore> {
        match &mut self.live {
            Some(l) => Some(&mut l.core),
            None => self.paper.as_mut().map(|p| &mut p.core),
        }
    }

    /// The answering side's journal (where its ACKs are remembered across a restart).
    fn answering_journal(&mut self) -> Option<&mut Journal> {
        match &mut self.live {
            Some(l) => l.journal.as_mut(),
            None => self.paper.as_mut().and_then(|p| p.journal.as_mut()),
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
    /// time (`Err`: it goes to the broker). The verdict is the core's ([`Answers::admit`]);
    /// this formats its line.
    fn answer_at_once(
        &mut self,
        now: i64,
        s: &Signal<'_>,
    ) -> Result<SignalAnswer, (ModelKey, Timeframe, i64)> {
        self.counters.signals += 1;
        let answering = match &self.live {
            Some(l) => Some(&l.core),
            None => self.paper.as_ref().map(|p| &p.core),
        };
        let (line, duplicate) = match self.answers.admit(now, s, answering) {
            Verdict::Execute { key, tf, bt } => return Err((key, tf, bt)),
            Verdict::NoBarTime => (ack_line(s, &AckKind::Fail("NO_BAR_TIME".into())), false),
            Verdict::Duplicate(line) => {
                self.counters.duplicates += 1;
                (line, true)
            }
            Verdict::UnknownBar { key, bt } => {
                self.counters.refusals += 1;
                let line = err_line(ErrCode::UnknownBar, &format!("{key}|{}", Iso(bt)));
                (line, false)
            }
            Verdict::Stale => {
                self.counters.refusals += 1;
                let line = ack_line(s, &AckKind::Fail("STALE_SIGNAL".into()));
                if let Some(tf) = s.tf {
                    info!(target: DECISION, event = "ack", model = %ModelKey::new(s.symbol, tf), ack = %line, "ack out");
                }
                (line, false)
            }
        };
        Ok(SignalAnswer { line, duplicate })
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
        let live = match &mut self.live {
            Some(l) => Some(l.handle_batch(&self.cfg, now, &items).await),
            None => None,
        };
        let paper = match &mut self.paper {
            Some(p) => Some(p.handle_batch(&self.cfg, now, &items).await),
            None => None,
        };
        // The predictor gets the answering side's ACKs: live, else paper.
        let mut answered_by = live.or(paper);
        for (k, (i, key, _, bt)) in group.iter().enumerate() {
            let (s, bt) = (&signals[*i], *bt);
            let answered = answered_by
                .as_mut()
                .and_then(|v| v.get_mut(k))
                .map(|x| (x.0.clone(), x.2.take()));
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
                let live_equity = match &mut self.live {
                    Some(l) => l.account(now).await.map(|a| a.equity),
                    None => None,
                };
                let paper_equity = match &mut self.paper {
                    Some(p) => p.account(now).await.map(|a| a.equity),
                    None => None,
                };
                let equity = if self.live.is_some() {
                    live_equity
                } else {
                    paper_equity
                };
                self.write_drift(s, key, bt, &line, equity, paper_equity);
                self.answers.explained(key, bt);
            }
            // Remember the answer (journal of the answering side).
            if let Some(j) = self.answering_journal() {
                let _ = j.append_unsynced(&Record::Ack {
                    model: key.clone(),
                    bt,
                    line: line.clone(),
                });
            }
            self.answers.remember(key.clone(), bt, line.clone());
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
