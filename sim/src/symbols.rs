//! Symbols: the trading specification of each instrument the sim quotes, built from the built-in
//! table, the bundled bar files and each model zip's `training_config`.
//!
//! ## Units (as on the Open API wire)
//! - Volumes are in **cents** of the base unit: `lot_size`, `min_volume`, `step_volume`,
//!   `max_volume` and an order's `volume` alike. One 100,000-unit FX lot is 10,000,000.
//! - Money is in cents of the deposit currency (USD, `moneyDigits` 2).
//!
//! ## Built-in table (the seed's three example symbols)
//! | symbol | digits | pipPosition | lotSize (cents) | 1 lot = | min / step | max |
//! |---|---|---|---|---|---|---|
//! | EURUSD | 5 | 4 | 10,000,000 | 100,000 EUR | 100,000 (0.01 lot) | 10,000,000,000 (1,000 lots) |
//! | US500 | 2 | 2 | 100 | 1 index unit ($1 per 1.00 point) | 10 (0.10 lot) | 1,000,000 (10,000 lots) |
//! | AAPL | 2 | 2 | 100 | 1 share | 100 (1 share) | 1,000,000 (10,000 shares) |
//!
//! cTrader brokers quote index and stock CFDs with `lotSize` 100 (one unit per lot) and varying
//! minimums; we chose 0.10 lot for US500 because the seed trades US500 in 0.10-lot steps, and whole
//! shares for AAPL (the seed trades 1/3/5 lots = shares). `pipPosition` follows the project's
//! contract (`points_per_pip = 10` for 3/5-digit symbols, else 1).
//!
//! ## Money per point
//! The sim makes a closed trade's money P&L equal the training environment's:
//! `money_per_point_per_lot = pip_value / points_per_pip`, and the quote→deposit rate is derived
//! from it: `rate = money_per_point_per_lot / (point × units_per_lot)` (1.0 for EURUSD, US500, AAPL).

use std::collections::BTreeMap;
use std::path::Path;

use crate::bars::{self, Bar, Period, PeriodExt};

/// The trading specification of one symbol.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolSpec {
    /// Symbol name (`EURUSD`).
    pub name: String,
    /// Price digits.
    pub digits: u32,
    /// Pip position (digits of one pip).
    pub pip_position: u32,
    /// Lot size in cents of the base unit.
    pub lot_size: i64,
    /// Minimum order volume (cents).
    pub min_volume: i64,
    /// Volume step (cents).
    pub step_volume: i64,
    /// Maximum order volume (cents).
    pub max_volume: i64,
    /// Spread in points (ask = bid + spread × point).
    pub spread_points: i64,
    /// Fixed adverse slippage on market fills, in points.
    pub slippage_points: i64,
    /// Commission per lot per round turn, in deposit currency (half charged per side).
    pub commission_per_lot: f64,
    /// Deposit money per point per lot (P&L and margin conversion).
    pub money_per_point_per_lot: f64,
    /// Base asset name (`EUR`, `US500`, `AAPL`).
    pub base_asset: String,
    /// Quote asset name (`USD`).
    pub quote_asset: String,
    /// Human description.
    pub description: String,
}

impl SymbolSpec {
    /// One point (1e-5 units per point): 10^(5 − digits).
    pub fn point_units(&self) -> i64 {
        10i64.pow(5u32.saturating_sub(self.digits))
    }

    /// Units of the base asset per lot.
    pub fn units_per_lot(&self) -> f64 {
        self.lot_size as f64 / 100.0
    }

    /// Quote→deposit conversion rate implied by `money_per_point_per_lot`.
    pub fn quote_to_deposit(&self) -> f64 {
        let point = 10f64.powi(-(self.digits as i32));
        self.money_per_point_per_lot / (point * self.units_per_lot())
    }

    /// The built-in spec for a name, if the sim knows it.
    pub fn builtin(name: &str) -> Option<Self> {
        let upper = name.to_ascii_uppercase();
        Some(match upper.as_str() {
            "EURUSD" => SymbolSpec {
                name: upper.clone(),
                digits: 5,
                pip_position: 4,
                lot_size: 10_000_000,
                min_volume: 100_000,
                step_volume: 100_000,
                max_volume: 10_000_000_000,
                spread_points: 7,
                slippage_points: 0,
                commission_per_lot: 7.0,
                money_per_point_per_lot: 1.0,
                base_asset: "EUR".into(),
                quote_asset: "USD".into(),
                description: "Euro vs US Dollar".into(),
            },
            "US500" => SymbolSpec {
                name: upper.clone(),
                digits: 2,
                pip_position: 2,
                lot_size: 100,
                min_volume: 10,
                step_volume: 10,
                max_volume: 1_000_000,
                spread_points: 50,
                slippage_points: 0,
                commission_per_lot: 0.0,
                money_per_point_per_lot: 0.01,
                base_asset: "US500".into(),
                quote_asset: "USD".into(),
                description: "US 500 index CFD".into(),
            },
            "AAPL" => SymbolSpec {
                name: upper.clone(),
                digits: 2,
                pip_position: 2,
                lot_size: 100,
                min_volume: 100,
                step_volume: 100,
                max_volume: 1_000_000,
                spread_points: 4,
                slippage_points: 0,
                commission_per_lot: 0.02,
                money_per_point_per_lot: 0.01,
                base_asset: "AAPL".into(),
                quote_asset: "USD".into(),
                description: "Apple Inc. share CFD".into(),
            },
            _ => return None,
        })
    }

    /// A generic spec for a name the sim does not know. FX-like symbols (a 6-letter pair of
    /// known currencies, or 3/5 price digits) get 100,000-unit lots (lotSize 10,000,000) like
    /// EURUSD; anything else (indices, stocks) one unit per lot (lotSize 100) like US500/AAPL.
    /// Minimum and step: 0.01 lot (a model's `lot_sizes` refine them, see
    /// [`SymbolSpec::apply_training_config`]). Maximum: 1,000 lots (FX) or 10,000 lots.
    pub fn generic(name: &str, digits: u32) -> Self {
        let upper = name.to_ascii_uppercase();
        let fx = fx_pair(&upper);
        let fx_like = fx.is_some() || matches!(digits, 3 | 5);
        let (base, quote) = fx.unwrap_or_else(|| (upper.clone(), "USD".to_string()));
        let (lot_size, min, max) = if fx_like {
            (10_000_000, 100_000, 10_000_000_000)
        } else {
            (100, 1, 1_000_000)
        };
        let point = 10f64.powi(-(digits as i32));
        SymbolSpec {
            name: upper.clone(),
            digits,
            pip_position: pip_position_for(digits),
            lot_size,
            min_volume: min,
            step_volume: min,
            max_volume: max,
            spread_points: 0,
            slippage_points: 0,
            commission_per_lot: 0.0,
            // quote == deposit unless a training_config says otherwise
            money_per_point_per_lot: point * lot_size as f64 / 100.0,
            base_asset: base,
            quote_asset: quote,
            description: upper,
        }
    }

    /// For a generic spec: minimum and step volume = the smallest positive lot of the model's
    /// `lot_sizes` (0.1 lot for an index traded in 0.1/0.3/0.5 lots, 1 lot for a stock traded
    /// in 1/3/5), so every intensity's lots are a valid volume.
    pub fn volumes_from_lot_sizes(&mut self, tc: &TrainingConfig) {
        let min_lot = tc
            .lot_sizes
            .iter()
            .flatten()
            .copied()
            .filter(|l| l.is_finite() && *l > 0.0)
            .fold(f64::INFINITY, f64::min);
        if min_lot.is_finite() {
            let v = (min_lot * self.lot_size as f64).round() as i64;
            if v >= 1 {
                self.min_volume = v;
                self.step_volume = v;
                self.max_volume = self.max_volume.max(v);
            }
        }
    }

    /// Applies a model's `training_config` (digits, point, pip_value, spread_points,
    /// slippage_points, commission_per_lot) on top of the spec.
    pub fn apply_training_config(&mut self, tc: &TrainingConfig) -> Result<(), String> {
        if let Some(d) = tc.digits {
            if d > 5 {
                return Err(format!(
                    "digits {d} > 5 cannot be quoted in 1e-5 wire units"
                ));
            }
            if d != self.digits {
                self.digits = d;
                self.pip_position = pip_position_for(d);
            }
        }
        if let Some(point) = tc.point {
            let expect = 10f64.powi(-(self.digits as i32));
            if (point - expect).abs() > expect * 1e-6 {
                return Err(format!(
                    "point {point} does not match digits {}",
                    self.digits
                ));
            }
        }
        if let Some(s) = tc.spread_points {
            self.spread_points = s.round() as i64;
        }
        if let Some(s) = tc.slippage_points {
            self.slippage_points = s.round() as i64;
        }
        if let Some(c) = tc.commission_per_lot {
            self.commission_per_lot = c;
        }
        if let Some(pv) = tc.pip_value {
            if !(pv.is_finite() && pv > 0.0) {
                return Err(format!("pip_value {pv} is not positive"));
            }
            let ppp = if matches!(self.digits, 3 | 5) {
                10.0
            } else {
                1.0
            };
            self.money_per_point_per_lot = pv / ppp;
        }
        Ok(())
    }
}

fn pip_position_for(digits: u32) -> u32 {
    if matches!(digits, 3 | 5) {
        digits - 1
    } else {
        digits
    }
}

const CURRENCIES: [&str; 20] = [
    "USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK", "PLN", "HUF",
    "CZK", "TRY", "ZAR", "MXN", "SGD", "HKD", "CNH",
];

fn fx_pair(name: &str) -> Option<(String, String)> {
    if name.len() == 6 && name.is_ascii() {
        let (b, q) = name.split_at(3);
        if CURRENCIES.contains(&b) && CURRENCIES.contains(&q) {
            return Some((b.to_string(), q.to_string()));
        }
    }
    None
}

/// The `training_config` of a model zip (the fields the sim uses; all optional).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct TrainingConfig {
    /// Price digits.
    pub digits: Option<u32>,
    /// One point.
    pub point: Option<f64>,
    /// Money per pip per lot.
    pub pip_value: Option<f64>,
    /// Spread in points.
    pub spread_points: Option<f64>,
    /// Slippage in points.
    pub slippage_points: Option<f64>,
    /// Commission per lot, round turn.
    pub commission_per_lot: Option<f64>,
    /// Lots per intensity (`[0, weak, moderate, strong]`).
    pub lot_sizes: Option<Vec<f64>>,
}

/// What the sim reads from a model zip's comment.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Symbol name (`symbol.name`, else the file name's `SYM` part).
    pub symbol: String,
    /// Timeframe (`symbol.timeframe`), if given.
    pub timeframe: Option<Period>,
    /// The training config.
    pub training: TrainingConfig,
}

#[derive(serde::Deserialize)]
struct ZipMeta {
    symbol: Option<ZipSymbol>,
    training_config: Option<TrainingConfig>,
}

#[derive(serde::Deserialize)]
struct ZipSymbol {
    name: Option<String>,
    clean: Option<String>,
    timeframe: Option<String>,
}

/// Reads the JSON metadata in a model zip's comment.
pub fn read_model_zip(path: &Path) -> Result<ModelInfo, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let archive =
        zip::ZipArchive::new(file).map_err(|e| format!("{}: not a zip: {e}", path.display()))?;
    let comment = std::str::from_utf8(archive.comment())
        .map_err(|_| format!("{}: zip comment is not UTF-8", path.display()))?;
    model_info_from_comment(path, comment)
}

fn model_info_from_comment(path: &Path, comment: &str) -> Result<ModelInfo, String> {
    let meta: ZipMeta = serde_json::from_str(comment).map_err(|e| {
        format!(
            "{}: zip comment is not the metadata JSON: {e}",
            path.display()
        )
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let (file_sym, file_tf) = split_sym_tf(stem);
    let sym = meta.symbol.as_ref();
    let symbol = sym
        .and_then(|s| s.clean.clone().or_else(|| s.name.clone()))
        .unwrap_or(file_sym)
        .to_ascii_uppercase();
    let timeframe = sym
        .and_then(|s| s.timeframe.as_deref())
        .and_then(Period::parse_name)
        .or(file_tf);
    let training = meta
        .training_config
        .ok_or_else(|| format!("{}: metadata has no training_config", path.display()))?;
    Ok(ModelInfo {
        symbol,
        timeframe,
        training,
    })
}

/// Splits `EURUSD_M15` into (`EURUSD`, Some(M15)); a name without a period suffix gives None.
pub fn split_sym_tf(stem: &str) -> (String, Option<Period>) {
    if let Some((s, tf)) = stem.rsplit_once('_') {
        if let Some(p) = Period::parse_name(tf) {
            return (s.to_ascii_uppercase(), Some(p));
        }
    }
    (stem.to_ascii_uppercase(), None)
}

/// One symbol's market data: its finest bar series.
#[derive(Clone, Debug)]
pub struct SymbolData {
    /// The spec.
    pub spec: SymbolSpec,
    /// The period of `bars`.
    pub period: Period,
    /// Bars, oldest first.
    pub bars: Vec<Bar>,
}

/// Loads every `SYM_TF.csv` (or `SYM.csv`, period inferred) in `data_dir`, and the
/// `training_config` of every `*.zip` in `models_dir`. Per symbol the finest-period file is the
/// source of every period (coarser ones are aggregated from it; other files of the symbol are
/// ignored with a warning). A bad file is skipped with a warning, never fatal for the others.
/// Symbols with a model but no bars, or bars but no spec, are reported in `warnings`.
pub fn load_symbols(
    data_dir: Option<&Path>,
    models_dir: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Vec<SymbolData> {
    let mut series: BTreeMap<String, (Period, Vec<Bar>, String)> = BTreeMap::new();
    if let Some(dir) = data_dir {
        for path in sorted_files(dir, "csv", warnings) {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let (sym, tf) = split_sym_tf(&stem);
            let bars = match bars::read_bar_file(&path) {
                Ok(b) => b,
                Err(e) => {
                    warnings.push(format!("skipped bar file: {e}"));
                    continue;
                }
            };
            let Some(period) = tf.or_else(|| bars::infer_period(&bars)) else {
                warnings.push(format!(
                    "skipped {}: cannot tell its period",
                    path.display()
                ));
                continue;
            };
            let finer = match series.get(&sym) {
                Some((p, _, other)) if *p <= period => {
                    warnings.push(format!(
                        "{}: using {other} (finer) for {sym}; ignored",
                        path.display()
                    ));
                    false
                }
                Some((_, _, other)) => {
                    warnings.push(format!(
                        "{other}: using {} (finer) for {sym}; ignored",
                        path.display()
                    ));
                    true
                }
                None => true,
            };
            if finer {
                series.insert(sym, (period, bars, path.display().to_string()));
            }
        }
    }
    let mut configs: BTreeMap<String, TrainingConfig> = BTreeMap::new();
    if let Some(dir) = models_dir {
        for path in sorted_files(dir, "zip", warnings) {
            match read_model_zip(&path) {
                Ok(info) => {
                    configs.entry(info.symbol).or_insert(info.training);
                }
                Err(e) => warnings.push(format!("skipped model: {e}")),
            }
        }
    }
    let mut out = Vec::new();
    for (name, (period, bars, _)) in series {
        let max_decimals = bars
            .iter()
            .flat_map(|b| [b.open, b.high, b.low, b.close])
            .map(|p| {
                let mut d = 5;
                let mut v = p;
                while d > 0 && v % 10 == 0 {
                    v /= 10;
                    d -= 1;
                }
                d
            })
            .max()
            .unwrap_or(5);
        let builtin = SymbolSpec::builtin(&name);
        let digits = configs
            .get(&name)
            .and_then(|tc| tc.digits)
            .unwrap_or(max_decimals);
        let fresh = || {
            builtin
                .clone()
                .unwrap_or_else(|| SymbolSpec::generic(&name, digits))
        };
        let mut spec = fresh();
        if let Some(tc) = configs.get(&name) {
            match spec.apply_training_config(tc) {
                Err(e) => {
                    warnings.push(format!("{name}: training_config ignored: {e}"));
                    spec = fresh();
                }
                Ok(()) if builtin.is_none() => spec.volumes_from_lot_sizes(tc),
                Ok(()) => {}
            }
        } else if SymbolSpec::builtin(&name).is_none() {
            warnings.push(format!(
                "{name}: no model training_config and not built in; generic spec"
            ));
        }
        out.push(SymbolData { spec, period, bars });
    }
    for name in configs.keys() {
        if !out.iter().any(|s| &s.spec.name == name) {
            warnings.push(format!(
                "{name}: a model names it but no bar file does; not quoted"
            ));
        }
    }
    out
}

fn sorted_files(dir: &Path, ext: &str, warnings: &mut Vec<String>) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case(ext))
            })
            .collect(),
        Err(e) => {
            warnings.push(format!("{}: {e}", dir.display()));
            Vec::new()
        }
    };
    v.sort();
    v
}

/// Deterministic synthetic bars for `name` (a seeded random walk on the symbol's point grid,
/// Saturdays and Sundays left out as gaps), for demos and tests when no bar file exists. Uses the
/// built-in spec if the sim knows the name, else a generic 5-digit spec.
pub fn synthetic(name: &str, period: Period, n: usize, start_ms: i64, seed: u64) -> SymbolData {
    use rand::{Rng, SeedableRng};
    let spec = SymbolSpec::builtin(name).unwrap_or_else(|| SymbolSpec::generic(name, 5));
    let pu = spec.point_units();
    let (mut price, step) = match spec.name.as_str() {
        "US500" => (450_000_000, 25), // 4500.00, moves of up to 25 points
        "AAPL" => (18_000_000, 5),
        _ => (110_000, 3),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    let len = period.fixed_ms().unwrap_or(60_000);
    let mut t = period.bucket_start(start_ms);
    let mut bars = Vec::with_capacity(n);
    while bars.len() < n {
        if matches!(
            bars::date_of(t).weekday(),
            oracle_ipc::time::Weekday::Saturday | oracle_ipc::time::Weekday::Sunday
        ) {
            t += len;
            continue;
        }
        let open = price;
        let mut hi = open;
        let mut lo = open;
        let mut p = open;
        for _ in 0..4 {
            p += rng.random_range(-step..=step) * pu;
            p = p.max(10 * pu);
            hi = hi.max(p);
            lo = lo.min(p);
        }
        let close = p;
        hi += rng.random_range(0..=step / 2) * pu;
        lo = (lo - rng.random_range(0..=step / 2) * pu).max(pu);
        bars.push(Bar {
            time_ms: t,
            open,
            high: hi,
            low: lo,
            close,
            volume: rng.random_range(1..500),
        });
        price = close;
        t += len;
    }
    SymbolData { spec, period, bars }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_volumes_in_cents() {
        let e = SymbolSpec::builtin("eurusd").unwrap();
        assert_eq!(
            (e.lot_size, e.min_volume, e.step_volume),
            (10_000_000, 100_000, 100_000)
        );
        assert_eq!(e.point_units(), 1);
        assert!((e.quote_to_deposit() - 1.0).abs() < 1e-12);
        let u = SymbolSpec::builtin("US500").unwrap();
        assert_eq!(u.point_units(), 1000);
        assert!((u.quote_to_deposit() - 1.0).abs() < 1e-12);
        let a = SymbolSpec::builtin("AAPL").unwrap();
        assert_eq!((a.lot_size, a.min_volume), (100, 100));
    }

    #[test]
    fn training_config_overrides() {
        let mut s = SymbolSpec::builtin("EURUSD").unwrap();
        let tc = TrainingConfig {
            digits: Some(5),
            point: Some(0.00001),
            pip_value: Some(10.0),
            spread_points: Some(9.0),
            slippage_points: Some(2.0),
            commission_per_lot: Some(7.0),
            lot_sizes: None,
        };
        s.apply_training_config(&tc).unwrap();
        assert_eq!((s.spread_points, s.slippage_points), (9, 2));
        assert!((s.money_per_point_per_lot - 1.0).abs() < 1e-12);
        let mut j = SymbolSpec::generic("USDJPY", 3);
        assert_eq!(j.lot_size, 10_000_000);
        j.apply_training_config(&TrainingConfig {
            pip_value: Some(6.7),
            ..Default::default()
        })
        .unwrap();
        assert!((j.quote_to_deposit() - 0.0067).abs() < 1e-9);
        let bad = TrainingConfig {
            digits: Some(5),
            point: Some(0.01),
            ..Default::default()
        };
        assert!(
            SymbolSpec::builtin("EURUSD")
                .unwrap()
                .apply_training_config(&bad)
                .is_err()
        );
    }

    #[test]
    fn synthetic_is_valid_and_deterministic() {
        let a = synthetic("EURUSD", Period::M15, 300, 1_614_556_800_000, 7);
        let b = synthetic("EURUSD", Period::M15, 300, 1_614_556_800_000, 7);
        assert_eq!(a.bars, b.bars);
        let text = std::iter::once("time,open,high,low,close,volume".to_string())
            .chain(a.bars.iter().map(|b| {
                format!(
                    "{},{},{},{},{},{}",
                    bars::format_iso_utc(b.time_ms),
                    bars::format_price(b.open, 5),
                    bars::format_price(b.high, 5),
                    bars::format_price(b.low, 5),
                    bars::format_price(b.close, 5),
                    b.volume
                )
            }))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(bars::parse_bars("synthetic", &text).unwrap(), a.bars);
        let u = synthetic("US500", Period::H1, 50, 0, 1);
        assert!(
            u.bars
                .iter()
                .all(|b| b.low % 1000 == 0 && b.high % 1000 == 0)
        );
    }

    #[test]
    fn synthetic_bars_leave_out_saturday_and_sunday_utc_only() {
        // From Friday 2021-03-05 20:00 UTC: the Friday evening, then Monday 00:00, nothing between.
        let t0 = bars::parse_iso_utc("2021-03-05T20:00:00Z").unwrap();
        let a = synthetic("EURUSD", Period::M15, 40, t0, 7);
        let at = |i: usize| bars::format_iso_utc(a.bars[i].time_ms);
        assert_eq!(at(0), "2021-03-05T20:00:00Z");
        assert_eq!(at(15), "2021-03-05T23:45:00Z");
        assert_eq!(at(16), "2021-03-08T00:00:00Z");
        assert_eq!(at(39), "2021-03-08T05:45:00Z");
    }

    #[test]
    fn generic_specs_follow_the_model() {
        let tc = |digits, pip_value, lots: [f64; 4]| TrainingConfig {
            digits: Some(digits),
            pip_value: Some(pip_value),
            lot_sizes: Some(lots.to_vec()),
            ..Default::default()
        };
        for (name, c, lot, min) in [
            (
                "SYNFX01",
                tc(5, 10.0, [0.0, 0.01, 0.03, 0.05]),
                10_000_000,
                100_000,
            ),
            ("SYNIDX01", tc(2, 0.01, [0.0, 0.1, 0.3, 0.5]), 100, 10),
            ("SYNSTK01", tc(2, 0.01, [0.0, 1.0, 3.0, 5.0]), 100, 100),
        ] {
            let mut s = SymbolSpec::generic(name, c.digits.unwrap());
            s.apply_training_config(&c).unwrap();
            s.volumes_from_lot_sizes(&c);
            assert_eq!(
                (s.lot_size, s.min_volume, s.step_volume),
                (lot, min, min),
                "{name}"
            );
            assert!((s.quote_to_deposit() - 1.0).abs() < 1e-9, "{name}");
        }
    }

    #[test]
    fn zip_comment_metadata() {
        let c = r#"{"format_version":"2.0","symbol":{"name":"EURUSD","clean":"EURUSD","timeframe":"M15"},
            "training_config":{"point":0.00001,"pip_value":10.0,"spread_points":7,"slippage_points":2,
            "commission_per_lot":7.0,"digits":5,"lot_sizes":[0,0.01,0.03,0.05]}}"#;
        let info = model_info_from_comment(Path::new("models/EURUSD_M15.zip"), c).unwrap();
        assert_eq!(info.symbol, "EURUSD");
        assert_eq!(info.timeframe, Some(Period::M15));
        assert_eq!(info.training.spread_points, Some(7.0));
        assert!(model_info_from_comment(Path::new("x.zip"), "{}").is_err());
        assert_eq!(split_sym_tf("US500_H1"), ("US500".into(), Some(Period::H1)));
    }
}
