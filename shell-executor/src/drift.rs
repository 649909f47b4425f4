//! The drift ledger: per symbol/model and bar, the virtual (predictor), real (broker) and paper
//! positions and their P&L, as JSONL (one object per line) and/or CSV for the report.

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
    /// The ACK's status (and reason) of the answering side: `OK`, `HOLD`, `FAIL|SPREAD`,
    /// `WAIT_SYNC|MISSED_ENTRY`.
    pub ack: String,
}

/// CSV header matching [`DriftRow`].
pub const CSV_HEADER: &str =
    "bar_time,model,virtual_pos,virtual_pnl,real_pos,real_pnl,paper_pos,paper_pnl,ack";

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

    /// Appends a row (not fsynced: a report, not a journal).
    pub fn write(&mut self, r: &DriftRow) -> std::io::Result<()> {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        writeln!(self.jsonl, "{line}")?;
        writeln!(
            self.csv,
            "{},{},{},{:.2},{},{:.2},{},{:.2},{}",
            r.bar_time,
            r.model,
            r.virtual_pos,
            r.virtual_pnl,
            r.real_pos,
            r.real_pnl,
            r.paper_pos,
            r.paper_pnl,
            r.ack
        )
    }
}
