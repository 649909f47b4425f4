//! [`ExecutorCore`]: both sides' cores and the answers, and the grouping of SIGNALs into
//! batches, sans-IO.
//!
//! The SIGNALs that waited together are handed in at once ([`ExecutorCore::handle_signals`]);
//! [`ExecutorCore::poll_action`] then yields [`ExecAction`]s: a batch to run on the sides
//! present ([`ExecAction::RunBatch`], live first, then paper: the shell drives each side's
//! [`SideCore`] and feeds both results back with [`ExecutorCore::handle_batch_results`]), each
//! signal answered by a batch ([`ExecAction::Answered`]: its ledger row and its journaled ACK are
//! the shell's), and the next transitions' margins to prefetch on the live side
//! ([`ExecAction::PrefetchNextEntries`]). [`ExecutorCore::take_replies`] gives one [`Reply`] per
//! signal, in arrival order.
//!
//! Which side answers is data ([`SideId`]): live, else paper; with neither the answer is
//! `FAIL|BROKER_DOWN`. Two SIGNALs of one model never share a batch: the second is admitted
//! (duplicate check, staleness) only after the first's batch is answered, so every model sees
//! exactly the decisions a one-at-a-time executor makes.
//!
//! The sides are generic: anything that is a [`SideCore`] (`AsRef`/`AsMut`), e.g. the shell's
//! side holding a core, a broker and a journal, or a bare [`SideCore`] in tests.

use std::collections::{HashMap, VecDeque};

use oracle_ipc::{Ack, Iso, Message, Outcome, Signal};
use tracing::{info, warn};

use crate::answers::{Answers, Verdict};
use crate::config::ExecutorConfig;
use crate::gather::{Gather, Timer};
use crate::key::{KeyText, StreamKey, key_of};
use crate::pace::Pace;
use crate::policy::{AckKind, Plan, Refusal};
use crate::restrictions::{Restrictions, WeekEnd};
use crate::side::{DECISION, Item, SideCore};

impl AsRef<SideCore> for SideCore {
    fn as_ref(&self) -> &SideCore {
        self
    }
}

impl AsMut<SideCore> for SideCore {
    fn as_mut(&mut self) -> &mut SideCore {
        self
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

/// A side of the executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideId {
    /// The broker's real book.
    Live,
    /// The paper book (alone, or beside live).
    Paper,
}

/// One side's answers to a batch, in the items' order: ACK, plan, refusal.
pub type BatchResult = Vec<(AckKind, Plan, Option<Refusal>)>;

/// What a SIGNAL is answered with.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// An `ACK` line (or a remembered one again: `duplicate`).
    Line {
        /// The line.
        line: String,
        /// Answered from the ACKs remembered, not executed.
        duplicate: bool,
    },
    /// `ERR|UNKNOWN_BAR`: not a bar streamed on the model's stream (the shell formats the line).
    UnknownBar {
        /// The model.
        key: StreamKey,
        /// The signal's bar time.
        bt: i64,
    },
}

/// A signal a batch answered: the shell writes its ledger row and journals its ACK on the
/// answering side's journal.
#[derive(Clone, Debug, PartialEq)]
pub struct Answered {
    /// Its index in the signals handed in.
    pub index: usize,
    /// The model.
    pub key: StreamKey,
    /// The signal's bar time.
    pub bt: i64,
    /// The ACK line.
    pub line: String,
}

/// What the executor core asks its shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecAction {
    /// Run this batch (at most one item per model) on these sides, in this order; answer with
    /// [`ExecutorCore::handle_batch_results`].
    RunBatch {
        /// The batch.
        items: Vec<Item>,
        /// The sides present, live first.
        sides: Vec<SideId>,
    },
    /// A signal answered by its batch.
    Answered(Answered),
    /// Ask the live broker, off the orders' path, the margins of the next transitions' entries.
    PrefetchNextEntries {
        /// The batch just answered.
        items: Vec<Item>,
    },
}

/// What a bar asks of the shell.
#[derive(Clone, Debug, PartialEq)]
pub enum BarAction {
    /// Paper alone: the paper book's price is the bar's close (bid) and close + spread (ask).
    PaperQuote {
        /// The symbol.
        symbol: String,
        /// Bid.
        bid: f64,
        /// Ask.
        ask: f64,
    },
    /// A streamed bar no SIGNAL was handled for in time: its `NO_SIGNAL` ledger row.
    LedgerRow {
        /// The model.
        key: StreamKey,
        /// The bar's open time.
        bt: i64,
    },
}

/// The signals handed in and where their answering stands.
#[derive(Debug, Default)]
struct Signals {
    /// Next signal to admit.
    next: usize,
    /// Admitted, waiting for their batch: (index, item).
    group: Vec<(usize, Item)>,
    /// The batch on the sides: (index, item).
    running: Option<Vec<(usize, Item)>>,
    replies: Vec<Option<Reply>>,
    out: VecDeque<ExecAction>,
}

/// Both sides' cores, the answers, and the grouping of SIGNALs into batches.
#[derive(Debug)]
pub struct ExecutorCore<L = SideCore, P = SideCore> {
    /// Configuration.
    pub cfg: ExecutorConfig,
    /// Live side (None in `--paper` alone).
    pub live: Option<L>,
    /// Paper side (alone or beside live).
    pub paper: Option<P>,
    /// The ACKs remembered and the streamed bars waiting for their ledger row.
    pub answers: Answers,
    /// Counters.
    pub counters: Counters,
    /// The close instant's SIGNALs gathered into one batch, and the timer table.
    pub gather: Gather,
    /// Demo pacing (`--hold-market-until-predictor`), if on.
    pub pace: Option<Pace>,
    signals: Option<Signals>,
    /// When the held exits were last released (timer milliseconds).
    released_ms: Option<i64>,
    /// Release the held exits whose market is open now, too, at the next
    /// [`Timer::HeldExit`] (set by the shell after a reconciliation: a restart or reconnect
    /// while an exit was held finds its market open; cleared by the release).
    pub held_release_open: bool,
    /// When [`Timer::Weekend`] last fired (timer milliseconds).
    weekend_ms: Option<i64>,
}

/// The held exits are not released again sooner than this after a release (milliseconds): a
/// broker that answers `MARKET_CLOSED` while its calendar says open is asked once a minute.
pub const HELD_EXIT_RETRY_MS: i64 = 60_000;

/// The `ACK` line of a signal answered `kind`.
pub fn ack_line(s: &Signal<'_>, kind: &AckKind) -> String {
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

impl<L: AsRef<SideCore> + AsMut<SideCore>, P: AsRef<SideCore> + AsMut<SideCore>>
    ExecutorCore<L, P>
{
    /// A core. `acks` from the answering side's journal (`Replayed::acks`).
    pub fn new(
        cfg: ExecutorConfig,
        live: Option<L>,
        paper: Option<P>,
        acks: HashMap<(StreamKey, i64), String>,
    ) -> Self {
        ExecutorCore {
            cfg,
            live,
            paper,
            answers: Answers::new(acks),
            counters: Counters::default(),
            gather: Gather::default(),
            pace: None,
            signals: None,
            released_ms: None,
            held_release_open: false,
            weekend_ms: None,
        }
    }

    /// The funded account's optional rules (`risk.flat_before_weekend`, `risk.news`: the news
    /// file's events read by the shell), on both sides.
    pub fn set_restrictions(&mut self, r: &Restrictions) {
        for id in [SideId::Live, SideId::Paper] {
            if let Some(s) = self.side_mut(id) {
                s.restrict = r.clone();
            }
        }
    }

    /// The configured symbols whose weekend the shell must ask its calendars for at `now_ms`
    /// (UTC ms; [`Restrictions::week_ends_due`]); then [`ExecutorCore::set_week_end`].
    pub fn week_ends_due(&self, now_ms: i64) -> Vec<String> {
        self.answering().map_or_else(Vec::new, |s| {
            s.restrict.week_ends_due(now_ms, self.cfg.symbols.keys())
        })
    }

    /// `symbol`'s next weekend as its calendar states it at `now_ms` (UTC ms; `None`: none
    /// known), on both sides. Recomputed from the schedule at each start (nothing journaled).
    pub fn set_week_end(&mut self, symbol: &str, now_ms: i64, we: Option<WeekEnd>) {
        for id in [SideId::Live, SideId::Paper] {
            if let Some(s) = self.side_mut(id) {
                s.restrict.set_week_end(symbol, now_ms, we);
            }
        }
    }

    /// Arms [`Timer::Weekend`] for the first flat instant of a symbol with an open position
    /// (either side; [`SideCore::weekend_deadline`]): `now_utc_ms` the executor's clock and
    /// `now_ms` the timers' clock, both now. Not sooner than [`HELD_EXIT_RETRY_MS`] after the
    /// last time it fired (a close the broker refused is tried again once a minute until the
    /// market closes).
    pub fn arm_weekend(&mut self, now_utc_ms: i64, now_ms: i64) {
        let due = [SideId::Live, SideId::Paper]
            .into_iter()
            .filter_map(|id| self.side(id)?.weekend_deadline(now_utc_ms))
            .min();
        let at = due.map(|d| {
            let at = now_ms.saturating_add(d.saturating_sub(now_utc_ms).max(0));
            match self.weekend_ms {
                Some(r) => at.max(r.saturating_add(HELD_EXIT_RETRY_MS)),
                None => at,
            }
        });
        self.gather.set_weekend(at);
    }

    /// [`Timer::Weekend`] fired at `now_ms` (executor time `now_utc_ms`, UTC ms): each side
    /// closes its positions on the symbols in their flat window ([`SideCore::handle_weekend`]).
    /// Returns the sides with closes to drive; then arm the timer again.
    pub fn handle_weekend(&mut self, now_utc_ms: i64, now_ms: i64) -> Vec<SideId> {
        self.weekend_ms = Some(now_ms);
        [SideId::Live, SideId::Paper]
            .into_iter()
            .filter(|&id| {
                self.side_mut(id)
                    .is_some_and(|s| s.handle_weekend(now_utc_ms) > 0)
            })
            .collect()
    }

    /// The symbols where an exit is held on some side ([`SideCore::held_exits`]), each once:
    /// the shell asks their calendars for the next open instant
    /// ([`ExecutorCore::arm_held_exits`]).
    pub fn held_symbols(&self) -> Vec<String> {
        let mut v: Vec<String> = [SideId::Live, SideId::Paper]
            .into_iter()
            .filter_map(|id| self.side(id))
            .flat_map(|s| s.held_exits().into_iter().map(|(_, sym)| sym))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Arms [`Timer::HeldExit`] for the first open instant of a market where an exit is held:
    /// `next_open_ms` (UTC Unix ms, the earliest over [`ExecutorCore::held_symbols`]; `None`:
    /// nothing held or no open known: disarmed), `now_utc_ms` the executor's clock and `now_ms`
    /// the timers' clock, both now. A market open now (a broker that refused at its open, or
    /// a reconciliation) is tried again not sooner than [`HELD_EXIT_RETRY_MS`] after the last
    /// release; a market that opens later is released at its open (another market's release
    /// just before does not delay it).
    pub fn arm_held_exits(&mut self, now_utc_ms: i64, now_ms: i64, next_open_ms: Option<i64>) {
        let at = next_open_ms.map(|open| {
            let at = now_ms.saturating_add(open.saturating_sub(now_utc_ms).max(0));
            match self.released_ms {
                Some(r) if open <= now_utc_ms => at.max(r.saturating_add(HELD_EXIT_RETRY_MS)),
                _ => at,
            }
        });
        self.gather.set_held_exit(at);
    }

    /// [`Timer::HeldExit`] fired at `now_ms` (executor time `now`, Unix s): each side holding
    /// exits starts their release ([`SideCore::handle_held_exits`]). Returns the sides whose
    /// batch the shell drives now (and whose result it drops: no SIGNAL waits for it); then it
    /// arms the timer again ([`ExecutorCore::arm_held_exits`]).
    pub fn release_held_exits(&mut self, now: i64, now_ms: i64) -> Vec<SideId> {
        self.released_ms = Some(now_ms);
        self.held_release_open = false;
        let cfg = self.cfg.clone();
        [SideId::Live, SideId::Paper]
            .into_iter()
            .filter(|&id| {
                self.side_mut(id)
                    .is_some_and(|s| s.handle_held_exits(now, &cfg))
            })
            .collect()
    }

    /// The earliest timer deadline (milliseconds, see [`crate::gather`]): the shell sleeps
    /// until it, then calls [`ExecutorCore::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<i64> {
        let pace = self.pace.as_ref().and_then(Pace::poll_timeout);
        match (self.gather.poll_timeout(), pace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timers due at `now_ms` ([`Gather::handle_timeout`], [`Pace::handle_timeout`]).
    pub fn handle_timeout(&mut self, now_ms: i64) -> Vec<Timer> {
        let mut due = self.gather.handle_timeout(now_ms);
        if let Some(p) = &mut self.pace {
            due.extend(p.handle_timeout(now_ms));
        }
        due
    }

    /// A closed bar of `key`'s stream (live or from history): both sides' freshness; with
    /// paper alone, the paper book's price ([`BarAction::PaperQuote`]).
    pub fn handle_bar(
        &mut self,
        key: &StreamKey,
        time: i64,
        close: f64,
        spread: f64,
    ) -> Option<BarAction> {
        if let Some(l) = &mut self.live {
            l.as_mut().policy.handle_bar(key, time);
        }
        let p = self.paper.as_mut()?;
        p.as_mut().policy.handle_bar(key, time);
        self.live.is_none().then(|| BarAction::PaperQuote {
            symbol: key.symbol.to_string(),
            bid: close,
            ask: close + spread,
        })
    }

    /// The bar `bt` of `key` went out to the predictor as a live BAR (its SIGNAL is awaited:
    /// [`Gather::bar_out`]). With a drift ledger (`ledger`) it will get a row: the model's bars
    /// now due a `NO_SIGNAL` row are returned ([`BarAction::LedgerRow`]; one bar of grace, so a
    /// slow but present predictor is never reported).
    pub fn handle_bar_streamed(
        &mut self,
        key: &StreamKey,
        bt: i64,
        ledger: bool,
    ) -> Vec<BarAction> {
        if !ledger {
            return Vec::new();
        }
        self.answers
            .bar_streamed(key, bt)
            .into_iter()
            .map(|bt| BarAction::LedgerRow { key: *key, bt })
            .collect()
    }

    /// The sides present, live first.
    pub fn sides(&self) -> Vec<SideId> {
        let mut v = Vec::with_capacity(2);
        if self.live.is_some() {
            v.push(SideId::Live);
        }
        if self.paper.is_some() {
            v.push(SideId::Paper);
        }
        v
    }

    /// The side whose answers the predictor gets: live, else paper.
    pub fn answering_id(&self) -> Option<SideId> {
        self.sides().first().copied()
    }

    /// A side's core.
    pub fn side(&self, id: SideId) -> Option<&SideCore> {
        match id {
            SideId::Live => self.live.as_ref().map(AsRef::as_ref),
            SideId::Paper => self.paper.as_ref().map(AsRef::as_ref),
        }
    }

    /// A side's core, to change.
    pub fn side_mut(&mut self, id: SideId) -> Option<&mut SideCore> {
        match id {
            SideId::Live => self.live.as_mut().map(AsMut::as_mut),
            SideId::Paper => self.paper.as_mut().map(AsMut::as_mut),
        }
    }

    /// The answering side's core.
    pub fn answering(&self) -> Option<&SideCore> {
        self.side(self.answering_id()?)
    }

    /// The answering side's core, to change.
    pub fn answering_mut(&mut self) -> Option<&mut SideCore> {
        let id = self.answering_id()?;
        self.side_mut(id)
    }

    /// `n` SIGNALs that waited together, in arrival order: the same slice is passed to
    /// [`ExecutorCore::poll_action`], [`ExecutorCore::handle_batch_results`] and
    /// [`ExecutorCore::take_replies`]. Replaces signals whose replies were not taken.
    pub fn handle_signals(&mut self, n: usize) {
        self.signals = Some(Signals {
            replies: vec![None; n],
            ..Signals::default()
        });
    }

    /// The next thing to do for the signals handed in; `None` while a batch's results are
    /// awaited, or when every signal is answered.
    pub fn poll_action(&mut self, now: i64, signals: &[Signal<'_>]) -> Option<ExecAction> {
        let mut st = self.signals.take()?;
        let a = self.advance(now, signals, &mut st);
        self.signals = Some(st);
        a
    }

    fn advance(
        &mut self,
        now: i64,
        signals: &[Signal<'_>],
        st: &mut Signals,
    ) -> Option<ExecAction> {
        if let Some(a) = st.out.pop_front() {
            return Some(a);
        }
        if st.running.is_some() {
            return None;
        }
        while let Some(s) = signals.get(st.next) {
            // A second signal of a model in the batch waits for the batch's answers.
            if let (Some(tf), Some(_)) = (s.tf, s.bar_time)
                && let Ok(key) = key_of(s.symbol, tf)
                && st.group.iter().any(|(_, it)| it.key == key)
            {
                return Some(self.start_batch(st));
            }
            let i = st.next;
            st.next += 1;
            self.counters.signals += 1;
            let answering = match (&self.live, &self.paper) {
                (Some(l), _) => Some(l.as_ref()),
                (None, p) => p.as_ref().map(AsRef::as_ref),
            };
            let reply = match self.answers.admit(now, s, answering) {
                Verdict::Execute { key, tf, bt } => {
                    st.group.push((
                        i,
                        Item {
                            key,
                            tf,
                            target: s.action,
                            bt,
                        },
                    ));
                    continue;
                }
                Verdict::NoBarTime => Reply::Line {
                    line: ack_line(s, &AckKind::Fail("NO_BAR_TIME".into())),
                    duplicate: false,
                },
                Verdict::Duplicate(line) => {
                    self.counters.duplicates += 1;
                    Reply::Line {
                        line,
                        duplicate: true,
                    }
                }
                Verdict::UnknownBar { key, bt } => {
                    self.counters.refusals += 1;
                    Reply::UnknownBar { key, bt }
                }
                Verdict::Stale => {
                    self.counters.refusals += 1;
                    let line = ack_line(s, &AckKind::Fail("STALE_SIGNAL".into()));
                    if let Some(Ok(key)) = s.tf.map(|tf| key_of(s.symbol, tf)) {
                        info!(target: DECISION, event = "ack", model = %key.model_name(), ack = %line, "ack out");
                    }
                    Reply::Line {
                        line,
                        duplicate: false,
                    }
                }
            };
            st.replies[i] = Some(reply);
        }
        if st.group.is_empty() {
            None
        } else {
            Some(self.start_batch(st))
        }
    }

    fn start_batch(&self, st: &mut Signals) -> ExecAction {
        let group = std::mem::take(&mut st.group);
        let items = group.iter().map(|(_, it)| it.clone()).collect();
        st.running = Some(group);
        ExecAction::RunBatch {
            items,
            sides: self.sides(),
        }
    }

    /// The sides' answers to the batch of the last [`ExecAction::RunBatch`] (`None` for a side
    /// absent or that gave nothing). The answering side's (live, else paper) become the ACKs:
    /// logged, counted, remembered, and each yielded as an [`ExecAction::Answered`].
    pub fn handle_batch_results(
        &mut self,
        signals: &[Signal<'_>],
        live: Option<BatchResult>,
        paper: Option<BatchResult>,
    ) {
        let Some(mut st) = self.signals.take() else {
            return;
        };
        let Some(group) = st.running.take() else {
            self.signals = Some(st);
            return;
        };
        let mut answered_by = match self.answering_id() {
            Some(SideId::Live) => live,
            Some(SideId::Paper) => paper,
            None => None,
        };
        for (k, (i, it)) in group.iter().enumerate() {
            let (Some(s), key, bt) = (signals.get(*i), &it.key, it.bt) else {
                continue;
            };
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
                warn!(target: DECISION, event = "refusal", model = %key.model_name(), action = %s.action, reason = %r.code(),
                    bt = %Iso(bt), "{}: {} refused: {r}", key.model_name(), s.action);
            }
            if let AckKind::WaitSync(reason) = &ack {
                info!(target: DECISION, event = "wait_sync", model = %key.model_name(), action = %s.action, reason = %reason,
                    "{}: {} not entered: the entry at the transition was missed or refused; waiting for the next transition (never chased)", key.model_name(), s.action);
            }
            info!(target: DECISION, event = "ack", model = %key.model_name(), ack = %line, "ack out");
            self.answers.remember(*key, bt, line.clone());
            st.replies[*i] = Some(Reply::Line {
                line: line.clone(),
                duplicate: false,
            });
            st.out.push_back(ExecAction::Answered(Answered {
                index: *i,
                key: *key,
                bt,
                line,
            }));
        }
        // Both sides' orders are out and answered: prepare the next transitions' margins.
        if self.live.is_some() {
            st.out.push_back(ExecAction::PrefetchNextEntries {
                items: group.into_iter().map(|(_, it)| it).collect(),
            });
        }
        self.signals = Some(st);
    }

    /// One reply per signal handed in, in arrival order (`FAIL|INTERNAL` for one left
    /// unanswered: a shell that stopped driving early).
    pub fn take_replies(&mut self, signals: &[Signal<'_>]) -> Vec<Reply> {
        let st = self.signals.take().unwrap_or_default();
        let mut replies = st.replies.into_iter();
        signals
            .iter()
            .map(|s| {
                replies.next().flatten().unwrap_or_else(|| Reply::Line {
                    line: ack_line(s, &AckKind::Fail("INTERNAL".into())),
                    duplicate: false,
                })
            })
            .collect()
    }
}
