//! The drift ledger: per symbol/model and bar, the virtual (predictor), real (broker) and paper
//! positions and their P&L, as JSONL (one object per line) and/or CSV for the report.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One ledger row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftRow {
    /// Bar open time (ISO-8601 UTC).
    pub bar_time: String,
    /// Model (`EURUSD_M15`).
    pub model: String,
    /// Virtual target (`LONG_WEAK`…).
    pub virtual_pos: String,
    /// Virtual unrealised P&L as reported by the predictor.
    pub virtual_pnl: f64,
    /// Real position (`FLAT` when none, `-` when live trading is off).
    pub real_pos: String,
    /// Real P&L (unrealised, quote currency).
    pub real_pnl: f64,
    /// Paper position.
    pub paper_pos: String,
    /// Paper P&L.
    pub paper_pnl: f64,
    /// Account equity after the bar (the answering side: live, else paper); `null` when the
    /// broker did not answer.
    pub equity: Option<f64>,
    /// Paper book equity after the bar (`null` without a paper book).
    pub paper_equity: Option<f64>,
    /// Why real differs from virtual, when the executor knows (e.g. `position 7 closed outside
    /// the executor (stop-out, manual close)`); omitted otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The ACK's status (and reason) of the answering side: `OK`, `HOLD`, `FAIL|SPREAD`,
    /// `WAIT_SYNC|MISSED_ENTRY`.
    pub ack: String,
}

/// CSV header matching [`DriftRow`].
pub const CSV_HEADER: &str = "bar_time,model,virtual_pos,virtual_pnl,real_pos,real_pnl,paper_pos,paper_pnl,ack,equity,paper_equity";

/// Writes rows to `<base>.jsonl` and `<base>.csv`.
#[derive(Debug)]
pub struct DriftLedger {
    jsonl: File,
    csv: File,
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
        Ok(DriftLedger { jsonl, csv })
    }

    /// Appends a row (not fsynced: a report, not a journal). Each file gets its line in one
    /// write (formatting straight into the file would make one system call per field).
    pub fn write(&mut self, r: &DriftRow) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.jsonl.write_all(&line)?;
        let mut row = String::with_capacity(160);
        writeln!(
            row,
            "{},{},{},{:.2},{},{:.2},{},{:.2},{},{},{}",
            r.bar_time,
            r.model,
            r.virtual_pos,
            r.virtual_pnl,
            r.real_pos,
            r.real_pnl,
            r.paper_pos,
            r.paper_pnl,
            r.ack,
            money(r.equity),
            money(r.paper_equity)
        )
        .map_err(std::io::Error::other)?;
        self.csv.write_all(row.as_bytes())
    }
}

fn money(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.2}"))
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
}
