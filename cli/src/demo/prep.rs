//! The demo's market: the bundled bar files cut and shifted so that every model starts live at the
//! same market time `T0` with at least `history` bars of its own timeframe behind it, followed by
//! `hours` of market time (each model sees `hours × 3600 / period` live bars: an H1 model `hours`,
//! an M5 model 12 × `hours`, a D1 model `hours / 24`); and an executor configuration that enables
//! every bundled symbol with its model's lots.
//!
//! Shifting a symbol's bars in time (by a multiple of its coarsest model's period) changes no
//! price, so no decision: the twins only see the order of bars, never the calendar.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What the run uses.
pub struct Prepared {
    /// Folder of the cut, shifted bar files (one per symbol, its finest timeframe).
    pub data: PathBuf,
    /// Market time the live replay starts at (ISO-8601).
    pub start: String,
    /// The executor configuration written for the demo.
    pub executor_config: PathBuf,
    /// Models found: name → (symbol, timeframe).
    pub models: BTreeMap<String, (String, String)>,
    /// Live bars each model should see: name → count.
    pub expected: BTreeMap<String, u64>,
}

/// Seconds of a timeframe name (`M5`, `H1`, `D1`…).
pub fn period_secs(tf: &str) -> Option<i64> {
    let (unit, n) = tf.split_at(1);
    let n: i64 = n.parse().ok()?;
    Some(match unit {
        "M" => 60 * n,
        "H" => 3600 * n,
        "D" => 86_400 * n,
        "W" => 7 * 86_400 * n,
        _ => return None,
    })
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<(i64, String)>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let (t, rest) = line
            .split_once(',')
            .ok_or_else(|| anyhow::anyhow!("{}:{}: not a bar line", path.display(), i + 1))?;
        let t = oracle_predictor::isotime::parse(t)
            .ok_or_else(|| anyhow::anyhow!("{}:{}: bad time {t}", path.display(), i + 1))?;
        rows.push((t, rest.to_string()));
    }
    Ok(rows)
}

/// Builds `run/data/`, `run/executor_config.json`.
pub fn prepare(
    models_dir: &Path,
    data_dir: &Path,
    run: &Path,
    history: usize,
    hours: u64,
) -> anyhow::Result<Prepared> {
    let span = i64::try_from(hours)?.max(1) * 3600;
    // Bars after the span, so the market is still open while the last live bar's orders go out.
    let tail = (span / 4).max(6 * 3600);
    // Models: name, symbol, timeframe, lots.
    let mut models = BTreeMap::new();
    let mut lots: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    let mut zips: Vec<PathBuf> = std::fs::read_dir(models_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    for z in zips {
        // A bad zip is the predictor's to report; the market simply has no data for it.
        let Ok(m) = oracle_model::load_model(&z) else {
            continue;
        };
        let name = z
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sym = m.metadata.symbol_clean.clone();
        lots.entry(sym.clone()).or_insert(m.model.costs().lot_sizes);
        models.insert(name, (sym, m.metadata.timeframe.clone()));
    }
    if models.is_empty() {
        anyhow::bail!("no loadable model zip in {}", models_dir.display());
    }
    // Per symbol: the coarsest model timeframe sets the start; the finest bar file feeds the sim.
    let mut by_sym: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (sym, tf) in models.values() {
        by_sym.entry(sym.clone()).or_default().push(tf.clone());
    }
    struct Plan {
        base_tf: String,
        base: Vec<(i64, String)>,
        t_start: i64,
    }
    let mut plans = BTreeMap::new();
    for (sym, tfs) in &by_sym {
        let coarse = tfs
            .iter()
            .max_by_key(|t| period_secs(t).unwrap_or(0))
            .cloned()
            .unwrap_or_default();
        let mut files: Vec<(i64, String)> = Vec::new();
        for e in std::fs::read_dir(data_dir)?.filter_map(Result::ok) {
            let stem = e
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(tf) = stem.strip_prefix(&format!("{sym}_")) {
                if let Some(p) = period_secs(tf) {
                    files.push((p, tf.to_string()));
                }
            }
        }
        files.sort();
        let Some((_, base_tf)) = files.first().cloned() else {
            anyhow::bail!("no bar file for {sym} in {}", data_dir.display());
        };
        let coarse_rows = read_rows(&data_dir.join(format!("{sym}_{coarse}.csv")))?;
        let Some(&(t_start, _)) = coarse_rows.get(history) else {
            anyhow::bail!(
                "{sym}_{coarse}.csv has {} bars; the demo needs more than {history} of history",
                coarse_rows.len()
            );
        };
        let base = read_rows(&data_dir.join(format!("{sym}_{base_tf}.csv")))?;
        if base.last().is_none_or(|(t, _)| *t < t_start + span + tail) {
            anyhow::bail!(
                "{sym}_{base_tf}.csv ends before {} h of live market after {history} bars of history: use a smaller --bars",
                hours
            );
        }
        plans.insert(
            sym.clone(),
            Plan {
                base_tf,
                base,
                t_start,
            },
        );
    }
    // The market opens now (the last 5-minute boundary) and runs `span`, then `tail`: the
    // executor takes the wall clock for the broker's until the first spot, so history must end,
    // and live bars begin, at the present. In each symbol, bar `history` of its coarsest model
    // timeframe is the one forming at the open (a shift by whole periods keeps every bar on its
    // period's boundaries), so every model has at least `history` closed bars behind it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let t0 = now.div_euclid(300) * 300;
    let end_live = t0 + span;
    let data = run.join("data");
    std::fs::create_dir_all(&data)?;
    let mut shifts = BTreeMap::new();
    for (sym, p) in &plans {
        let coarse = by_sym
            .get(sym)
            .and_then(|tfs| tfs.iter().filter_map(|t| period_secs(t)).max())
            .unwrap_or(300);
        let shift = t0.div_euclid(coarse) * coarse - p.t_start;
        shifts.insert(sym.clone(), shift);
        if p.base
            .last()
            .is_none_or(|(t, _)| t + shift < end_live + tail)
        {
            anyhow::bail!(
                "{sym}_{}.csv ends before {hours} h of live market after {history} bars of history: use a smaller --bars",
                p.base_tf
            );
        }
        let mut out = String::from("time,open,high,low,close,volume\n");
        for (t, rest) in p
            .base
            .iter()
            .take_while(|(t, _)| t + shift < end_live + tail)
        {
            let _ = writeln!(
                out,
                "{},{rest}",
                oracle_predictor::isotime::format(t + shift)
            );
        }
        std::fs::write(data.join(format!("{sym}_{}.csv", p.base_tf)), out)?;
    }
    // Every bundled symbol enabled, with its model's lots (the seed's table for the seed's
    // symbols).
    let mut cfg = serde_json::Map::new();
    for (sym, l) in &lots {
        cfg.insert(
            sym.clone(),
            serde_json::json!({"enabled": true, "lot_weak": l[1], "lot_moderate": l[2], "lot_strong": l[3]}),
        );
    }
    let executor_config = run.join("executor_config.json");
    std::fs::write(&executor_config, serde_json::to_string_pretty(&cfg)?)?;
    // Live bars per model: its own file's bars that close after the open and by the end of the
    // span (weekends and sessions included).
    let mut expected = BTreeMap::new();
    for (name, (sym, tf)) in &models {
        let (Some(shift), Some(per)) = (shifts.get(sym), period_secs(tf)) else {
            continue;
        };
        let rows = read_rows(&data_dir.join(format!("{name}.csv"))).unwrap_or_default();
        let n = rows
            .iter()
            .map(|(t, _)| t + shift + per)
            .filter(|close| *close > t0 && *close <= end_live)
            .count();
        expected.insert(name.clone(), u64::try_from(n).unwrap_or(0));
    }
    Ok(Prepared {
        expected,
        data,
        start: oracle_predictor::isotime::format(t0),
        executor_config,
        models,
    })
}
