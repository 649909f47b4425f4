//! Adapts the real core (`oracle-core`) and loader (`oracle-model`) to the shell's seam.

use crate::seam::{Bar, Decision, Loader, ModelSpec, Step, Twin, TwinState};
use oracle_core::Model;
use std::any::Any;
use std::cell::Cell;
use std::path::Path;

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

/// A twin of `model` (which lives as long as the process) behind the seam, FLAT and warming up.
pub fn core_twin(spec: ModelSpec, model: &'static Model) -> Result<Box<dyn Twin>, String> {
    let twin = oracle_core::Twin::new(model).map_err(|e| format!("{}: {e}", spec.name))?;
    Ok(Box::new(CoreTwin { spec, model, twin }))
}

/// The loader backed by `oracle-model`.
pub struct ZipLoader;

impl Loader for ZipLoader {
    fn load(&self, path: &Path) -> Result<Box<dyn Twin>, String> {
        let loaded = oracle_model::load_model(path).map_err(|e| e.to_string())?;
        let spec = ModelSpec {
            name: path
                .file_stem()
                .map_or_else(|| loaded.name.clone(), |s| s.to_string_lossy().into_owned()),
            symbol: loaded.metadata.symbol.clone(),
            timeframe: loaded.metadata.timeframe.clone(),
            window: loaded.metadata.window,
            zip_sha256: loaded.zip_sha256.clone(),
        };
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
                lane_bars.push(to_core(b));
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
                out[i] = Some(seam_step(r));
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

fn to_core(b: &Bar) -> oracle_core::Bar {
    oracle_core::Bar {
        time: b.time,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    }
}

/// The core's outcome of one bar, in the seam's words.
fn seam_step(r: Result<oracle_core::Step, oracle_core::BarError>) -> Result<Step, String> {
    match r.map_err(|e| e.to_string())? {
        oracle_core::Step::WarmingUp(_) => Ok(Step::Warmup),
        oracle_core::Step::Decision(d) => Ok(Step::Decision(Decision {
            action: d.action.name().to_string(),
            direction: d.position.direction,
            intensity: d.position.intensity,
            regime: u32::try_from(d.regime).unwrap_or(u32::MAX),
            entry_price: d.position.entry_price,
            realized_pnl: d.realized_pnl,
            unrealized_pnl: d.unrealized_pnl,
        })),
    }
}

impl Twin for CoreTwin {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn handle_bar(&mut self, bar: &Bar) -> Result<Step, String> {
        seam_step(self.twin.handle_bar(to_core(bar)))
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }

    fn state(&self) -> Option<TwinState> {
        let s = self.twin.state();
        Some(TwinState {
            last_bar_time: s.last_bar_time?,
            bars_seen: s.bars_seen,
            position_direction: s.position_direction,
            position_intensity: s.position_intensity,
            entry_price: s.entry_price,
            realized_pnl: s.realized_pnl,
            trades: s.trades,
        })
    }

    fn restore(&mut self, state: &TwinState, priming: &[Bar]) -> Result<(), String> {
        let st = oracle_core::TwinState {
            last_bar_time: Some(state.last_bar_time),
            bars_seen: state.bars_seen,
            position_direction: state.position_direction,
            position_intensity: state.position_intensity,
            entry_price: state.entry_price,
            realized_pnl: state.realized_pnl,
            trades: state.trades,
        };
        let mut twin = oracle_core::Twin::restore(self.model, &st).map_err(|e| e.to_string())?;
        for b in priming {
            twin.prime(to_core(b)).map_err(|e| e.to_string())?;
        }
        self.twin = twin;
        Ok(())
    }
}
