//! What every seed shares, built once per process: the bundled models (loaded once and leaked,
//! as the predictor's loader does), the bundled bar files as the simulator reads them, and
//! `oracle replay`'s trace per (model, bars) asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use oracle_core::{Bar, Model, Step};
use oracle_predictor::twins::{Loader, ModelSpec, Twin, ZipLoader, core_twin};
use oracle_sim::symbols::SymbolData;

/// The workspace's `models/` folder.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The workspace's `data/` folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// One bundled model, loaded once.
pub struct Bundled {
    /// Its names as the world's text reads them (name = file stem).
    pub spec: BundledSpec,
    /// The predictor's spec of it (the typed stream key).
    pub model_spec: ModelSpec,
    /// The core model (leaked: lives as long as the process, as in the predictor).
    pub model: &'static Model,
    /// The zip's path.
    pub path: PathBuf,
}

/// A bundled model's names and window, as text (the world matches them against the
/// simulator's symbol files). The typed form is [`Bundled::model_spec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundledSpec {
    /// File stem of the zip (`EURUSD_M15`).
    pub name: String,
    /// The model's symbol.
    pub symbol: String,
    /// The model's timeframe name.
    pub timeframe: String,
    /// Bars in the window.
    pub window: usize,
}

/// Every bundled model by name (`SYM_TF`).
pub fn models() -> &'static BTreeMap<String, Bundled> {
    static M: OnceLock<BTreeMap<String, Bundled>> = OnceLock::new();
    M.get_or_init(|| {
        let mut out = BTreeMap::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(models_dir())
            .expect("the workspace's models/ folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zip"))
            .collect();
        paths.sort();
        for path in paths {
            let loaded = oracle_model::load_model(&path)
                .unwrap_or_else(|e| panic!("bundled model {}: {e}", path.display()));
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let model_spec = ModelSpec::from_loaded(name.clone(), &loaded);
            let spec = BundledSpec {
                name: name.clone(),
                symbol: model_spec.stream.symbol.to_string(),
                timeframe: model_spec.stream.timeframe.to_string(),
                window: model_spec.window,
            };
            let model: &'static Model = Box::leak(loaded.model);
            out.insert(
                name,
                Bundled {
                    spec,
                    model_spec,
                    model,
                    path,
                },
            );
        }
        out
    })
}

/// Every bundled symbol's market data, as `oracle sim --data data --models models` reads it.
pub fn symbols() -> &'static BTreeMap<String, SymbolData> {
    static S: OnceLock<BTreeMap<String, SymbolData>> = OnceLock::new();
    S.get_or_init(|| {
        let mut warnings = Vec::new();
        oracle_sim::symbols::load_symbols(Some(&data_dir()), Some(&models_dir()), &mut warnings)
            .into_iter()
            .map(|d| (d.spec.name.clone(), d))
            .collect()
    })
}

/// The predictor's loader over [`models`]: a zip is looked up by file stem instead of being
/// read, unzipped and hashed again at every (re)start of every seed. Twins are the real
/// core twins (`oracle_predictor::twins::core_twin`) and the fleet path is the real one.
pub struct CachedLoader;

impl Loader for CachedLoader {
    fn load(&self, path: &Path) -> Result<Box<dyn Twin>, String> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let b = models()
            .get(&name)
            .ok_or_else(|| format!("{}: not a bundled model", path.display()))?;
        core_twin(b.model_spec.clone(), b.model)
    }

    fn handle_bars(
        &self,
        twins: &mut [&mut (dyn Twin + 'static)],
        bars: &[Bar],
    ) -> Vec<Result<Step, String>> {
        ZipLoader.handle_bars(twins, bars)
    }
}

/// The shared loader.
pub fn loader() -> Arc<dyn Loader> {
    Arc::new(CachedLoader)
}

/// `oracle replay` of `model` over the bar file text `csv` (contract §1), the trace's rows
/// without the header. Cached by (model, text): seeds that draw the same model and bars share it.
/// `scratch` is a folder the bar file may be written to.
pub fn replay_rows(model: &str, csv: &str, scratch: &Path) -> Result<Arc<Vec<String>>, String> {
    type Cache = Mutex<BTreeMap<(String, u64, usize), Arc<Vec<String>>>>;
    static C: OnceLock<Cache> = OnceLock::new();
    let key = (model.to_string(), fnv(csv.as_bytes()), csv.len());
    let cache = C.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(r) = cache.lock().map_err(|e| e.to_string())?.get(&key) {
        return Ok(r.clone());
    }
    let b = models()
        .get(model)
        .ok_or_else(|| format!("{model}: not a bundled model"))?;
    let file = scratch.join(format!("{model}.replay-bars.csv"));
    std::fs::write(&file, csv).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    oracle_model::replay(&b.path, &file, &mut out, &mut err)
        .map_err(|e| format!("oracle replay {model}: {e}"))?;
    if !err.is_empty() {
        return Err(format!(
            "oracle replay {model} rejected bars: {}",
            String::from_utf8_lossy(&err)
        ));
    }
    let rows: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    let rows = Arc::new(rows);
    cache
        .lock()
        .map_err(|e| e.to_string())?
        .insert(key, rows.clone());
    Ok(rows)
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
