//! The predictor's logic without sockets or timers: lines from the executor in, lines to the
//! executor out, twins, traces and the state file in between. The Tokio shell ([`crate::shell`])
//! only moves lines and ticks the models-folder poll.
//!
//! Rules it keeps (docs/contract.md §7, DESIGN.md "digital-twin contract"):
//! - one `SIGNAL` per model per live closed bar; history bars move the twins but send nothing;
//! - a bar whose time is not after a twin's last bar is ignored (idempotent replay);
//! - an `ACK` is logged and counted, and never touches a virtual position;
//! - after every bar the traces are flushed and then all states are written atomically, so a
//!   restart (restore, prime with the window, replay the missed bars) continues exactly;
//! - revisions (docs/ipc.md, "Revisions"): each twin remembers the last [`REMEMBERED`] bars it
//!   took and its state before each. A `REV:1` bar that differs from a bar the twin took rewinds
//!   it to the state before that bar: that state is written to the state file at once, `HISTORY`
//!   is asked, and on `HISTORY_END` the twin is restored (primed with the window ending there)
//!   and the history bars from the revised one on are stepped again, without signals; live bars
//!   that arrive meanwhile are held and signalled after it, so the next `SIGNAL` carries the
//!   corrected target. A `HISTORY` answer, or the priming bars after a restart (the state file
//!   keeps the last bar and the state before it), that differs from a remembered bar rewinds the
//!   same way from the bars at hand. A `REV:1` bar still held in a pending request's buffers
//!   replaces the held bar; one equal to the bar taken changes nothing; one older than the
//!   remembered bars is logged (`revision_unapplied`) and counted. Trace rows of re-stepped bars
//!   are appended (a later row for a time replaces the earlier one).

use crate::store::{Entry, LastBar, SavedState, StateFile, Trace};
use crate::twins::{Loader, Twin};
use crate::wire::{self, AckStatus, Incoming};
use oracle_core::{Bar, Step, StreamKey};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{debug, error, info, warn};

/// Where the predictor reads and writes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Folder of atomic model zips, polled for new ones.
    pub models_dir: PathBuf,
    /// Folder of the state file.
    pub state_dir: PathBuf,
    /// Folder of the per-model traces (`NAME.csv`), if any.
    pub trace_dir: Option<PathBuf>,
    /// Bars asked for beyond the window when a twin has state to catch up from.
    pub history_extra: usize,
}

/// Counters of one model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bars run through the twin (history and live).
    pub bars: u64,
    /// Live bars run through the twin.
    pub live_bars: u64,
    /// Signals sent.
    pub signals: u64,
    /// Duplicate or old bars ignored.
    pub ignored: u64,
    /// Bars the twin rejected (contract §1).
    pub rejected: u64,
    /// `ACK … OK`.
    pub ack_ok: u64,
    /// `ACK … HOLD`.
    pub ack_hold: u64,
    /// `ACK … FAIL`.
    pub ack_fail: u64,
    /// `ACK … WAIT_SYNC`.
    pub ack_wait_sync: u64,
    /// Acks after which the real position no longer follows the virtual one (FAIL, WAIT_SYNC).
    pub drift: u64,
    /// Rewinds done: a bar the twin took was revised (`REV:1`, a `HISTORY` answer, or the
    /// priming bars after a restart) and the twin went back to its state before it.
    pub revised: u64,
    /// Revisions not applied (a bar older than the remembered ones, or one the twin skipped).
    pub revision_unapplied: u64,
}

/// How many of its last bars a twin remembers (with its state before each) for revisions.
pub const REMEMBERED: usize = 8;

/// A bar a twin took, as taken, and the twin's state just before it (`None`: its first bar).
#[derive(Clone, Copy, Debug)]
struct Taken {
    bar: Bar,
    before: Option<SavedState>,
}

/// A state to restore from, with the bars up to its last bar as priming.
struct Resume {
    state: SavedState,
    /// Set for a rewind: the revised bar's time and the twin's state before the rewind (for
    /// the log).
    revised: Option<(i64, Option<SavedState>)>,
    /// Set for a rewind on a `REV:1` bar: the twin's last bar before it. Only the history bars
    /// up to it are stepped again; later bars come live (held meanwhile) and get their
    /// `SIGNAL`s. Cleared when the connection drops (the answer after a reconnect then catches
    /// the twin up as any other).
    live_after: Option<i64>,
}

enum Phase {
    /// No state: warm up from FLAT over the window.
    Fresh,
    /// A persisted state, or a rewind, waiting for its priming bars.
    Restored(Box<Resume>),
    /// Up to date in memory.
    Running,
}

struct Slot {
    twin: Box<dyn Twin>,
    path: PathBuf,
    phase: Phase,
    trace: Option<Trace>,
    last_time: Option<i64>,
    counters: Counters,
    recent: VecDeque<(i64, u64)>,
    /// The last [`REMEMBERED`] bars the twin took, oldest first.
    taken: VecDeque<Taken>,
}

#[derive(Default)]
struct Pending {
    outstanding: u32,
    history: BTreeMap<i64, Bar>,
    live: Vec<(Bar, u64)>,
    waiting: BTreeSet<String>,
}

/// The predictor: all twins of one process.
pub struct Predictor {
    settings: Settings,
    loader: Arc<dyn Loader>,
    slots: BTreeMap<String, Slot>,
    saved: StateFile,
    seen_files: BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
    pending: BTreeMap<StreamKey, Pending>,
    connected: bool,
    dirty: bool,
    /// Lines from the executor that could not be parsed.
    pub malformed: u64,
    /// `ERR` lines received.
    pub errors: u64,
    /// Where a model refused at load is told (`--alerts-config`; off by default).
    alerts: oracle_alerts::Alerts,
    /// The last batch's `SIGNAL`s, logged by [`Predictor::after_send`] once they are on their
    /// way (their log lines and the trace rows' writes are not between a bar and its order).
    sent: Vec<SignalLog>,
}

/// When a batch's lines came in and when its `SIGNAL`s went to the socket (UTC µs, the
/// shell's wall clock): fields of its `signal` log lines, which are written after both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInstants {
    /// The batch's first line received.
    pub received_us: i64,
    /// Its `SIGNAL`s ready, handed to the socket (the instant before the write: the
    /// executor may read them before the write returns).
    pub sent_us: i64,
}

/// What a `signal` log line says (written after the batch's `SIGNAL`s were sent).
struct SignalLog {
    name: String,
    stream: StreamKey,
    bar_time: i64,
    seq: u64,
    action: &'static str,
    direction: i8,
    intensity: u8,
    regime: usize,
    entry_price: f64,
    realized_pnl: f64,
    upnl: f64,
}

impl Predictor {
    /// Creates the predictor and reads the state file (models are loaded by [`Predictor::scan`]).
    pub fn new(settings: Settings, loader: Arc<dyn Loader>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&settings.state_dir)?;
        if let Some(t) = &settings.trace_dir {
            std::fs::create_dir_all(t)?;
        }
        let saved = StateFile::load(&settings.state_dir)?;
        if !saved.models.is_empty() {
            info!(event = "state_loaded", models = saved.models.len(), dir = %settings.state_dir.display());
        }
        Ok(Self {
            settings,
            loader,
            slots: BTreeMap::new(),
            saved,
            seen_files: BTreeMap::new(),
            pending: BTreeMap::new(),
            connected: false,
            dirty: false,
            malformed: 0,
            errors: 0,
            alerts: oracle_alerts::Alerts::off(),
            sent: Vec::new(),
        })
    }

    /// Tells `alerts` of each model refused at load (a push into its bounded queue: never waits).
    pub fn set_alerts(&mut self, alerts: oracle_alerts::Alerts) {
        self.alerts = alerts;
    }

    fn refused(&self, file: &str, reason: &str) {
        self.alerts.push(oracle_alerts::Event::ModelRefused {
            file: file.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Names of the loaded models.
    pub fn model_names(&self) -> Vec<String> {
        self.slots.keys().cloned().collect()
    }

    /// Counters per loaded model.
    pub fn counters(&self) -> BTreeMap<String, Counters> {
        self.slots
            .iter()
            .map(|(k, s)| (k.clone(), s.counters.clone()))
            .collect()
    }

    /// Polls the models folder: loads new or changed zips (a bad one is logged by name once per
    /// version of the file and skipped), forgets removed ones. Returns the `HISTORY` requests
    /// for the new models' streams when connected.
    pub fn scan(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.settings.models_dir) {
            Ok(e) => e,
            Err(e) => {
                if self.seen_files.insert(PathBuf::new(), (None, 0)).is_none() {
                    error!(event = "models_dir_unreadable", dir = %self.settings.models_dir.display(), error = %e);
                }
                return out;
            }
        };
        self.seen_files.remove(&PathBuf::new());
        let mut zips: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zip") && p.is_file())
            .collect();
        zips.sort();
        // Forget removed files (and unload their models; their saved state stays on disk).
        let gone: Vec<PathBuf> = self
            .seen_files
            .keys()
            .filter(|p| !zips.contains(p))
            .cloned()
            .collect();
        for p in gone {
            self.seen_files.remove(&p);
            let names: Vec<String> = self
                .slots
                .iter()
                .filter(|(_, s)| s.path == p)
                .map(|(k, _)| k.clone())
                .collect();
            for n in names {
                warn!(event = "model_removed", model = %n, file = %p.display());
                self.slots.remove(&n);
            }
        }
        for p in zips {
            let md = std::fs::metadata(&p).ok();
            let key = (
                md.as_ref().and_then(|m| m.modified().ok()),
                md.map_or(0, |m| m.len()),
            );
            if self.seen_files.get(&p) == Some(&key) {
                continue;
            }
            self.seen_files.insert(p.clone(), key);
            let file = p
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            match self.loader.load(&p) {
                Ok(twin) => {
                    if let Some(line) = self.add(p.clone(), twin) {
                        out.extend(line);
                    }
                }
                Err(reason) => {
                    error!(event = "model_refused", file = %file, reason = %reason, "model {file} refused: {reason}");
                    self.refused(&file, &reason);
                }
            }
        }
        out
    }

    fn add(&mut self, path: PathBuf, twin: Box<dyn Twin>) -> Option<Vec<String>> {
        let spec = twin.spec().clone();
        let file = path.display().to_string();
        if let Some((other, _)) = self
            .slots
            .iter()
            .find(|(n, s)| **n != spec.name && s.twin.spec().stream == spec.stream)
        {
            error!(event = "model_refused", file = %file, reason = "duplicate stream", other = %other,
                "model {file} refused: {} is already traded by {other}", spec.stream);
            let why = format!("{} is already traded by {other}", spec.stream);
            let name = path
                .file_name()
                .map_or_else(|| file.clone(), |f| f.to_string_lossy().into_owned());
            self.refused(&name, &why);
            return None;
        }
        if self.slots.remove(&spec.name).is_some() {
            warn!(event = "model_reloaded", model = %spec.name, file = %file,
                "model file changed: the twin restarts from FLAT");
            self.saved.models.remove(&spec.name);
        }
        if let Some(saved) = self.saved.models.get(&spec.name) {
            if !saved.model_sha256.is_empty()
                && !spec.zip_sha256.is_empty()
                && saved.model_sha256 != spec.zip_sha256
            {
                warn!(event = "model_changed", model = %spec.name, file = %file,
                    saved = %saved.model_sha256, now = %spec.zip_sha256,
                    "model file changed while the predictor was stopped: its saved position belongs to the old model; the twin restarts from FLAT");
                self.saved.models.remove(&spec.name);
            }
        }
        let entry = self.saved.models.get(&spec.name);
        let restored = entry.map(|e| e.state);
        // The saved last bar is remembered as taken, so the priming history (or a `REV:1`)
        // that differs from it rewinds the twin to the state before it.
        let mut taken = VecDeque::with_capacity(REMEMBERED);
        if let Some(last) = entry
            .and_then(|e| e.last_bar)
            .filter(|l| Some(l.time) == restored.map(|s| s.last_bar_time))
        {
            taken.push_back(Taken {
                bar: last.bar(),
                before: Some(last.before),
            });
        }
        let trace = match &self.settings.trace_dir {
            Some(dir) => match Trace::open(dir, &spec.name, restored.map(|s| s.last_bar_time)) {
                Ok(t) => Some(t),
                Err(e) => {
                    error!(event = "trace_unwritable", model = %spec.name, error = %e);
                    None
                }
            },
            None => None,
        };
        info!(event = "model_loaded", model = %spec.name, symbol = %spec.stream.symbol, tf = %spec.stream.timeframe,
            window = spec.window, restored = restored.is_some(), file = %file);
        let slot = Slot {
            twin,
            path,
            phase: restored.map_or(Phase::Fresh, |state| {
                Phase::Restored(Box::new(Resume {
                    state,
                    revised: None,
                    live_after: None,
                }))
            }),
            trace,
            last_time: None,
            counters: Counters::default(),
            recent: VecDeque::new(),
            taken,
        };
        let name = spec.name.clone();
        self.slots.insert(name.clone(), slot);
        if self.connected {
            Some(self.request_history(&[name]))
        } else {
            Some(Vec::new())
        }
    }

    fn wanted(&self, slot: &Slot) -> usize {
        let w = slot.twin.spec().window;
        match slot.phase {
            // Twice the window: the executor may answer with fewer bars than asked (a window
            // of time across a weekend); only the last `window` are used.
            Phase::Fresh => 2 * w,
            // The extra bars cover at least the remembered ones (a rewind steps them again).
            Phase::Restored(_) => w + self.settings.history_extra.max(2 * REMEMBERED),
            Phase::Running => self.settings.history_extra.max(1),
        }
    }

    fn request_history(&mut self, names: &[String]) -> Vec<String> {
        let mut per_stream: BTreeMap<StreamKey, (usize, Vec<String>)> = BTreeMap::new();
        for n in names {
            if let Some(s) = self.slots.get(n) {
                let e = per_stream.entry(s.twin.spec().stream).or_default();
                e.0 = e.0.max(self.wanted(s));
                e.1.push(n.clone());
            }
        }
        let mut out = Vec::new();
        for (key, (count, models)) in per_stream {
            out.push(wire::history(&key, count));
            info!(event = "history_request", symbol = %key.symbol, tf = %key.timeframe, count, models = models.len());
            let p = self.pending.entry(key).or_default();
            p.outstanding += 1;
            p.waiting.extend(models);
        }
        out
    }

    /// The executor accepted the token: ask for history for every stream.
    pub fn on_connected(&mut self) -> Vec<String> {
        self.connected = true;
        self.pending.clear();
        self.forget_live_holds();
        let names = self.model_names();
        self.request_history(&names)
    }

    /// The connection dropped: outstanding history requests are void.
    pub fn on_disconnected(&mut self) {
        self.connected = false;
        self.pending.clear();
        self.forget_live_holds();
    }

    /// The live bars a rewound twin waited for were lost with the connection: the next
    /// `HISTORY` answer steps all its bars.
    fn forget_live_holds(&mut self) {
        for s in self.slots.values_mut() {
            if let Phase::Restored(r) = &mut s.phase {
                r.live_after = None;
            }
        }
    }

    /// Handles one line from the executor; returns the lines to send.
    pub fn handle_line(&mut self, line: &str) -> Vec<String> {
        self.handle_lines(&[line])
    }

    /// Handles lines received together, in order; returns the lines to send. The live bars of
    /// one close arrive together: consecutive live bars of distinct streams that no history
    /// request holds are stepped at once, every twin of those streams in one call of the
    /// loader's fleet path ([`Loader::handle_bars`]: the core's SIMD lanes). The outcome, the
    /// `SIGNAL`s and their order are those of the lines handled one by one.
    ///
    /// The `signal` log lines of a live close wait for [`Predictor::after_send`] (the shell
    /// calls it once the `SIGNAL`s are written; this call and [`Predictor::persist`] make up for
    /// a caller that does not), its trace rows for [`Predictor::persist`].
    pub fn handle_lines<S: AsRef<str>>(&mut self, lines: &[S]) -> Vec<String> {
        self.after_send();
        let mut out = Vec::new();
        let mut close: Vec<(StreamKey, Bar, u64)> = Vec::new();
        let mut seen: HashSet<StreamKey> = HashSet::new();
        for line in lines {
            let msg = match wire::parse(line.as_ref()) {
                Ok(m) => m,
                Err(m) => {
                    self.malformed += 1;
                    warn!(event = "malformed", line = %m.0);
                    continue;
                }
            };
            match msg {
                Incoming::Bar {
                    key,
                    bar,
                    seq,
                    history: false,
                    revised: false,
                } if !self.pending.contains_key(&key) => {
                    // A second bar of a stream: the first is stepped before it (the set keeps
                    // a close of many streams linear).
                    if !seen.insert(key) {
                        out.extend(self.live_close(&close));
                        close.clear();
                        seen.clear();
                        seen.insert(key);
                    }
                    close.push((key, bar, seq));
                }
                msg => {
                    if !close.is_empty() {
                        out.extend(self.live_close(&close));
                        close.clear();
                        seen.clear();
                    }
                    out.extend(self.handle_msg(msg));
                }
            }
        }
        if !close.is_empty() {
            out.extend(self.live_close(&close));
        }
        out
    }

    /// Handles one parsed line; returns the lines to send.
    fn handle_msg(&mut self, msg: Incoming) -> Vec<String> {
        match msg {
            Incoming::Welcome => Vec::new(),
            Incoming::Err { code, detail } => {
                self.errors += 1;
                warn!(event = "executor_error", code = %code, detail = %detail);
                Vec::new()
            }
            Incoming::Bar {
                key,
                bar,
                seq,
                history,
                revised,
            } => {
                if revised {
                    let out = self.revision(&key, &bar, seq, history);
                    self.flush_traces();
                    out
                } else if let Some(p) = self.pending.get_mut(&key) {
                    if history {
                        p.history.insert(bar.time, bar);
                    } else {
                        p.live.push((bar, seq));
                    }
                    Vec::new()
                } else if history {
                    debug!(event = "history_bar_unrequested", symbol = %key.symbol, tf = %key.timeframe);
                    Vec::new()
                } else {
                    let out = self.live_bar(&key, &bar, seq);
                    self.flush_traces();
                    out
                }
            }
            Incoming::HistoryEnd { key, count } => {
                let done = match self.pending.get_mut(&key) {
                    Some(p) => {
                        p.outstanding = p.outstanding.saturating_sub(1);
                        p.outstanding == 0
                    }
                    None => false,
                };
                if !done {
                    return Vec::new();
                }
                let Some(p) = self.pending.remove(&key) else {
                    return Vec::new();
                };
                info!(event = "history_end", symbol = %key.symbol, tf = %key.timeframe, count, received = p.history.len());
                let bars: Vec<Bar> = p.history.into_values().collect();
                let mut again = Vec::new();
                for name in &p.waiting {
                    if self.catch_up(name, &bars) {
                        again.push(name.clone());
                    }
                }
                let mut out = Vec::new();
                if again.is_empty() {
                    for (bar, seq) in p.live {
                        out.extend(self.live_bar(&key, &bar, seq));
                    }
                } else {
                    // Rewound, but this answer does not reach a window back: save the rewound
                    // state, ask again, and hold the live bars until that answer is in.
                    self.save_rewound(&again);
                    out.extend(self.request_history(&again));
                    if let Some(next) = self.pending.get_mut(&key) {
                        next.live.extend(p.live);
                    }
                }
                self.flush_traces();
                self.dirty = true;
                out
            }
            Incoming::Ack(ack) => {
                self.ack(&ack);
                Vec::new()
            }
        }
    }

    /// Brings one twin up to date with a `HISTORY` answer (`bars`, sorted by time): a fresh
    /// warm-up, a restore (saved state or rewind) primed with the window, or the bars after its
    /// last one. A remembered bar that the answer gives with other values rewinds the twin to
    /// its state before that bar first. Returns `true` when the twin was rewound but the answer
    /// does not reach a window back: the twin waits (`Restored`) for a longer answer.
    fn catch_up(&mut self, name: &str, bars: &[Bar]) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        let w = slot.twin.spec().window;
        let phase = std::mem::replace(&mut slot.phase, Phase::Running);
        let (resume, from_running) = match phase {
            Phase::Fresh => {
                slot.taken.clear();
                let stepped = step_all(name, slot, &bars[bars.len().saturating_sub(w)..]);
                log_caught_up(name, slot, stepped);
                return false;
            }
            Phase::Running => match diverged(name, slot, bars, slot.twin.state()) {
                Some(r) => (r, true),
                None => {
                    let from = slot
                        .last_time
                        .map_or(0, |t| bars.partition_point(|b| b.time <= t));
                    let stepped = step_all(name, slot, &bars[from..]);
                    log_caught_up(name, slot, stepped);
                    return false;
                }
            },
            Phase::Restored(r) => {
                // Before a rewind, the twin's position was the one before the first rewind.
                let old = r.revised.map_or(Some(r.state), |(_, old)| old);
                match diverged(name, slot, bars, old) {
                    Some(mut d) => {
                        d.live_after = r.live_after;
                        (d, false)
                    }
                    None => (r, false),
                }
            }
        };
        let st = resume.state;
        // After a `REV:1` rewind, the bars newer than the twin's last one come live.
        let bars = match resume.live_after {
            Some(after) => &bars[..bars.partition_point(|b| b.time <= after)],
            None => bars,
        };
        let split = bars.partition_point(|b| b.time <= st.last_bar_time);
        let priming = &bars[split.saturating_sub(w)..split];
        let need = usize::try_from(st.bars_seen).map_or(w, |b| b.min(w));
        if priming.len() < need {
            if from_running {
                info!(event = "rewind_history", model = %name, have = priming.len(), need,
                    "the history answer does not reach a window before the revised bar: asking again");
                slot.last_time = Some(st.last_bar_time);
                slot.phase = Phase::Restored(resume);
                return true;
            }
            warn!(event = "priming_short", model = %name, have = priming.len(), need,
                "history does not reach back a whole window before the saved state");
        }
        let to_step: &[Bar] = match slot.twin.restore(&st, priming) {
            Ok(()) => {
                slot.last_time = Some(st.last_bar_time);
                info!(event = "restored", model = %name, primed = priming.len(),
                    last_bar_time = %crate::isotime::format(st.last_bar_time),
                    missed = bars.len() - split);
                &bars[split..]
            }
            Err(e) if resume.revised.is_some() && slot.twin.state().is_some() => {
                // A rewind in a running process: the twin is still as it was; keep it.
                slot.counters.revision_unapplied += 1;
                let (t, _) = resume.revised.unwrap_or_default();
                warn!(event = "revision_unapplied", model = %name,
                    bar_time = %crate::isotime::format(t), reason = "restore_failed", error = %e,
                    "cannot restore the state before the revised bar: the twin goes on as it was");
                slot.taken.clear();
                slot.last_time = slot.twin.state().map(|s| s.last_bar_time);
                let from = slot
                    .last_time
                    .map_or(0, |t| bars.partition_point(|b| b.time <= t));
                let stepped = step_all(name, slot, &bars[from..]);
                log_caught_up(name, slot, stepped);
                return false;
            }
            Err(e) => {
                error!(event = "restore_failed", model = %name, error = %e,
                    "cannot restore the saved state: warming up from FLAT");
                if let Some(dir) = &self.settings.trace_dir {
                    slot.trace = Trace::open(dir, name, None).ok();
                }
                slot.taken.clear();
                &bars[bars.len().saturating_sub(w)..]
            }
        };
        let stepped = step_all(name, slot, to_step);
        if let Some((t, old)) = resume.revised {
            let now = slot.twin.state();
            let pos = |s: Option<SavedState>| {
                s.map_or((0, 0), |s| (s.position_direction, s.position_intensity))
            };
            let ((d0, i0), (d1, i1)) = (pos(old), pos(now));
            info!(event = "revised", model = %name, bar_time = %crate::isotime::format(t),
                restepped = stepped, direction_before = d0, intensity_before = i0,
                direction = d1, intensity = i1, revised = slot.counters.revised);
        }
        log_caught_up(name, slot, stepped);
        false
    }

    /// A `REV:1` bar: replaces the bar with its time in a pending request's buffers, rewinds
    /// every up-to-date twin of the stream that took the bar with other values (saving the
    /// rewound state at once, then asking `HISTORY`), and is an ordinary bar for a twin that has
    /// not seen its time.
    fn revision(&mut self, key: &StreamKey, bar: &Bar, seq: u64, history: bool) -> Vec<String> {
        let bt = crate::isotime::format(bar.time);
        let mut handled = false;
        if let Some(p) = self.pending.get_mut(key) {
            if let Some(h) = p.history.get_mut(&bar.time) {
                *h = *bar;
                handled = true;
            }
            for (b, _) in p.live.iter_mut().filter(|(b, _)| b.time == bar.time) {
                *b = *bar;
                handled = true;
            }
            if handled {
                info!(event = "revision_buffered", symbol = %key.symbol, tf = %key.timeframe, bar_time = %bt, seq,
                    "a revised bar replaces the one held for a pending history request");
            }
        }
        let mut rewound = Vec::new();
        for (name, slot) in self.slots.iter_mut() {
            if slot.twin.spec().stream != *key {
                continue;
            }
            // A twin waiting for history takes the bar from the buffers or the answer (which
            // is compared with the bars it took).
            if !matches!(slot.phase, Phase::Running) {
                handled |= slot.last_time.is_some_and(|t| bar.time <= t);
                continue;
            }
            if slot.last_time.is_none_or(|t| bar.time > t) {
                continue; // not seen yet: an ordinary bar for it (below)
            }
            handled = true;
            let Some(i) = slot.taken.iter().position(|x| x.bar.time == bar.time) else {
                let reason = if slot.taken.front().is_none_or(|f| bar.time < f.bar.time) {
                    "older_than_remembered"
                } else {
                    "not_taken"
                };
                slot.counters.revision_unapplied += 1;
                warn!(event = "revision_unapplied", model = %name, bar_time = %bt, seq, reason,
                    unapplied = slot.counters.revision_unapplied,
                    "a revised bar the twin cannot go back to: not applied");
                continue;
            };
            let taken = slot.taken[i];
            if taken.bar == *bar {
                debug!(event = "revision_same", model = %name, bar_time = %bt, seq);
                continue;
            }
            let Some(before) = taken.before else {
                slot.counters.revision_unapplied += 1;
                warn!(event = "revision_unapplied", model = %name, bar_time = %bt, seq,
                    reason = "first_bar", unapplied = slot.counters.revision_unapplied,
                    "the revised bar is the twin's first: no state before it");
                continue;
            };
            slot.counters.revised += 1;
            info!(event = "rewind", model = %name, bar_time = %bt, seq,
                to = %crate::isotime::format(before.last_bar_time),
                close_taken = taken.bar.close, close = bar.close,
                "a bar the twin took was revised: back to the state before it");
            let old = slot.twin.state();
            slot.taken.truncate(i);
            slot.last_time = Some(before.last_bar_time);
            slot.phase = Phase::Restored(Box::new(Resume {
                state: before,
                revised: Some((bar.time, old)),
                live_after: old.map(|s| s.last_bar_time),
            }));
            rewound.push(name.clone());
        }
        let mut out = Vec::new();
        if !rewound.is_empty() {
            self.save_rewound(&rewound);
            out.extend(self.request_history(&rewound));
        }
        if !handled {
            // No twin took this time and nothing holds it: the first copy seen here.
            if let Some(p) = self.pending.get_mut(key) {
                if history {
                    p.history.insert(bar.time, *bar);
                } else {
                    p.live.push((*bar, seq));
                }
            } else if !history {
                out.extend(self.live_bar(key, bar, seq));
            }
        }
        out
    }

    /// Writes the state file at once with the rewound twins' states (the others keep what was
    /// last written), so a crash before the catch-up restarts from before the revised bar.
    fn save_rewound(&mut self, names: &[String]) {
        for name in names {
            let Some(s) = self.slots.get(name) else {
                continue;
            };
            let Phase::Restored(r) = &s.phase else {
                continue;
            };
            self.saved.models.insert(name.clone(), entry(s, r.state));
        }
        self.saved.version = 1;
        if let Err(e) = self.saved.save(&self.settings.state_dir) {
            error!(event = "state_unwritable", error = %e);
        }
    }

    fn live_bar(&mut self, key: &StreamKey, bar: &Bar, seq: u64) -> Vec<String> {
        self.live_close(&[(*key, *bar, seq)])
    }

    /// Live bars of distinct streams, at the same instant: every up-to-date twin of those
    /// streams that has not seen its bar's time takes it, all in one call of the loader's fleet
    /// path, and each decision is one `SIGNAL` (in the order of the bars, then of the models).
    fn live_close(&mut self, close: &[(StreamKey, Bar, u64)]) -> Vec<String> {
        let index: BTreeMap<StreamKey, usize> = close
            .iter()
            .enumerate()
            .map(|(i, (key, _, _))| (*key, i))
            .collect();
        let mut due: Vec<(usize, &String, &mut Slot)> = Vec::new();
        for (name, slot) in self.slots.iter_mut() {
            let Some(&k) = index.get(&slot.twin.spec().stream) else {
                continue;
            };
            let (key, bar, seq) = &close[k];
            if !matches!(slot.phase, Phase::Running) {
                debug!(event = "bar_before_history", model = %name);
                continue;
            }
            if slot.last_time.is_some_and(|t| bar.time <= t) {
                slot.counters.ignored += 1;
                debug!(event = "bar_ignored", model = %name, bar_time = %crate::isotime::format(bar.time), seq);
                continue;
            }
            debug!(event = "bar", model = %name, symbol = %key.symbol, tf = %key.timeframe,
                bar_time = %crate::isotime::format(bar.time), seq, close = bar.close);
            due.push((k, name, slot));
        }
        // Stable: the models of one stream stay in name order.
        due.sort_by_key(|d| d.0);
        let bars: Vec<Bar> = due.iter().map(|d| close[d.0].1).collect();
        let before: Vec<Option<SavedState>> = due.iter().map(|d| d.2.twin.state()).collect();
        let steps = {
            let mut twins: Vec<&mut (dyn Twin + 'static)> =
                due.iter_mut().map(|d| d.2.twin.as_mut()).collect();
            self.loader.handle_bars(&mut twins, &bars)
        };
        let mut out = Vec::new();
        for (((k, name, slot), before), step) in due.into_iter().zip(before).zip(steps) {
            let (_, bar, seq) = &close[k];
            let Some(step) = took(name, slot, bar, before, step) else {
                continue;
            };
            slot.counters.live_bars += 1;
            match step {
                Step::WarmingUp(_) => {
                    info!(event = "warmup", model = %name, bar_time = %crate::isotime::format(bar.time));
                }
                Step::Decision(d) => {
                    let stream = slot.twin.spec().stream;
                    out.push(wire::signal(&wire::Signal {
                        key: stream,
                        action: d.action,
                        regime: d.regime,
                        upnl: d.unrealized_pnl,
                        bar_time: bar.time,
                        seq: *seq,
                        direction: d.position.direction,
                        intensity: d.position.intensity,
                    }));
                    slot.counters.signals += 1;
                    slot.recent.push_back((bar.time, *seq));
                    if slot.recent.len() > 64 {
                        slot.recent.pop_front();
                    }
                    self.sent.push(SignalLog {
                        name: name.clone(),
                        stream,
                        bar_time: bar.time,
                        seq: *seq,
                        action: d.action.name(),
                        direction: d.position.direction,
                        intensity: d.position.intensity,
                        regime: d.regime,
                        entry_price: d.position.entry_price,
                        realized_pnl: d.realized_pnl,
                        upnl: d.unrealized_pnl,
                    });
                }
            }
            self.dirty = true;
        }
        out
    }

    /// After the last batch's `SIGNAL`s were written: one `signal` log line each (not on the
    /// way from a bar to its order). Its trace rows go to the OS with the states
    /// ([`Predictor::persist`]): appended to one file per model just as the executor fsyncs the
    /// batch's intents, they were data that fsync had to commit.
    pub fn after_send(&mut self) {
        self.after_send_at(None);
    }

    /// [`Predictor::after_send`] with the batch's instants (UTC µs, read by the shell): when
    /// its lines came in and when its `SIGNAL`s went to the socket. The lines are written after
    /// both, so their own timestamps are not those instants; `bar_in_us` and `sent_us` are
    /// (the bench's predictor hops).
    pub fn after_send_at(&mut self, batch: Option<BatchInstants>) {
        for s in self.sent.drain(..) {
            match batch {
                Some(b) => {
                    info!(event = "signal", model = %s.name, symbol = %s.stream.symbol, tf = %s.stream.timeframe,
                    bar_time = %crate::isotime::format(s.bar_time), seq = s.seq, action = %s.action,
                    direction = s.direction, intensity = s.intensity, regime = s.regime,
                    entry_price = s.entry_price, realized_pnl = s.realized_pnl, upnl = s.upnl,
                    bar_in_us = b.received_us, sent_us = b.sent_us)
                }
                None => {
                    info!(event = "signal", model = %s.name, symbol = %s.stream.symbol, tf = %s.stream.timeframe,
                    bar_time = %crate::isotime::format(s.bar_time), seq = s.seq, action = %s.action,
                    direction = s.direction, intensity = s.intensity, regime = s.regime,
                    entry_price = s.entry_price, realized_pnl = s.realized_pnl, upnl = s.upnl)
                }
            }
        }
    }

    fn ack(&mut self, ack: &wire::Ack) {
        let found = self.slots.iter_mut().find(|(_, s)| {
            let stream = s.twin.spec().stream;
            stream.symbol == ack.symbol
                && ack.timeframe.is_none_or(|tf| tf == stream.timeframe)
                && ack.bar_time.is_none_or(|bt| {
                    s.recent
                        .iter()
                        .any(|(t, q)| *t == bt && ack.seq.is_none_or(|a| a == *q))
                })
        });
        let bt = ack.bar_time.map(crate::isotime::format).unwrap_or_default();
        let Some((name, slot)) = found else {
            warn!(event = "ack_unmatched", symbol = %ack.symbol, action = %ack.action, status = %ack.status, bar_time = %bt);
            return;
        };
        let c = &mut slot.counters;
        match ack.status {
            AckStatus::Ok => c.ack_ok += 1,
            AckStatus::Hold => c.ack_hold += 1,
            AckStatus::Fail => c.ack_fail += 1,
            AckStatus::WaitSync => c.ack_wait_sync += 1,
        }
        info!(event = "ack", model = %name, symbol = %ack.symbol, action = %ack.action,
            status = %ack.status, reason = %ack.reason.clone().unwrap_or_default(),
            ticket = %ack.ticket.clone().unwrap_or_default(), price = ack.price.unwrap_or(0.0),
            bar_time = %bt, seq = ack.seq.unwrap_or(0));
        if ack.status.drifts() {
            c.drift += 1;
            warn!(event = "drift", model = %name, symbol = %ack.symbol, action = %ack.action,
                status = %ack.status, reason = %ack.reason.clone().unwrap_or_default(),
                bar_time = %bt, drift = c.drift,
                "real position does not follow the virtual one (the virtual position is kept)");
        }
    }

    fn flush_traces(&mut self) {
        for (name, s) in self.slots.iter_mut() {
            if let Some(t) = &mut s.trace {
                if let Err(e) = t.flush() {
                    error!(event = "trace_unwritable", model = %name, error = %e);
                }
            }
        }
    }

    /// Whether a bar moved a twin since the last [`Predictor::persist`].
    pub fn unsaved(&self) -> bool {
        self.dirty
    }

    /// Writes every up-to-date twin's state if a bar moved one since the last write.
    pub fn persist(&mut self) -> std::io::Result<()> {
        self.after_send();
        if !self.dirty {
            return Ok(());
        }
        self.flush_traces();
        for (name, s) in &self.slots {
            if !matches!(s.phase, Phase::Running) {
                continue;
            }
            if let Some(state) = s.twin.state() {
                self.saved.models.insert(name.clone(), entry(s, state));
            }
        }
        self.saved.version = 1;
        self.saved.save(&self.settings.state_dir)?;
        self.dirty = false;
        Ok(())
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.settings.state_dir
    }
}

/// The remembered bar at `time` (a twin's last bar) with the state before it, for the file.
/// A slot's state-file entry for `state` (with the last bar taken, when it is `state`'s).
fn entry(s: &Slot, state: SavedState) -> Entry {
    let spec = s.twin.spec();
    Entry {
        symbol: spec.stream.symbol,
        timeframe: spec.stream.timeframe,
        state,
        model_sha256: spec.zip_sha256.clone(),
        last_bar: last_bar(&s.taken, state.last_bar_time),
    }
}

fn last_bar(taken: &VecDeque<Taken>, time: i64) -> Option<LastBar> {
    let t = taken.back().filter(|t| t.bar.time == time)?;
    Some(LastBar::new(&t.bar, t.before?))
}

/// The earliest remembered bar that `bars` (a history answer, sorted by time) gives with other
/// values: the twin's memory is cut before it and the state before it is returned to restore
/// (`old`: the twin's state before this rewind, for the log). `None` when nothing differs (or
/// the bar is the twin's first, counted as unapplied).
fn diverged(
    name: &str,
    slot: &mut Slot,
    bars: &[Bar],
    old: Option<SavedState>,
) -> Option<Box<Resume>> {
    let i = slot.taken.iter().position(|t| {
        bars.binary_search_by_key(&t.bar.time, |b| b.time)
            .is_ok_and(|j| bars[j] != t.bar)
    })?;
    let taken = slot.taken[i];
    let bt = crate::isotime::format(taken.bar.time);
    let Some(before) = taken.before else {
        slot.counters.revision_unapplied += 1;
        warn!(event = "revision_unapplied", model = %name, bar_time = %bt, reason = "first_bar",
            unapplied = slot.counters.revision_unapplied,
            "history differs from the twin's first bar: no state before it");
        return None;
    };
    slot.counters.revised += 1;
    info!(event = "rewind", model = %name, bar_time = %bt,
        to = %crate::isotime::format(before.last_bar_time),
        "history differs from a bar the twin took: back to the state before it");
    slot.taken.truncate(i);
    Some(Box::new(Resume {
        state: before,
        revised: Some((taken.bar.time, old)),
        live_after: None,
    }))
}

fn step_all(name: &str, slot: &mut Slot, bars: &[Bar]) -> usize {
    bars.iter()
        .filter(|b| step_slot(name, slot, b).is_some())
        .count()
}

fn log_caught_up(name: &str, slot: &Slot, stepped: usize) {
    info!(event = "caught_up", model = %name, bars = stepped,
        last_bar_time = %slot.last_time.map(crate::isotime::format).unwrap_or_default());
}

/// Runs one bar through a slot's twin and its trace; `None` when the twin rejected the bar.
fn step_slot(name: &str, slot: &mut Slot, bar: &Bar) -> Option<Step> {
    let before = slot.twin.state();
    let step = slot.twin.handle_bar(bar);
    took(name, slot, bar, before, step)
}

/// Records what one bar did to a slot's twin (`before`: its state before the bar): the bar is
/// remembered and traced, or counted as rejected (`None`).
fn took(
    name: &str,
    slot: &mut Slot,
    bar: &Bar,
    before: Option<SavedState>,
    step: Result<Step, String>,
) -> Option<Step> {
    match step {
        Ok(step) => {
            slot.last_time = Some(bar.time);
            slot.counters.bars += 1;
            if slot.taken.len() >= REMEMBERED {
                slot.taken.pop_front();
            }
            slot.taken.push_back(Taken { bar: *bar, before });
            let action = match &step {
                Step::WarmingUp(_) => "WARMUP",
                Step::Decision(d) => d.action.name(),
            };
            if let (Some(t), Some(st)) = (&mut slot.trace, slot.twin.state()) {
                if let Err(e) = t.push(bar, action, &st) {
                    error!(event = "trace_unwritable", model = %name, error = %e);
                }
            }
            Some(step)
        }
        Err(e) => {
            slot.counters.rejected += 1;
            warn!(event = "bar_rejected", model = %name, bar_time = %crate::isotime::format(bar.time), reason = %e);
            None
        }
    }
}
