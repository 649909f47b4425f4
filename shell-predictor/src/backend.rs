//! Adapts the real core (`oracle-core`) and loader (`oracle-model`) to the shell's seam.

use crate::seam::{Bar, Decision, Loader, ModelSpec, Step, Twin, TwinState};
use oracle_core::Model;
use std::path::Path;

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
        // Twins borrow their model. The model lives as long as the process: one allocation per
        // loaded zip (a replaced zip keeps its old model; zips are few and rarely replaced).
        let model: &'static Model = Box::leak(loaded.model);
        let twin = oracle_core::Twin::new(model).map_err(|e| format!("{}: {e}", spec.name))?;
        Ok(Box::new(CoreTwin { spec, model, twin }))
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

impl Twin for CoreTwin {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn handle_bar(&mut self, bar: &Bar) -> Result<Step, String> {
        match self
            .twin
            .handle_bar(to_core(bar))
            .map_err(|e| e.to_string())?
        {
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
