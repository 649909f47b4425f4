//! The gathering of a close instant's SIGNALs into one batch, and the core's timer table,
//! sans-IO.
//!
//! The predictor answers the bars it read together in one write, but the first bar of an
//! instant often reaches it alone: its SIGNAL comes first, the others after the predictor's
//! state write. A batch therefore waits ([`Gather::arm`], at most [`GATHER_WAIT_MS`]) for the
//! SIGNALs of the other models of its close instant whose bars went out ([`Awaiting`]); it goes
//! as soon as none is expected ([`Gather::expects_more`]) or when [`Timer::Gather`] fires
//! ([`Gather::handle_timeout`]): the models still awaited are then late, and a model late once
//! is not waited for again until it signals.
//!
//! Time: the timers' `now` and deadlines are **milliseconds** (the gather wait needs
//! sub-second resolution) on any monotonic clock the shell chooses (its origin does not
//! matter; the executor's shell uses the run's start). The core reads no clock: the shell
//! sleeps until [`Gather::poll_timeout`] and calls [`Gather::handle_timeout`].

use std::collections::{HashMap, HashSet};

use oracle_ipc::{Message, Timeframe};

/// How long a batch waits for the SIGNALs of the other models of its close instant (their bars
/// went out together), milliseconds. A bound, not a pace: the batch goes as soon as every
/// expected SIGNAL is in.
pub const GATHER_WAIT_MS: i64 = 25;

/// The executor core's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The pending batch stops waiting for the rest of its close instant.
    Gather,
    /// Demo pacing: the bar whose SIGNAL is awaited is released without it.
    PaceSignal,
    /// Demo pacing: no HISTORY request for the pacing timeout: the market is released.
    PaceReady,
    /// The first open instant of a market where an exit is held: the held exits go
    /// ([`crate::exec::ExecutorCore::arm_held_exits`]).
    HeldExit,
    /// Midnight of the prop-firm guards' day (Europe/Prague): the day closes, a daily halt
    /// ends ([`crate::exec::ExecutorCore::arm_guard_day`]).
    GuardDay,
    /// `risk.flat_before_weekend`: a symbol with an open position reached its flat instant
    /// (minutes before its trading week's last close): its positions are closed
    /// ([`crate::exec::ExecutorCore::arm_weekend`]).
    Weekend,
}

impl Timer {
    /// Every timer, in the table's order.
    pub const ALL: [Timer; 6] = [
        Timer::Gather,
        Timer::PaceSignal,
        Timer::PaceReady,
        Timer::HeldExit,
        Timer::GuardDay,
        Timer::Weekend,
    ];

    fn slot(self) -> usize {
        match self {
            Timer::Gather => 0,
            Timer::PaceSignal => 1,
            Timer::PaceReady => 2,
            Timer::HeldExit => 3,
            Timer::GuardDay => 4,
            Timer::Weekend => 5,
        }
    }
}

/// Each [`Timer`]'s deadline (milliseconds), if armed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerTable {
    at: [Option<i64>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `t` at `at_ms` (replacing its deadline).
    pub fn set(&mut self, t: Timer, at_ms: i64) {
        self.at[t.slot()] = Some(at_ms);
    }

    /// Disarms `t`.
    pub fn stop(&mut self, t: Timer) {
        self.at[t.slot()] = None;
    }

    /// `t`'s deadline.
    pub fn get(&self, t: Timer) -> Option<i64> {
        self.at[t.slot()]
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<i64> {
        self.at.iter().flatten().min().copied()
    }

    /// The timers due at `now_ms`, disarmed.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Timer> {
        let mut due = Vec::new();
        for t in Timer::ALL {
            if self.get(t).is_some_and(|at| at <= now_ms) {
                self.stop(t);
                due.push(t);
            }
        }
        due
    }
}

/// The close instant (bar open time + period, Unix s) of a SIGNAL line, if it parses.
pub fn close_instant(line: &str) -> Option<i64> {
    let Ok(Message::Signal(s)) = oracle_ipc::parse(line) else {
        return None;
    };
    Some(s.bar_time? + s.tf?.seconds())
}

/// The live bars sent to the predictor whose SIGNAL has not come yet: (symbol, timeframe) →
/// the bar's open time. A batch of SIGNALs waits for the others of its close instant.
#[derive(Debug, Default)]
pub struct Awaiting {
    open: HashMap<(String, Timeframe), i64>,
    /// Models whose SIGNAL did not come within [`GATHER_WAIT_MS`] (a model the predictor did
    /// not load, a predictor down): not waited for until a SIGNAL of theirs comes in, so a
    /// missing model costs one wait, not one per bar.
    late: HashSet<(String, Timeframe)>,
}

impl Awaiting {
    /// A live bar of `(symbol, tf)` opened at `bt` went out.
    pub fn bar_out(&mut self, symbol: &str, tf: Timeframe, bt: i64) {
        let key = (symbol.to_string(), tf);
        if !self.late.contains(&key) {
            self.open.insert(key, bt);
        }
    }

    /// The wait for `instant`'s SIGNALs ran out: the models still awaited for it are late.
    pub fn late(&mut self, instant: i64) {
        let late: Vec<(String, Timeframe)> = self
            .open
            .iter()
            .filter(|((_, tf), bt)| *bt + tf.seconds() == instant)
            .map(|(k, _)| k.clone())
            .collect();
        for k in late {
            self.open.remove(&k);
            self.late.insert(k);
        }
    }

    /// A SIGNAL line came in: its model's bar (and any older one) is no longer awaited.
    pub fn signal_in(&mut self, line: &str) {
        let Ok(Message::Signal(s)) = oracle_ipc::parse(line) else {
            return;
        };
        let (Some(tf), Some(bt)) = (s.tf, s.bar_time) else {
            return;
        };
        let key = (s.symbol.to_string(), tf);
        self.late.remove(&key);
        if self.open.get(&key).is_some_and(|b| *b <= bt) {
            self.open.remove(&key);
        }
    }

    /// Is a SIGNAL awaited for a bar closing at `instant`?
    pub fn expects(&self, instant: i64) -> bool {
        self.open
            .iter()
            .any(|((_, tf), bt)| bt + tf.seconds() == instant)
    }
}

/// The pending batch's close instants, what is awaited, and the timer table.
#[derive(Debug, Default)]
pub struct Gather {
    /// The bars out whose SIGNAL has not come.
    pub awaiting: Awaiting,
    /// Close instants of the SIGNALs taken in and not yet answered.
    instants: Vec<i64>,
    timers: TimerTable,
}

impl Gather {
    /// A live bar went out to the predictor.
    pub fn bar_out(&mut self, symbol: &str, tf: Timeframe, bt: i64) {
        self.awaiting.bar_out(symbol, tf, bt);
    }

    /// A SIGNAL line joined the pending batch.
    pub fn signal_in(&mut self, line: &str) {
        self.awaiting.signal_in(line);
        self.instants.extend(close_instant(line));
    }

    /// Is a SIGNAL of the pending batch's close instants still on its way?
    pub fn expects_more(&self) -> bool {
        self.instants.iter().any(|&i| self.awaiting.expects(i))
    }

    /// The pending batch waits for the rest of its instant: [`Timer::Gather`] at
    /// `now_ms + GATHER_WAIT_MS` (once per batch: a later SIGNAL does not extend it).
    pub fn arm(&mut self, now_ms: i64) {
        if self.timers.get(Timer::Gather).is_none() {
            self.timers
                .set(Timer::Gather, now_ms.saturating_add(GATHER_WAIT_MS));
        }
    }

    /// Arms [`Timer::HeldExit`] at `at_ms` (`None`: disarmed: nothing held).
    pub fn set_held_exit(&mut self, at_ms: Option<i64>) {
        match at_ms {
            Some(at) => self.timers.set(Timer::HeldExit, at),
            None => self.timers.stop(Timer::HeldExit),
        }
    }

    /// Arms [`Timer::GuardDay`] at `at_ms` (`None`: disarmed).
    pub fn set_guard_day(&mut self, at_ms: Option<i64>) {
        match at_ms {
            Some(at) => self.timers.set(Timer::GuardDay, at),
            None => self.timers.stop(Timer::GuardDay),
        }
    }

    /// Arms [`Timer::Weekend`] at `at_ms` (`None`: disarmed).
    pub fn set_weekend(&mut self, at_ms: Option<i64>) {
        match at_ms {
            Some(at) => self.timers.set(Timer::Weekend, at),
            None => self.timers.stop(Timer::Weekend),
        }
    }

    /// [`Timer::Weekend`]'s deadline.
    pub fn weekend_at(&self) -> Option<i64> {
        self.timers.get(Timer::Weekend)
    }

    /// [`Timer::HeldExit`]'s deadline.
    pub fn held_exit_at(&self) -> Option<i64> {
        self.timers.get(Timer::HeldExit)
    }

    /// The earliest timer deadline (ms), for the shell to sleep until.
    pub fn poll_timeout(&self) -> Option<i64> {
        self.timers.next()
    }

    /// The timers due at `now_ms`. [`Timer::Gather`]: the models still awaited for the pending
    /// batch's instants are late; the batch goes now (the shell takes it, then calls
    /// [`Gather::taken`]).
    pub fn handle_timeout(&mut self, now_ms: i64) -> Vec<Timer> {
        let due = self.timers.expire(now_ms);
        if due.contains(&Timer::Gather) {
            for &i in &self.instants {
                self.awaiting.late(i);
            }
        }
        due
    }

    /// The pending batch went: nothing is gathered any more, its timer is disarmed.
    pub fn taken(&mut self) {
        self.instants.clear();
        self.timers.stop(Timer::Gather);
    }
}
