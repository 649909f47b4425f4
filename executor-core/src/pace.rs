//! Demo pacing (`--hold-market-until-predictor`), sans-IO: the market is held back until the
//! predictor is ready for it (a HISTORY answered for every stream served, or none asked for the
//! pacing timeout), then one bar at a time until its SIGNAL is in (or the timeout runs out).
//!
//! Time is milliseconds on the shell's monotonic clock (see [`crate::gather`]); the two waits
//! are timers ([`Timer::PaceSignal`], [`Timer::PaceReady`]). Where a bar goes, the shell calls
//! its release (back-pressure to the broker's feed): [`Pace::bar_sent`] or [`Pace::signal_in`]
//! returning `true`, or [`Timer::PaceSignal`] among the timers fired.

use std::collections::HashSet;

use oracle_ipc::{Iso, Message, Timeframe};
use tracing::{info, warn};

use crate::gather::{Timer, TimerTable};
use crate::side::DECISION;

/// Pacing state.
#[derive(Debug)]
pub struct Pace {
    timeout_ms: i64,
    /// Streams the executor serves (models found).
    expected: HashSet<(String, Timeframe)>,
    /// Streams the predictor asked HISTORY for (they wait for SIGNALs).
    asked: HashSet<(String, Timeframe)>,
    /// The market flows (the predictor is ready).
    open: bool,
    /// The bar whose SIGNAL is awaited.
    waiting: Option<(String, Timeframe, i64)>,
    timers: TimerTable,
}

impl Pace {
    /// Pacing of the streams `preload`, waiting `timeout_ms` for a bar's SIGNAL (and, before
    /// the first live bar, for a further HISTORY request).
    pub fn new(timeout_ms: i64, preload: &[(String, Timeframe)]) -> Self {
        Pace {
            timeout_ms,
            expected: preload.iter().cloned().collect(),
            asked: HashSet::new(),
            open: false,
            waiting: None,
            timers: TimerTable::default(),
        }
    }

    /// Whether the next feed event may be taken.
    pub fn takes(&self) -> bool {
        self.open && self.waiting.is_none()
    }

    /// A HISTORY was answered at `now_ms`.
    pub fn history_answered(&mut self, now_ms: i64, symbol: &str, tf: Timeframe) {
        self.asked.insert((symbol.to_string(), tf));
        if self.open {
            return;
        }
        if self.expected.iter().all(|k| self.asked.contains(k)) {
            self.open = true;
            self.timers.stop(Timer::PaceReady);
            info!(target: DECISION, event = "market_released", streams = self.asked.len(),
                "predictor ready (HISTORY_END sent for every stream): live bars flow, one bar at a time");
        } else {
            self.timers
                .set(Timer::PaceReady, now_ms.saturating_add(self.timeout_ms));
        }
    }

    /// A bar was broadcast at `now_ms`: wait for its SIGNAL when the predictor streams it
    /// (`false`), else release it (`true`).
    pub fn bar_sent(&mut self, now_ms: i64, symbol: &str, tf: Timeframe, bt: i64) -> bool {
        if self.asked.contains(&(symbol.to_string(), tf)) {
            self.waiting = Some((symbol.to_string(), tf, bt));
            self.timers
                .set(Timer::PaceSignal, now_ms.saturating_add(self.timeout_ms));
            false
        } else {
            true
        }
    }

    /// A SIGNAL line was answered: `true` when it was the awaited bar's (released).
    pub fn signal_in(&mut self, line: &str) -> bool {
        let Ok(Message::Signal(s)) = oracle_ipc::parse(line) else {
            return false;
        };
        if let Some((sym, tf, bt)) = &self.waiting
            && s.symbol == sym
            && s.tf == Some(*tf)
            && s.bar_time == Some(*bt)
        {
            self.waiting = None;
            self.timers.stop(Timer::PaceSignal);
            return true;
        }
        false
    }

    /// The earliest pacing deadline (ms).
    pub fn poll_timeout(&self) -> Option<i64> {
        self.timers.next()
    }

    /// The pacing timers due at `now_ms` ([`Timer::PaceSignal`] among them: the awaited bar is
    /// released without its SIGNAL).
    pub fn handle_timeout(&mut self, now_ms: i64) -> Vec<Timer> {
        let due = self.timers.expire(now_ms);
        if due.contains(&Timer::PaceSignal)
            && let Some((sym, tf, bt)) = self.waiting.take()
        {
            warn!(target: DECISION, event = "pacing_timeout", symbol = %sym, tf = tf.as_str(), bt = %Iso(bt),
                "no SIGNAL for this bar within {} ms: taking the next bar", self.timeout_ms);
        }
        if due.contains(&Timer::PaceReady) && !self.open {
            self.open = true;
            let missing: Vec<String> = self
                .expected
                .iter()
                .filter(|k| !self.asked.contains(*k))
                .map(|(s, tf)| format!("{s}_{}", tf.as_str()))
                .collect();
            info!(target: DECISION, event = "market_released", streams = self.asked.len(), not_asked = ?missing,
                "predictor ready (no HISTORY request for {} ms): live bars flow, one bar at a time", self.timeout_ms);
        }
        due
    }
}
