//! The twins the predictor runs: the core's [`oracle_core::Twin`] over a model the loader
//! (`oracle-model`) read, behind a small trait so the engine can be tested with stand-ins. The
//! trait speaks the core's own types ([`Bar`], [`Step`]); the only type of the predictor's own is
//! [`SavedState`], the state file's serde form of a twin's state (serialization lives at the
//! edge, STYLE.md).

use crate::store::SavedState;
use oracle_core::{Bar, Model, Step, StreamKey};
use std::any::Any;
use std::cell::Cell;
use std::path::Path;

/// Who a model is, from its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// File stem of the zip, e.g. `EURUSD_M15`; the key in the state file and the trace name.
    pub name: String,
    /// The stream the model trades: its symbol (`symbol.name`, the one name IPC lines, the
    /// executor's configuration and the broker use; docs/contract.md, "Symbol identity") and
    /// its timeframe, parsed once from the metadata.
    pub stream: StreamKey,
    /// Bars in the window (350 by default).
    pub window: usize,
    /// sha256 of the model zip (hex), so a saved state is only restored into the model that
    /// produced it; empty when unknown (test twins).
    pub zip_sha256: String,
}

impl ModelSpec {
    /// The spec of a model the loader read from the zip whose file stem is `name` (its symbol
    /// and timeframe were parsed, and a bad one refused naming the field, when the zip was read).
    pub fn from_loaded(name: String, loaded: &oracle_model::LoadedModel) -> Self {
        let md = &loaded.metadata;
        Self {
            name,
            stream: StreamKey::new(md.symbol, md.timeframe),
            window: md.window,
            zip_sha256: loaded.zip_sha256.clone(),
        }
    }
}

/// One digital twin as the engine runs it.
pub trait Twin: Send {
    /// Who this twin is.
    fn spec(&self) -> &ModelSpec;
    /// Feeds one closed bar; a rejected bar (docs/contract.md §1) leaves the state unchanged.
    fn handle_bar(&mut self, bar: &Bar) -> Result<Step, String>;
    /// The state to persist after a bar (`None` before the first bar).
    fn state(&self) -> Option<SavedState>;
    /// Restores a persisted state and primes the window with the bars ending at
    /// `state.last_bar_time` (at most `window` of them), without decisions.
    fn restore(&mut self, state: &SavedState, priming: &[Bar]) -> Result<(), String>;
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

/// What the fleet path did on this thread (the engine steps its twins on the thread that
/// handles the lines): calls of the core's `Twin::handle_bars_mut` from
/// [`ZipLoader::handle_bars`], the twins they stepped, and the most in one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Calls of the core's fleet path.
    pub calls: u64,
    /// Twins stepped by them.
    pub twins: u64,
    /// The most twins stepped in one call.
    pub widest: u64,
}

thread_local! {
    static FLEET: Cell<FleetStats> = const { Cell::new(FleetStats { calls: 0, twins: 0, widest: 0 }) };
}

/// The fleet path's counts on this thread so far.
pub fn fleet_stats() -> FleetStats {
    FLEET.with(Cell::get)
}

/// A core twin of `model` (which lives as long as the process), FLAT and warming up.
pub fn core_twin(spec: ModelSpec, model: &'static Model) -> Result<Box<dyn Twin>, String> {
    let twin = oracle_core::Twin::new(model).map_err(|e| format!("{}: {e}", spec.name))?;
    Ok(Box::new(CoreTwin { spec, model, twin }))
}

/// The loader backed by `oracle-model`.
pub struct ZipLoader;

impl Loader for ZipLoader {
    fn load(&self, path: &Path) -> Result<Box<dyn Twin>, String> {
        let loaded = oracle_model::load_model(path).map_err(|e| e.to_string())?;
        let name = path
            .file_stem()
            .map_or_else(|| loaded.name.clone(), |s| s.to_string_lossy().into_owned());
        let spec = ModelSpec::from_loaded(name, &loaded);
        // Twins borrow their model. The model lives as long as the process: per loaded zip, a
        // few KB of fields and its policy's weights, sized to the policy by the loader (a
        // replaced zip keeps its old model; zips are few and rarely replaced).
        let model: &'static Model = Box::leak(loaded.model);
        core_twin(spec, model)
    }

    /// The core's fleet path: the twins it made go through `Twin::handle_bars_mut` together
    /// (window passes of up to four in SIMD lanes, bit for bit as one by one); any other twin
    /// is stepped alone.
    fn handle_bars(
        &self,
        twins: &mut [&mut (dyn Twin + 'static)],
        bars: &[Bar],
    ) -> Vec<Result<Step, String>> {
        let n = twins.len().min(bars.len());
        let mut out: Vec<Option<Result<Step, String>>> = (0..n).map(|_| None).collect();
        let mut lanes: Vec<&mut oracle_core::Twin<'static>> = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        let mut lane_bars = Vec::with_capacity(n);
        for (i, (t, b)) in twins.iter_mut().zip(bars).enumerate() {
            let ours = t.as_any_mut().is_some_and(|a| a.is::<CoreTwin>());
            if !ours {
                out[i] = Some(t.handle_bar(b));
                continue;
            }
            if let Some(core) = t.as_any_mut().and_then(|a| a.downcast_mut::<CoreTwin>()) {
                lanes.push(&mut core.twin);
                at.push(i);
                lane_bars.push(*b);
            }
        }
        if !lanes.is_empty() {
            let mut res = vec![Err(oracle_core::BarError::Duplicate { time: 0 }); lanes.len()];
            oracle_core::Twin::handle_bars_mut(&mut lanes, &lane_bars, &mut res);
            FLEET.with(|f| {
                let mut s = f.get();
                s.calls += 1;
                s.twins += lanes.len() as u64;
                s.widest = s.widest.max(lanes.len() as u64);
                f.set(s);
            });
            for (i, r) in at.into_iter().zip(res) {
                out[i] = Some(r.map_err(|e| e.to_string()));
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err("no outcome".to_string())))
            .collect()
    }
}

struct CoreTwin {
    spec: ModelSpec,
    model: &'static Model,
    twin: oracle_core::Twin<'static>,
}

impl Twin for CoreTwin {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn handle_bar(&mut self, bar: &Bar) -> Result<Step, String> {
        self.twin.handle_bar(*bar).map_err(|e| e.to_string())
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }

    fn state(&self) -> Option<SavedState> {
        SavedState::of_core(&self.twin.state())
    }

    fn restore(&mut self, state: &SavedState, priming: &[Bar]) -> Result<(), String> {
        let mut twin =
            oracle_core::Twin::restore(self.model, &state.to_core()).map_err(|e| e.to_string())?;
        for b in priming {
            twin.prime(*b).map_err(|e| e.to_string())?;
        }
        self.twin = twin;
        Ok(())
    }
}
