//! The append-only journal file: one JSON record per line (the records, their bytes and the
//! replay are the core's: [`oracle_executor_core::journal`], re-exported here).
//!
//! Every order's **intent** (with its client order id) is written and fsynced *before* the order
//! goes on the wire; its outcome follows. After a crash, an intent without an outcome is an order
//! whose fate is unknown: it is looked up at the broker (reconcile / deal list), never resent.
//! Model states and answered ACKs are journaled too, so a restarted executor neither chases a
//! missed entry nor re-executes a duplicate SIGNAL.
//!
//! Group commit: the intents of one batch of orders (the exits and the entries of the SIGNALs
//! that were waiting together) are written with one write and one fsync
//! ([`Journal::append_batch`]) before the first of them goes on the wire; an entry written and
//! then not sent (its exit failed, its margin did not fit) gets a `withdrawn` outcome. Outcomes, model
//! states and ACKs are written without an fsync ([`Journal::append_unsynced`]): see there why
//! that is safe.
//!
//! The file is append-only; what a replay keeps in memory is bounded ([`Replayed::trim`]): the
//! last [`ACK_MEMORY`] answered bars and [`INTENT_MEMORY`] intents per model, and every intent
//! whose outcome is still unknown.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub use oracle_executor_core::journal::{
    ACK_MEMORY, INTENT_MEMORY, IntentRank, Op, Record, Replayed, client_order_id, encode_lines,
    intent_rank,
};

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
                rep.replay_line(n, &line?);
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
        self.write_batch(rs)?;
        self.sync()
    }

    /// The first half of [`Journal::append_batch`]: the records in one write, in the kernel
    /// (a killed process loses nothing) but not yet durable. Nothing is written when a record
    /// cannot be encoded.
    pub fn write_batch(&mut self, rs: &[Record]) -> std::io::Result<()> {
        let buf = encode_lines(rs).map_err(std::io::Error::other)?;
        self.file.write_all(&buf)
    }

    /// The second half of [`Journal::append_batch`]: what was written so far made durable
    /// (one fsync of the data).
    pub fn sync(&mut self) -> std::io::Result<()> {
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
        let mut line = r.to_line().map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::StreamKey;
    use oracle_executor_core::key::key_of;
    use oracle_ipc::Timeframe;

    #[test]
    fn coid_is_short_and_deterministic() {
        let k = key_of("EURUSD", Timeframe::M15).unwrap();
        assert_eq!(
            client_order_id(&k, 1_614_557_700, Op::Open),
            "ot-EURUSD-M15-1614557700-O"
        );
        let long = key_of(&"X".repeat(32), Timeframe::MN1).unwrap();
        let a = client_order_id(&long, 253_402_300_799, Op::Close);
        assert!(a.len() <= 50, "{a}");
        assert_eq!(a, client_order_id(&long, 253_402_300_799, Op::Close));
        let long2 = key_of(&format!("{}Y", "X".repeat(31)), Timeframe::MN1).unwrap();
        assert_ne!(a, client_order_id(&long2, 253_402_300_799, Op::Close));
    }

    fn intent(k: &StreamKey, coid: &str, bt: i64) -> Record {
        Record::Intent {
            ts: bt + 901,
            coid: coid.into(),
            model: *k,
            op: Op::Open,
            symbol: k.symbol.to_string(),
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
        let k = key_of("EURUSD", Timeframe::M15).unwrap();
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
                    model: k,
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
        assert!(rep.acks.contains_key(&(k, (n - 1) * 900)));
        assert!(!rep.acks.contains_key(&(k, 900)));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn replay_keeps_pending_and_skips_torn_line() {
        let p = std::env::temp_dir().join(format!("oracle-journal-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let k = key_of("EURUSD", Timeframe::M15).unwrap();
        {
            let (mut j, rep) = Journal::open(&p).unwrap();
            assert!(rep.pending.is_empty());
            for (coid, done) in [("a", true), ("b", false)] {
                j.append(&Record::Intent {
                    ts: 1,
                    coid: coid.into(),
                    model: k,
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
