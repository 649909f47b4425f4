//! The append-only journal: one JSON record per line, fsynced on every append.
//!
//! Every order's **intent** (with its client order id) is written and fsynced *before* the order
//! goes on the wire; its outcome follows. After a crash, an intent without an outcome is an order
//! whose fate is unknown: it is looked up at the broker (reconcile / deal list), never resent.
//! Model states and answered ACKs are journaled too, so a restarted executor neither chases a
//! missed entry nor re-executes a duplicate SIGNAL.
//!
//! Group commit: the intents of one batch of orders (the exits, then the entries, of the SIGNALs
//! that were waiting together) are written with one write and one fsync
//! ([`Journal::append_batch`]) before the first of them goes on the wire. Outcomes, model
//! states and ACKs are written without an fsync ([`Journal::append_unsynced`]): see there why
//! that is safe.
//!
//! The file is append-only; what a replay keeps in memory is bounded ([`Replayed::trim`]): the
//! last [`ACK_MEMORY`] answered bars and [`INTENT_MEMORY`] intents per model, and every intent
//! whose outcome is still unknown.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::{ModelKey, ModelState};

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
        /// Model.
        model: ModelKey,
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
        /// Model.
        model: ModelKey,
        /// State.
        state: ModelState,
    },
    /// An answered ACK (for duplicate SIGNALs after a restart).
    Ack {
        /// Model.
        model: ModelKey,
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
    pub models: BTreeMap<ModelKey, ModelState>,
    /// Intents without an outcome (or with `unknown`), by client order id.
    pub pending: BTreeMap<String, Record>,
    /// Every intent ever journaled, by client order id (to explain positions at reconcile).
    pub intents: HashMap<String, Record>,
    /// Client order ids whose outcome was `filled`.
    pub filled: std::collections::HashSet<String>,
    /// ACKs answered, by (model, bar time).
    pub acks: HashMap<(ModelKey, i64), String>,
    /// Risk anchors (initial, day start, anchor).
    pub risk: Option<(f64, i64, f64)>,
    /// Lines that could not be read (a torn last line after a crash).
    pub bad_lines: usize,
}

impl Replayed {
    /// Forgets what the engine would have forgotten: per model, ACKs older than its latest
    /// [`ACK_MEMORY`] answered bars and intents beyond its latest [`INTENT_MEMORY`] (pending ones
    /// are always kept); `filled` only for the intents kept.
    pub fn trim(&mut self) {
        let mut bts: HashMap<&ModelKey, Vec<i64>> = HashMap::new();
        for (m, bt) in self.acks.keys() {
            bts.entry(m).or_default().push(*bt);
        }
        let cut: HashMap<ModelKey, i64> = bts
            .into_iter()
            .filter(|(_, v)| v.len() > ACK_MEMORY)
            .map(|(m, mut v)| {
                v.sort_unstable_by(|a, b| b.cmp(a));
                (m.clone(), v[ACK_MEMORY - 1])
            })
            .collect();
        if !cut.is_empty() {
            self.acks
                .retain(|(m, bt), _| cut.get(m).is_none_or(|c| bt >= c));
        }
        let mut per: HashMap<ModelKey, Vec<(&String, IntentRank)>> = HashMap::new();
        for (coid, r) in &self.intents {
            if let Record::Intent { model, .. } = r {
                per.entry(model.clone())
                    .or_default()
                    .push((coid, intent_rank(r)));
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
}

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    /// fsyncs done (a test-visible metric: one per [`Journal::append`] or
    /// [`Journal::append_batch`]).
    syncs: u64,
}

impl Journal {
    /// Opens (creating) the journal and replays it.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Replayed)> {
        let mut rep = Replayed::default();
        if let Ok(f) = File::open(path) {
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line?;
                if n % TRIM_EVERY == TRIM_EVERY - 1 {
                    rep.trim();
                }
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(&line) {
                    Ok(r) => apply(&mut rep, r),
                    Err(_) => rep.bad_lines += 1,
                }
            }
        }
        rep.trim();
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
                syncs: 0,
            },
            rep,
        ))
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsyncs done so far (each [`Journal::append`] and [`Journal::append_batch`] is one).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Appends one record and fsyncs it: for the records an order's safety rests on
    /// (`Intent` before the order goes on the wire, `Risk`, and the outcomes reconciliation
    /// learns).
    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        self.append_batch(std::slice::from_ref(r))
    }

    /// Group commit: appends the records with one write and one fsync (the intents of one
    /// batch of orders, before the first of them goes on the wire). Nothing is written when a
    /// record cannot be encoded.
    pub fn append_batch(&mut self, rs: &[Record]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(rs.len() * 256);
        for r in rs {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.syncs += 1;
        self.file.sync_data()
    }

    /// Appends one record without an fsync: for the per-signal bookkeeping (`Ack`, `Model`)
    /// and for order outcomes, so twenty signals closing on one bar do not queue behind
    /// forty fsyncs. The write is in the kernel when this returns, so a killed process loses
    /// nothing; only a power loss can drop the last such records, and the next fsync of the
    /// file (the next batch's intents) makes them durable too. Losing them is safe:
    /// - an `Outcome`: its intent is then pending after the restart, and reconciliation looks
    ///   the order up at the broker (by client order id, then label/side/volume and the deal
    ///   list) and adopts what it finds, never resending; that is the same state as a kill
    ///   between the broker's answer and the outcome (failpoint `after_fill`);
    /// - a `Model` state: the model is treated as a missed entry (never chased);
    /// - an `Ack`: a re-sent SIGNAL is re-evaluated against the reconciled broker state, never
    ///   blindly re-ordered.
    pub fn append_unsynced(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
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
        }
        Record::Model { model, state } => {
            rep.models.insert(model.clone(), state.clone());
        }
        Record::Ack { model, bt, line } => {
            rep.acks.insert((model.clone(), *bt), line.clone());
        }
        Record::Risk {
            initial,
            day_start,
            anchor,
        } => rep.risk = Some((*initial, *day_start, *anchor)),
    }
}

/// Client order id of an order: symbol, timeframe, bar time and operation, at most 50 chars
/// (cTrader's limit). Deterministic, so a retry after a crash would carry the same id; the
/// executor never retries blindly anyway.
pub fn client_order_id(key: &ModelKey, bt: i64, op: Op) -> String {
    let op = match op {
        Op::Open => 'O',
        Op::Close => 'C',
    };
    let id = format!("ot-{}-{}-{}-{}", key.symbol, key.tf, bt, op);
    if id.len() <= 50 {
        return id;
    }
    // Long symbol names: keep a prefix and a hash of the whole name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.symbol.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let sym: String = key.symbol.chars().take(12).collect();
    format!("ot-{sym}~{h:08x}-{}-{bt}-{op}", key.tf)
        .chars()
        .take(50)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oracle_ipc::Timeframe;

    #[test]
    fn coid_is_short_and_deterministic() {
        let k = ModelKey::new("EURUSD", Timeframe::M15);
        assert_eq!(
            client_order_id(&k, 1_614_557_700, Op::Open),
            "ot-EURUSD-M15-1614557700-O"
        );
        let long = ModelKey::new(&"X".repeat(32), Timeframe::MN1);
        let a = client_order_id(&long, 253_402_300_799, Op::Close);
        assert!(a.len() <= 50, "{a}");
        assert_eq!(a, client_order_id(&long, 253_402_300_799, Op::Close));
        let long2 = ModelKey::new(&format!("{}Y", "X".repeat(31)), Timeframe::MN1);
        assert_ne!(a, client_order_id(&long2, 253_402_300_799, Op::Close));
    }

    fn intent(k: &ModelKey, coid: &str, bt: i64) -> Record {
        Record::Intent {
            ts: bt + 901,
            coid: coid.into(),
            model: k.clone(),
            op: Op::Open,
            symbol: k.symbol.clone(),
            buy: true,
            action: crate::policy::ActionName(oracle_ipc::Action::LongWeak),
            volume: 100_000,
            position_id: None,
            bt,
        }
    }

    #[test]
    fn group_commit_is_one_fsync_and_the_replay_is_bounded_keeping_pending() {
        let p =
            std::env::temp_dir().join(format!("oracle-journal-trim-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let k = ModelKey::new("EURUSD", Timeframe::M15);
        let n = 3 * INTENT_MEMORY.max(ACK_MEMORY) as i64;
        {
            let (mut j, _) = Journal::open(&p).unwrap();
            // The oldest intent never got an outcome (pending); the others filled.
            let all: Vec<Record> = (0..n)
                .map(|i| intent(&k, &format!("c{i}"), i * 900))
                .collect();
            j.append_batch(&all).unwrap();
            assert_eq!(j.syncs(), 1, "one fsync for the whole batch");
            for i in 1..n {
                j.append_unsynced(&Record::Outcome {
                    coid: format!("c{i}"),
                    result: "filled".into(),
                    position_id: Some(i as u64),
                    price: Some(1.1),
                    volume: Some(100_000),
                    code: None,
                })
                .unwrap();
                j.append_unsynced(&Record::Ack {
                    model: k.clone(),
                    bt: i * 900,
                    line: format!("ACK {i}"),
                })
                .unwrap();
            }
            assert_eq!(j.syncs(), 1);
        }
        let (_, rep) = Journal::open(&p).unwrap();
        assert_eq!(rep.pending.keys().collect::<Vec<_>>(), vec!["c0"]);
        assert_eq!(
            rep.intents.len(),
            INTENT_MEMORY + 1,
            "the latest, and the pending one"
        );
        assert!(rep.intents.contains_key("c0"));
        assert!(rep.intents.contains_key(&format!("c{}", n - 1)));
        assert!(rep.filled.iter().all(|c| rep.intents.contains_key(c)));
        assert_eq!(rep.filled.len(), INTENT_MEMORY);
        assert_eq!(rep.acks.len(), ACK_MEMORY);
        assert!(rep.acks.contains_key(&(k.clone(), (n - 1) * 900)));
        assert!(!rep.acks.contains_key(&(k, 900)));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn replay_keeps_pending_and_skips_torn_line() {
        let p = std::env::temp_dir().join(format!("oracle-journal-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let k = ModelKey::new("EURUSD", Timeframe::M15);
        {
            let (mut j, rep) = Journal::open(&p).unwrap();
            assert!(rep.pending.is_empty());
            for (coid, done) in [("a", true), ("b", false)] {
                j.append(&Record::Intent {
                    ts: 1,
                    coid: coid.into(),
                    model: k.clone(),
                    op: Op::Open,
                    symbol: "EURUSD".into(),
                    buy: true,
                    action: crate::policy::ActionName(oracle_ipc::Action::LongWeak),
                    volume: 100_000,
                    position_id: None,
                    bt: 900,
                })
                .unwrap();
                if done {
                    j.append(&Record::Outcome {
                        coid: coid.into(),
                        result: "filled".into(),
                        position_id: Some(7),
                        price: Some(1.1),
                        volume: Some(100_000),
                        code: None,
                    })
                    .unwrap();
                }
            }
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"t\":\"outc")
            .unwrap();
        let (_, rep) = Journal::open(&p).unwrap();
        assert_eq!(rep.pending.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(rep.bad_lines, 1);
        std::fs::remove_file(&p).unwrap();
    }
}
