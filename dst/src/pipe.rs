//! The broker connection as an in-memory pipe with faults in a wrapper around it (smoltcp's
//! `FaultInjector` shape): the session and the broker core each see a byte stream; the pipe
//! decides, from its own seeded RNG, when a frame is delayed, when the connection is reset, and
//! when it goes dead (a frame and everything after it never arrive: TCP loses nothing without
//! losing the connection, so a lost answer is a half-open connection that only timeouts find).
//! Frames are never reordered (TCP).

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The faults a pipe injects, drawn per frame.
#[derive(Clone, Debug, PartialEq)]
pub struct PipeFaults {
    /// Probability that a frame (either way) resets the connection instead of arriving.
    pub reset: f64,
    /// Probability that a frame from the server is lost with the rest of the connection's
    /// traffic (both ways): a dead, half-open connection.
    pub dead: f64,
    /// Probability that a frame from the server is delayed.
    pub delay: f64,
    /// Most milliseconds of such a delay.
    pub max_delay_ms: i64,
    /// Defect injection for the harness's own test: every client frame whose bytes contain
    /// this marker is delivered twice (a pipe that duplicates).
    pub duplicate_client_frames_with: Option<Vec<u8>>,
}

impl PipeFaults {
    /// No faults.
    pub fn none() -> Self {
        PipeFaults {
            reset: 0.0,
            dead: 0.0,
            delay: 0.0,
            max_delay_ms: 0,
            duplicate_client_frames_with: None,
        }
    }
}

/// What the pipe hands to one of its ends.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// Bytes for the broker core.
    ToServer(Vec<u8>),
    /// Bytes for the session.
    ToClient(Vec<u8>),
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    /// Queued (or silently lost on a dead connection).
    Queued,
    /// The connection was reset: both ends must be told.
    Reset,
}

/// One connection's pipe.
#[derive(Debug)]
pub struct Pipe {
    faults: PipeFaults,
    rng: ChaCha8Rng,
    to_server: VecDeque<(i64, Vec<u8>)>,
    to_client: VecDeque<(i64, Vec<u8>)>,
    dead: bool,
    /// Resets injected so far (over every connection of this pipe).
    pub resets: u64,
    /// Connections that went dead.
    pub deaths: u64,
    /// Frames delayed.
    pub delayed: u64,
}

impl Pipe {
    /// A pipe with these faults, seeded.
    pub fn new(faults: PipeFaults, seed: u64) -> Self {
        Pipe {
            faults,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7069_7065),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            dead: false,
            resets: 0,
            deaths: 0,
            delayed: 0,
        }
    }

    /// A new connection: nothing queued, alive.
    pub fn open(&mut self) {
        self.to_server.clear();
        self.to_client.clear();
        self.dead = false;
    }

    /// The connection ended: whatever was in flight is gone.
    pub fn close(&mut self) {
        self.to_server.clear();
        self.to_client.clear();
        self.dead = false;
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// The session wrote `bytes` (whole frames) at `now`.
    pub fn client_write(&mut self, now: i64, bytes: Vec<u8>) -> Wrote {
        if self.dead {
            return Wrote::Queued;
        }
        if self.roll(self.faults.reset) {
            self.resets += 1;
            return Wrote::Reset;
        }
        let at = self.to_server.back().map_or(now, |(t, _)| (*t).max(now));
        let dup = self
            .faults
            .duplicate_client_frames_with
            .as_ref()
            .is_some_and(|m| !m.is_empty() && bytes.windows(m.len()).any(|w| w == m.as_slice()));
        if dup {
            self.to_server.push_back((at, bytes.clone()));
        }
        self.to_server.push_back((at, bytes));
        Wrote::Queued
    }

    /// The broker core wrote `bytes` (one frame) at `now`, `delay_ms` later by its own choice.
    pub fn server_write(&mut self, now: i64, bytes: Vec<u8>, delay_ms: i64) -> Wrote {
        if self.dead {
            return Wrote::Queued;
        }
        if self.roll(self.faults.reset) {
            self.resets += 1;
            return Wrote::Reset;
        }
        if self.roll(self.faults.dead) {
            self.deaths += 1;
            self.dead = true;
            self.to_server.clear();
            self.to_client.clear();
            return Wrote::Queued;
        }
        let mut delay = delay_ms.max(0);
        if self.faults.max_delay_ms > 0 && self.roll(self.faults.delay) {
            self.delayed += 1;
            delay += self.rng.random_range(1..=self.faults.max_delay_ms);
        }
        // In order: a frame never overtakes the one before it.
        let at = self
            .to_client
            .back()
            .map_or(now + delay, |(t, _)| (*t).max(now + delay));
        self.to_client.push_back((at, bytes));
        Wrote::Queued
    }

    /// The next delivery due at or before `now`, client-bound first when both are due at the
    /// same instant and the client-bound one is older.
    pub fn poll(&mut self, now: i64) -> Option<Delivery> {
        let s = self
            .to_server
            .front()
            .map(|(t, _)| *t)
            .filter(|t| *t <= now);
        let c = self
            .to_client
            .front()
            .map(|(t, _)| *t)
            .filter(|t| *t <= now);
        match (s, c) {
            (Some(a), Some(b)) if b < a => self
                .to_client
                .pop_front()
                .map(|(_, x)| Delivery::ToClient(x)),
            (Some(_), _) => self
                .to_server
                .pop_front()
                .map(|(_, x)| Delivery::ToServer(x)),
            (None, Some(_)) => self
                .to_client
                .pop_front()
                .map(|(_, x)| Delivery::ToClient(x)),
            (None, None) => None,
        }
    }

    /// When the next delivery is due.
    pub fn next_at(&self) -> Option<i64> {
        let a = self.to_server.front().map(|(t, _)| *t);
        let b = self.to_client.front().map(|(t, _)| *t);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Frames from the server still waiting to be delivered (a graceful close flushes them).
    pub fn take_to_client(&mut self) -> Vec<Vec<u8>> {
        self.to_client.drain(..).map(|(_, b)| b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_arrive_in_order_even_when_an_earlier_one_is_delayed() {
        let mut p = Pipe::new(
            PipeFaults {
                delay: 1.0,
                max_delay_ms: 500,
                ..PipeFaults::none()
            },
            7,
        );
        for i in 0..20u8 {
            assert_eq!(p.server_write(i64::from(i), vec![i], 0), Wrote::Queued);
        }
        let mut got = Vec::new();
        let mut now = 0;
        while got.len() < 20 {
            now = p.next_at().expect("frames queued");
            while let Some(Delivery::ToClient(b)) = p.poll(now) {
                got.push(b[0]);
            }
        }
        assert!(now > 19, "the delays were applied");
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
    }

    #[test]
    fn a_dead_connection_delivers_nothing_more_either_way() {
        let mut p = Pipe::new(
            PipeFaults {
                dead: 1.0,
                ..PipeFaults::none()
            },
            1,
        );
        p.client_write(0, vec![1]);
        p.server_write(0, vec![2], 0);
        p.client_write(1, vec![3]);
        assert_eq!(p.poll(10), None);
        assert_eq!(p.deaths, 1);
    }
}
