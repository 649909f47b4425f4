//! The drift ledger's rows and their rules, sans-IO: per symbol/model and bar, the virtual
//! (predictor), real (broker) and paper positions and their P&L, as a JSONL line and a CSV line
//! for the report. The files are the shell's (`oracle-executor`'s `drift.rs`).
//!
//! One row per model and bar. Positions are spelled the same on every side: `FLAT` for no
//! position (the virtual side's `WAIT` action is written `FLAT`), else the action name
//! (`LONG_WEAK`…). A `NO_SIGNAL` row is held back ([`DriftHold`]) until the model's signal for a
//! later bar is written (or the ledger is flushed, or too many are held): a signal that comes
//! late for its bar then replaces the `NO_SIGNAL` row instead of adding a second row for the same
//! bar.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::key::{KeyText, StreamKey};

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

/// One side's part of a row for a model (live or paper): its position word (`FLAT` when none,
/// else the action held) and its unrealised P&L.
pub type SideView = (String, f64);

/// What a row says of the sides: `None` where a side does not trade (written `-`, P&L 0), and
/// the equities read (`None`: not read, or no such side).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowSides {
    /// The live side (`real_pos`, `real_pnl`).
    pub real: Option<SideView>,
    /// The paper side.
    pub paper: Option<SideView>,
    /// The answering side's equity.
    pub equity: Option<f64>,
    /// The paper book's equity.
    pub paper_equity: Option<f64>,
}

/// A held position's unrealised P&L from a quote when the book does not say: (exit side −
/// entry) × units (volume / 100), in the quote currency; 0 without a quote.
pub fn quote_pnl(buy: bool, entry: f64, volume: i64, bid_ask: Option<(f64, f64)>) -> f64 {
    let units = volume as f64 / 100.0;
    match bid_ask {
        Some((bid, _)) if buy => (bid - entry) * units,
        Some((_, ask)) => (entry - ask) * units,
        None => 0.0,
    }
}

/// A row's `ack`: the ACK line's status, with its reason when it has one (`OK`, `HOLD`,
/// `FAIL|SPREAD`, `WAIT_SYNC|MISSED_ENTRY`).
pub fn ack_status(line: &str) -> String {
    let f: Vec<&str> = line.split('|').collect();
    match f.get(3).copied() {
        Some(st @ ("FAIL" | "WAIT_SYNC")) => format!("{st}|{}", f.get(4).copied().unwrap_or("")),
        Some(st) => st.to_string(),
        None => String::new(),
    }
}

impl DriftRow {
    /// The row of `key`'s SIGNAL for the bar opened at `bt` (Unix s), answered `line`: the
    /// virtual side as the predictor said (`virtual_pos`, `virtual_pnl`), the sides' positions
    /// after the answer, and `note` (why real differs, when known).
    pub fn answered(
        bt: i64,
        key: &StreamKey,
        (virtual_pos, virtual_pnl): (&str, f64),
        sides: RowSides,
        note: Option<String>,
        line: &str,
    ) -> DriftRow {
        DriftRow {
            virtual_pos: virtual_pos.into(),
            virtual_pnl,
            note,
            ack: ack_status(line),
            ..DriftRow::sides(bt, key, sides)
        }
    }

    /// The `NO_SIGNAL` row of a bar `key` streamed (opened at `bt`) and no SIGNAL was handled
    /// for: no virtual side, the sides as they stand, the equities last read.
    pub fn no_signal(bt: i64, key: &StreamKey, sides: RowSides) -> DriftRow {
        DriftRow {
            note: Some(
                "no SIGNAL for this streamed bar (predictor down, not connected, or late)".into(),
            ),
            ack: NO_SIGNAL_ACK.into(),
            ..DriftRow::sides(bt, key, sides)
        }
    }

    fn sides(bt: i64, key: &StreamKey, s: RowSides) -> DriftRow {
        let (real_pos, real_pnl) = s.real.unwrap_or_else(|| ("-".into(), 0.0));
        let (paper_pos, paper_pnl) = s.paper.unwrap_or_else(|| ("-".into(), 0.0));
        DriftRow {
            bar_time: oracle_ipc::Iso(bt).to_string(),
            model: key.model_name().to_string(),
            virtual_pos: "-".into(),
            virtual_pnl: 0.0,
            real_pos,
            real_pnl,
            paper_pos,
            paper_pnl,
            equity: s.equity,
            paper_equity: s.paper_equity,
            note: None,
            ack: String::new(),
        }
    }

    /// The row as written: its JSONL line and its CSV line (each ending in `\n`), positions
    /// spelled by [`position_word`]. Each line is one buffer: the shell writes it in one call.
    pub fn lines(&self) -> Result<(Vec<u8>, String), serde_json::Error> {
        let r = &DriftRow {
            virtual_pos: position_word(&self.virtual_pos).to_string(),
            real_pos: position_word(&self.real_pos).to_string(),
            paper_pos: position_word(&self.paper_pos).to_string(),
            ..self.clone()
        };
        let mut json = serde_json::to_vec(r)?;
        json.push(b'\n');
        let mut row = String::with_capacity(160);
        let _ = writeln!(
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
        );
        Ok((json, row))
    }
}

fn money(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.2}"))
}

/// The `NO_SIGNAL` rows held back, per model, oldest first: which rows are written when.
#[derive(Debug, Default)]
pub struct DriftHold {
    held: BTreeMap<String, Vec<DriftRow>>,
}

impl DriftHold {
    /// A row to write: pushes onto `out` the rows due now, in the order they are written. A
    /// `NO_SIGNAL` row is held back (see the module doc; the oldest goes out beyond
    /// [`MAX_HELD_NO_SIGNAL`]); any other row first drops a held `NO_SIGNAL` row of its model and
    /// bar (the signal came late), then the held ones of earlier bars go out, then the row.
    pub fn write(&mut self, r: &DriftRow, out: &mut Vec<DriftRow>) {
        if r.ack == NO_SIGNAL_ACK {
            let held = self.held.entry(r.model.clone()).or_default();
            held.retain(|h| h.bar_time != r.bar_time);
            held.push(r.clone());
            if held.len() > MAX_HELD_NO_SIGNAL {
                out.push(held.remove(0));
            }
            return;
        }
        if let Some(held) = self.held.get_mut(&r.model) {
            held.retain(|h| h.bar_time != r.bar_time);
            let (before, after): (Vec<DriftRow>, Vec<DriftRow>) =
                held.drain(..).partition(|h| h.bar_time < r.bar_time);
            *held = after;
            if held.is_empty() {
                self.held.remove(&r.model);
            }
            out.extend(before);
        }
        out.push(r.clone());
    }

    /// Every held `NO_SIGNAL` row, by bar time then model (shutdown); none is held after.
    pub fn flush(&mut self) -> Vec<DriftRow> {
        let mut all: Vec<DriftRow> = std::mem::take(&mut self.held)
            .into_values()
            .flatten()
            .collect();
        all.sort_by(|a, b| (&a.bar_time, &a.model).cmp(&(&b.bar_time, &b.model)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_ack_is_the_status_with_its_reason_and_an_absent_side_is_a_dash() {
        assert_eq!(ack_status("ACK|EURUSD|LONG_WEAK|OK|TF:M5"), "OK");
        assert_eq!(
            ack_status("ACK|EURUSD|LONG_WEAK|FAIL|SPREAD|TF:M5"),
            "FAIL|SPREAD"
        );
        assert_eq!(
            ack_status("ACK|EURUSD|LONG_WEAK|WAIT_SYNC|MISSED_ENTRY"),
            "WAIT_SYNC|MISSED_ENTRY"
        );
        assert_eq!(ack_status("ERR|MALFORMED"), "");
        let key = crate::key::parse_key("EURUSD", "M5").unwrap();
        let sides = RowSides {
            real: Some(("LONG_WEAK".into(), 2.5)),
            paper: None,
            equity: Some(1_000.0),
            paper_equity: None,
        };
        let r = DriftRow::answered(
            300,
            &key,
            ("LONG_WEAK", 1.5),
            sides.clone(),
            None,
            "ACK|EURUSD|LONG_WEAK|HOLD|TF:M5",
        );
        assert_eq!(
            (r.bar_time.as_str(), r.model.as_str()),
            ("1970-01-01T00:05:00Z", "EURUSD_M5")
        );
        assert_eq!((r.virtual_pos.as_str(), r.virtual_pnl), ("LONG_WEAK", 1.5));
        assert_eq!((r.real_pos.as_str(), r.real_pnl), ("LONG_WEAK", 2.5));
        assert_eq!((r.paper_pos.as_str(), r.paper_pnl), ("-", 0.0));
        assert_eq!(
            (r.equity, r.paper_equity, r.ack.as_str()),
            (Some(1_000.0), None, "HOLD")
        );
        let n = DriftRow::no_signal(300, &key, sides);
        assert_eq!(
            (n.virtual_pos.as_str(), n.ack.as_str()),
            ("-", NO_SIGNAL_ACK)
        );
        assert_eq!(n.real_pos, "LONG_WEAK");
        assert!(n.note.is_some_and(|t| t.starts_with("no SIGNAL")));
    }

    #[test]
    fn a_held_positions_pnl_from_a_quote_is_exit_side_minus_entry_times_units() {
        // 1,000 units (volume 100,000 cents): a long exits at the bid, a short at the ask.
        assert!((quote_pnl(true, 1.1, 100_000, Some((1.102, 1.103))) - 2.0).abs() < 1e-9);
        assert!((quote_pnl(false, 1.1, 100_000, Some((1.097, 1.098))) - 2.0).abs() < 1e-9);
        assert_eq!(quote_pnl(true, 1.1, 100_000, None), 0.0);
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

    fn written(h: &mut DriftHold, rows: &[DriftRow]) -> Vec<DriftRow> {
        let mut out = Vec::new();
        for r in rows {
            h.write(r, &mut out);
        }
        out
    }

    #[test]
    fn no_position_is_spelled_flat_on_the_virtual_side_as_on_the_real_side() {
        let rows = written(
            &mut DriftHold::default(),
            &[row("2025-01-15T10:00:00Z", "WAIT", "FLAT", "HOLD")],
        );
        assert_eq!(rows.len(), 1);
        let (json, csv) = rows[0].lines().expect("lines");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(v["virtual_pos"], "FLAT");
        assert_eq!(v["real_pos"], "FLAT");
        assert!(
            csv.starts_with("2025-01-15T10:00:00Z,EURUSD_M5,FLAT,0.00,FLAT,"),
            "{csv}"
        );
        assert!(!csv.contains("WAIT"), "{csv}");
        assert!(json.ends_with(b"\n") && csv.ends_with('\n'));
    }

    #[test]
    fn a_late_signal_gets_one_row_for_its_bar_and_no_no_signal_row() {
        let t = |h: u32| format!("2025-01-15T{h:02}:00:00Z");
        let mut h = DriftHold::default();
        let mut out = written(
            &mut h,
            &[
                // Bars 1 and 2 were streamed and their grace ran out before their signals came.
                row(&t(1), "-", "FLAT", NO_SIGNAL_ACK),
                row(&t(2), "-", "FLAT", NO_SIGNAL_ACK),
                // The signals come late, in bar order.
                row(&t(1), "LONG_WEAK", "LONG_WEAK", "OK"),
                row(&t(2), "LONG_WEAK", "LONG_WEAK", "HOLD"),
                // Bar 3 never gets a signal: the signal of bar 4 proves it.
                row(&t(3), "-", "LONG_WEAK", NO_SIGNAL_ACK),
                row(&t(4), "WAIT", "FLAT", "OK"),
                // Bar 5 is still without one at shutdown: written by the flush.
                row(&t(5), "-", "FLAT", NO_SIGNAL_ACK),
            ],
        );
        out.extend(h.flush());
        let got: Vec<(String, String)> = out.into_iter().map(|r| (r.bar_time, r.ack)).collect();
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
        assert!(h.flush().is_empty(), "nothing held after a flush");
    }

    #[test]
    fn a_predictor_down_for_long_still_shows_no_signal_rows() {
        let mut h = DriftHold::default();
        let rows: Vec<DriftRow> = (0..(MAX_HELD_NO_SIGNAL + 3))
            .map(|i| {
                let bt = format!("2025-01-15T00:{:02}:{:02}Z", i / 60, i % 60);
                row(&bt, "-", "FLAT", NO_SIGNAL_ACK)
            })
            .collect();
        let out = written(&mut h, &rows);
        assert_eq!(out, rows[..3], "the oldest beyond the cap are written");
        assert_eq!(h.flush(), rows[3..]);
    }
}
