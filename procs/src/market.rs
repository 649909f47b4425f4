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
//!
//! With [`MarketSpec::week_start`] (the soak's real span) the shift is a whole number of weeks
//! instead: every bar keeps its weekday and hour, so the bundled files' weekends and sessions
//! fall where the simulator's `--calendar realistic` closes the market (FX Sunday 22:00 – Friday
//! 22:00 UTC, indices and stocks on New York hours, the Saturday maintenance window), and the
//! span starts at that fixed position of the week (the first such instant at or after the
//! present, [`next_at_week_position`]), whatever day the run is made on. The live bars counted
//! are then those the realistic calendar lets exist ([`closed_bars_in_hours`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use oracle_core::{StreamKey, Symbol, Timeframe};

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
    /// Models used: name → stream (symbol and timeframe, as the zip's metadata says).
    pub models: BTreeMap<String, StreamKey>,
    /// Live bars each model sees within `hours` of market time: name → count.
    pub expected: BTreeMap<String, u64>,
    /// Every live bar the simulator closes for each model over the whole replay (the span and
    /// its tail): name → bar open times, ascending. A bar is live when it closes after `T0`; it
    /// is closed once a tick of the next period has come; bars closed by the file's last row
    /// (where the replay ends) are not counted.
    pub live_bars: BTreeMap<String, Vec<i64>>,
    /// The bars are shifted by whole weeks onto the realistic calendar: the simulator must run
    /// with `--calendar realistic` (else the market is open around the clock).
    pub realistic: bool,
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
    /// Seconds from Monday 00:00 UTC at which the live span starts (see
    /// [`parse_week_position`]): the bars are shifted by whole weeks and the market runs on the
    /// realistic calendar. None: the market opens at the present, open around the clock.
    pub week_start: Option<i64>,
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
            week_start: None,
        }
    }
}

/// Seconds in a week.
pub const WEEK: i64 = 7 * 86_400;

/// Monday 1970-01-05 00:00 UTC, Unix seconds: week positions count from a Monday.
const A_MONDAY: i64 = 4 * 86_400;

/// Where `t` (Unix seconds) lies in its UTC week: seconds since Monday 00:00 UTC.
pub fn week_position(t: i64) -> i64 {
    (t - A_MONDAY).rem_euclid(WEEK)
}

/// The first instant at or after `now` whose [`week_position`] is `pos`: where a span that
/// starts at a fixed position of the week begins when the run is made at `now`, at most a week
/// ahead (the simulator then replays ahead of the wall clock, as a timed replay does anyway).
pub fn next_at_week_position(now: i64, pos: i64) -> i64 {
    now + (pos.rem_euclid(WEEK) - week_position(now)).rem_euclid(WEEK)
}

/// Parses a position in the UTC week, `DAY HH:MM` (`Fri 14:00`, `sunday 22:00`; days by their
/// first three letters), into seconds from Monday 00:00 UTC.
pub fn parse_week_position(s: &str) -> anyhow::Result<i64> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let bad = || anyhow::anyhow!("week position {s:?}: expected DAY HH:MM (UTC), e.g. Fri 14:00");
    let (day, time) = s.trim().split_once(' ').ok_or_else(bad)?;
    let day = day.trim().to_ascii_lowercase();
    let d = DAYS
        .iter()
        .position(|p| day.len() >= 3 && p.starts_with(&day[..3]))
        .ok_or_else(bad)?;
    let (h, m) = time.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(i64::try_from(d)? * 86_400 + h * 3600 + m * 60)
}

/// The instant of a symbol's data (its own clock) at which a span starting at week position
/// `pos` begins: the first `s` with `week_position(s) == pos` that has at least `history` bars
/// of the coarse timeframe (`coarse`: their open times, period `per`) closed behind it and data
/// to the end of the run (a `base` row at or after `s + span + tail`), preferring one whose
/// span also ends where the symbol has data (as [`live_start`]). Shifting the data by the whole
/// weeks from `s` to the market's start keeps every bar's weekday and hour.
pub fn week_live_start(
    coarse: &[i64],
    per: i64,
    base: &[i64],
    history: usize,
    pos: i64,
    span: i64,
    tail: i64,
) -> Option<i64> {
    let first = *coarse.first()?.min(base.first()?);
    let last = *base.last()?;
    let starts: Vec<i64> = (0..)
        .map(|j| next_at_week_position(first, pos) + j * WEEK)
        .take_while(|s| s + span + tail <= last)
        .filter(|&s| coarse.partition_point(|&t| t + per <= s) >= history)
        .collect();
    let first_at_or_after = |t: i64| base.get(base.partition_point(|&r| r < t)).copied();
    let covered = |s: i64| first_at_or_after(s + span + tail).is_some();
    starts
        .iter()
        .copied()
        .find(|&s| covered(s) && first_at_or_after(s + span).is_some_and(|r| r < s + span + tail))
        .or_else(|| starts.iter().copied().find(|&s| covered(s)))
}

/// The simulator's realistic trading hours of `symbol` (`--calendar realistic`).
pub fn realistic_calendar(symbol: &str) -> oracle_ctrader::calendar::TradingCalendar {
    oracle_sim::calendar::SymbolHours::for_symbol(
        symbol,
        oracle_sim::calendar::CalendarMode::Realistic,
    )
    .calendar()
}

/// [`closed_bars`] on a calendar: the bars of period `per` (open times) the simulator serves
/// from base rows at `times` (ascending) and the executor sees closed after `t0`. A bar exists
/// when it has an open instant (history holds no bar lying wholly in closed hours); it is seen
/// closed once a later row whose first tick is in trading hours (a spot is sent) comes at or
/// after its end, not the file's last (the replay ends there).
pub fn closed_bars_in_hours(
    times: &[i64],
    per: i64,
    t0: i64,
    cal: &oracle_ctrader::calendar::TradingCalendar,
) -> Vec<i64> {
    let Some((_, before_last)) = times.split_last() else {
        return Vec::new();
    };
    let closers: Vec<i64> = before_last
        .iter()
        .copied()
        .filter(|&t| cal.is_open(t * 1000))
        .collect();
    let mut out: Vec<i64> = Vec::new();
    for &t in times {
        let o = t.div_euclid(per) * per;
        let exists = cal
            .next_open(o * 1000)
            .is_some_and(|x| x < (o + per) * 1000);
        let closed = closers
            .get(closers.partition_point(|&c| c < o + per))
            .is_some();
        if out.last() != Some(&o) && exists && closed && o + per > t0 {
            out.push(o);
        }
    }
    out
}

/// The timeframe a name at an edge gives (a bar file's `SYM_TF` stem, a log line's period):
/// one the system streams ([`Timeframe::STREAMED`]), else `None`.
pub fn timeframe_of(tf: &str) -> Option<Timeframe> {
    Timeframe::from_name(tf).filter(|t| t.is_streamed())
}

/// Seconds of a timeframe name (`M5`, `H1`, `D1`…): [`timeframe_of`]'s length; `None` for a
/// name the system does not stream.
pub fn period_secs(tf: &str) -> Option<i64> {
    timeframe_of(tf).map(Timeframe::seconds)
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
    let t0 = match spec.week_start {
        Some(pos) => next_at_week_position(now, pos),
        None => now.div_euclid(300) * 300,
    };
    let span = i64::try_from(hours)?.max(1) * 3600;
    // Bars after the span, so the market is still open while the last live bar's orders go out.
    let tail = (span / 4).max(6 * 3600);
    // Models: name, symbol, timeframe, lots.
    let mut models = BTreeMap::new();
    let mut lots: BTreeMap<Symbol, [f64; 4]> = BTreeMap::new();
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
        let key = StreamKey::new(m.metadata.symbol, m.metadata.timeframe);
        lots.entry(key.symbol).or_insert(m.model.costs().lot_sizes);
        models.insert(name, key);
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
    let mut by_sym: BTreeMap<Symbol, Vec<Timeframe>> = BTreeMap::new();
    for k in models.values() {
        by_sym.entry(k.symbol).or_default().push(k.timeframe);
    }
    struct Plan {
        base_tf: Timeframe,
        base: Vec<(i64, String)>,
        shift: i64,
    }
    let mut plans = BTreeMap::new();
    for (sym, tfs) in &by_sym {
        let Some(coarse) = tfs.iter().copied().max() else {
            continue;
        };
        let mut files: Vec<(i64, Timeframe)> = Vec::new();
        for e in std::fs::read_dir(data_dir)
            .map_err(|e| anyhow::anyhow!("bars folder {}: {e}", data_dir.display()))?
            .filter_map(Result::ok)
        {
            let stem = e
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(tf) = stem.strip_prefix(&format!("{sym}_")).and_then(timeframe_of) {
                files.push((tf.seconds(), tf));
            }
        }
        files.sort();
        let Some(&(_, base_tf)) = files.first() else {
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
        let coarse_len = coarse.seconds();
        let coarse_times: Vec<i64> = coarse_rows.iter().map(|r| r.0).collect();
        let base_times: Vec<i64> = base.iter().map(|r| r.0).collect();
        let no_data = || {
            anyhow::anyhow!(
                "{sym}_{base_tf}.csv has no data {hours} h after {history} bars of history: use fewer hours"
            )
        };
        let shift = if let Some(pos) = spec.week_start {
            // Whole weeks: the data's weekdays and hours stay where they were.
            let s = week_live_start(
                &coarse_times,
                coarse_len,
                &base_times,
                history,
                pos,
                span,
                tail,
            )
            .ok_or_else(no_data)?;
            t0 - s
        } else {
            let lead = t0 - t0.div_euclid(coarse_len) * coarse_len;
            let k = live_start(&coarse_times, &base_times, history, lead, span, tail)
                .ok_or_else(no_data)?;
            t0.div_euclid(coarse_len) * coarse_len - coarse_times[k]
        };
        plans.insert(
            *sym,
            Plan {
                base_tf,
                base,
                shift,
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
    let mut base_times: BTreeMap<Symbol, Vec<i64>> = BTreeMap::new();
    for (sym, p) in &plans {
        let shift = p.shift;
        let mut out = String::from("time,open,high,low,close,volume\n");
        let mut times = Vec::new();
        let shifted: Vec<i64> = p.base.iter().map(|(t, _)| t + shift).collect();
        let keep = cut_len(&shifted, end_live + tail);
        for (t, rest) in &p.base[..keep] {
            let _ = writeln!(out, "{},{rest}", oracle_model::format_time(t + shift));
            times.push(t + shift);
        }
        std::fs::write(data.join(format!("{sym}_{}.csv", p.base_tf)), out)?;
        base_times.insert(*sym, times);
    }
    // Every symbol enabled, with its model's lots (the seed's table for the seed's symbols).
    let mut cfg = serde_json::Map::new();
    if let Some(r) = &spec.risk {
        cfg.insert("risk".into(), r.clone());
    }
    for (sym, l) in &lots {
        cfg.insert(
            sym.to_string(),
            serde_json::json!({"enabled": true, "lot_weak": l[1], "lot_moderate": l[2], "lot_strong": l[3]}),
        );
    }
    let executor_config = run.join("executor_config.json");
    std::fs::write(&executor_config, serde_json::to_string_pretty(&cfg)?)?;
    // Live bars per model: the bars of its period the simulator closes after the open; the
    // expected count is those closing by the end of the span (weekends and sessions included).
    let mut expected = BTreeMap::new();
    let mut live_bars = BTreeMap::new();
    for (name, key) in &models {
        let Some(times) = base_times.get(&key.symbol) else {
            continue;
        };
        let per = key.timeframe.seconds();
        let bars = if spec.week_start.is_some() {
            closed_bars_in_hours(times, per, t0, &realistic_calendar(key.symbol.as_str()))
        } else {
            closed_bars(times, per, t0)
        };
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
        realistic: spec.week_start.is_some(),
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
    // Parsed once: the source's stream (a bad one is refused before anything is written).
    let (sym, tf) = source
        .rsplit_once('_')
        .ok_or_else(|| anyhow::anyhow!("--sim-clones {source}: expected SYM_TF"))?;
    let sym = Symbol::new(sym).map_err(|e| anyhow::anyhow!("--sim-clones {source}: {e}"))?;
    let tf = timeframe_of(tf).ok_or_else(|| {
        anyhow::anyhow!(
            "--sim-clones {source}: timeframe {tf:?} is not one a model may have ({})",
            oracle_model::SUPPORTED_TIMEFRAMES.join(", ")
        )
    })?;
    let sym = sym.as_str();
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

    /// A bar file's timeframe is core's `Timeframe`, parsed from its name once: the names the
    /// system has and their lengths, nothing else (`H2` or `M7` looked like timeframes to the
    /// old `M`/`H`/`D`/`W` + number reading).
    #[test]
    fn period_secs_knows_only_the_timeframes_the_system_streams() {
        for t in oracle_core::Timeframe::STREAMED {
            assert_eq!(period_secs(t.as_str()), Some(t.seconds()), "{t}");
        }
        for bad in ["H2", "M7", "D2", "W2", "MN1", "m15", "M15 ", "", "X1"] {
            assert_eq!(period_secs(bad), None, "{bad:?}");
        }
    }

    /// The simulator gets the finest bar file of a symbol among the timeframes the system has:
    /// a stray `EURUSD_M7.csv` beside `EURUSD_H1.csv` is not taken as the symbol's base file
    /// (the simulator has no M7 period).
    #[test]
    fn a_bar_file_of_a_timeframe_the_system_does_not_have_is_not_the_symbols_base_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("oracle-market-stray-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (models, data, run) = (dir.join("models"), dir.join("data"), dir.join("run"));
        std::fs::create_dir_all(&models).expect("models");
        std::fs::create_dir_all(&data).expect("data");
        std::fs::copy(
            root.join("models/EURUSD_H1.zip"),
            models.join("EURUSD_H1.zip"),
        )
        .expect("zip");
        for f in ["EURUSD_H1.csv", "EURUSD_M7.csv"] {
            std::fs::copy(root.join("data/EURUSD_H1.csv"), data.join(f)).expect("bars");
        }
        let m =
            prepare_at(&models, &data, &run, &MarketSpec::new(400, 2), SATURDAY).expect("market");
        let files: Vec<String> = std::fs::read_dir(&m.data)
            .expect("run data")
            .flatten()
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["EURUSD_H1.csv"]);
        assert_eq!(
            m.models["EURUSD_H1"],
            oracle_core::StreamKey::parse("EURUSD", "H1").expect("key")
        );
        let _ = std::fs::remove_dir_all(&dir);
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

    const FRI_14: i64 = 4 * 86_400 + 14 * 3600;
    const SUN_22: i64 = 6 * 86_400 + 22 * 3600;
    /// Saturday 2026-12-05 12:00 UTC.
    const SATURDAY: i64 = 1_796_472_000;

    #[test]
    fn the_span_starts_at_its_week_position_whatever_day_the_run_is_made_on() {
        assert_eq!(week_position(SATURDAY), 5 * 86_400 + 12 * 3600);
        // A run made on a Saturday starts the next Friday 14:00 (2026-12-11).
        assert_eq!(
            oracle_model::format_time(next_at_week_position(SATURDAY, FRI_14)),
            "2026-12-11T14:00:00Z"
        );
        // Sunday 21:59 → 22:00 the same evening; at 22:00 itself → now; 22:01 → a week on.
        let sun_2159 = SATURDAY + 86_400 + 9 * 3600 + 59 * 60;
        assert_eq!(next_at_week_position(sun_2159, SUN_22), sun_2159 + 60);
        assert_eq!(next_at_week_position(sun_2159 + 60, SUN_22), sun_2159 + 60);
        assert_eq!(
            next_at_week_position(sun_2159 + 120, SUN_22),
            sun_2159 + 60 + WEEK
        );
        // Whatever the hour and day: the position is the asked one, within a week ahead.
        for k in 0..(2 * 7 * 24 * 4) {
            let now = SATURDAY + k * 900 + 7;
            let t0 = next_at_week_position(now, FRI_14);
            assert_eq!(week_position(t0), FRI_14, "run made at {now}");
            assert!((0..WEEK).contains(&(t0 - now)), "run made at {now}");
        }
    }

    #[test]
    fn a_week_position_parses_and_a_bad_one_is_named() {
        assert_eq!(parse_week_position("Fri 14:00").expect("fri"), FRI_14);
        assert_eq!(parse_week_position("sunday 22:00").expect("sun"), SUN_22);
        assert_eq!(parse_week_position("Mon 00:00").expect("mon"), 0);
        for bad in ["Fry 14:00", "Fri", "Fri 24:00", "Fri 14:60", "Fri two"] {
            let e = parse_week_position(bad).expect_err(bad).to_string();
            assert!(e.contains(bad) && e.contains("DAY HH:MM"), "{e}");
        }
    }

    #[test]
    fn the_realistic_calendar_counts_no_bar_in_closed_hours_and_a_weekend_closes_fridays_last() {
        let fx = realistic_calendar("SYNFX01");
        // M15 rows Friday 2026-12-11 20:00 – 23:45 UTC, then Sunday 22:00 – Monday 01:00.
        let fri_20 = next_at_week_position(SATURDAY, 4 * 86_400 + 20 * 3600);
        let sun_22 = next_at_week_position(fri_20, SUN_22);
        let rows: Vec<i64> = (0..16)
            .map(|i| fri_20 + i * 900)
            .chain((0..=12).map(|i| sun_22 + i * 900))
            .collect();
        let bars = closed_bars_in_hours(&rows, 900, fri_20, &fx);
        // Friday 20:00–21:45 (8 bars; the 21:45 one closed by Sunday 22:00's tick), none of
        // 22:00–23:45 (closed hours: no tick, no bar), Sunday 22:00–Monday 00:30 (11 bars: the
        // last row, 01:00, ends the replay, so the 00:45 bar it would close is not counted).
        assert_eq!(bars.len(), 8 + 11);
        assert!(bars.iter().all(|&o| fx.is_open(o * 1000)));
        assert_eq!(bars[7], fri_20 + 7 * 900);
        assert_eq!(bars[8], sun_22);
        // Without the Sunday rows, Friday's last bar is never seen closed.
        let friday_only = &rows[..16];
        assert_eq!(closed_bars_in_hours(friday_only, 900, fri_20, &fx).len(), 7);
    }

    #[test]
    fn a_us_summer_week_closes_the_stock_bars_after_new_york_4_pm() {
        let stk = realistic_calendar("SYNSTK05");
        // M30 rows 14:30–20:30 UTC on two Wednesdays: 2026-01-14 (New York on EST, UTC-5:
        // 09:30–15:30) and 2026-07-15 (EDT, UTC-4: 10:30–16:30).
        let day = |wed: i64| (0..13).map(move |i| wed + 14 * 3600 + 1800 + i * 1800);
        let (jan, jul) = (1_768_348_800, 1_784_073_600);
        assert_eq!(week_position(jan), 2 * 86_400, "a Wednesday");
        assert_eq!(week_position(jul), 2 * 86_400, "a Wednesday");
        let rows = |wed: i64| -> Vec<i64> { day(wed).chain(day(wed + 86_400)).collect() };
        let winter = closed_bars_in_hours(&rows(jan), 1800, jan, &stk);
        let summer = closed_bars_in_hours(&rows(jul), 1800, jul, &stk);
        // Winter: the Wednesday's 13 bars (the last closed by Thursday's 14:30 tick) and
        // Thursday's first 11 (its 13th row ends the replay; 20:00 is closed by 20:30's tick).
        assert_eq!(winter.len(), 13 + 11);
        // Summer: 20:00 and 20:30 UTC are after 16:00 in New York: those bars do not exist;
        // Thursday's 19:30 bar waits for a tick in hours, which never comes before the end.
        assert_eq!(summer.len(), 11 + 10);
        assert!(summer.iter().all(|&o| stk.is_open(o * 1000)));
        assert!(!summer.contains(&(jul + 20 * 3600)));
        assert!(winter.contains(&(jan + 20 * 3600)));
    }

    #[test]
    fn a_week_shifted_market_keeps_every_bar_on_its_weekday_and_a_long_span_crosses_a_weekend() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let run = std::env::temp_dir().join(format!("oracle-market-week-{}", std::process::id()));
        let originals: BTreeMap<String, Vec<i64>> = std::fs::read_dir(root.join("data"))
            .expect("data")
            .flatten()
            .map(|f| {
                let rows = read_rows(&f.path()).expect("rows");
                let name = f.file_name().to_string_lossy().into_owned();
                (name, rows.iter().map(|r| r.0).collect())
            })
            .collect();
        // Runs made on a Saturday, a Sunday at 21:59 and 22:00, a Monday, and in a US summer
        // week (2026-07-15, a Wednesday): the same span position, whole-week shifts.
        let sun_2159 = SATURDAY + 86_400 + 9 * 3600 + 59 * 60;
        let nows = [
            SATURDAY,
            sun_2159,
            sun_2159 + 60,
            SATURDAY + 2 * 86_400,
            1_784_073_600,
        ];
        for (hours, now) in nows.iter().map(|&n| (2u64, n)).chain([(72u64, SATURDAY)]) {
            let _ = std::fs::remove_dir_all(&run);
            let spec = MarketSpec {
                week_start: Some(FRI_14),
                ..MarketSpec::new(400, hours)
            };
            let m = prepare_at(&root.join("models"), &root.join("data"), &run, &spec, now)
                .expect("market");
            assert!(m.realistic);
            assert_eq!(week_position(m.t0), FRI_14);
            assert!((0..WEEK).contains(&(m.t0 - now)));
            for f in std::fs::read_dir(&m.data).expect("data").flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let rows = read_rows(&f.path()).expect("rows");
                let orig = &originals[&name];
                // A whole-week shift: the cut is a run of the file's own rows, each moved by
                // the same whole number of weeks (so on its own weekday and hour).
                let a = rows[0].0;
                let moved = |i: usize| {
                    let weeks = a - orig[i];
                    weeks.rem_euclid(WEEK) == 0
                        && orig.len() >= i + rows.len()
                        && rows.iter().zip(&orig[i..]).all(|(r, o)| r.0 == o + weeks)
                };
                assert!(
                    (0..orig.len()).any(moved),
                    "{name}: not the file's rows shifted by whole weeks"
                );
            }
            let total: usize = m.expected.values().map(|&n| n as usize).sum();
            assert!(total > 0, "live bars at {now}");
            for (name, bars) in &m.live_bars {
                let cal = realistic_calendar(m.models[name].symbol.as_str());
                assert!(
                    bars.iter().all(|&o| {
                        let per = m.models[name].timeframe.seconds();
                        cal.next_open(o * 1000)
                            .is_some_and(|x| x < (o + per) * 1000)
                    }),
                    "{name}: a counted bar in closed hours"
                );
            }
            if hours == 72 {
                // Friday 14:00 + 72 h: the FX models' counted bars lie on both sides of the
                // weekend, none in Friday 22:00 – Sunday 22:00.
                let (fri_22, sun_22) = (m.t0 + 8 * 3600, m.t0 + 56 * 3600);
                let bars = &m.live_bars["SYNFX01_M15"];
                let n = usize::try_from(m.expected["SYNFX01_M15"]).expect("n");
                let counted = &bars[..n];
                assert!(counted.iter().any(|&o| o < fri_22));
                assert!(counted.iter().any(|&o| o >= sun_22));
                assert!(!counted.iter().any(|&o| (fri_22..sun_22).contains(&o)));
            }
        }
        let _ = std::fs::remove_dir_all(&run);
    }

    /// `SYM_TF` is parsed once into a stream key: a source that is not one is refused naming
    /// it and the part at fault, before any folder is made.
    #[test]
    fn a_clone_source_that_is_no_stream_is_refused_naming_it_before_anything_is_written() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::env::temp_dir().join(format!("oracle-clones-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        for (source, part) in [
            ("SYNFX02_H2", "timeframe"),
            ("SYNFX02_MN1", "timeframe"),
            ("SYN FX02_M5", "symbol"),
            ("SYNFX02M5", "SYM_TF"),
        ] {
            let e = clone_models(&root.join("models"), &root.join("data"), source, 1, &out)
                .expect_err(source)
                .to_string();
            assert!(e.starts_with(&format!("--sim-clones {source}: ")), "{e}");
            assert!(e.contains(part), "{source}: {e}");
            assert!(!out.exists(), "{source}: nothing written");
        }
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
