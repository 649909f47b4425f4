//! The drift ledger's files: each row as a JSONL line in `<base>.jsonl` and a CSV line in
//! `<base>.csv` (for the report). The rows, their spelling and which are written when (a
//! `NO_SIGNAL` row held back until the model's later signal) are the core's
//! (`oracle_executor_core::drift`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

pub use oracle_executor_core::drift::{
    CSV_HEADER, DriftHold, DriftRow, MAX_HELD_NO_SIGNAL, NO_SIGNAL_ACK, position_word,
};

/// Writes rows to `<base>.jsonl` and `<base>.csv`.
#[derive(Debug)]
pub struct DriftLedger {
    jsonl: File,
    csv: File,
    /// `NO_SIGNAL` rows not written yet.
    held: DriftHold,
    /// The rows due at a write (kept to reuse its buffer).
    due: Vec<DriftRow>,
}

impl DriftLedger {
    /// Opens (appending) `<base>.jsonl` and `<base>.csv`.
    pub fn open(base: &Path) -> std::io::Result<Self> {
        let jp = base.with_extension("jsonl");
        let cp = base.with_extension("csv");
        let new_csv = !cp.exists();
        let jsonl = OpenOptions::new().create(true).append(true).open(jp)?;
        let mut csv = OpenOptions::new().create(true).append(true).open(cp)?;
        if new_csv {
            writeln!(csv, "{CSV_HEADER}")?;
        }
        Ok(DriftLedger {
            jsonl,
            csv,
            held: DriftHold::default(),
            due: Vec::new(),
        })
    }

    /// Appends a row (not fsynced: a report, not a journal), with the held rows the core says
    /// are due first ([`DriftHold::write`]); a `NO_SIGNAL` row may be held back.
    pub fn write(&mut self, r: &DriftRow) -> std::io::Result<()> {
        let mut due = std::mem::take(&mut self.due);
        self.held.write(r, &mut due);
        let res = due.iter().try_for_each(|d| self.append(d));
        due.clear();
        self.due = due;
        res
    }

    /// Writes every held `NO_SIGNAL` row (shutdown; also done on drop).
    pub fn flush(&mut self) -> std::io::Result<()> {
        for r in &self.held.flush() {
            self.append(r)?;
        }
        Ok(())
    }

    /// Writes one row to both files, each line in one write (formatting straight into the file
    /// would make one system call per field).
    fn append(&mut self, r: &DriftRow) -> std::io::Result<()> {
        let (json, csv) = r.lines().map_err(std::io::Error::other)?;
        self.jsonl.write_all(&json)?;
        self.csv.write_all(csv.as_bytes())
    }
}

impl Drop for DriftLedger {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_equity_in_jsonl_and_csv() {
        let dir = std::env::temp_dir().join(format!("oracle-drift-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let base = dir.join("drift");
        let _ = std::fs::remove_file(base.with_extension("jsonl"));
        let _ = std::fs::remove_file(base.with_extension("csv"));
        let mut d = DriftLedger::open(&base).expect("open");
        let row = DriftRow {
            bar_time: "2025-01-15T10:00:00Z".into(),
            model: "EURUSD_M15".into(),
            virtual_pos: "LONG_WEAK".into(),
            virtual_pnl: 1.5,
            real_pos: "LONG_WEAK".into(),
            real_pnl: 1.25,
            paper_pos: "-".into(),
            paper_pnl: 0.0,
            ack: "OK".into(),
            equity: Some(100_001.25),
            paper_equity: None,
            note: None,
        };
        d.write(&row).expect("write");
        let j = std::fs::read_to_string(base.with_extension("jsonl")).expect("jsonl");
        let v: serde_json::Value = serde_json::from_str(j.trim()).expect("json");
        assert_eq!(v["equity"], serde_json::json!(100_001.25));
        assert!(v["paper_equity"].is_null());
        let c = std::fs::read_to_string(base.with_extension("csv")).expect("csv");
        let mut lines = c.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER));
        assert_eq!(
            lines.next(),
            Some(
                "2025-01-15T10:00:00Z,EURUSD_M15,LONG_WEAK,1.50,LONG_WEAK,1.25,-,0.00,OK,100001.25,"
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn row(bar_time: &str, virtual_pos: &str, real_pos: &str, ack: &str) -> DriftRow {
        DriftRow {
            bar_time: bar_time.into(),
            model: "EURUSD_M5".into(),
            virtual_pos: virtual_pos.into(),
            virtual_pnl: 0.0,
            real_pos: real_pos.into(),
            real_pnl: 0.0,
            paper_pos: real_pos.into(),
            paper_pnl: 0.0,
            equity: Some(100_000.0),
            paper_equity: Some(100_000.0),
            note: None,
            ack: ack.into(),
        }
    }

    fn fresh(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("oracle-drift-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        (dir.clone(), dir.join("drift"))
    }

    fn jsonl_rows(base: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(base.with_extension("jsonl"))
            .expect("jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    #[test]
    fn a_late_signal_gets_one_row_for_its_bar_and_no_no_signal_row() {
        assert_eq!(
            crate::engine::NO_SIGNAL,
            NO_SIGNAL_ACK,
            "the engine writes this ack"
        );
        let (dir, base) = fresh("late");
        let mut d = DriftLedger::open(&base).expect("open");
        let t = |h: u32| format!("2025-01-15T{h:02}:00:00Z");
        // Bars 1 and 2 were streamed and their grace ran out before their signals came.
        d.write(&row(&t(1), "-", "FLAT", NO_SIGNAL_ACK)).expect("w");
        d.write(&row(&t(2), "-", "FLAT", NO_SIGNAL_ACK)).expect("w");
        // The signals come late, in bar order.
        d.write(&row(&t(1), "LONG_WEAK", "LONG_WEAK", "OK"))
            .expect("w");
        d.write(&row(&t(2), "LONG_WEAK", "LONG_WEAK", "HOLD"))
            .expect("w");
        // Bar 3 never gets a signal: the signal of bar 4 proves it.
        d.write(&row(&t(3), "-", "LONG_WEAK", NO_SIGNAL_ACK))
            .expect("w");
        d.write(&row(&t(4), "WAIT", "FLAT", "OK")).expect("w");
        // Bar 5 is still without one at shutdown: written by the flush on drop.
        d.write(&row(&t(5), "-", "FLAT", NO_SIGNAL_ACK)).expect("w");
        drop(d);
        let rows = jsonl_rows(&base);
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["bar_time"].as_str().unwrap_or("").to_string(),
                    r["ack"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            (t(1), "OK"),
            (t(2), "HOLD"),
            (t(3), NO_SIGNAL_ACK),
            (t(4), "OK"),
            (t(5), NO_SIGNAL_ACK),
        ]
        .into_iter()
        .map(|(a, b)| (a, b.to_string()))
        .collect();
        assert_eq!(got, want);
        let csv = std::fs::read_to_string(base.with_extension("csv")).expect("csv");
        assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
