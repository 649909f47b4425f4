//! `oracle replay`: one model over one bar file, printing the contract §8 replay trace.

use std::io::{BufReader, Write};
use std::path::Path;

use oracle_core::{Step, Twin, TwinError};

use crate::bars::{BarReader, CsvError, write_time};
use crate::error::LoadError;
use crate::load::load_model;

/// The replay trace header (contract §8).
pub const TRACE_HEADER: &str = "time,action,direction,intensity,entry_price,realized_pnl";

/// Why a replay could not run (a bad bar line is not one: it is reported and skipped).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The model zip was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The model's window does not fit the replay twin.
    #[error("{0}")]
    Twin(#[from] TwinError),
    /// The bar file could not be opened. (The cause is in the message, not chained as a
    /// source: `oracle replay` prints the chain, which would repeat it.)
    #[error("{path}: cannot open: {io}")]
    OpenBars {
        /// The bar file.
        path: String,
        /// The I/O error.
        io: std::io::Error,
    },
    /// The bar file's header is wrong, or reading it failed (`PATH:LINE: REASON`, as the
    /// Python reader words it).
    #[error("{path}:{}: {csv}", csv.line())]
    Bars {
        /// The bar file.
        path: String,
        /// The CSV error.
        csv: CsvError,
    },
    /// Writing the trace (or the report) failed.
    #[error("cannot write the replay output: {0}")]
    Output(#[from] std::io::Error),
}

/// Counts of a finished replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaySummary {
    /// Bars accepted (one trace line each).
    pub bars: usize,
    /// Bars that got a decision.
    pub decisions: usize,
    /// Lines rejected (reported on `err`).
    pub rejected: usize,
}

/// Replays `bars_csv` through a fresh twin of `model_zip`, writing the replay trace to `out` and
/// each rejected line (`PATH:LINE: bar rejected: REASON`) to `err`.
pub fn replay(
    model_zip: &Path,
    bars_csv: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let loaded = load_model(model_zip)?;
    let mut twin: Twin<'_> = Twin::new(&loaded.model)?;
    let shown = bars_csv.display().to_string();
    let file = std::fs::File::open(bars_csv).map_err(|io| ReplayError::OpenBars {
        path: shown.clone(),
        io,
    })?;
    let reader = BarReader::new(BufReader::new(file)).map_err(|csv| ReplayError::Bars {
        path: shown.clone(),
        csv,
    })?;

    let mut summary = ReplaySummary::default();
    let mut line = String::with_capacity(96);
    line.push_str(TRACE_HEADER);
    line.push('\n');
    out.write_all(line.as_bytes())?;
    for item in reader {
        let bar_line = match item {
            Ok(b) => b,
            Err(e @ CsvError::Io { .. }) => {
                return Err(ReplayError::Bars {
                    path: shown,
                    csv: e,
                });
            }
            Err(e) => {
                summary.rejected += 1;
                writeln!(err, "{shown}:{}: bar rejected: {e}", e.line())?;
                continue;
            }
        };
        // The reader applied the contract's bar rules (the same as the twin's), so the twin's
        // own check can only fail if the two disagree: reported the same way.
        let step = match twin.handle_bar(bar_line.bar) {
            Ok(step) => step,
            Err(e) => {
                summary.rejected += 1;
                writeln!(err, "{shown}:{}: bar rejected: {e}", bar_line.line)?;
                continue;
            }
        };
        summary.bars += 1;
        let action = match step {
            Step::WarmingUp(_) => "WARMUP",
            Step::Decision(d) => {
                summary.decisions += 1;
                d.action.name()
            }
        };
        let p = twin.position();
        line.clear();
        write_time(&mut line, bar_line.bar.time);
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = writeln!(
            line,
            ",{action},{},{},{:.10},{:.6}",
            p.direction,
            p.intensity,
            p.entry_price + 0.0,
            twin.realized_pnl() + 0.0
        );
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(summary)
}
