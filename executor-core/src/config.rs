//! The executor's configuration, as values: lots per symbol and the global risk block of
//! `executor_config.json`, validated from a parsed JSON document.
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
//! `"risk": {"preset": "ftmo-1step"}` (or `ftmo-2step`, `custom`) names a prop firm's rules
//! ([`crate::propfirm`], `docs/propfirm.md`): a firm's preset fixes the percents and the day's zone.
//! `"flat_before_weekend": {"minutes": 15}` and `"news": {"file": "news.csv", "minutes": 2}` switch
//! on a funded account's optional rules ([`crate::restrictions`]); both are off by default.
//!
//! Symbols sit at the top level as in the seed; `risk` is reserved, and so are the shell's
//! sections [`SHELL_SECTIONS`] (`alerts`, `metrics`). Every error names
//! its key ([`KeyError`]). [`add_missing`] adds the symbols found in the models folder without an
//! entry (`enabled: false`, the default lots) keeping what the user wrote. Reading and writing the
//! file is the shell's (`oracle_executor::config`): this module reads no file.

use std::collections::BTreeMap;

use oracle_ipc::Intensity;
use serde_json::{Map, Value};

use crate::propfirm::{PRESET_NAMES, Preset, Rules};
use crate::risk::{DailyAnchor, DayStart, RiskConfig};

/// Top-level keys that are the shell's sections, not symbols: `alerts` (docs/alerts.md) and
/// `metrics` (docs/metrics.md). The shell reads and checks them; here they are skipped.
pub const SHELL_SECTIONS: [&str; 2] = ["alerts", "metrics"];

/// Default lots for a symbol added automatically (seed table, "Default" column).
pub const DEFAULT_LOTS: [f64; 3] = [0.01, 0.03, 0.05];

/// Per-symbol settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolConfig {
    /// Trade this symbol (entries). Exits are always allowed.
    pub enabled: bool,
    /// Lots for intensity 1, 2, 3.
    pub lots: [f64; 3],
    /// Largest spread accepted for an entry, in points (None = the risk block's default).
    pub max_spread_points: Option<f64>,
    /// `slippageInPoints` of entries (None = the risk block's default).
    pub slippage_points: Option<u32>,
    /// The broker's name of the symbol (`US500.cash` at FTMO); default: the model's symbol.
    /// Only the broker's symbol list sees it: journal, IPC and ledger use the model's name.
    pub broker_symbol: String,
}

/// The whole file, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorConfig {
    /// Risk limits.
    pub risk: RiskConfig,
    /// Symbols by name.
    pub symbols: BTreeMap<String, SymbolConfig>,
}

impl ExecutorConfig {
    /// Lots of `symbol` for an intensity 1..=3 (`None` when flat or for a symbol not configured).
    pub fn lots(&self, symbol: &str, intensity: Intensity) -> Option<f64> {
        let s = self.symbols.get(symbol)?;
        Some(s.lots[intensity.lot_index()?])
    }
}

/// One problem in the file, by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// Dotted path (`EURUSD.lot_weak`).
    pub key: String,
    /// What is wrong.
    pub msg: String,
}

const SYMBOL_KEYS: [&str; 7] = [
    "enabled",
    "broker_symbol",
    "lot_weak",
    "lot_moderate",
    "lot_strong",
    "max_spread_points",
    "slippage_points",
];
const RISK_KEYS: [&str; 12] = [
    "preset",
    "flat_before_weekend",
    "news",
    "daily_loss_pct",
    "max_drawdown_pct",
    "initial_balance",
    "day_start",
    "daily_anchor",
    "stale_after_secs",
    "slippage_points",
    "max_spread_points",
    "max_margin_use",
];

/// Validates a parsed document.
pub fn from_value(v: &Value) -> Result<ExecutorConfig, Vec<KeyError>> {
    let mut errs = Vec::new();
    let mut e = |key: String, msg: &str| {
        errs.push(KeyError {
            key,
            msg: msg.to_string(),
        })
    };
    let Some(top) = v.as_object() else {
        e("(top)".into(), "must be a JSON object");
        return Err(errs);
    };
    let mut risk = RiskConfig::default();
    let mut symbols = BTreeMap::new();
    for (k, val) in top {
        if SHELL_SECTIONS.contains(&k.as_str()) {
            // The shell's own settings (`oracle_executor::alerting`, `::metrics`): not symbols.
            continue;
        }
        if k == "risk" {
            let Some(r) = val.as_object() else {
                e("risk".into(), "must be an object");
                continue;
            };
            for (rk, rv) in r {
                let key = format!("risk.{rk}");
                match rk.as_str() {
                    "daily_loss_pct" | "max_drawdown_pct" | "max_margin_use" => match rv.as_f64() {
                        Some(x) if (0.0..=100.0).contains(&x) && x > 0.0 => match rk.as_str() {
                            "daily_loss_pct" => risk.daily_loss_pct = x,
                            "max_drawdown_pct" => risk.max_drawdown_pct = x,
                            _ => risk.max_margin_use_pct = x,
                        },
                        _ => e(key, "must be a number in (0, 100] (percent)"),
                    },
                    "initial_balance" => match rv {
                        Value::Null => risk.initial_balance = None,
                        _ => match rv.as_f64() {
                            Some(x) if x > 0.0 => risk.initial_balance = Some(x),
                            _ => e(
                                key,
                                "must be a positive number or null (null = the balance at first start)",
                            ),
                        },
                    },
                    "day_start" => match rv.as_str().map(DayStart::parse) {
                        Some(Ok(d)) => risk.day_start = d,
                        why => e(
                            key,
                            &format!(
                                "{}must be an IANA time zone name (\"Europe/Prague\": FTMO's midnight, DST included; \"CET\" means the same), \"UTC\" or \"UTC+HH:MM\"/\"UTC-HH:MM\"",
                                match why {
                                    Some(Err(why)) => format!("{why}: "),
                                    _ => String::new(),
                                }
                            ),
                        ),
                    },
                    "daily_anchor" => match rv.as_str() {
                        Some("balance") => risk.daily_anchor = DailyAnchor::Balance,
                        Some("equity") => risk.daily_anchor = DailyAnchor::Equity,
                        Some("max") => risk.daily_anchor = DailyAnchor::MaxOfBalanceEquity,
                        _ => e(key, "must be \"balance\", \"equity\" or \"max\""),
                    },
                    "stale_after_secs" => match rv.as_u64() {
                        Some(x) if x > 0 => risk.stale_after_secs = x as i64,
                        _ => e(
                            key,
                            "must be a positive integer (seconds after the bar's close)",
                        ),
                    },
                    "slippage_points" => match rv.as_u64() {
                        Some(x) if x <= u64::from(u32::MAX) => risk.slippage_points = x as u32,
                        _ => e(key, "must be a non-negative integer (points)"),
                    },
                    "max_spread_points" => match rv {
                        Value::Null => risk.max_spread_points = None,
                        _ => match rv.as_f64() {
                            Some(x) if x >= 0.0 => risk.max_spread_points = Some(x),
                            _ => e(key, "must be a non-negative number or null"),
                        },
                    },
                    "preset" => match rv.as_str().map(Preset::parse) {
                        Some(Ok(p)) => risk.preset = Some(p),
                        Some(Err(why)) => e(key, &why),
                        None => e(
                            key,
                            &format!("must be one of {} (a string)", PRESET_NAMES.join(", ")),
                        ),
                    },
                    "flat_before_weekend" => match flat_before_weekend(rv) {
                        Ok(m) => risk.flat_before_weekend_minutes = m,
                        Err((sub, why)) => e(format!("{key}{sub}"), &why),
                    },
                    "news" => match news_rule(rv) {
                        Ok(n) => risk.news = n,
                        Err((sub, why)) => e(format!("{key}{sub}"), &why),
                    },
                    _ => e(
                        key,
                        &format!("unknown key (known: {})", RISK_KEYS.join(", ")),
                    ),
                }
            }
            for (key, why) in preset_conflicts(&mut risk, r) {
                e(format!("risk.{key}"), &why);
            }
            continue;
        }
        if !oracle_ipc::valid_symbol(k) {
            e(
                k.clone(),
                "not a symbol name (1-32 of A-Z a-z 0-9 . _ - #) nor \"risk\"",
            );
            continue;
        }
        let Some(s) = val.as_object() else {
            e(
                k.clone(),
                "must be an object {enabled, lot_weak, lot_moderate, lot_strong}",
            );
            continue;
        };
        let mut sc = SymbolConfig {
            enabled: true,
            lots: [f64::NAN; 3],
            max_spread_points: None,
            slippage_points: None,
            broker_symbol: k.clone(),
        };
        for (sk, sv) in s {
            let key = format!("{k}.{sk}");
            match sk.as_str() {
                "enabled" => match sv.as_bool() {
                    Some(b) => sc.enabled = b,
                    None => e(key, "must be true or false"),
                },
                "lot_weak" | "lot_moderate" | "lot_strong" => {
                    let i = match sk.as_str() {
                        "lot_weak" => 0,
                        "lot_moderate" => 1,
                        _ => 2,
                    };
                    match sv.as_f64() {
                        Some(x) if x > 0.0 && x.is_finite() => sc.lots[i] = x,
                        Some(_) => e(key, "must be > 0 lots (negative or zero lots are refused)"),
                        None => e(key, "must be a number (lots)"),
                    }
                }
                "max_spread_points" => match sv {
                    Value::Null => {}
                    _ => match sv.as_f64() {
                        Some(x) if x >= 0.0 => sc.max_spread_points = Some(x),
                        _ => e(key, "must be a non-negative number (points) or null"),
                    },
                },
                "slippage_points" => match sv.as_u64() {
                    Some(x) if x <= u64::from(u32::MAX) => sc.slippage_points = Some(x as u32),
                    _ => e(key, "must be a non-negative integer (points)"),
                },
                "broker_symbol" => match sv.as_str() {
                    Some(b) if oracle_ipc::valid_symbol(b) => sc.broker_symbol = b.to_string(),
                    _ => e(
                        key,
                        "must be the broker's symbol name, a string (1-32 of A-Z a-z 0-9 . _ - #), e.g. \"US500.cash\"",
                    ),
                },
                _ => e(
                    key,
                    &format!("unknown key (known: {})", SYMBOL_KEYS.join(", ")),
                ),
            }
        }
        for (i, name) in ["lot_weak", "lot_moderate", "lot_strong"]
            .iter()
            .enumerate()
        {
            if sc.lots[i].is_nan() && s.get(*name).is_none() {
                e(format!("{k}.{name}"), "missing");
            }
        }
        let [w, m, st] = sc.lots;
        if w.is_finite() && m.is_finite() && st.is_finite() && !(w <= m && m <= st) {
            e(
                k.clone(),
                &format!(
                    "lots must not decrease: lot_weak {w} <= lot_moderate {m} <= lot_strong {st}"
                ),
            );
        }
        symbols.insert(k.clone(), sc);
    }
    // Two model symbols on one broker symbol would trade one instrument twice.
    let mut by_broker: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, sc) in &symbols {
        by_broker.entry(&sc.broker_symbol).or_default().push(name);
    }
    for (broker, models) in by_broker {
        if models.len() > 1 {
            errs.push(KeyError {
                key: models
                    .iter()
                    .map(|m| format!("{m}.broker_symbol"))
                    .collect::<Vec<_>>()
                    .join(", "),
                msg: format!(
                    "{} are all mapped to the broker symbol {broker:?}: one broker symbol per model symbol",
                    models.join(" and ")
                ),
            });
        }
    }
    if errs.is_empty() {
        Ok(ExecutorConfig { risk, symbols })
    } else {
        Err(errs)
    }
}

/// The longest window either optional rule takes, minutes (a day).
const MAX_RULE_MINUTES: u64 = 1440;

/// `minutes` of an optional rule's block: an integer in `lo..=1440`.
fn rule_minutes(v: Option<&Value>, lo: u64) -> Result<u32, (String, String)> {
    match v.map(Value::as_u64) {
        Some(Some(m)) if (lo..=MAX_RULE_MINUTES).contains(&m) => Ok(m as u32),
        Some(_) => Err((
            ".minutes".into(),
            format!("must be an integer from {lo} to {MAX_RULE_MINUTES} (minutes)"),
        )),
        None => Err((".minutes".into(), "missing".into())),
    }
}

/// The keys of an optional rule's block other than `known`: the first one, as an error.
fn unknown_subkey(o: &Map<String, Value>, known: &[&str]) -> Result<(), (String, String)> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err((
            format!(".{k}"),
            format!("unknown key (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `risk.flat_before_weekend`: `{"minutes": N}` (1..=1440), or `null`/`false` (off). Errors
/// name the sub-key (appended to `risk.flat_before_weekend`).
fn flat_before_weekend(v: &Value) -> Result<Option<u32>, (String, String)> {
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Object(o) => {
            unknown_subkey(o, &["minutes"])?;
            rule_minutes(o.get("minutes"), 1).map(Some)
        }
        _ => Err((
            String::new(),
            "must be an object {\"minutes\": N} (close every position N minutes before the symbol's last close of the week), or null".into(),
        )),
    }
}

/// `risk.news`: `{"file": "news.csv", "minutes": N}` (minutes 0..=1440, default 2), or
/// `null`/`false` (off).
fn news_rule(v: &Value) -> Result<Option<crate::risk::NewsRule>, (String, String)> {
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Object(o) => {
            unknown_subkey(o, &["file", "minutes"])?;
            let file = match o.get("file").map(Value::as_str) {
                Some(Some(f)) if !f.trim().is_empty() => f.to_string(),
                Some(_) => {
                    return Err((
                        ".file".into(),
                        "must be the news calendar's path, a non-empty string (docs/propfirm.md)"
                            .into(),
                    ));
                }
                None => return Err((".file".into(), "missing".into())),
            };
            let minutes = match o.get("minutes") {
                None => 2,
                m => rule_minutes(m, 0)?,
            };
            Ok(Some(crate::risk::NewsRule { file, minutes }))
        }
        _ => Err((
            String::new(),
            "must be an object {\"file\": \"news.csv\", \"minutes\": 2}, or null".into(),
        )),
    }
}

/// A firm's preset fixes its limits: sets them in `risk` and names each key the file sets to
/// another value (`custom` keeps the file's). Every preset anchors the day on the balance.
fn preset_conflicts(
    risk: &mut RiskConfig,
    block: &Map<String, Value>,
) -> Vec<(&'static str, String)> {
    let Some(p) = risk.preset else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if risk.daily_anchor != DailyAnchor::Balance {
        out.push((
            "daily_anchor",
            format!(
                "must be \"balance\" (or absent) with preset {:?}: the prop-firm guard anchors the day on the balance at midnight",
                p.name()
            ),
        ));
    }
    if p == Preset::Custom {
        return out;
    }
    let rules = Rules::preset(p);
    let fixed = |name: &str, given: String, want: String| {
        format!(
            "is {given} but preset {:?} fixes it at {want}; leave it out, or set \"preset\": \"custom\" to choose {name}",
            p.name()
        )
    };
    // The file's own values (one that is no percent or no zone has its error already).
    for (key, want) in [
        ("daily_loss_pct", rules.daily_loss_pct),
        ("max_drawdown_pct", rules.max_loss_pct),
    ] {
        if let Some(given) = block.get(key).and_then(Value::as_f64)
            && given != want
        {
            out.push((key, fixed(key, given.to_string(), want.to_string())));
        }
    }
    if let Some(given) = block
        .get("day_start")
        .and_then(Value::as_str)
        .and_then(|z| DayStart::parse(z).ok())
        && given != rules.day_start
    {
        out.push((
            "day_start",
            fixed(
                "day_start",
                format!("{:?}", given.name()),
                format!("{:?}", rules.day_start.name()),
            ),
        ));
    }
    risk.daily_loss_pct = rules.daily_loss_pct;
    risk.max_drawdown_pct = rules.max_loss_pct;
    risk.day_start = rules.day_start;
    out
}

/// Adds `enabled: false` + default lots for each symbol of `seen` missing from `doc`; returns the
/// names added. Existing entries and their order are left as they are.
pub fn add_missing(doc: &mut Value, seen: &[String]) -> Vec<String> {
    let Some(top) = doc.as_object_mut() else {
        return Vec::new();
    };
    let mut added = Vec::new();
    for s in seen {
        if s != "risk" && !top.contains_key(s) {
            let mut m = Map::new();
            m.insert("enabled".into(), Value::Bool(false));
            for (k, v) in ["lot_weak", "lot_moderate", "lot_strong"]
                .iter()
                .zip(DEFAULT_LOTS)
            {
                m.insert((*k).into(), serde_json::json!(v));
            }
            top.insert(s.clone(), Value::Object(m));
            added.push(s.clone());
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_example_is_valid() {
        let v = json!({"EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}, "US500": {"lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50}, "AAPL": {"lot_weak": 1, "lot_moderate": 3, "lot_strong": 5}});
        let c = from_value(&v).unwrap();
        assert_eq!(c.lots("AAPL", Intensity::STRONG), Some(5.0));
        assert_eq!(c.lots("US500", Intensity::WEAK), Some(0.10));
        assert_eq!(c.lots("US500", Intensity::MODERATE), Some(0.30));
        assert_eq!(c.lots("US500", Intensity::FLAT), None);
        assert!(c.symbols["EURUSD"].enabled);
        assert_eq!(c.risk, RiskConfig::default());
    }

    #[test]
    fn broker_symbol_defaults_to_the_model_symbol_and_takes_the_brokers_name() {
        let v = json!({
            "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
            "US500": {"broker_symbol": "US500.cash", "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5},
        });
        let c = from_value(&v).unwrap();
        assert_eq!(c.symbols["EURUSD"].broker_symbol, "EURUSD");
        assert_eq!(c.symbols["US500"].broker_symbol, "US500.cash");
        let bad = json!({"US500": {"broker_symbol": 500, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5}});
        let errs = from_value(&bad).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "US500.broker_symbol");
    }

    #[test]
    fn two_model_symbols_on_one_broker_symbol_is_an_error_naming_both() {
        let lots = |b: &str| json!({"broker_symbol": b, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5});
        let v = json!({"US500": lots("US500.cash"), "SPX": lots("US500.cash"), "US30": lots("US30.cash")});
        let errs = from_value(&v).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "SPX.broker_symbol, US500.broker_symbol");
        assert!(errs[0].msg.contains("SPX and US500"), "{}", errs[0].msg);
        assert!(errs[0].msg.contains("\"US500.cash\""), "{}", errs[0].msg);
        // A model symbol left on its own name collides with another mapped onto that name.
        let v = json!({"US500": lots("US500"), "SPX": lots("US500")});
        let errs = from_value(&v).unwrap_err();
        assert!(
            errs[0].key.contains("SPX") && errs[0].key.contains("US500"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_shells_alerts_and_metrics_sections_are_not_symbols() {
        // `oracle doctor` and the executor read the same file: a section is no symbol to refuse.
        let v = json!({
            "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
            "alerts": {"webhook_url": "https://hooks.example.com/x", "events": ["halt"]},
            "metrics": {"listen": "127.0.0.1:9464"}
        });
        let c = from_value(&v).expect("the sections are skipped");
        assert_eq!(c.symbols.keys().collect::<Vec<_>>(), ["EURUSD"]);
        // A symbol is still checked as one.
        let errs = from_value(&json!({"alertz": {"enabled": 1}})).unwrap_err();
        assert!(errs.iter().any(|e| e.key.starts_with("alertz")), "{errs:?}");
    }

    #[test]
    fn errors_by_key() {
        let v = json!({
            "EURUSD": {"lot_weak": -0.01, "lot_moderate": 0.03, "lot_strong": 0.05, "lot_wek": 1},
            "US500": {"lot_weak": 0.5, "lot_moderate": 0.3, "lot_strong": 0.5},
            "AAPL": {"lot_weak": 1, "lot_moderate": 3},
            "risk": {"daily_loss": 5},
        });
        let errs = from_value(&v).unwrap_err();
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"EURUSD.lot_weak"), "{errs:?}");
        assert!(keys.contains(&"EURUSD.lot_wek"), "{errs:?}");
        assert!(keys.contains(&"US500"), "{errs:?}");
        assert!(keys.contains(&"AAPL.lot_strong"), "{errs:?}");
        assert!(keys.contains(&"risk.daily_loss"), "{errs:?}");
    }

    #[test]
    fn day_start_takes_an_iana_zone_and_refuses_an_unknown_one_naming_the_key() {
        let day = |z: &str| from_value(&json!({"risk": {"day_start": z}}));
        let ny = day("America/New_York").unwrap().risk.day_start;
        assert_eq!(ny.name(), "America/New_York");
        // The old spelling stays valid: CET is FTMO's Prague midnight, the default.
        assert_eq!(day("CET").unwrap().risk, RiskConfig::default());
        assert_eq!(day("Europe/Prague").unwrap().risk, RiskConfig::default());
        for bad in ["Europe/Pragu", "UTC+25:00"] {
            let errs = day(bad).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].key, "risk.day_start");
            assert!(errs[0].msg.contains(bad), "{errs:?}");
            assert!(errs[0].msg.contains("IANA"), "{errs:?}");
        }
        let errs = from_value(&json!({"risk": {"day_start": 1}})).unwrap_err();
        assert_eq!(errs[0].key, "risk.day_start");
    }
}
