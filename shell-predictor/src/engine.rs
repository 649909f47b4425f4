//! The predictor's logic without sockets or timers: lines from the executor in, lines to the
//! executor out, twins, traces and the state file in between. The Tokio shell ([`crate::shell`])
//! only moves lines and ticks the models-folder poll.
//!
//! Rules it keeps (docs/contract.md §7, DESIGN.md "digital-twin contract"):
//! - one `SIGNAL` per model per live closed bar; history bars move the twins but send nothing;
//! - a bar whose time is not after a twin's last bar is ignored (idempotent replay);
//! - an `ACK` is logged and counted, and never touches a virtual position;
//! - after every bar the traces are flushed and then all states are written atomically, so a
//!   restart (restore, prime with the window, replay the missed bars) continues exactly.

use crate::seam::{Bar, Loader, Step, Twin, TwinState};
use crate::store::{Entry, StateFile, Trace};
use crate::wire::{self, Incoming};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
}

enum Phase {
    /// No state: warm up from FLAT over the window.
    Fresh,
    /// A persisted state waiting for its priming bars.
    Restored(TwinState),
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
}

#[derive(Default)]
struct Pending {
    outstanding: u32,
    history: BTreeMap<i64, Bar>,
    live: Vec<(Bar, u64)>,
    waiting: BTreeSet<String>,
}

type Stream = (String, String);

/// The predictor: all twins of one process.
pub struct Predictor {
    settings: Settings,
    loader: Arc<dyn Loader>,
    slots: BTreeMap<String, Slot>,
    saved: StateFile,
    seen_files: BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
    pending: BTreeMap<Stream, Pending>,
    connected: bool,
    dirty: bool,
    /// Lines from the executor that could not be parsed.
    pub malformed: u64,
    /// `ERR` lines received.
    pub errors: u64,
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
        })
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
                }
            }
        }
        out
    }

    fn add(&mut self, path: PathBuf, twin: Box<dyn Twin>) -> Option<Vec<String>> {
        let spec = twin.spec().clone();
        let file = path.display().to_string();
        if let Some((other, _)) = self.slots.iter().find(|(n, s)| {
            **n != spec.name
                && s.twin.spec().symbol == spec.symbol
                && s.twin.spec().timeframe == spec.timeframe
        }) {
            error!(event = "model_refused", file = %file, reason = "duplicate stream", other = %other,
                "model {file} refused: {} {} is already traded by {other}", spec.symbol, spec.timeframe);
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
        let restored = self.saved.models.get(&spec.name).map(|e| e.state);
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
        info!(event = "model_loaded", model = %spec.name, symbol = %spec.symbol, tf = %spec.timeframe,
            window = spec.window, restored = restored.is_some(), file = %file);
        let slot = Slot {
            twin,
            path,
            phase: restored.map_or(Phase::Fresh, Phase::Restored),
            trace,
            last_time: None,
            counters: Counters::default(),
            recent: VecDeque::new(),
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
            Phase::Restored(_) => w + self.settings.history_extra,
            Phase::Running => self.settings.history_extra.max(1),
        }
    }

    fn request_history(&mut self, names: &[String]) -> Vec<String> {
        let mut per_stream: BTreeMap<Stream, (usize, Vec<String>)> = BTreeMap::new();
        for n in names {
            if let Some(s) = self.slots.get(n) {
                let spec = s.twin.spec();
                let e = per_stream
                    .entry((spec.symbol.clone(), spec.timeframe.clone()))
                    .or_default();
                e.0 = e.0.max(self.wanted(s));
                e.1.push(n.clone());
            }
        }
        let mut out = Vec::new();
        for ((sym, tf), (count, models)) in per_stream {
            out.push(wire::history(&sym, &tf, count));
            info!(event = "history_request", symbol = %sym, tf = %tf, count, models = models.len());
            let p = self.pending.entry((sym, tf)).or_default();
            p.outstanding += 1;
            p.waiting.extend(models);
        }
        out
    }

    /// The executor accepted the token: ask for history for every stream.
    pub fn on_connected(&mut self) -> Vec<String> {
        self.connected = true;
        self.pending.clear();
        let names = self.model_names();
        self.request_history(&names)
    }

    /// The connection dropped: outstanding history requests are void.
    pub fn on_disconnected(&mut self) {
        self.connected = false;
        self.pending.clear();
    }

    /// Handles one line from the executor; returns the lines to send.
    pub fn handle_line(&mut self, line: &str) -> Vec<String> {
        let msg = match wire::parse(line) {
            Ok(m) => m,
            Err(m) => {
                self.malformed += 1;
                warn!(event = "malformed", line = %m.0);
                return Vec::new();
            }
        };
        match msg {
            Incoming::Welcome => Vec::new(),
            Incoming::Err { code, detail } => {
                self.errors += 1;
                warn!(event = "executor_error", code = %code, detail = %detail);
                Vec::new()
            }
            Incoming::Bar {
                symbol,
                timeframe,
                bar,
                seq,
                history,
            } => {
                let key = (symbol, timeframe);
                if let Some(p) = self.pending.get_mut(&key) {
                    if history {
                        p.history.insert(bar.time, bar);
                    } else {
                        p.live.push((bar, seq));
                    }
                    Vec::new()
                } else if history {
                    debug!(event = "history_bar_unrequested", symbol = %key.0, tf = %key.1);
                    Vec::new()
                } else {
                    let out = self.live_bar(&key, &bar, seq);
                    self.flush_traces();
                    out
                }
            }
            Incoming::HistoryEnd {
                symbol,
                timeframe,
                count,
            } => {
                let key = (symbol, timeframe);
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
                info!(event = "history_end", symbol = %key.0, tf = %key.1, count, received = p.history.len());
                let bars: Vec<Bar> = p.history.into_values().collect();
                for name in &p.waiting {
                    self.catch_up(name, &bars);
                }
                let mut out = Vec::new();
                for (bar, seq) in p.live {
                    out.extend(self.live_bar(&key, &bar, seq));
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

    fn catch_up(&mut self, name: &str, bars: &[Bar]) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        let w = slot.twin.spec().window;
        let phase = std::mem::replace(&mut slot.phase, Phase::Running);
        let to_step: &[Bar] = match phase {
            Phase::Fresh => &bars[bars.len().saturating_sub(w)..],
            Phase::Restored(st) => {
                let split = bars.partition_point(|b| b.time <= st.last_bar_time);
                let priming = &bars[split.saturating_sub(w)..split];
                let need = usize::try_from(st.bars_seen).map_or(w, |b| b.min(w));
                if priming.len() < need {
                    warn!(event = "priming_short", model = %name, have = priming.len(), need,
                        "history does not reach back a whole window before the saved state");
                }
                if let Err(e) = slot.twin.restore(&st, priming) {
                    error!(event = "restore_failed", model = %name, error = %e,
                        "cannot restore the saved state: warming up from FLAT");
                    if let Some(dir) = &self.settings.trace_dir {
                        slot.trace = Trace::open(dir, name, None).ok();
                    }
                    &bars[bars.len().saturating_sub(w)..]
                } else {
                    slot.last_time = Some(st.last_bar_time);
                    info!(event = "restored", model = %name, primed = priming.len(),
                        last_bar_time = %crate::isotime::format(st.last_bar_time),
                        missed = bars.len() - split);
                    &bars[split..]
                }
            }
            Phase::Running => {
                let from = slot
                    .last_time
                    .map_or(0, |t| bars.partition_point(|b| b.time <= t));
                &bars[from..]
            }
        };
        let mut stepped = 0usize;
        for bar in to_step {
            if step_slot(name, slot, bar).is_some() {
                stepped += 1;
            }
        }
        info!(event = "caught_up", model = %name, bars = stepped,
            last_bar_time = %slot.last_time.map(crate::isotime::format).unwrap_or_default());
    }

    fn live_bar(&mut self, key: &Stream, bar: &Bar, seq: u64) -> Vec<String> {
        let mut out = Vec::new();
        for (name, slot) in self.slots.iter_mut() {
            let spec = slot.twin.spec();
            if spec.symbol != key.0 || spec.timeframe != key.1 {
                continue;
            }
            if !matches!(slot.phase, Phase::Running) {
                debug!(event = "bar_before_history", model = %name);
                continue;
            }
            if slot.last_time.is_some_and(|t| bar.time <= t) {
                slot.counters.ignored += 1;
                debug!(event = "bar_ignored", model = %name, bar_time = %crate::isotime::format(bar.time), seq);
                continue;
            }
            info!(event = "bar", model = %name, symbol = %key.0, tf = %key.1,
                bar_time = %crate::isotime::format(bar.time), seq, close = bar.close);
            let Some(step) = step_slot(name, slot, bar) else {
                continue;
            };
            slot.counters.live_bars += 1;
            match step {
                Step::Warmup => {
                    info!(event = "warmup", model = %name, bar_time = %crate::isotime::format(bar.time));
                }
                Step::Decision(d) => {
                    let spec = slot.twin.spec();
                    out.push(wire::signal(&wire::Signal {
                        symbol: &spec.symbol,
                        action: &d.action,
                        regime: d.regime,
                        upnl: d.unrealized_pnl,
                        timeframe: &spec.timeframe,
                        bar_time: bar.time,
                        seq,
                        direction: d.direction,
                        intensity: d.intensity,
                    }));
                    slot.counters.signals += 1;
                    slot.recent.push_back((bar.time, seq));
                    if slot.recent.len() > 64 {
                        slot.recent.pop_front();
                    }
                    info!(event = "signal", model = %name, symbol = %spec.symbol, tf = %spec.timeframe,
                        bar_time = %crate::isotime::format(bar.time), seq, action = %d.action,
                        direction = d.direction, intensity = d.intensity, regime = d.regime,
                        entry_price = d.entry_price, realized_pnl = d.realized_pnl,
                        upnl = d.unrealized_pnl);
                }
            }
            self.dirty = true;
        }
        out
    }

    fn ack(&mut self, ack: &wire::Ack) {
        let found = self.slots.iter_mut().find(|(_, s)| {
            let spec = s.twin.spec();
            spec.symbol == ack.symbol
                && ack
                    .timeframe
                    .as_ref()
                    .is_none_or(|tf| *tf == spec.timeframe)
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
        match ack.status.as_str() {
            "OK" => c.ack_ok += 1,
            "HOLD" => c.ack_hold += 1,
            "FAIL" => c.ack_fail += 1,
            "WAIT_SYNC" => c.ack_wait_sync += 1,
            _ => {}
        }
        info!(event = "ack", model = %name, symbol = %ack.symbol, action = %ack.action,
            status = %ack.status, reason = %ack.reason.clone().unwrap_or_default(),
            ticket = %ack.ticket.clone().unwrap_or_default(), price = ack.price.unwrap_or(0.0),
            bar_time = %bt, seq = ack.seq.unwrap_or(0));
        if matches!(ack.status.as_str(), "FAIL" | "WAIT_SYNC") {
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

    /// Writes every up-to-date twin's state if a bar moved one since the last write.
    pub fn persist(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.flush_traces();
        for (name, s) in &self.slots {
            if !matches!(s.phase, Phase::Running) {
                continue;
            }
            if let Some(state) = s.twin.state() {
                let spec = s.twin.spec();
                self.saved.models.insert(
                    name.clone(),
                    Entry {
                        symbol: spec.symbol.clone(),
                        timeframe: spec.timeframe.clone(),
                        state,
                        model_sha256: spec.zip_sha256.clone(),
                    },
                );
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

/// Runs one bar through a slot's twin and its trace; `None` when the twin rejected the bar.
fn step_slot(name: &str, slot: &mut Slot, bar: &Bar) -> Option<Step> {
    match slot.twin.handle_bar(bar) {
        Ok(step) => {
            slot.last_time = Some(bar.time);
            slot.counters.bars += 1;
            let action = match &step {
                Step::Warmup => "WARMUP",
                Step::Decision(d) => d.action.as_str(),
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
