//! The append-only journal: one JSON record per line, fsynced on every append.
//!
//! Every order's **intent** (with its client order id) is written and fsynced *before* the order
//! goes on the wire; its outcome follows. After a crash, an intent without an outcome is an order
//! whose fate is unknown: it is looked up at the broker (reconcile / deal list), never resent.
//! Model states and answered ACKs are journaled too, so a restarted executor neither chases a
//! missed entry nor re-executes a duplicate SIGNAL.

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

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating) the journal and replays it.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Replayed)> {
        let mut rep = Replayed::default();
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(&line) {
                    Ok(r) => apply(&mut rep, r),
                    Err(_) => rep.bad_lines += 1,
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            rep,
        ))
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and fsyncs it: for the records an order's safety rests on
    /// (`Intent` before the order goes on the wire, `Outcome`, `Risk`).
    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        self.append_unsynced(r)?;
        self.file.sync_data()
    }

    /// Appends one record without an fsync: for the per-signal bookkeeping (`Ack`, `Model`),
    /// so twenty signals closing on one bar do not queue behind forty fsyncs. The write is in
    /// the kernel when this returns, so a killed process loses nothing; only a power loss can
    /// drop the last such records, and the next [`Journal::append`] (fsync of the whole file)
    /// makes them durable too. Losing them is safe: a model whose state is unknown after a
    /// restart is treated as a missed entry (never chased), and a re-sent SIGNAL is
    /// re-evaluated against the reconciled broker state, never blindly re-ordered.
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
