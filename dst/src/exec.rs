//! The executor side of the simulation: the REAL executor core
//! (`oracle_executor_core::exec::ExecutorCore` with its live `SideCore`) driven through the
//! sans-IO Open API adapter (`oracle_executor_ctrader::Link`) over `oracle_ctrader`'s `Session`,
//! plus the executor's bar feed to the predictor.
//!
//! - Bars: every closed bar the session emits is kept (the `HISTORY` a predictor asks for is
//!   served from them), handed to the core (`handle_bar`: the bar is streamed on the model's
//!   stream) and, while a predictor is connected, sent to it as a live `BAR` with the stream's
//!   next `SEQ`.
//! - SIGNALs: the lines one predictor batch answered with are one group handed to the core
//!   (`handle_signals`); its `RunBatch` runs on the live side through the adapter (the account,
//!   symbol facts, the journal, orders, margins, lookups as Open API requests on the session);
//!   the core's replies are the `ACK` lines sent back. Groups wait while a batch or a
//!   reconciliation runs.
//! - The journal is an in-memory byte buffer ([`MemJournal`], the "disk"): every record the core
//!   asks is appended; a synced write marks everything so far durable. A kill -9
//!   ([`Exec::kill_and_restart`]) drops the core and the adapter, a power loss the unsynced tail
//!   too, and the executor starts again from the bytes left (`Replayed::from_bytes` → `SideCore::new` →
//!   `ExecutorCore::new`); the positions are reconciled at the next `Ready`.
//! - Reconciliation (`ReconcileReq` → `handle_reconciled`, lookups of the intents whose outcome
//!   is unknown) after every `Ready`, between batches.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use oracle_ctrader::Session;
use oracle_ctrader::calendar::TradingCalendar;
use oracle_ctrader::proto::ProtoOaTrendbarPeriod;
use oracle_ctrader::session::Event;
use oracle_executor_core::config::{ExecutorConfig, from_value};
use oracle_executor_core::exec::{ExecAction, ExecutorCore, HELD_EXIT_RETRY_MS, Reply, SideId};
use oracle_executor_core::gather::{GATHER_WAIT_MS, Timer};
use oracle_executor_core::journal::{Op, Record, Replayed, encode_lines};
use oracle_executor_core::key::{KeyText, StreamKey, key_of};
use oracle_executor_core::policy::AckKind;
use oracle_executor_core::side::{Item, SideCore};
use oracle_executor_ctrader::link::MARGIN_RATE_TTL_MS;
use oracle_executor_ctrader::{JournalSink, Link};
use oracle_ipc::{HistoryEnd, Message, Timeframe};

/// A bar as the executor keeps it (decimal prices, as sent on the IPC line).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeptBar {
    /// Open time, Unix s.
    pub time: i64,
    /// Open, high, low, close.
    pub ohlc: [f64; 4],
    /// Tick volume.
    pub volume: u64,
    /// The stream's `SEQ` for it.
    pub seq: u64,
}

/// One bar stream (symbol, period) and the models on it.
#[derive(Debug)]
pub struct Stream {
    /// Broker symbol id.
    pub symbol_id: i64,
    /// Period.
    pub period: ProtoOaTrendbarPeriod,
    /// Symbol name.
    pub symbol: String,
    /// Timeframe.
    pub tf: Timeframe,
    /// Price digits.
    pub digits: u32,
    /// Closed bars so far, oldest first.
    pub bars: Vec<KeptBar>,
    /// The open times the broker's history holds for this stream, in order (the harness's
    /// knowledge, for the no-gap check of the session's output).
    pub expected: Vec<i64>,
    /// The last bar closed before the replay started: the predictor connects once every
    /// stream holds it.
    pub warm_until: Option<i64>,
    /// Open times of bars sent again as revisions (`REV:1`).
    pub revised: BTreeSet<i64>,
}

/// What the executor knows of one model.
#[derive(Debug)]
pub struct ModelSide {
    /// Model name.
    pub name: String,
    /// Stream key.
    pub stream: (i64, i32),
    /// Lots of every entry (the symbol's minimum volume).
    pub lot: f64,
}

/// The journal's bytes in memory: what was written, and how much of it is durable (synced).
#[derive(Clone, Debug, Default)]
pub struct MemJournal {
    /// Every byte written.
    pub bytes: Vec<u8>,
    /// Bytes durable: the length at the last synced write.
    pub durable: usize,
    /// Writes so far (over restarts: the kill points count them).
    pub appends: u64,
}

impl JournalSink for MemJournal {
    fn append(&mut self, bytes: &[u8], sync: bool) -> Result<(), String> {
        self.bytes.extend_from_slice(bytes);
        self.appends += 1;
        if sync {
            self.durable = self.bytes.len();
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), String> {
        self.durable = self.bytes.len();
        Ok(())
    }
}

/// How long a fill is awaited after `ORDER_ACCEPTED` (virtual time).
const FILL_TIMEOUT: Duration = Duration::from_secs(30);

/// The markets' trading hours as the executor's shell knows them (each symbol's calendar, from
/// the broker's schedule and holidays) and the map between the virtual clock and market time:
/// the replay runs `factor` market ms per virtual ms from `start` (market) at `t0` (virtual),
/// up to `end` (after it, no market opens again: the replay is over).
#[derive(Debug)]
pub struct Hours {
    /// Calendars by symbol name.
    pub calendars: BTreeMap<String, TradingCalendar>,
    /// Virtual ms at the replay's start.
    pub t0: i64,
    /// Market ms at the replay's start.
    pub start: i64,
    /// Market ms per virtual ms.
    pub factor: f64,
    /// Market ms of the replay's end.
    pub end: i64,
}

impl Hours {
    /// Market time at virtual `v` (ms), as the broker's timed speed computes it.
    pub fn market_ms(&self, v: i64) -> i64 {
        self.start + ((v - self.t0).max(0) as f64 * self.factor).round() as i64
    }

    /// The first virtual instant (ms) at which market time is `m` or later.
    pub fn virtual_ms(&self, m: i64) -> i64 {
        self.t0 + ((m - self.start).max(0) as f64 / self.factor).ceil() as i64
    }

    /// Is `symbol`'s market closed at virtual `v`, and until when (virtual ms; `None`: it does
    /// not open again before the replay's end)? `None`: open (or no calendar).
    pub fn closed(&self, symbol: &str, v: i64) -> Option<Option<i64>> {
        let cal = self.calendars.get(symbol)?;
        let m = self.market_ms(v);
        if m < self.end && cal.is_open(m) {
            return None;
        }
        Some(
            cal.next_open(m)
                .filter(|o| *o < self.end)
                .map(|o| self.virtual_ms(o)),
        )
    }

    /// The first open instant (market ms) of `symbol`'s market at or after market time `m`,
    /// before the replay's end.
    pub fn next_open(&self, symbol: &str, m: i64) -> Option<i64> {
        let cal = self.calendars.get(symbol)?;
        if m < self.end && cal.is_open(m) {
            return Some(m);
        }
        cal.next_open(m).filter(|o| *o < self.end)
    }
}

/// The executor side.
#[derive(Debug)]
pub struct Exec {
    account_id: i64,
    /// Streams by (symbol id, period number).
    pub streams: BTreeMap<(i64, i32), Stream>,
    /// Models by name.
    pub models: BTreeMap<String, ModelSide>,
    /// The executor's configuration (one symbol entry per model's symbol).
    pub cfg: ExecutorConfig,
    /// The executor's decisions (live side only).
    pub core: ExecutorCore,
    /// The side core ↔ Open API adapter.
    pub link: Link,
    /// The journal (the "disk": survives a kill up to `durable`).
    pub journal: MemJournal,
    /// Signal groups waiting for the core, oldest first.
    queue: VecDeque<Vec<String>>,
    /// The group handed to the core, and whether its batch is on the side.
    running: Option<(Vec<String>, bool)>,
    /// A `Ready` came: reconcile before the next batch (and nothing is traded before the
    /// first reconciliation since the executor started).
    need_reconcile: bool,
    /// Clock: the session's `Instant` base and the virtual Unix ms at it.
    clock: (Instant, i64),
    /// Journal bytes already checked, and the client order ids of closes seen there.
    checked: usize,
    closes: BTreeSet<String>,
    /// Lines for the predictor (sent while it is connected).
    pub to_predictor: Vec<String>,
    /// A predictor is connected.
    pub connected: bool,
    /// Invariant violations seen (the harness fails the seed on the first).
    pub violations: Vec<String>,
    /// Refusals of exits by the broker other than a market shut or a position already closed
    /// (and exits never sent or never answered): allowed only once the replay is over.
    pub exit_refusals: Vec<String>,
    /// SIGNALs answered from the ACKs remembered (after a predictor restart).
    pub duplicate_signals: u64,
    /// Entries not chased (`WAIT_SYNC`).
    pub missed_entries: u64,
    /// Orders sent (over restarts).
    pub orders: u64,
    /// Orders the broker refused.
    pub refused: u64,
    /// Orders whose outcome was unknown (looked up).
    pub unknown: u64,
    /// Token refreshes the session did.
    pub refreshes: u64,
    /// Executor kills (restarts from the journal).
    pub kills: u64,
    /// Of those, process kills: the bytes written kept (the others: power losses).
    pub kills_keeping_written: u64,
    /// Live bars sent to predictors so far.
    pub live_sent: u64,
    /// Defect injection for the harness's own test: the n-th live bar is not sent to the
    /// predictor (an executor that loses a bar).
    pub drop_live_nth: Option<u64>,
    /// Defect injection: the n-th live bar goes to the predictor with another close.
    pub alter_live_nth: Option<u64>,
    /// Defect injection: a killed executor starts again with an empty journal (its durable
    /// bytes lost).
    pub lose_journal_on_kill: bool,
    /// The link's experiment: orders sent before their intents sync
    /// ([`Link::set_sync_after_submit`]; `Plan::sync_after_submit`).
    pub sync_after_submit: bool,
    /// Power losses that came while the link owed a sync: intents of orders on the wire lost.
    pub losses_in_sync_window: u64,
    /// Defect injection: [`Timer::HeldExit`] is never armed (a shell that does not release the
    /// exits held while a market was closed at its open).
    pub ignore_held_exit_timer: bool,
    /// Defect injection: [`Timer::Gather`] is ignored (a batch waiting for a late SIGNAL never
    /// goes).
    pub ignore_gather_timer: bool,
    /// The markets' hours (`None`: always open).
    pub hours: Option<Hours>,
    /// SIGNAL lines gathered for the pending batch (the core's [`Timer::Gather`] waits for the
    /// rest of their close instant).
    gathering: Vec<String>,
    /// When the first of `gathering` came (virtual ms).
    gather_started: Option<i64>,
    /// [`Timer::HeldExit`] fired: the held exits go once nothing else runs.
    release_due: bool,
    /// A held exits' release batch is on the side (its result is dropped: no SIGNAL waits).
    releasing: bool,
    /// Models whose exit is held, and the market time (ms) at which the harness first saw it.
    held_since: BTreeMap<StreamKey, (String, i64)>,
    /// Exits the broker refused `MARKET_CLOSED` (held for the open).
    pub held_exits: u64,
    /// Entries the broker refused `MARKET_CLOSED` (missed, never chased).
    pub market_closed_entries: u64,
    /// Held exits' releases that sent closes ([`Timer::HeldExit`]).
    pub releases: u64,
    /// Reconciliations of this adapter already seen.
    reconciles_seen: u64,
    /// Batches that went when [`Timer::Gather`] fired (a SIGNAL of their instant late).
    pub gather_timeouts: u64,
    /// Entries journaled: client order id → (model, signal bar time, target).
    entries: BTreeMap<String, (StreamKey, i64, oracle_ipc::Action)>,
    /// Per model, its last entry the broker refused `MARKET_CLOSED` (bar time, target): an entry
    /// of that bar or an earlier one, or one to the same target with no SIGNAL of another
    /// target between, is an entry chased.
    refused_entries: BTreeMap<StreamKey, (i64, oracle_ipc::Action)>,
    /// Per model, the target of each bar's SIGNAL handed to the core.
    signals_seen: BTreeMap<StreamKey, BTreeMap<i64, oracle_ipc::Action>>,
    /// Per model, the market time (ms) of its last close journaled.
    last_close: BTreeMap<StreamKey, i64>,
    /// The items of the batches answered whose next transitions' margins are to be prefetched
    /// (the core's `ExecAction::PrefetchNextEntries`, as the shell's
    /// `Engine::prefetch_next_entries`).
    prefetch: Vec<Item>,
    /// Entries' margins from the cache, margins prefetched: of the adapters before a kill.
    margins: (u64, u64),
    /// The longest an exit refused `MARKET_CLOSED` in open hours stayed held (virtual ms).
    pub open_hold_max_ms: i64,
}

/// An exit held in an open market (the broker refused it `MARKET_CLOSED` in its hours) is tried
/// again a minute after the last release ([`HELD_EXIT_RETRY_MS`]); one still held this long
/// (virtual ms) before the replay's end was never tried again (lost). Five tries' room: a try
/// may be refused again, or wait for the session to come back.
pub const HELD_OPEN_LOST_AFTER_MS: i64 = 5 * HELD_EXIT_RETRY_MS;

/// The executor's configuration for these models: each symbol enabled at its lots; spreads
/// never refuse an entry (the simulator's spreads are not the subject).
fn config_for(
    models: &BTreeMap<String, ModelSide>,
    streams: &BTreeMap<(i64, i32), Stream>,
) -> ExecutorConfig {
    let mut v = serde_json::Map::new();
    for m in models.values() {
        let lot = m.lot;
        v.insert(
            streams[&m.stream].symbol.clone(),
            serde_json::json!({"enabled": true, "lot_weak": lot, "lot_moderate": lot,
                "lot_strong": lot, "max_spread_points": 1.0e9}),
        );
    }
    from_value(&serde_json::Value::Object(v)).expect("the DST's executor configuration is valid")
}

impl Exec {
    /// An executor for `account_id` with these streams and models, from an empty journal.
    pub fn new(account_id: i64, streams: Vec<Stream>, models: Vec<ModelSide>) -> Self {
        let streams: BTreeMap<(i64, i32), Stream> = streams
            .into_iter()
            .map(|s| ((s.symbol_id, s.period as i32), s))
            .collect();
        let models: BTreeMap<String, ModelSide> =
            models.into_iter().map(|m| (m.name.clone(), m)).collect();
        let cfg = config_for(&models, &streams);
        let journal = MemJournal::default();
        let (core, link) = Self::boot(account_id, &cfg, &streams, &journal);
        Exec {
            account_id,
            streams,
            models,
            cfg,
            core,
            link,
            journal,
            queue: VecDeque::new(),
            running: None,
            need_reconcile: false,
            clock: (Instant::now(), 0),
            checked: 0,
            closes: BTreeSet::new(),
            to_predictor: Vec::new(),
            connected: false,
            violations: Vec::new(),
            exit_refusals: Vec::new(),
            duplicate_signals: 0,
            missed_entries: 0,
            orders: 0,
            refused: 0,
            unknown: 0,
            refreshes: 0,
            kills: 0,
            kills_keeping_written: 0,
            live_sent: 0,
            drop_live_nth: None,
            alter_live_nth: None,
            lose_journal_on_kill: false,
            sync_after_submit: false,
            losses_in_sync_window: 0,
            ignore_held_exit_timer: false,
            ignore_gather_timer: false,
            hours: None,
            gathering: Vec::new(),
            gather_started: None,
            release_due: false,
            releasing: false,
            held_since: BTreeMap::new(),
            held_exits: 0,
            market_closed_entries: 0,
            releases: 0,
            reconciles_seen: 0,
            gather_timeouts: 0,
            entries: BTreeMap::new(),
            refused_entries: BTreeMap::new(),
            signals_seen: BTreeMap::new(),
            last_close: BTreeMap::new(),
            prefetch: Vec::new(),
            margins: (0, 0),
            open_hold_max_ms: 0,
        }
    }

    /// The core (from the journal's durable bytes) and a fresh adapter; the bars already kept
    /// are streamed again to the core (a restarted executor reads them from history).
    fn boot(
        account_id: i64,
        cfg: &ExecutorConfig,
        streams: &BTreeMap<(i64, i32), Stream>,
        journal: &MemJournal,
    ) -> (ExecutorCore, Link) {
        let rep = Replayed::from_bytes(&journal.bytes[..journal.durable]);
        let side = SideCore::new("live", cfg, &rep);
        let mut core = ExecutorCore::new(cfg.clone(), Some(side), None, rep.acks.clone());
        for st in streams.values() {
            if let Some(b) = st.bars.last() {
                core.handle_bar(&key_of(&st.symbol, st.tf).unwrap(), b.time, b.ohlc[3], 0.0);
            }
        }
        let symbols = streams.values().map(|s| (s.symbol.clone(), s.symbol_id));
        // The margin-rate cache as the live shell keeps it (`MARGIN_RATE_TTL`).
        let link =
            Link::new(account_id, symbols, FILL_TIMEOUT).with_margin_cache(MARGIN_RATE_TTL_MS);
        (core, link)
    }

    /// The session's `Instant` base and the virtual Unix ms at it (the executor's clock).
    pub fn set_clock(&mut self, base: Instant, t0_ms: i64) {
        self.clock = (base, t0_ms);
    }

    fn now_ms(&self, inst: Instant) -> i64 {
        self.clock.1 + inst.saturating_duration_since(self.clock.0).as_millis() as i64
    }

    /// kill -9: the core and the adapter are gone; with `keep_written` (a process kill) every
    /// byte written stays (the kernel holds it), else (a power loss) the journal's unsynced tail
    /// goes too. The executor starts again from the bytes left and reconciles at the next
    /// `Ready` (the caller drops the connection: the process's socket died with it). Signal
    /// groups not yet answered are lost (the predictor's connection died too; it re-sends
    /// nothing: the bars go on).
    pub fn kill_and_restart(&mut self, keep_written: bool) {
        self.kills += 1;
        if !keep_written && self.link.owes_sync() {
            self.losses_in_sync_window += 1;
        }
        if keep_written {
            self.kills_keeping_written += 1;
            self.journal.durable = self.journal.bytes.len();
        }
        if self.lose_journal_on_kill {
            self.journal.durable = 0;
        }
        self.journal.bytes.truncate(self.journal.durable);
        self.checked = self.checked.min(self.journal.durable);
        let (core, mut link) = Self::boot(self.account_id, &self.cfg, &self.streams, &self.journal);
        link.set_sync_after_submit(self.sync_after_submit);
        let old = std::mem::replace(&mut self.link, link);
        self.tally(&old);
        std::mem::forget(std::mem::replace(&mut self.core, core));
        std::mem::forget(old);
        self.queue.clear();
        self.running = None;
        self.prefetch.clear();
        // The held exits died with the core (the restarted one decides them again).
        self.held_since.clear();
        // The chase rule is judged within one executor's life: a restarted one knows only the
        // durable journal (an unsynced ACK of a refused entry is lost with the kill).
        self.refused_entries.clear();
        self.gathering.clear();
        self.gather_started = None;
        self.release_due = false;
        self.releasing = false;
        self.reconciles_seen = 0;
        // Reconciled at the next `Ready` (the connection died with the process).
        self.need_reconcile = false;
    }

    fn tally(&mut self, link: &Link) {
        self.orders += link.counters.orders;
        self.refused += link.counters.refused;
        self.unknown += link.counters.unknown;
        self.margins.0 += link.counters.margins_cached;
        self.margins.1 += link.counters.margins_prefetched;
    }

    /// Entries' margins taken from the margin-rate cache, and margins prefetched, over restarts.
    pub fn margin_counts(&self) -> (u64, u64) {
        let c = &self.link.counters;
        (
            self.margins.0 + c.margins_cached,
            self.margins.1 + c.margins_prefetched,
        )
    }

    /// Orders and requests in flight, signal groups waiting or running, a reconciliation due.
    pub fn in_flight(&self) -> usize {
        self.link.in_flight()
            + self.queue.len()
            + usize::from(self.running.is_some())
            + usize::from(self.need_reconcile)
            + usize::from(self.link.counters.reconciles == 0)
            + usize::from(self.core.live.as_ref().is_some_and(SideCore::reconciling))
            + usize::from(self.releasing)
            + usize::from(!self.gathering.is_empty())
    }

    /// Where the executor stands (for a failure's message).
    pub fn describe(&self) -> String {
        format!(
            "executor: link in flight {}, groups waiting {}, group running {:?}, reconcile due {}, reconciling {}/{}, reconciled {}, session ready {}",
            self.link.in_flight(),
            self.queue.len(),
            self.running
                .as_ref()
                .map(|r| if r.1 { "on the side" } else { "in the core" }),
            self.need_reconcile,
            self.link.reconciling(),
            self.core.live.as_ref().is_some_and(SideCore::reconciling),
            self.link.counters.reconciles,
            self.link.ready()
        )
    }

    /// Counters of the run so far (orders, refused, unknown), over restarts.
    pub fn order_counts(&self) -> (u64, u64, u64) {
        let c = &self.link.counters;
        (
            self.orders + c.orders,
            self.refused + c.refused,
            self.unknown + c.unknown,
        )
    }

    /// The next deadline: the adapter's (a fill awaited) or the core's timers (the gather
    /// wait, the held exits' open instant: `ExecutorCore::poll_timeout`, on the virtual ms).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let core = self
            .core
            .poll_timeout()
            .map(|ms| self.clock.0 + Duration::from_millis((ms - self.clock.1).max(0) as u64));
        match (self.link.poll_timeout(), core) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadlines due at `inst`: the adapter's, then the core's timers, as the shell
    /// handles them ([`Timer::Gather`]: the pending batch goes; [`Timer::HeldExit`]: the held
    /// exits go once nothing else runs).
    pub fn handle_timeout(&mut self, inst: Instant, s: &mut Session) {
        let now = self.now_ms(inst);
        if let Some(side) = self.core.live.as_mut() {
            self.link
                .handle_timeout(inst, now, side, s, &mut self.journal);
        }
        let due = self.core.handle_timeout(now);
        if due.contains(&Timer::Gather) && !self.gathering.is_empty() && !self.ignore_gather_timer {
            self.gather_timeouts += 1;
            self.flush_gathered(now);
        }
        if due.contains(&Timer::HeldExit) {
            self.release_due = true;
        }
        self.pump(inst, s);
    }

    /// The gathered SIGNALs go as one group: never more than the gather's bound
    /// ([`GATHER_WAIT_MS`]) after the first of them came.
    fn flush_gathered(&mut self, now: i64) {
        if let Some(t) = self.gather_started.take()
            && now - t > GATHER_WAIT_MS
        {
            self.violations.push(format!(
                "a batch of SIGNALs waited {} ms for the rest of its close instant (the gather's bound is {GATHER_WAIT_MS} ms)",
                now - t
            ));
        }
        self.core.gather.taken();
        if !self.gathering.is_empty() {
            self.queue.push_back(std::mem::take(&mut self.gathering));
        }
    }

    /// Arms [`Timer::HeldExit`] as the shell does (`Engine::arm_held_exits`): the first open
    /// instant of a market closed now where an exit is held; after a reconciliation, now for
    /// one open already. Virtual ms on both of the core's clocks.
    fn arm_held_exits(&mut self, now: i64) {
        if self.release_due || self.ignore_held_exit_timer {
            // Fired, the release waits for the executor to be free (a batch, a reconciliation,
            // the session down): not again meanwhile.
            self.core.arm_held_exits(now, now, None);
            return;
        }
        // A market open now is included (a broker that refused at the open is asked again a
        // retry delay after the last release), as the shell's `next_held_open` does.
        let next = self.core.live.as_ref().and_then(|side| {
            side.held_exits()
                .iter()
                .filter_map(|(_, symbol)| {
                    match self.hours.as_ref().and_then(|h| h.closed(symbol, now)) {
                        None => Some(now),
                        Some(until) => until,
                    }
                })
                .min()
        });
        self.core.arm_held_exits(now, now, next);
    }

    /// The harness's watch of the held exits (market hours on): each held model and the market
    /// time it was first seen held at.
    pub fn watch_held(&mut self, inst: Instant) {
        let Some(h) = &self.hours else { return };
        let m = h.market_ms(self.now_ms(inst));
        let held: Vec<(StreamKey, String)> = self
            .core
            .live
            .as_ref()
            .map(SideCore::held_exits)
            .unwrap_or_default();
        // An exit held in an open market (no calendar: refused `MARKET_CLOSED` in its hours) went
        // within the bound: tried again a minute after the last release, by the release.
        let now_v = h.virtual_ms(m);
        for (k, (sym, since)) in &self.held_since {
            if held.iter().any(|(x, _)| x == k) || h.calendars.contains_key(sym) {
                continue;
            }
            let d = now_v - h.virtual_ms(*since);
            self.open_hold_max_ms = self.open_hold_max_ms.max(d);
            // No longer held: sent again, or no longer wanted (the model's target is its real
            // position's direction again); else the exit was dropped.
            let sent = self.last_close.get(k).is_some_and(|t| t >= since);
            let ms = self
                .core
                .live
                .as_ref()
                .and_then(|side| side.policy.models.get(k));
            let real = ms
                .and_then(|ms| ms.real.as_ref())
                .map_or(0, |r| r.action.0.direction());
            let target = ms
                .and_then(|ms| ms.target.as_ref())
                .map_or(0, |t| t.0.direction());
            if !sent && real != 0 && real != target {
                self.violations.push(format!(
                    "{}: an exit refused MARKET_CLOSED in open hours (held from {}) is no longer held, was not sent again, and the real position ({real}) is still not the target ({target}): an exit dropped",
                    k.model_name(),
                    oracle_sim::bars::format_iso_utc(*since)
                ));
            }
            if d >= HELD_OPEN_LOST_AFTER_MS {
                self.violations.push(format!(
                    "{}: an exit refused MARKET_CLOSED in open hours stayed held {d} ms (from {}): not tried again a minute after the last release ({HELD_OPEN_LOST_AFTER_MS} ms at most)",
                    k.model_name(),
                    oracle_sim::bars::format_iso_utc(*since)
                ));
            }
        }
        self.held_since
            .retain(|k, _| held.iter().any(|(x, _)| x == k));
        for (k, sym) in held {
            self.held_since.entry(k).or_insert((sym, m));
        }
    }

    /// At the end: an exit held while its market was closed whose market opened again before
    /// the replay's end was lost (never sent at the open).
    pub fn held_exits_lost(&self) -> Option<String> {
        let h = self.hours.as_ref()?;
        self.held_since.iter().find_map(|(k, (sym, since))| {
            let open = h.next_open(sym, *since)?;
            Some(format!(
                "{k}: an exit held since {} (market closed) was never sent, though {sym} opened at {} before the replay's end (an exit lost)",
                oracle_sim::bars::format_iso_utc(*since),
                oracle_sim::bars::format_iso_utc(open),
                k = k.model_name()
            ))
        })
    }

    /// At the end: an exit held in an open market (no calendar: the broker refused it
    /// `MARKET_CLOSED` in its hours) since at least [`HELD_OPEN_LOST_AFTER_MS`] before the
    /// replay's end was never tried again (an exit lost).
    pub fn held_in_open_market_lost(&self) -> Option<String> {
        let h = self.hours.as_ref()?;
        let end = h.virtual_ms(h.end);
        self.held_since.iter().find_map(|(k, (sym, since))| {
            if h.calendars.contains_key(sym) {
                return None;
            }
            (h.virtual_ms(*since) + HELD_OPEN_LOST_AFTER_MS <= end).then(|| {
                format!(
                    "{}: an exit refused MARKET_CLOSED in open hours is held since {} and was never sent again, though {sym} stayed open until the replay's end {} (an exit lost)",
                    k.model_name(),
                    oracle_sim::bars::format_iso_utc(*since),
                    oracle_sim::bars::format_iso_utc(h.end)
                )
            })
        })
    }

    /// Every stream holds the bars closed before the replay started.
    pub fn warm(&self) -> bool {
        self.streams.values().all(|s| {
            s.warm_until
                .is_none_or(|w| s.bars.last().is_some_and(|b| b.time >= w))
        })
    }

    /// A model's real position as the core holds it: (position id, volume).
    pub fn real_position(&self, model: &str) -> Option<(u64, i64)> {
        let m = self.models.get(model)?;
        let st = &self.streams[&m.stream];
        let key = key_of(&st.symbol, st.tf).unwrap();
        let r = self
            .core
            .live
            .as_ref()?
            .policy
            .models
            .get(&key)?
            .real
            .as_ref()?;
        Some((r.position_id, r.volume))
    }

    fn line(&mut self, m: Message<'_>) {
        match m.to_line() {
            Ok(l) => self.to_predictor.push(l),
            Err(e) => self
                .violations
                .push(format!("the executor built an invalid line: {e:?}")),
        }
    }

    fn send_bar(&mut self, key: (i64, i32), i: usize, hist: bool, rev: bool) {
        let s = &self.streams[&key];
        let mut b = s.bars[i];
        let (symbol, tf) = (s.symbol.clone(), s.tf);
        if !hist && !rev {
            // Its SIGNAL is awaited: the gather waits for it with the others of its instant.
            self.core.gather.bar_out(&symbol, tf, b.time);
            self.live_sent += 1;
            if self.drop_live_nth == Some(self.live_sent) {
                return;
            }
            if self.alter_live_nth == Some(self.live_sent) {
                b.ohlc[3] = if b.ohlc[3] == b.ohlc[1] {
                    b.ohlc[2]
                } else {
                    b.ohlc[1]
                };
            }
        }
        self.line(Message::Bar(oracle_ipc::Bar {
            symbol: &symbol,
            tf,
            time: b.time,
            open: b.ohlc[0],
            high: b.ohlc[1],
            low: b.ohlc[2],
            close: b.ohlc[3],
            volume: b.volume,
            seq: b.seq,
            hist,
            rev,
        }));
    }

    /// A predictor connected.
    pub fn handle_predictor_connected(&mut self) {
        self.connected = true;
        self.to_predictor.clear();
    }

    /// The predictor's connection is gone (lines not yet sent are lost with it).
    pub fn handle_predictor_gone(&mut self) {
        self.connected = false;
        self.to_predictor.clear();
    }

    /// One session event: the adapter's first (answers, executions, spots), then the bars.
    pub fn handle_event(&mut self, inst: Instant, s: &mut Session, ev: Event) {
        let now = self.now_ms(inst);
        let rest = match self.core.live.as_mut() {
            Some(side) => self
                .link
                .handle_event(inst, now, side, s, &mut self.journal, ev),
            None => Some(ev),
        };
        if let Some(ev) = rest {
            self.on_event(ev);
        }
        self.pump(inst, s);
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Ready => self.need_reconcile = true,
            Event::BarClosed {
                symbol_id,
                period,
                bar,
                ..
            } => {
                let key = (symbol_id, period as i32);
                let Some(st) = self.streams.get_mut(&key) else {
                    self.violations
                        .push(format!("a bar of a stream not subscribed: {key:?}"));
                    return;
                };
                let next = st.bars.last().map(|b| b.time);
                let want = match next {
                    Some(t) => st.expected.iter().copied().find(|x| *x > t),
                    None => Some(bar.open_time),
                };
                if want != Some(bar.open_time) {
                    let what = if next.is_some_and(|t| bar.open_time <= t) {
                        "duplicated"
                    } else {
                        "missed"
                    };
                    self.violations.push(format!(
                        "{} {}: bar {} after {:?}: a bar was {what} (expected {:?})",
                        st.symbol,
                        st.tf.as_str(),
                        bar.open_time,
                        next,
                        want
                    ));
                    return;
                }
                let seq = st.bars.last().map_or(1, |b| b.seq + 1);
                st.bars.push(KeptBar {
                    time: bar.open_time,
                    ohlc: bar.ohlc_f64(st.digits),
                    volume: bar.volume.max(0) as u64,
                    seq,
                });
                let i = st.bars.len() - 1;
                let (key_m, close) = (key_of(&st.symbol, st.tf).unwrap(), st.bars[i].ohlc[3]);
                self.core.handle_bar(&key_m, bar.open_time, close, 0.0);
                if self.connected {
                    self.send_bar(key, i, false, false);
                }
            }
            Event::BarRevised {
                symbol_id,
                period,
                history,
                ..
            } => {
                let key = (symbol_id, period as i32);
                if let Some(st) = self.streams.get_mut(&key)
                    && let Some(i) = st.bars.iter().position(|b| b.time == history.open_time)
                {
                    st.bars[i].ohlc = history.ohlc_f64(st.digits);
                    st.revised.insert(history.open_time);
                    st.bars[i].volume = history.volume.max(0) as u64;
                    if self.connected {
                        self.send_bar(key, i, false, true);
                    }
                }
            }
            Event::TokensRefreshed { .. } => self.refreshes += 1,
            _ => {}
        }
    }

    /// Moves the core on as far as it goes now: the side's actions, a reconciliation due, the
    /// running group's batch and replies, the next group.
    fn pump(&mut self, inst: Instant, s: &mut Session) {
        let now = self.now_ms(inst);
        self.pump_to_idle(inst, now, s);
        // As the shell's loop: the held exits' timer armed after every turn.
        self.arm_held_exits(now);
    }

    fn pump_to_idle(&mut self, inst: Instant, now: i64, s: &mut Session) {
        loop {
            if let Some(side) = self.core.live.as_mut() {
                self.link.drive(inst, now, side, s, &mut self.journal);
            }
            // An entry's margin is checked when it is sent: its intent goes to the journal with
            // its batch's exits, before its margin is asked (and may be withdrawn).
            for (coid, symbol, volume, buy) in self.link.take_sent_entries() {
                self.check_entry_margin(now, &symbol, volume, buy, &coid);
            }
            self.check_journal(now);
            if self.link.counters.reconciles > self.reconciles_seen {
                // Reconciled (start, reconnect, restart): an exit held across it goes at once
                // if its market is open (the shell's `Engine::reconcile`).
                self.reconciles_seen = self.link.counters.reconciles;
                self.core.held_release_open = true;
            }
            if self.releasing {
                // The release's result is no ACK: dropped.
                let done = self
                    .core
                    .live
                    .as_mut()
                    .is_none_or(|side| side.take_batch_result().is_some());
                if done {
                    self.releasing = false;
                    self.arm_held_exits(now);
                    continue;
                }
                return;
            }
            if self.running.is_some() {
                if self.advance_group(now) {
                    continue;
                }
                return;
            }
            let reconciling = self.link.reconciling()
                || self.core.live.as_ref().is_some_and(SideCore::reconciling);
            if reconciling {
                return;
            }
            if self.need_reconcile && self.link.ready() {
                self.need_reconcile = false;
                self.link.reconcile(inst, s);
                continue;
            }
            // No order before the positions were reconciled since this executor started.
            if self.link.counters.reconciles == 0 {
                return;
            }
            // The held exits' timer fired: they go before the next SIGNALs (the shell's timer
            // arm comes before its commands).
            if self.release_due && self.link.ready() {
                self.release_due = false;
                if self
                    .core
                    .release_held_exits(now / 1000, now)
                    .contains(&SideId::Live)
                {
                    self.releasing = true;
                    self.releases += 1;
                }
                self.arm_held_exits(now);
                continue;
            }
            if !self.prefetch.is_empty() && self.link.ready() {
                self.prefetch_margins(inst, now, s);
                continue;
            }
            let Some(g) = self.queue.pop_front() else {
                return;
            };
            self.core.handle_signals(g.len());
            self.running = Some((g, false));
        }
    }

    /// The next transitions' margins of the batches answered, asked off the orders' path as the
    /// shell's `Engine::prefetch_next_entries` does (`SideCore::next_entry_asks`, then
    /// `Link::prefetch_margins`: only the stale ones). Checked: every one of them the cache does
    /// not hold fresh (answered less than half its life ago) is asked again.
    fn prefetch_margins(&mut self, inst: Instant, now: i64, s: &mut Session) {
        let items = std::mem::take(&mut self.prefetch);
        let Some(side) = self.core.live.as_ref() else {
            return;
        };
        let asks = side.next_entry_asks(&self.cfg, &items);
        self.link.prefetch_margins(inst, now, s, &asks);
        for (symbol, volume, buy) in &asks {
            let fresh = self
                .link
                .margin_rate_at(symbol, *volume, *buy)
                .is_some_and(|at| now - at < MARGIN_RATE_TTL_MS / 2);
            if !fresh
                && self.link.has_price(symbol, *buy)
                && !self.link.prefetching(symbol, *volume, *buy)
            {
                self.violations.push(format!(
                    "the margin of {symbol} {volume} {} is stale (answered {:?} ms ago, the rule's half life {} ms) and the prefetch did not ask it again",
                    if *buy { "buy" } else { "sell" },
                    self.link.margin_rate_at(symbol, *volume, *buy).map(|at| now - at),
                    MARGIN_RATE_TTL_MS / 2
                ));
            }
        }
    }

    /// The running group one step on; `true` when something moved.
    fn advance_group(&mut self, now_ms: i64) -> bool {
        let Some((lines, on_side)) = self.running.take() else {
            return false;
        };
        let sigs: Vec<oracle_ipc::Signal<'_>> = lines
            .iter()
            .filter_map(|l| match oracle_ipc::parse(l) {
                Ok(Message::Signal(sig)) => Some(sig),
                _ => None,
            })
            .collect();
        let now = now_ms / 1000;
        if !on_side {
            // The targets each model's SIGNALs asked, by bar (the chase rule's transitions).
            for sig in &sigs {
                let (Some(Ok(k)), Some(bt)) =
                    (sig.tf.map(|tf| key_of(sig.symbol, tf)), sig.bar_time)
                else {
                    continue;
                };
                self.signals_seen
                    .entry(k)
                    .or_default()
                    .insert(bt, sig.action);
            }
        }
        if on_side {
            let Some(side) = self.core.live.as_mut() else {
                return false;
            };
            let Some(result) = side.take_batch_result() else {
                self.running = Some((lines, true));
                return false;
            };
            self.missed_entries += result
                .iter()
                .filter(|(ack, _, _)| matches!(ack, AckKind::WaitSync(_)))
                .count() as u64;
            self.core.handle_batch_results(&sigs, Some(result), None);
        }
        while let Some(a) = self.core.poll_action(now, &sigs) {
            match a {
                ExecAction::RunBatch { items, .. } => {
                    let cfg = self.cfg.clone();
                    if let Some(side) = self.core.live.as_mut() {
                        side.handle_signals(now, &cfg, &items);
                    }
                    self.running = Some((lines, true));
                    return true;
                }
                ExecAction::Answered(a) => {
                    self.check_synced(&a.key, &a.line);
                    let r = Record::Ack {
                        model: a.key,
                        bt: a.bt,
                        line: a.line,
                    };
                    if let Ok(b) = encode_lines(&[r]) {
                        let _ = self.journal.append(&b, false);
                    }
                }
                // Asked once the executor is free (`pump_to_idle`), off the orders' path.
                ExecAction::PrefetchNextEntries { items } => self.prefetch.extend(items),
            }
        }
        self.duplicate_signals = self.core.counters.duplicates;
        for r in self.core.take_replies(&sigs) {
            match r {
                Reply::Line { line, .. } => {
                    if self.connected {
                        self.to_predictor.push(line);
                    }
                }
                Reply::UnknownBar { key, bt } => self.violations.push(format!(
                    "{key}: a SIGNAL for bar {bt} refused UNKNOWN_BAR: the executor had streamed it",
                    key = key.model_name()
                )),
            }
        }
        true
    }

    /// An `OK` ACK: the transition filled, so the core's real direction is the target's.
    fn check_synced(&mut self, key: &StreamKey, line: &str) {
        let Ok(Message::Ack(ack)) = oracle_ipc::parse(line) else {
            return;
        };
        if !matches!(ack.outcome, oracle_ipc::Outcome::Ok { .. }) {
            return;
        }
        let want = ack.action.direction();
        let real = self
            .core
            .live
            .as_ref()
            .and_then(|side| side.policy.models.get(key))
            .and_then(|ms| ms.real.as_ref())
            .map_or(0, |r| r.action.0.direction());
        if real != want {
            self.violations.push(format!(
                "{key}: real direction {real} ≠ virtual {want} after an allowed transition filled ({line})",
                key = key.model_name()
            ));
        }
    }

    /// The journal's new records: an exit refused by the broker (other than a market shut or
    /// a position already gone) is recorded.
    fn check_journal(&mut self, now: i64) {
        let end = self.journal.bytes.len();
        if self.checked >= end {
            return;
        }
        let text = String::from_utf8_lossy(&self.journal.bytes[self.checked..end]).into_owned();
        let Some(cut) = text.rfind('\n') else {
            return;
        };
        for l in text[..cut].lines() {
            match Record::from_line(l) {
                Ok(Record::Intent {
                    op: Op::Open,
                    coid,
                    model,
                    ..
                }) if self.releasing => self.violations.push(format!(
                    "{model}: an entry ({coid}) sent by the release of the exits held while a market was closed (an entry chased at the open)",
                    model = model.model_name()
                )),
                Ok(Record::Intent {
                    op: Op::Open,
                    coid,
                    model,
                    bt,
                    action,
                    ..
                }) => self.check_not_chased(model, bt, action.0, coid),
                Ok(Record::Intent {
                    op: Op::Close,
                    coid,
                    model,
                    ..
                }) => {
                    self.check_held_close(now, &model, &coid);
                    if let Some(h) = &self.hours {
                        self.last_close.insert(model, h.market_ms(now));
                    }
                    self.closes.insert(coid);
                }
                Ok(Record::Outcome {
                    coid, result, code, ..
                }) if result == "rejected" && !self.closes.contains(&coid) => {
                    if code.as_deref().is_some_and(|c| c.ends_with("MARKET_CLOSED")) {
                        self.market_closed_entries += 1;
                        if let Some((model, bt, action)) = self.entries.get(&coid) {
                            self.refused_entries.insert(*model, (*bt, *action));
                        }
                    }
                }
                Ok(Record::Outcome {
                    coid, result, code, ..
                }) if result == "rejected" && self.closes.contains(&coid) => {
                    let code = code.unwrap_or_default();
                    if code.ends_with("MARKET_CLOSED") {
                        self.held_exits += 1;
                    }
                    // Not the broker's refusals: a market shut, a position already gone, an
                    // order never sent or never answered and not found (the connection's).
                    let allowed = [
                        "MARKET_CLOSED",
                        "BROKER_MARKET_CLOSED",
                        "BROKER_POSITION_NOT_FOUND",
                        "BROKER_NO_ANSWER",
                        "BROKER_NOT_SENT",
                    ];
                    if !allowed.contains(&code.as_str()) {
                        self.exit_refusals
                            .push(format!("{coid}: exit refused: {code}"));
                    }
                }
                Ok(_) => {}
                Err(e) => self.violations.push(format!(
                    "the journal holds a line it cannot read back {l:?}: {e}"
                )),
            }
        }
        self.checked += cut + 1;
    }

    /// An entry journaled (its order goes next): the margin its check used came from a
    /// broker's answer younger than the margin-rate cache's life then (asked at the entry, or
    /// cached: prefetched, or an earlier entry's, still fresh).
    fn check_entry_margin(&mut self, now: i64, symbol: &str, volume: i64, buy: bool, coid: &str) {
        match self.link.margin_answered_at(symbol, volume, buy) {
            Some((at, used)) if used - at < MARGIN_RATE_TTL_MS && used <= now => {}
            used => self.violations.push(format!(
                "an entry ({coid}, {symbol} {volume} {}) sent without a margin answer younger than {MARGIN_RATE_TTL_MS} ms at its check (answered, checked: {used:?}; now {now})",
                if buy { "buy" } else { "sell" },
            )),
        }
    }

    /// An entry journaled: not one of a bar (or an earlier one) whose entry the broker refused
    /// `MARKET_CLOSED` (missed, never chased: the next entry comes with a later bar's SIGNAL).
    fn check_not_chased(
        &mut self,
        model: StreamKey,
        bt: i64,
        action: oracle_ipc::Action,
        coid: String,
    ) {
        let transition = |r: i64, was: oracle_ipc::Action| {
            self.signals_seen
                .get(&model)
                .is_some_and(|m| m.range(r + 1..bt).any(|(_, a)| *a != was))
        };
        if let Some((refused, was)) = self
            .refused_entries
            .get(&model)
            .filter(|(r, was)| bt <= *r || (*was == action && !transition(*r, *was)))
        {
            self.violations.push(format!(
                "{}: an entry ({coid}, {action:?}) for bar {bt} after the broker refused the entry of bar {refused} ({was:?}) MARKET_CLOSED with no SIGNAL of another target between (an entry chased)",
                model.model_name()
            ));
        }
        self.entries.insert(coid, (model, bt, action));
    }

    /// A close of a model whose exit was held while its market was closed: once that market
    /// opened, the close goes at the first open instant by the held exits' release, not later
    /// with a SIGNAL's batch.
    fn check_held_close(&mut self, now: i64, model: &StreamKey, coid: &str) {
        let (Some(h), Some((sym, since))) = (&self.hours, self.held_since.get(model)) else {
            return;
        };
        if self.releasing {
            return;
        }
        let m = h.market_ms(now);
        if let Some(open) = h.next_open(sym, *since).filter(|o| *o <= m) {
            self.violations.push(format!(
                "{model}: an exit held since {} (market closed) went at {} with a SIGNAL's batch ({coid}), not at the first open instant {} (the held exits' release)",
                oracle_sim::bars::format_iso_utc(*since),
                oracle_sim::bars::format_iso_utc(m),
                oracle_sim::bars::format_iso_utc(open),
                model = model.model_name()
            ));
        }
    }

    /// Lines from the predictor: `HISTORY` is served from the bars kept; the `SIGNAL`s are one
    /// group for the core.
    pub fn handle_predictor_lines(&mut self, now: Instant, s: &mut Session, lines: &[String]) {
        let mut group = Vec::new();
        let mut other = false;
        for line in lines {
            let msg = match oracle_ipc::parse(line) {
                Ok(m) => m,
                Err(e) => {
                    self.violations.push(format!(
                        "the predictor sent an invalid line {line:?}: {e:?}"
                    ));
                    continue;
                }
            };
            match msg {
                Message::History(h) => {
                    other = true;
                    let key = self
                        .streams
                        .iter()
                        .find(|(_, st)| st.symbol == h.symbol && st.tf == h.tf)
                        .map(|(k, _)| *k);
                    let Some(key) = key else {
                        self.violations
                            .push(format!("HISTORY for an unknown stream: {line}"));
                        continue;
                    };
                    let n = self.streams[&key].bars.len();
                    let from = n.saturating_sub(h.count as usize);
                    for i in from..n {
                        self.send_bar(key, i, true, false);
                    }
                    let st = &self.streams[&key];
                    let (symbol, tf) = (st.symbol.clone(), st.tf);
                    self.line(Message::HistoryEnd(HistoryEnd {
                        symbol: &symbol,
                        tf,
                        count: (n - from) as u32,
                    }));
                }
                Message::Signal(sig) => {
                    let known = self
                        .streams
                        .values()
                        .any(|st| st.symbol == sig.symbol && Some(st.tf) == sig.tf);
                    if !known {
                        self.violations
                            .push(format!("a SIGNAL for no model: {sig:?}"));
                    } else if sig.bar_time.is_none() || sig.seq.is_none() {
                        self.violations
                            .push(format!("a SIGNAL without BT/SEQ: {sig:?}"));
                    } else {
                        group.push(line.clone());
                    }
                }
                _ => {}
            }
        }
        if !group.is_empty() {
            // The shell's gather: the batch waits (Timer::Gather, 25 ms at most) for the
            // SIGNALs of its close instant whose bars went out; it goes at once when none is
            // expected or a command other than a SIGNAL follows.
            for l in &group {
                self.core.gather.signal_in(l);
            }
            let ms = self.now_ms(now);
            self.gather_started.get_or_insert(ms);
            self.gathering.extend(group);
            if other || !self.core.gather.expects_more() {
                self.flush_gathered(ms);
            } else {
                self.core.gather.arm(ms);
            }
        }
        self.pump(now, s);
    }
}
