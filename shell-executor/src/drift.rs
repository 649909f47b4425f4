//! The drift ledger: per symbol/model and bar, the virtual (predictor), real (broker) and paper
//! positions and their P&L, as JSONL (one object per line) and/or CSV for the report.
//!
//! One row per model and bar. Positions are spelled the same on every side: `FLAT` for no
//! position (the virtual side's `WAIT` action is written `FLAT`), else the action name
//! (`LONG_WEAK`…). A `NO_SIGNAL` row is held back until the model's signal for a later bar is
//! written (or the ledger is flushed, or too many are held): a signal that comes late for its bar
//! then replaces the `NO_SIGNAL` row instead of adding a second row for the same bar.

use std::collections::BTreeMap;
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

/// The `ack` of a row for a streamed bar no SIGNAL was handled for (yet).
pub const NO_SIGNAL_ACK: &str = "NO_SIGNAL";

/// `NO_SIGNAL` rows held back per model at most; beyond it the oldest is written (a predictor
/// that is down for long still shows in the ledger).
pub const MAX_HELD_NO_SIGNAL: usize = 64;

/// One spelling for a position on every side of the ledger: `WAIT` (the virtual side's "no
/// position") is `FLAT`, as the broker's side writes it; anything else as given.
pub fn position_word(s: &str) -> &str {
    if s == "WAIT" { "FLAT" } else { s }
}

/// Writes rows to `<base>.jsonl` and `<base>.csv`.
#[derive(Debug)]
pub struct DriftLedger {
    jsonl: File,
    csv: File,
    /// `NO_SIGNAL` rows not written yet, per model, oldest first.
    held: BTreeMap<String, Vec<DriftRow>>,
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
            held: BTreeMap::new(),
        })
    }

    /// Appends a row (not fsynced: a report, not a journal). A `NO_SIGNAL` row is held back
    /// (see the module doc); any other row first drops a held `NO_SIGNAL` row of its model and
    /// bar (the signal came late) and writes the held ones of earlier bars.
    pub fn write(&mut self, r: &DriftRow) -> std::io::Result<()> {
        if r.ack == NO_SIGNAL_ACK {
            let held = self.held.entry(r.model.clone()).or_default();
            held.retain(|h| h.bar_time != r.bar_time);
            held.push(r.clone());
            if held.len() > MAX_HELD_NO_SIGNAL {
                let oldest = held.remove(0);
                return self.append(&oldest);
            }
            return Ok(());
        }
        if let Some(held) = self.held.get_mut(&r.model) {
            held.retain(|h| h.bar_time != r.bar_time);
            let (before, after): (Vec<DriftRow>, Vec<DriftRow>) =
                held.drain(..).partition(|h| h.bar_time < r.bar_time);
            *held = after;
            if held.is_empty() {
                self.held.remove(&r.model);
            }
            for h in &before {
                self.append(h)?;
            }
        }
        self.append(r)
    }

    /// Writes every held `NO_SIGNAL` row (shutdown; also done on drop).
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut all: Vec<DriftRow> = std::mem::take(&mut self.held)
            .into_values()
            .flatten()
            .collect();
        all.sort_by(|a, b| (&a.bar_time, &a.model).cmp(&(&b.bar_time, &b.model)));
        for r in &all {
            self.append(r)?;
        }
        Ok(())
    }

    /// Writes one row to both files, each line in one write (formatting straight into the file
    /// would make one system call per field).
    fn append(&mut self, r: &DriftRow) -> std::io::Result<()> {
        let r = &DriftRow {
            virtual_pos: position_word(&r.virtual_pos).to_string(),
            real_pos: position_word(&r.real_pos).to_string(),
            paper_pos: position_word(&r.paper_pos).to_string(),
            ..r.clone()
        };
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

impl Drop for DriftLedger {
    fn drop(&mut self) {
        let _ = self.flush();
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
    fn no_position_is_spelled_flat_on_the_virtual_side_as_on_the_real_side() {
        let (dir, base) = fresh("flat");
        let mut d = DriftLedger::open(&base).expect("open");
        d.write(&row("2025-01-15T10:00:00Z", "WAIT", "FLAT", "HOLD"))
            .expect("write");
        drop(d);
        let rows = jsonl_rows(&base);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["virtual_pos"], "FLAT");
        assert_eq!(rows[0]["real_pos"], "FLAT");
        let csv = std::fs::read_to_string(base.with_extension("csv")).expect("csv");
        let line = csv.lines().nth(1).expect("row");
        assert!(
            line.starts_with("2025-01-15T10:00:00Z,EURUSD_M5,FLAT,0.00,FLAT,"),
            "{line}"
        );
        assert!(!csv.contains("WAIT"), "{csv}");
        let _ = std::fs::remove_dir_all(&dir);
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

    #[test]
    fn a_predictor_down_for_long_still_shows_no_signal_rows() {
        let (dir, base) = fresh("down");
        let mut d = DriftLedger::open(&base).expect("open");
        for i in 0..(MAX_HELD_NO_SIGNAL + 3) {
            let bt = format!("2025-01-15T00:{:02}:{:02}Z", i / 60, i % 60);
            d.write(&row(&bt, "-", "FLAT", NO_SIGNAL_ACK)).expect("w");
        }
        assert_eq!(
            jsonl_rows(&base).len(),
            3,
            "the oldest beyond the cap are written"
        );
        drop(d);
        assert_eq!(jsonl_rows(&base).len(), MAX_HELD_NO_SIGNAL + 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
