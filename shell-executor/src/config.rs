//! `executor_config.json` on disk: load (adding the symbols of the models folder), check, atomic
//! rewrite, and the models folder scan. The values and their validation are the core's
//! ([`oracle_executor_core::config`], re-exported here).
//!
//! ```json
//! {
//!   "risk": { "daily_loss_pct": 5.0, "max_drawdown_pct": 10.0, "day_start": "Europe/Prague" },
//!   "EURUSD": { "enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05 },
//!   "US500":  { "enabled": true, "lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50,
//!               "max_spread_points": 150, "slippage_points": 50 },
//!   "AAPL":   { "enabled": false, "lot_weak": 1, "lot_moderate": 3, "lot_strong": 5 }
//! }
//! ```
//!
//! Symbols sit at the top level as in the seed; `risk` is the one reserved key. Every error names
//! its key and the executor refuses to start rather than guess. Symbols found in the models folder
//! without an entry are added with `enabled: false` and the default lots, and the file is rewritten
//! atomically (temp file, fsync, rename, fsync of the folder) keeping what the user wrote (key order
//! and values; JSON has no comments to keep). `--check-config` ([`check`]) only says what it would
//! add: a check writes nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use oracle_executor_core::config::{
    DEFAULT_LOTS, ExecutorConfig, KeyError, SymbolConfig, add_missing, from_value,
};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Could not read or write the file.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("{path}: not valid JSON: {source}")]
    Json {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// Keys with wrong values.
    #[error("{path}: {} error(s): {}", .errors.len(), .errors.iter().map(|e| format!("{}: {}", e.key, e.msg)).collect::<Vec<_>>().join("; "))]
    Keys {
        /// File.
        path: PathBuf,
        /// Each problem.
        errors: Vec<KeyError>,
    },
}

/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync, rename, fsync folder.
/// A file that exists keeps its mode (`oracle enable|disable` rewrite a file someone may have
/// made 0600 or 0640).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        if let Ok(m) = fs::metadata(path) {
            f.set_permissions(m.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Ok(d) = fs::File::open(dir) {
        // Directory fsync makes the rename durable; not supported everywhere, so best effort.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Loads the file (an absent file starts empty), adds the symbols seen in the models folder,
/// rewrites it atomically if anything was added, and validates it.
pub fn load(path: &Path, seen: &[String]) -> Result<(ExecutorConfig, Vec<String>), ConfigError> {
    load_with(path, seen, true)
}

/// [`load`] without writing anything (`--check-config`): the configuration as the executor
/// would run it, and the symbols it would add; the file is left as it is (absent stays absent).
pub fn check(path: &Path, seen: &[String]) -> Result<(ExecutorConfig, Vec<String>), ConfigError> {
    load_with(path, seen, false)
}

fn load_with(
    path: &Path,
    seen: &[String],
    write: bool,
) -> Result<(ExecutorConfig, Vec<String>), ConfigError> {
    let mut doc = match fs::read(path) {
        Ok(b) => serde_json::from_slice::<Value>(&b).map_err(|source| ConfigError::Json {
            path: path.into(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.into(),
                source,
            });
        }
    };
    // Validate what the user wrote first: never rewrite a file we would refuse. The shell's
    // sections (`alerts`, `metrics`: crate::alerting) are not symbols.
    from_value(&symbols_and_risk(&doc)).map_err(|errors| ConfigError::Keys {
        path: path.into(),
        errors,
    })?;
    let added = add_missing(&mut doc, seen);
    if write && !added.is_empty() {
        let mut text = serde_json::to_vec_pretty(&doc).map_err(|source| ConfigError::Json {
            path: path.into(),
            source,
        })?;
        text.push(b'\n');
        write_atomic(path, &text).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
    }
    let cfg = from_value(&symbols_and_risk(&doc)).map_err(|errors| ConfigError::Keys {
        path: path.into(),
        errors,
    })?;
    Ok((cfg, added))
}

/// The document without the shell's own sections ([`crate::alerting::SECTIONS`]: `alerts`,
/// `metrics`), which the core would take for symbols.
pub fn symbols_and_risk(doc: &Value) -> Value {
    match doc {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !crate::alerting::SECTIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A model found in the models folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelFile {
    /// Symbol (metadata `symbol.name`, else the file name's part before the last `_`).
    pub symbol: String,
    /// Timeframe.
    pub tf: oracle_ipc::Timeframe,
    /// The zip.
    pub path: PathBuf,
}

/// Lists `SYM_TF.zip` models, by the loader's naming rule (docs/contract.md §9): the file is
/// `<symbol.name>_<symbol.timeframe>.zip` of the metadata in its zip comment, and the timeframe
/// one the system streams (not `MN1`). A zip that breaks the rule is skipped with a warning: the
/// predictor refuses it, so the executor must not stream it and wait for its signals.
pub fn scan_models(dir: &Path) -> std::io::Result<Vec<ModelFile>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("zip") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Some((sym, tf_name)) = stem.rsplit_once('_') else {
            tracing::warn!(file = %path.display(), "model file name is not SYM_TF.zip; skipped");
            continue;
        };
        let Some(tf) = oracle_ipc::Timeframe::from_name(tf_name).filter(|t| t.is_streamed()) else {
            tracing::warn!(file = %path.display(), "model file name has no timeframe the system streams; skipped");
            continue;
        };
        let (symbol, meta_tf) =
            zip_comment_symbol(&path).unwrap_or_else(|| (sym.to_string(), None));
        if symbol != sym || meta_tf.as_deref().is_some_and(|t| t != tf_name) {
            tracing::warn!(file = %path.display(), %symbol, timeframe = ?meta_tf,
                "model zip is not named <symbol.name>_<symbol.timeframe>.zip of its metadata; skipped (the predictor refuses it)");
            continue;
        }
        if !oracle_ipc::valid_symbol(&symbol) {
            tracing::warn!(file = %path.display(), "model symbol name is not valid; skipped");
            continue;
        }
        out.push(ModelFile { symbol, tf, path });
    }
    out.sort();
    Ok(out)
}

/// `symbol.name` and `symbol.timeframe` of a zip's metadata.
fn zip_comment_symbol(path: &Path) -> Option<(String, Option<String>)> {
    let f = fs::File::open(path).ok()?;
    let z = zip::ZipArchive::new(f).ok()?;
    let meta: Value = serde_json::from_slice(z.comment()).ok()?;
    let sym = meta.get("symbol")?;
    let name = sym.get("name")?.as_str()?.to_string();
    let tf = sym
        .get("timeframe")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((name, tf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_models_skips_what_the_loader_refuses_misnamed_zips_and_mn1() {
        let dir = std::env::temp_dir().join(format!("oracle-scan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/EURUSD_H1.zip");
        // The bundled model under its own name, an M15 name and another symbol's name.
        for name in ["EURUSD_H1", "EURUSD_M15", "GBPUSD_H1", "EURUSD_MN1"] {
            fs::copy(&model, dir.join(format!("{name}.zip"))).unwrap();
        }
        let found = scan_models(&dir).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|m| format!("{}_{}", m.symbol, m.tf.as_str()))
            .collect();
        assert_eq!(names, vec!["EURUSD_H1".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A zip named by its own metadata is still skipped when its timeframe is not one the
    /// system streams (`MN1`); every streamed one is listed.
    #[test]
    fn scan_models_lists_every_streamed_timeframe_and_skips_a_true_mn1_model() {
        let dir = std::env::temp_dir().join(format!("oracle-scan-tf-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for tf in oracle_ipc::Timeframe::ALL {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            w.set_comment(
                serde_json::json!({"symbol": {"name": "EURUSD", "timeframe": tf.as_str()}})
                    .to_string(),
            );
            let bytes = w.finish().unwrap().into_inner();
            fs::write(dir.join(format!("EURUSD_{tf}.zip")), bytes).unwrap();
        }
        let found = scan_models(&dir).unwrap();
        let tfs: Vec<_> = found.iter().map(|m| m.tf).collect();
        assert_eq!(tfs, oracle_ipc::Timeframe::STREAMED.to_vec());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_names_what_it_would_add_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("oracle-cfg-check-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("executor_config.json");
        let text = r#"{"US500": {"lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5}}"#;
        fs::write(&p, text).unwrap();
        let (c, added) = check(&p, &["EURUSD".into(), "US500".into()]).unwrap();
        assert_eq!(added, vec!["EURUSD".to_string()]);
        assert!(!c.symbols["EURUSD"].enabled);
        assert_eq!(fs::read_to_string(&p).unwrap(), text);
        let absent = dir.join("absent.json");
        let (_, added) = check(&absent, &["EURUSD".into()]).unwrap();
        assert_eq!(added, vec!["EURUSD".to_string()]);
        assert!(!absent.exists());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left either: {names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_atomic_rewrite_keeps_the_files_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("oracle-cfg-mode-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("executor_config.json");
        for mode in [0o600, 0o640] {
            fs::write(&p, "{}").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            write_atomic(&p, b"{\"risk\": {}}\n").unwrap();
            assert_eq!(fs::read_to_string(&p).unwrap(), "{\"risk\": {}}\n");
            let got = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "mode {mode:o} kept, got {got:o}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adds_missing_symbols_atomically_keeping_user_text() {
        let dir = std::env::temp_dir().join(format!("oracle-cfg-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("executor_config.json");
        fs::write(&p, r#"{"US500": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5, "max_spread_points": 80}, "risk": {"daily_loss_pct": 4}}"#).unwrap();
        let (c, added) = load(&p, &["EURUSD".into(), "US500".into()]).unwrap();
        assert_eq!(added, vec!["EURUSD".to_string()]);
        assert!(!c.symbols["EURUSD"].enabled);
        assert_eq!(c.symbols["EURUSD"].lots, DEFAULT_LOTS);
        assert_eq!(c.symbols["US500"].max_spread_points, Some(80.0));
        assert_eq!(c.risk.daily_loss_pct, 4.0);
        let text = fs::read_to_string(&p).unwrap();
        // The user's entries come first, in their order; the new one is appended.
        assert!(text.find("US500").unwrap() < text.find("risk").unwrap());
        assert!(text.find("risk").unwrap() < text.find("EURUSD").unwrap());
        // Second start: nothing to add, file untouched.
        let (_, added) = load(&p, &["EURUSD".into()]).unwrap();
        assert!(added.is_empty());
        // A broken file is refused and not rewritten.
        fs::write(&p, r#"{"US500": {"lot_weak": 0.1}}"#).unwrap();
        assert!(matches!(
            load(&p, &["EURUSD".into()]),
            Err(ConfigError::Keys { .. })
        ));
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            r#"{"US500": {"lot_weak": 0.1}}"#
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
