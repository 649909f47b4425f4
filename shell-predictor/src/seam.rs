//! The seam between the shell and the twin: the few types and calls the predictor needs from the
//! core (`oracle-core`) and the loader (`oracle-model`). The shell is written against these; the
//! [`crate::backend`] module adapts the real crates to them. Core types are not serializable
//! (STYLE.md: serialization lives at the edge), so [`TwinState`] is the shell's own copy.

use serde::{Deserialize, Serialize};
use std::any::Any;
use std::path::Path;

/// One closed bar (docs/contract.md §1): open time in Unix seconds, bid prices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// Open time, seconds since the Unix epoch (UTC).
    pub time: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Tick volume.
    pub volume: f64,
}

/// The decision of one bar, after the virtual position rule was applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Action name from the metadata (`WAIT`, `LONG_WEAK`, …).
    pub action: String,
    /// Position direction after this bar's action (−1, 0, 1).
    pub direction: i8,
    /// Position intensity after this bar's action (0..=3).
    pub intensity: u8,
    /// HMM regime of the bar.
    pub regime: u32,
    /// Entry price of the open virtual position (0.0 when FLAT).
    pub entry_price: f64,
    /// Realised P&L so far, account money.
    pub realized_pnl: f64,
    /// Unrealised P&L of the open virtual position at this bar's mark, account money.
    pub unrealized_pnl: f64,
}

/// What one bar did to a twin.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Fewer than `window` bars seen: no decision, the position stays FLAT.
    Warmup,
    /// A decision was made.
    Decision(Decision),
}

/// The persisted state of one twin (docs/contract.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinState {
    /// Open time of the last accepted bar (Unix seconds).
    pub last_bar_time: i64,
    /// Bars accepted since the twin started from FLAT.
    pub bars_seen: u64,
    /// Position direction (−1, 0, 1).
    pub position_direction: i8,
    /// Position intensity (0..=3).
    pub position_intensity: u8,
    /// Entry price (0.0 when FLAT).
    pub entry_price: f64,
    /// Realised P&L, account money.
    pub realized_pnl: f64,
    /// Number of opens.
    pub trades: u64,
}

/// Who a model is, from its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// File stem of the zip, e.g. `EURUSD_M15`; the key in the state file and the trace name.
    pub name: String,
    /// The model's symbol (`symbol.name`): the one name IPC lines, streams, the executor's
    /// configuration and the broker use (docs/contract.md, "Symbol identity").
    pub symbol: String,
    /// Timeframe (`M15`, `H1`, …).
    pub timeframe: String,
    /// Bars in the window (350 by default).
    pub window: usize,
    /// sha256 of the model zip (hex), so a saved state is only restored into the model that
    /// produced it; empty when unknown (test twins).
    pub zip_sha256: String,
}

/// One digital twin behind the seam.
pub trait Twin: Send {
    /// Who this twin is.
    fn spec(&self) -> &ModelSpec;
    /// Feeds one closed bar; a rejected bar (docs/contract.md §1) leaves the state unchanged.
    fn handle_bar(&mut self, bar: &Bar) -> Result<Step, String>;
    /// The state to persist after a bar.
    fn state(&self) -> Option<TwinState>;
    /// Restores a persisted state and primes the window with the bars ending at
    /// `state.last_bar_time` (at most `window` of them), without decisions.
    fn restore(&mut self, state: &TwinState, priming: &[Bar]) -> Result<(), String>;
    /// The twin as `Any`, so the loader that made it can reach its own type in
    /// [`Loader::handle_bars`]; `None` (the default) steps it alone there.
    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        None
    }
}

/// Loads model zips into twins.
pub trait Loader: Send + Sync {
    /// Loads one zip; the error names the file and what is wrong with it.
    fn load(&self, path: &Path) -> Result<Box<dyn Twin>, String>;
    /// Feeds `bars[i]` to `twins[i]`, all at the same instant (the bars of one close), and
    /// returns each outcome, exactly as [`Twin::handle_bar`] on each would. The default steps
    /// them one by one; a loader whose twins share a pass overrides it (the core's fleet path:
    /// window passes in SIMD lanes).
    fn handle_bars(
        &self,
        twins: &mut [&mut (dyn Twin + 'static)],
        bars: &[Bar],
    ) -> Vec<Result<Step, String>> {
        twins
            .iter_mut()
            .zip(bars)
            .map(|(t, b)| t.handle_bar(b))
            .collect()
    }
}
