//! The journal's records and their bytes: one JSON record per line, what a restart reads.
//!
//! The core decides what is journaled and when an fsync must come before the wire; the shell
//! (`oracle_executor::journal::Journal`) appends the bytes to the file and fsyncs. A replay
//! ([`Replayed::replay_line`] per line, then [`Replayed::trim`]) rebuilds what the executor
//! keeps in memory: bounded to the last [`ACK_MEMORY`] answered bars and [`INTENT_MEMORY`]
//! intents per model, and every intent whose outcome is still unknown.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::key::StreamKey;
use crate::policy::ModelState;

/// Order operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Entry.
    Open,
    /// Exit.
    Close,
}

/// One journal line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// About to send an order.
    Intent {
        /// Wall time.
        ts: i64,
        /// Client order id.
        coid: String,
        /// Model (`{"symbol":"EURUSD","tf":"M15"}`).
        #[serde(with = "crate::key::serde")]
        model: StreamKey,
        /// Open / close.
        op: Op,
        /// Symbol.
        symbol: String,
        /// Buy side.
        buy: bool,
        /// The target action of the signal (`LONG_WEAK`…).
        action: crate::policy::ActionName,
        /// Volume (cents).
        volume: i64,
        /// Position closed (close only).
        position_id: Option<u64>,
        /// Signal bar time.
        bt: i64,
    },
    /// What became of it.
    Outcome {
        /// Client order id.
        coid: String,
        /// `filled`, `rejected`, `unknown`, `not_executed`.
        result: String,
        /// Position id.
        position_id: Option<u64>,
        /// Price.
        price: Option<f64>,
        /// Volume.
        volume: Option<i64>,
        /// Broker code.
        code: Option<String>,
    },
    /// A model's state after a signal.
    Model {
        /// Model (`{"symbol":"EURUSD","tf":"M15"}`).
        #[serde(with = "crate::key::serde")]
        model: StreamKey,
        /// State.
        state: ModelState,
    },
    /// An answered ACK (for duplicate SIGNALs after a restart).
    Ack {
        /// Model (`{"symbol":"EURUSD","tf":"M15"}`).
        #[serde(with = "crate::key::serde")]
        model: StreamKey,
        /// Bar time.
        bt: i64,
        /// The ACK line as sent, without SEQ (the duplicate's SEQ is echoed).
        line: String,
    },
    /// Risk anchors.
    Risk {
        /// Initial balance.
        initial: f64,
        /// Broker day start.
        day_start: i64,
        /// Day anchor.
        anchor: f64,
    },
    /// The prop-firm guard's state after a change (its day, anchor, halt): a restart restores it.
    Guard {
        /// The state.
        state: crate::propfirm::GuardState,
    },
    /// One day of the prop-firm guard, written once at its end (the midnight of its zone, by the
    /// day-end timer or the first update past it): what `oracle report --state` shows day by day
    /// and the `guard` records do not hold, the lowest equity the guard saw (a report only; a
    /// restart restores nothing from it).
    GuardDay {
        /// The day's start (UTC ms).
        day_start_ms: i64,
        /// Its anchor: the balance at its midnight (`None` when no balance was seen).
        anchor: Option<f64>,
        /// Its daily floor: the anchor − the daily allowance (`None` without an anchor).
        floor: Option<f64>,
        /// The lowest equity the guard saw in the day (since the process started, after a
        /// restart in the day; `None` when it saw none).
        low_equity: Option<f64>,
        /// The balance at its end (the next day's anchor).
        eod_balance: f64,
    },
    /// An operator command (`oracle halt|flatten|resume`), who gave it and what it did.
    Operator {
        /// When (UTC ms).
        ts_ms: i64,
        /// Who gave it (the channel and user).
        origin: String,
        /// The command.
        command: crate::operator::OperatorCommand,
        /// Done (`true`) or refused.
        ok: bool,
        /// What was done, or why it was refused.
        result: String,
    },
}

/// Answered bars remembered per model (re-sent SIGNALs are answered with the same ACK, and never
/// re-executed, within this many of a model's latest answered bars; an older one is refused
/// `STALE_SIGNAL`).
pub const ACK_MEMORY: usize = 16;

/// Intents remembered per model (about [`ACK_MEMORY`] / 2 bars of exit + entry) to explain
/// positions at reconciliation; an intent whose outcome is unknown is kept until it is resolved.
pub const INTENT_MEMORY: usize = 16;

/// Replay lines between two [`Replayed::trim`]s while a journal is read (bounds the peak).
const TRIM_EVERY: usize = 1 << 16;

/// Sort key of an intent within its model (see [`intent_rank`]).
pub type IntentRank = (i64, u8, i64);

/// Order of intents within a model: bar time, then exit before entry, then write time.
pub fn intent_rank(r: &Record) -> IntentRank {
    match r {
        Record::Intent { bt, op, ts, .. } => (*bt, u8::from(*op == Op::Open), *ts),
        _ => (i64::MIN, 0, i64::MIN),
    }
}

/// What a journal said at open.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Last state per model.
    pub models: BTreeMap<StreamKey, ModelState>,
    /// Intents without an outcome (or with `unknown`), by client order id.
    pub pending: BTreeMap<String, Record>,
    /// Every intent ever journaled, by client order id (to explain positions at reconcile).
    pub intents: HashMap<String, Record>,
    /// Client order ids whose outcome was `filled`.
    pub filled: std::collections::HashSet<String>,
    /// ACKs answered, by (model, bar time).
    pub acks: HashMap<(StreamKey, i64), String>,
    /// Risk anchors (initial, day start, anchor).
    pub risk: Option<(f64, i64, f64)>,
    /// The prop-firm guard's last state.
    pub guard: Option<crate::propfirm::GuardState>,
    /// A person's halt in force (`oracle halt` not followed by `oracle resume`).
    pub operator_halt: Option<crate::operator::OperatorHalt>,
    /// Lines that could not be read (a torn last line after a crash).
    pub bad_lines: usize,
}

impl Replayed {
    /// Forgets what the engine would have forgotten: per model, ACKs older than its latest
    /// [`ACK_MEMORY`] answered bars and intents beyond its latest [`INTENT_MEMORY`] (pending ones
    /// are always kept); `filled` only for the intents kept.
    pub fn trim(&mut self) {
        let mut bts: HashMap<&StreamKey, Vec<i64>> = HashMap::new();
        for (m, bt) in self.acks.keys() {
            bts.entry(m).or_default().push(*bt);
        }
        let cut: HashMap<StreamKey, i64> = bts
            .into_iter()
            .filter(|(_, v)| v.len() > ACK_MEMORY)
            .map(|(m, mut v)| {
                v.sort_unstable_by(|a, b| b.cmp(a));
                (*m, v[ACK_MEMORY - 1])
            })
            .collect();
        if !cut.is_empty() {
            self.acks
                .retain(|(m, bt), _| cut.get(m).is_none_or(|c| bt >= c));
        }
        let mut per: HashMap<StreamKey, Vec<(&String, IntentRank)>> = HashMap::new();
        for (coid, r) in &self.intents {
            if let Record::Intent { model, .. } = r {
                per.entry(*model).or_default().push((coid, intent_rank(r)));
            }
        }
        let mut drop: Vec<String> = Vec::new();
        for (_, mut v) in per {
            if v.len() <= INTENT_MEMORY {
                continue;
            }
            v.sort_unstable_by_key(|x| std::cmp::Reverse(x.1));
            drop.extend(
                v[INTENT_MEMORY..]
                    .iter()
                    .filter(|(c, _)| !self.pending.contains_key(*c))
                    .map(|(c, _)| (*c).clone()),
            );
        }
        for c in &drop {
            self.intents.remove(c);
        }
        let intents = &self.intents;
        self.filled.retain(|c| intents.contains_key(c));
    }
    /// Reads one journal line (the `n`-th, from 0) into what the replay keeps; an empty line
    /// is skipped, a line that is not a record (a torn last line after a crash) is counted in
    /// [`Replayed::bad_lines`]. What is kept stays bounded while a long journal is read; call
    /// [`Replayed::trim`] after the last line.
    pub fn replay_line(&mut self, n: usize, line: &str) {
        if n % TRIM_EVERY == TRIM_EVERY - 1 {
            self.trim();
        }
        if line.trim().is_empty() {
            return;
        }
        match Record::from_line(line) {
            Ok(r) => apply(self, r),
            Err(_) => self.bad_lines += 1,
        }
    }

    /// The replay of a whole journal's bytes (lines split on `\n`; a line that is not UTF-8
    /// counts as a bad line).
    pub fn from_bytes(bytes: &[u8]) -> Replayed {
        let mut rep = Replayed::default();
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
            match std::str::from_utf8(line) {
                Ok(l) => rep.replay_line(n, l),
                Err(_) => rep.bad_lines += 1,
            }
        }
        rep.trim();
        rep
    }
}

impl Record {
    /// The record's journal line, without the newline.
    pub fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// A record from its journal line.
    pub fn from_line(line: &str) -> Result<Record, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// The bytes of several records, one line each (newline-terminated): what one group-commit
/// write appends. `Err` when a record cannot be encoded (then nothing is to be written).
pub fn encode_lines(rs: &[Record]) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = Vec::with_capacity(rs.len() * 256);
    for r in rs {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    Ok(buf)
}

fn apply(rep: &mut Replayed, r: Record) {
    match &r {
        Record::Intent { coid, .. } => {
            rep.intents.insert(coid.clone(), r.clone());
            rep.pending.insert(coid.clone(), r);
        }
        Record::Outcome { coid, result, .. } => {
            if result == "filled" {
                rep.filled.insert(coid.clone());
            }
            if result != "unknown" {
                rep.pending.remove(coid);
            }
            if result == "withdrawn" {
                // Written with its batch's exits, never sent: no order explains anything.
                rep.intents.remove(coid);
            }
        }
        Record::Model { model, state } => {
            rep.models.insert(*model, state.clone());
        }
        Record::Ack { model, bt, line } => {
            rep.acks.insert((*model, *bt), line.clone());
        }
        Record::Risk {
            initial,
            day_start,
            anchor,
        } => rep.risk = Some((*initial, *day_start, *anchor)),
        Record::Guard { state } => rep.guard = Some(state.clone()),
        Record::Operator {
            ts_ms,
            origin,
            command,
            ok: true,
            ..
        } => match command {
            crate::operator::OperatorCommand::Halt { .. } => {
                rep.operator_halt = Some(crate::operator::OperatorHalt {
                    at_ms: *ts_ms,
                    origin: origin.clone(),
                });
            }
            crate::operator::OperatorCommand::Resume => rep.operator_halt = None,
            crate::operator::OperatorCommand::Flatten { .. } => {}
        },
        Record::Operator { .. } | Record::GuardDay { .. } => {}
    }
}

/// What a paper journal's closed trades add up to ([`closed_trades`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClosedTrades {
    /// Closes filled.
    pub trades: u64,
    /// Their realised P&L, as the paper book counts it: (exit − entry) × units for a long,
    /// (entry − exit) × units for a short.
    pub realized: f64,
    /// The highest position id the journal names (a resumed book numbers after it).
    pub last_position_id: u64,
}

/// The closed trades of a paper journal's `text` (its JSON lines; unreadable lines skipped):
/// the balance a resumed paper book starts from is the starting balance plus their P&L.
pub fn closed_trades(text: &str) -> ClosedTrades {
    let mut out = ClosedTrades::default();
    // Intents by client order id; entries (price, buy) by position id.
    let mut intents: HashMap<String, (Op, bool, Option<u64>)> = HashMap::new();
    let mut entries: HashMap<u64, (f64, bool)> = HashMap::new();
    for line in text.lines() {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Intent {
                coid,
                op,
                buy,
                position_id,
                ..
            }) => {
                intents.insert(coid, (op, buy, position_id));
            }
            Ok(Record::Outcome {
                coid,
                result,
                position_id,
                price,
                volume,
                ..
            }) if result == "filled" => {
                let (Some(pid), Some(price)) = (position_id, price) else {
                    continue;
                };
                out.last_position_id = out.last_position_id.max(pid);
                match intents.get(&coid) {
                    Some((Op::Open, buy, _)) => {
                        entries.insert(pid, (price, *buy));
                    }
                    Some((Op::Close, _, closed)) => {
                        let pid = closed.unwrap_or(pid);
                        if let (Some((entry, buy)), Some(v)) = (entries.remove(&pid), volume) {
                            let units = v as f64 / 100.0;
                            out.realized += if buy {
                                (price - entry) * units
                            } else {
                                (entry - price) * units
                            };
                            out.trades += 1;
                        }
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
    out
}

/// Client order id of an order: symbol, timeframe, bar time and operation, at most 50 chars
/// (cTrader's limit). Deterministic, so a retry after a crash would carry the same id; the
/// executor never retries blindly anyway.
pub fn client_order_id(key: &StreamKey, bt: i64, op: Op) -> String {
    let op = match op {
        Op::Open => 'O',
        Op::Close => 'C',
    };
    order_id(key, bt, op)
}

/// Client order id of a close by a flatten (the guard's or a person's) at `now` (Unix s):
/// `…-<now>-F`, never the id of a signal's order (`O`/`C`), one per model and second.
pub fn flatten_order_id(key: &StreamKey, now: i64) -> String {
    order_id(key, now, 'F')
}

fn order_id(key: &StreamKey, bt: i64, op: char) -> String {
    let id = format!("ot-{}-{}-{}-{}", key.symbol, key.timeframe, bt, op);
    if id.len() <= 50 {
        return id;
    }
    // Long symbol names: keep a prefix and a hash of the whole name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.symbol.as_str().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let sym: String = key.symbol.as_str().chars().take(12).collect();
    format!("ot-{sym}~{h:08x}-{}-{bt}-{op}", key.timeframe)
        .chars()
        .take(50)
        .collect()
}
