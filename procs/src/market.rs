//! A simulator market for whole-system runs (the demo, the chaos proof over the simulator, the
//! benchmark's simulator leg): the bundled bar files cut and shifted so that every model starts
//! live at the same market time `T0` (the present) with at least `history` bars of its own
//! timeframe behind it, followed by `hours` of market time (each model sees
//! `hours × 3600 / period` live bars: an H1 model `hours`, an M5 model 12 × `hours`, a D1 model
//! `hours / 24`) and a tail; and an executor configuration that enables every symbol with its
//! model's lots.
//!
//! Per symbol the simulator gets one file, its finest timeframe, and aggregates the coarser
//! periods from it (as a broker does). Shifting a symbol's bars in time (by a multiple of its
//! coarsest model's period) changes no price, so no decision: the twins only see the order of
//! bars, never the calendar.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a run uses.
#[derive(Clone, Debug)]
pub struct Market {
    /// Folder of the cut, shifted bar files (one per symbol, its finest timeframe).
    pub data: PathBuf,
    /// The models folder of the run (the source folder, or a copy of the chosen subset).
    pub models_dir: PathBuf,
    /// Market time the live replay starts at (ISO-8601).
    pub start: String,
    /// The same, Unix seconds.
    pub t0: i64,
    /// The executor configuration written for the run.
    pub executor_config: PathBuf,
    /// Models used: name → (symbol, timeframe).
    pub models: BTreeMap<String, (String, String)>,
    /// Live bars each model sees within `hours` of market time: name → count.
    pub expected: BTreeMap<String, u64>,
    /// Every live bar the simulator closes for each model over the whole replay (the span and
    /// its tail): name → bar open times, ascending. A bar is live when it closes after `T0`; it
    /// is closed once a tick of the next period has come; bars closed by the file's last row
    /// (where the replay ends) are not counted.
    pub live_bars: BTreeMap<String, Vec<i64>>,
}

/// How to build a [`Market`].
#[derive(Clone, Debug)]
pub struct MarketSpec {
    /// Closed bars of its own timeframe behind every model at `T0`.
    pub history: usize,
    /// Hours of live market time.
    pub hours: u64,
    /// Use at most this many models (zips in name order).
    pub max_models: usize,
    /// Copy the chosen zips into `run/models` (always done when fewer than all are used).
    pub copy_models: bool,
    /// `risk` section of the executor configuration (None: the executor's defaults).
    pub risk: Option<serde_json::Value>,
}

impl MarketSpec {
    /// `history` bars behind, `hours` of market, every model, no copy, default risk.
    pub fn new(history: usize, hours: u64) -> Self {
        Self {
            history,
            hours,
            max_models: usize::MAX,
            copy_models: false,
            risk: None,
        }
    }
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
        let t = oracle_model::parse_time(t)
            .ok_or_else(|| anyhow::anyhow!("{}:{}: bad time {t}", path.display(), i + 1))?;
        rows.push((t, rest.to_string()));
    }
    Ok(rows)
}

/// The open times of the bars of period `per` the simulator closes from base rows at `times`
/// (ascending) after `t0`: buckets `[o, o + per)` holding a row, closed by a later row at or after
/// `o + per` that is not the file's last (the replay ends on that row: whether its tick is seen
/// to close the bar before it is the end of the data, not the system), with the close after `t0`.
pub fn closed_bars(times: &[i64], per: i64, t0: i64) -> Vec<i64> {
    let Some(&last) = times.last() else {
        return Vec::new();
    };
    let mut out: Vec<i64> = Vec::new();
    for &t in times {
        let o = t.div_euclid(per) * per;
        if out.last() != Some(&o) && o + per < last && o + per > t0 {
            out.push(o);
        }
    }
    out
}

/// The coarse row at which a symbol's live replay starts: an index `k ≥ history` of `coarse`
/// (the open times of its coarsest model timeframe) such that the symbol has data to the end of
/// the run (a row of `base`, its source rows' open times, ascending, at or after the end of the
/// tail; [`cut_len`] keeps it), preferring the first whose live span also ends where it has data
/// (a row at or after the span's end and before the tail's). The span starts at
/// `coarse[k] + lead` (`lead`: how far into the start bar the market opens) and lasts `span`, the
/// tail `tail`. A cut that ended in a gap of the data (a weekend, a stock's night, the end of the
/// file) would leave the symbol without prices, its orders refused MARKET_CLOSED, inside the run.
/// None: the data is too short for the run.
pub fn live_start(
    coarse: &[i64],
    base: &[i64],
    history: usize,
    lead: i64,
    span: i64,
    tail: i64,
) -> Option<usize> {
    let first_at_or_after = |t: i64| base.get(base.partition_point(|&r| r < t)).copied();
    let span_end = |k: usize| coarse[k] + lead + span;
    let covered = |k: usize| first_at_or_after(span_end(k) + tail).is_some();
    (history..coarse.len())
        .find(|&k| {
            covered(k) && first_at_or_after(span_end(k)).is_some_and(|r| r < span_end(k) + tail)
        })
        .or_else(|| (history..coarse.len()).find(|&k| covered(k)))
}

/// How many of the rows `base` (open times, ascending, shifted onto the market's clock) a cut
/// for a run ending at `end` keeps: those before `end` and the first at or after it, so the
/// symbol has prices (the last row's ticks) until the run's end, whatever gap comes before it.
pub fn cut_len(base: &[i64], end: i64) -> usize {
    (base.partition_point(|&t| t < end) + 1).min(base.len())
}

/// Builds `run/data/`, `run/executor_config.json` (and `run/models/` when copying); the market
/// opens at the wall clock's present.
pub fn prepare(
    models_dir: &Path,
    data_dir: &Path,
    run: &Path,
    spec: &MarketSpec,
) -> anyhow::Result<Market> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    prepare_at(models_dir, data_dir, run, spec, now)
}

/// [`prepare`] with the market opening at `now` (Unix seconds; the last 5-minute boundary).
pub fn prepare_at(
    models_dir: &Path,
    data_dir: &Path,
    run: &Path,
    spec: &MarketSpec,
    now: i64,
) -> anyhow::Result<Market> {
    let (history, hours) = (spec.history, spec.hours);
    let t0 = now.div_euclid(300) * 300;
    let span = i64::try_from(hours)?.max(1) * 3600;
    // Bars after the span, so the market is still open while the last live bar's orders go out.
    let tail = (span / 4).max(6 * 3600);
    // Models: name, symbol, timeframe, lots.
    let mut models = BTreeMap::new();
    let mut lots: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    let mut zips: Vec<PathBuf> = std::fs::read_dir(models_dir)
        .map_err(|e| anyhow::anyhow!("models folder {}: {e}", models_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    let mut chosen = Vec::new();
    for z in zips {
        if models.len() >= spec.max_models {
            break;
        }
        // A bad zip is the predictor's to report; the market simply has no data for it.
        let Ok(m) = oracle_model::load_model(&z) else {
            continue;
        };
        let name = z
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sym = m.metadata.symbol.clone();
        lots.entry(sym.clone()).or_insert(m.model.costs().lot_sizes);
        models.insert(name, (sym, m.metadata.timeframe.to_string()));
        chosen.push(z);
    }
    if models.is_empty() {
        anyhow::bail!("no loadable model zip in {}", models_dir.display());
    }
    let run_models = if spec.copy_models || spec.max_models != usize::MAX {
        let d = run.join("models");
        std::fs::create_dir_all(&d)?;
        for z in &chosen {
            if let Some(f) = z.file_name() {
                std::fs::copy(z, d.join(f))?;
            }
        }
        d
    } else {
        models_dir.to_path_buf()
    };
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
        for e in std::fs::read_dir(data_dir)
            .map_err(|e| anyhow::anyhow!("bars folder {}: {e}", data_dir.display()))?
            .filter_map(Result::ok)
        {
            let stem = e
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(tf) = stem.strip_prefix(&format!("{sym}_"))
                && let Some(p) = period_secs(tf)
            {
                files.push((p, tf.to_string()));
            }
        }
        files.sort();
        let Some((_, base_tf)) = files.first().cloned() else {
            anyhow::bail!("no bar file for {sym} in {}", data_dir.display());
        };
        let coarse_rows = read_rows(&data_dir.join(format!("{sym}_{coarse}.csv")))?;
        if coarse_rows.len() <= history {
            anyhow::bail!(
                "{sym}_{coarse}.csv has {} bars; the run needs more than {history} of history",
                coarse_rows.len()
            );
        }
        let base = read_rows(&data_dir.join(format!("{sym}_{base_tf}.csv")))?;
        // The start: at least `history` bars behind, and data to the end of the replay.
        let coarse_len = period_secs(&coarse).unwrap_or(300);
        let coarse_times: Vec<i64> = coarse_rows.iter().map(|r| r.0).collect();
        let base_times: Vec<i64> = base.iter().map(|r| r.0).collect();
        let lead = t0 - t0.div_euclid(coarse_len) * coarse_len;
        let Some(k) = live_start(&coarse_times, &base_times, history, lead, span, tail) else {
            anyhow::bail!(
                "{sym}_{base_tf}.csv has no data {hours} h after {history} bars of history: use fewer hours"
            );
        };
        let t_start = coarse_times[k];
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
    // and live bars begin, at the present. In each symbol, bar `k ≥ history` of its coarsest
    // model timeframe ([`live_start`]) is the one forming at the open (a shift by whole periods
    // keeps every bar on its period's boundaries), so every model has at least `history` closed
    // bars behind it, and the symbol has prices to the end of the replay.
    let end_live = t0 + span;
    let data = run.join("data");
    std::fs::create_dir_all(&data)?;
    let mut base_times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (sym, p) in &plans {
        let coarse = by_sym
            .get(sym)
            .and_then(|tfs| tfs.iter().filter_map(|t| period_secs(t)).max())
            .unwrap_or(300);
        let shift = t0.div_euclid(coarse) * coarse - p.t_start;
        let mut out = String::from("time,open,high,low,close,volume\n");
        let mut times = Vec::new();
        let shifted: Vec<i64> = p.base.iter().map(|(t, _)| t + shift).collect();
        let keep = cut_len(&shifted, end_live + tail);
        for (t, rest) in &p.base[..keep] {
            let _ = writeln!(out, "{},{rest}", oracle_model::format_time(t + shift));
            times.push(t + shift);
        }
        std::fs::write(data.join(format!("{sym}_{}.csv", p.base_tf)), out)?;
        base_times.insert(sym.clone(), times);
    }
    // Every symbol enabled, with its model's lots (the seed's table for the seed's symbols).
    let mut cfg = serde_json::Map::new();
    if let Some(r) = &spec.risk {
        cfg.insert("risk".into(), r.clone());
    }
    for (sym, l) in &lots {
        cfg.insert(
            sym.clone(),
            serde_json::json!({"enabled": true, "lot_weak": l[1], "lot_moderate": l[2], "lot_strong": l[3]}),
        );
    }
    let executor_config = run.join("executor_config.json");
    std::fs::write(&executor_config, serde_json::to_string_pretty(&cfg)?)?;
    // Live bars per model: the bars of its period the simulator closes after the open; the
    // expected count is those closing by the end of the span (weekends and sessions included).
    let mut expected = BTreeMap::new();
    let mut live_bars = BTreeMap::new();
    for (name, (sym, tf)) in &models {
        let (Some(times), Some(per)) = (base_times.get(sym), period_secs(tf)) else {
            continue;
        };
        let bars = closed_bars(times, per, t0);
        let n = bars.iter().filter(|o| *o + per <= end_live).count();
        expected.insert(name.clone(), u64::try_from(n).unwrap_or(0));
        live_bars.insert(name.clone(), bars);
    }
    Ok(Market {
        expected,
        live_bars,
        data,
        models_dir: run_models,
        start: oracle_model::format_time(t0),
        t0,
        executor_config,
        models,
    })
}

/// Writes `n` copies of the model `source` (`SYM_TF`) and its bar file under the symbols
/// `CLONE01`…: zips `models/CLONEkk_TF.zip` (members renamed, the metadata in the zip comment
/// naming the new symbol; member bytes and hashes unchanged) and bar files `data/CLONEkk_TF.csv`
/// (the same bars). Every copy's stream then closes on the same instants as the others: the
/// simulator leg's "20 symbols closing on the same bar". Returns the two folders.
pub fn clone_models(
    models_dir: &Path,
    data_dir: &Path,
    source: &str,
    n: usize,
    out: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::io::{Read, Write};
    let (sym, tf) = source
        .rsplit_once('_')
        .ok_or_else(|| anyhow::anyhow!("--sim-clones {source}: expected SYM_TF"))?;
    let zip_path = models_dir.join(format!("{source}.zip"));
    let bars = data_dir.join(format!("{source}.csv"));
    let (models, data) = (out.join("clone-models"), out.join("clone-data"));
    std::fs::create_dir_all(&models)?;
    std::fs::create_dir_all(&data)?;
    let bytes =
        std::fs::read(&zip_path).map_err(|e| anyhow::anyhow!("{}: {e}", zip_path.display()))?;
    for k in 1..=n {
        let name = format!("CLONE{k:02}");
        let mut src = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
            .map_err(|e| anyhow::anyhow!("{}: {e}", zip_path.display()))?;
        let comment = String::from_utf8(src.comment().to_vec())
            .map_err(|e| anyhow::anyhow!("{}: zip comment: {e}", zip_path.display()))?;
        let path = models.join(format!("{name}_{tf}.zip"));
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path)?);
        for i in 0..src.len() {
            let mut f = src.by_index(i)?;
            let renamed = f.name().replacen(sym, &name, 1);
            let mut body = Vec::new();
            f.read_to_end(&mut body)?;
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file(renamed, opts)?;
            w.write_all(&body)?;
        }
        w.set_comment(comment.replace(sym, &name));
        w.finish()?;
        std::fs::copy(&bars, data.join(format!("{name}_{tf}.csv")))
            .map_err(|e| anyhow::anyhow!("{}: {e}", bars.display()))?;
    }
    Ok((models, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_bars_need_a_later_tick_and_a_close_after_the_open() {
        // M15 rows 00:00 … 02:15; H1 buckets 00:00, 01:00, 02:00 (the last never closes).
        let times: Vec<i64> = (0..=9).map(|i| i * 900).collect();
        assert_eq!(closed_bars(&times, 3600, -1), vec![0, 3600]);
        // Live = closing after t0 = 3600: the 00:00 bar closes at 3600 (history).
        assert_eq!(closed_bars(&times, 3600, 3600), vec![3600]);
        // The bar closed only by the last row (02:00) is the end of the data: not counted.
        assert_eq!(closed_bars(&times[..9], 3600, -1), vec![0]);
        // A gap: no row in 01:00–02:00 → no bar there.
        let gap = [0, 900, 7200, 8100, 10_800, 11_700];
        assert_eq!(closed_bars(&gap, 3600, -1), vec![0, 7200]);
        assert_eq!(period_secs("M15"), Some(900));
        assert_eq!(period_secs("D1"), Some(86_400));
        assert_eq!(period_secs("X1"), None);
    }

    #[test]
    fn the_live_start_moves_past_a_gap_that_would_end_the_data_inside_the_run() {
        let h = 3600;
        // Hourly rows 00:00–05:00, nothing until 20:00 (a night, a weekend), then 20:00–40:00.
        let rows: Vec<i64> = (0..=5).chain(20..=40).map(|i| i * h).collect();
        // 2 bars of history, 6 h of span, 2 h of tail: from 02:00 the span would end at 08:00,
        // in the gap; the first start whose span ends in data is 20:00.
        let k = live_start(&rows, &rows, 2, 0, 6 * h, 2 * h).expect("a start");
        assert_eq!(
            rows[k],
            20 * h,
            "the first start whose span the data covers"
        );
        // The cut keeps the rows before 28:00 and the one of 28:00: prices to the end.
        assert_eq!(rows[cut_len(&rows, rows[k] + 8 * h) - 1], 28 * h);
        // Without a gap the start is the history bar itself.
        let plain: Vec<i64> = (0..40).map(|i| i * h).collect();
        assert_eq!(live_start(&plain, &plain, 2, 0, 6 * h, 2 * h), Some(2));
        // Where every start's span ends in a gap (4 h sessions, a 6 h span, a 1 h tail), the
        // first with data after the run; the cut keeps rows through the night to the next
        // session's first.
        let sessions: Vec<i64> = (0..10)
            .flat_map(|d| (0..4).map(move |i| d * 24 * h + (15 + i) * h))
            .collect();
        let k = live_start(&sessions, &sessions, 1, 0, 6 * h, h).expect("a start");
        assert_eq!(k, 1);
        let n = cut_len(&sessions, sessions[k] + 7 * h);
        assert_eq!(
            sessions[n - 1],
            24 * h + 15 * h,
            "the next session's first row"
        );
        // Data too short for the run: no start.
        assert_eq!(live_start(&rows, &rows, 2, 0, 50 * h, 2 * h), None);
        assert_eq!(
            live_start(&rows, &rows, 2, 0, 37 * h, 2 * h),
            None,
            "no row after the tail"
        );
    }

    #[test]
    fn no_symbol_of_the_bundled_market_runs_out_of_data_before_the_replay_ends() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let run = std::env::temp_dir().join(format!("oracle-market-cut-{}", std::process::id()));
        // The demo's defaults (24 h, 400 bars of history) and 6 h, opening on several days and
        // hours of a week (the bundled files have weekends and stock sessions in different
        // places), among them the Sunday afternoon the demo once ran out of data on.
        let sunday = 1_796_568_000; // 2026-12-06T14:40:00Z
        for hours in [24u64, 6] {
            for step in 0..8 {
                let now = sunday + step * 21 * 3600 + step * 7 * 60;
                let _ = std::fs::remove_dir_all(&run);
                let m = prepare_at(
                    &root.join("models"),
                    &root.join("data"),
                    &run,
                    &MarketSpec::new(400, hours),
                    now,
                )
                .expect("market");
                let span = i64::try_from(hours).expect("hours") * 3600;
                let end = m.t0 + span + (span / 4).max(6 * 3600);
                for f in std::fs::read_dir(&m.data).expect("data").flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    let rows = read_rows(&f.path()).expect("rows");
                    let last = rows.last().expect("a row").0;
                    // Prices to the end of the run: the symbol's last row opens at or after it
                    // (its first tick then), and it is the only one there.
                    assert!(
                        last >= end,
                        "{name} (market opening {}, {hours} h): its data ends at {}, the run at {}",
                        oracle_model::format_time(m.t0),
                        oracle_model::format_time(last),
                        oracle_model::format_time(end),
                    );
                    let past_end = rows.iter().filter(|r| r.0 >= end).count();
                    assert_eq!(past_end, 1, "{name}: one row at or after the run's end");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&run);
    }

    #[test]
    fn clones_load_as_their_own_symbol_with_the_same_policy_and_bars() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::env::temp_dir().join(format!("oracle-clones-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let (models, data) = clone_models(
            &root.join("models"),
            &root.join("data"),
            "SYNFX02_M5",
            2,
            &out,
        )
        .expect("clones");
        let orig = oracle_model::load_model(&root.join("models/SYNFX02_M5.zip")).expect("orig");
        for k in ["CLONE01", "CLONE02"] {
            let m = oracle_model::load_model(&models.join(format!("{k}_M5.zip"))).expect(k);
            assert_eq!(m.metadata.symbol, k);
            assert_eq!(m.metadata.timeframe.as_str(), "M5");
            assert_eq!(m.model.window(), orig.model.window());
            let a = std::fs::read(data.join(format!("{k}_M5.csv"))).expect("bars");
            assert_eq!(
                a,
                std::fs::read(root.join("data/SYNFX02_M5.csv")).expect("bars")
            );
        }
        assert!(
            clone_models(&root.join("models"), &root.join("data"), "NOPE_M5", 1, &out).is_err()
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}
