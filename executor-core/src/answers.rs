//! What a SIGNAL is answered with before (or instead of) the broker, and what the executor
//! remembers of its answers: sans-IO.
//!
//! [`Answers::admit`] judges a SIGNAL against the ACKs remembered and the answering side's
//! state ([`Verdict`]): a re-sent SIGNAL is answered with its first ACK and never re-executed; a
//! SIGNAL for a bar not streamed on its model's stream (not closed yet, in the future) is refused
//! `UNKNOWN_BAR` before the policy sees it (it changes no state and is not journaled, so it can
//! never make the model's later signals stale); one older than the model's latest handled bar
//! and no longer remembered is refused `STALE_SIGNAL`; the rest go to the broker.
//!
//! Memory is flat over a long run: per model, the ACKs of the last [`ACK_MEMORY`] answered bars,
//! and the streamed bars still waiting for their drift-ledger row (at most two per model: a bar
//! with no SIGNAL by the time its stream's next bar but one is streamed is due a `NO_SIGNAL`
//! row).

use std::collections::{BTreeMap, HashMap, VecDeque};

use oracle_ipc::{Iso, Signal, Timeframe};
use tracing::{info, warn};

use crate::journal::ACK_MEMORY;
use crate::key::{KeyText, StreamKey, key_of};
use crate::side::{DECISION, SideCore};

/// A model's journaled last bar this far (seconds) after the executor's clock, and later than
/// every bar streamed, is not a bar that was ever streamed (a future-dated SIGNAL journaled by
/// an executor before bar times were checked): it is ignored rather than refusing every later
/// signal of the model `STALE_SIGNAL`. A week: far beyond any broker clock running ahead.
pub const FUTURE_LAST_BAR: i64 = 7 * 86_400;

/// How a SIGNAL is answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No `TF`/`BT` tag: `FAIL|NO_BAR_TIME`.
    NoBarTime,
    /// Already answered: this ACK line again (the duplicate's `SEQ` aside), not re-executed.
    Duplicate(String),
    /// Not a bar streamed on the model's stream: `ERR|UNKNOWN_BAR`, not journaled.
    UnknownBar {
        /// The model.
        key: StreamKey,
        /// The signal's bar time.
        bt: i64,
    },
    /// Older than the model's latest handled bar and no longer remembered: `FAIL|STALE_SIGNAL`.
    Stale,
    /// To the broker, in its model's batch.
    Execute {
        /// The model.
        key: StreamKey,
        /// Its timeframe.
        tf: Timeframe,
        /// The signal's bar time.
        bt: i64,
    },
}

/// The ACKs remembered and the streamed bars waiting for their ledger row.
#[derive(Debug, Default)]
pub struct Answers {
    /// Per model, the ACK lines of its last [`ACK_MEMORY`] answered bars, by bar time.
    acks: HashMap<StreamKey, BTreeMap<i64, String>>,
    /// Per model: streamed bars without a drift-ledger row yet (oldest first).
    unexplained: HashMap<StreamKey, VecDeque<i64>>,
}

impl Answers {
    /// The answers a journal remembered (`Replayed::acks`).
    pub fn new(acks: HashMap<(StreamKey, i64), String>) -> Self {
        let mut a = Answers::default();
        for ((key, bt), line) in acks {
            a.remember(key, bt, line);
        }
        a
    }

    /// Remembers an answered bar's ACK line; forgets the model's oldest beyond [`ACK_MEMORY`].
    pub fn remember(&mut self, key: StreamKey, bt: i64, line: String) {
        let m = self.acks.entry(key).or_default();
        m.insert(bt, line);
        while m.len() > ACK_MEMORY {
            m.pop_first();
        }
    }

    /// ACK lines remembered, over all models.
    pub fn acks_len(&self) -> usize {
        self.acks.values().map(BTreeMap::len).sum()
    }

    /// Streamed bars waiting for their drift-ledger row, over all models.
    pub fn unexplained_len(&self) -> usize {
        self.unexplained.values().map(VecDeque::len).sum()
    }

    /// Judges a SIGNAL at `now` (Unix seconds) against the answering side (live, else paper).
    /// Logs one decision line.
    pub fn admit(&mut self, now: i64, s: &Signal<'_>, answering: Option<&SideCore>) -> Verdict {
        let (Some(tf), Some(bt)) = (s.tf, s.bar_time) else {
            return Verdict::NoBarTime;
        };
        // The codec parsed the symbol: it is a valid name.
        let Ok(key) = key_of(s.symbol, tf) else {
            return Verdict::NoBarTime;
        };
        info!(target: DECISION, event = "signal", model = %key.model_name(), action = %s.action, regime = s.regime,
            virtual_pnl = %s.virtual_pnl, bt = %Iso(bt), seq = s.seq, "signal in");
        if let Some(line) = self.acks.get(&key).and_then(|m| m.get(&bt)) {
            if line.split('|').nth(2) != Some(s.action.as_str()) {
                warn!(target: DECISION, event = "conflicting_duplicate", model = %key.model_name(), bt = %Iso(bt),
                    action = %s.action, ack = %line,
                    "SIGNAL for an already answered bar with a different action: answered with the first ACK, not executed (predictor inconsistency)");
            }
            info!(target: DECISION, event = "duplicate", model = %key.model_name(), bt = %Iso(bt), ack = %line,
                "duplicate SIGNAL: same ACK again, not re-executed");
            let line = line.clone();
            // Its row was written when it was first answered (possibly before a restart).
            self.explained(&key, bt);
            return Verdict::Duplicate(line);
        }
        let (last, streamed) = answering.map_or((None, None), |side| {
            (
                side.policy.models.get(&key).and_then(|m| m.last_bt),
                side.policy.last_bar(&key),
            )
        });
        // A bar later than the latest one streamed on the model's stream (not closed yet, in the
        // future): refused before the policy, so it changes nothing and is not journaled (a
        // future bar time kept as the model's last would refuse every later signal).
        if streamed.is_none_or(|t| bt > t) {
            warn!(target: DECISION, event = "refusal", model = %key.model_name(), action = %s.action, reason = "UNKNOWN_BAR",
                bt = %Iso(bt), last_streamed = ?streamed.map(Iso),
                "{}: {} refused: its bar time is not a bar streamed on this model's stream (not closed yet, or in the future): not executed, not journaled", key.model_name(), s.action);
            return Verdict::UnknownBar { key, bt };
        }
        // A model's last bar later than every bar streamed and more than [`FUTURE_LAST_BAR`]
        // after the executor's clock was never a streamed bar: a future-dated SIGNAL an older
        // executor journaled. It must not refuse the model's signals (exits are never
        // refused): ignored here, replaced by this signal's bar.
        let last = match (last, streamed) {
            (Some(l), Some(t)) if l > t && l > now.saturating_add(FUTURE_LAST_BAR) => {
                warn!(target: DECISION, event = "future_last_bar_ignored", model = %key.model_name(), last_bt = %Iso(l),
                    last_streamed = %Iso(t),
                    "{}: the journaled last bar {} is later than any bar streamed: ignored (a future-dated SIGNAL journaled by an older executor)", key.model_name(), Iso(l));
                None
            }
            (l, _) => l,
        };
        // Older than the model's latest handled bar and no longer remembered: a re-send of an
        // old bar (or an out-of-order one). The newer signal governs the position; this one is
        // refused and changes nothing (its bar's ledger row was written back then).
        if let Some(last) = last.filter(|&l| bt < l) {
            warn!(target: DECISION, event = "refusal", model = %key.model_name(), action = %s.action, reason = "STALE_SIGNAL",
                bt = %Iso(bt), last_bt = %Iso(last),
                "{}: {} refused: signal for a bar older than the model's latest handled one ({}) and no longer remembered: not executed", key.model_name(), s.action, Iso(last));
            return Verdict::Stale;
        }
        Verdict::Execute { key, tf, bt }
    }

    /// A bar was streamed to the predictor: it will get a ledger row. Returns the bars of the
    /// model now due a `NO_SIGNAL` row (no SIGNAL handled by the time its stream's next bar but
    /// one is streamed: one bar of grace, so a slow but present predictor is never reported).
    pub fn bar_streamed(&mut self, key: &StreamKey, bt: i64) -> Vec<i64> {
        let q = self.unexplained.entry(*key).or_default();
        q.push_back(bt);
        let mut due = Vec::new();
        while q.len() > 2 {
            due.extend(q.pop_front());
        }
        due
    }

    /// A streamed bar got its ledger row.
    pub fn explained(&mut self, key: &StreamKey, bt: i64) {
        if let Some(q) = self.unexplained.get_mut(key) {
            q.retain(|&t| t != bt);
        }
    }

    /// Every streamed bar still without a row (clean shutdown), by bar time then model.
    pub fn flush_unexplained(&mut self) -> Vec<(StreamKey, i64)> {
        let mut all: Vec<(StreamKey, i64)> = self
            .unexplained
            .drain()
            .flat_map(|(k, q)| q.into_iter().map(move |t| (k, t)))
            .collect();
        // By the model's name (`EURUSD_H1` before `EURUSD_M15`), as always.
        all.sort_by_key(|(k, t)| (*t, k.model_name().to_string()));
        all
    }
}
