//! Model symbols ↔ broker symbols, and what the broker lets a symbol do (pure: no I/O).
//!
//! `executor_config.json` may map a model's symbol to the broker's name
//! (`"US500": {"broker_symbol": "US500.cash", …}`; default: the same name). [`resolve`] checks
//! the mapping against the broker's symbol list: every **enabled** symbol must be there, else
//! the error names each missing one with up to three close matches from the list, so a symbol the
//! broker renamed (FTMO does: `US500` → `US500.cash`) is found by the person reading it. The
//! live executor refuses to start on that error; `oracle doctor --broker` prints it.
//!
//! The broker's name is used only where the broker's symbol list is read (orders go out by
//! symbol id); the journal, the IPC lines and the drift ledger use the model's name.
//!
//! **Close matches** (a short rule, no crate): compared without case, a broker name that starts
//! with the model's name (`US500.cash`) or that the model's name starts with ranks first, then a
//! name that contains it or is contained in it, then the rest by edit distance (Levenshtein) up
//! to a third of the longer name's length (`USA500`); ties by name. At most [`MAX_CLOSE`].
//!
//! [`TradingMode`] is `ProtoOASymbol.tradingMode`: entries need [`TradingMode::Enabled`]; exits
//! go on in every mode (close-only exists to let positions be closed).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ExecutorConfig;

/// Most close matches named per missing symbol.
pub const MAX_CLOSE: usize = 3;

/// `ProtoOATradingMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TradingMode {
    /// `ENABLED` (0): orders taken.
    #[default]
    Enabled,
    /// `DISABLED_WITHOUT_PENDINGS_EXECUTION` (1).
    DisabledWithoutPendingsExecution,
    /// `DISABLED_WITH_PENDINGS_EXECUTION` (2).
    DisabledWithPendingsExecution,
    /// `CLOSE_ONLY_MODE` (3): positions may be closed, none opened.
    CloseOnly,
}

impl TradingMode {
    /// From the wire value; `None` (absent) is ENABLED, as the Open API's default; an unknown
    /// value is treated as disabled (never trade on a mode we cannot read).
    pub fn from_wire(v: Option<i32>) -> Self {
        match v {
            None | Some(0) => TradingMode::Enabled,
            Some(2) => TradingMode::DisabledWithPendingsExecution,
            Some(3) => TradingMode::CloseOnly,
            Some(_) => TradingMode::DisabledWithoutPendingsExecution,
        }
    }

    /// The Open API's name (`CLOSE_ONLY_MODE`).
    pub fn name(self) -> &'static str {
        match self {
            TradingMode::Enabled => "ENABLED",
            TradingMode::DisabledWithoutPendingsExecution => "DISABLED_WITHOUT_PENDINGS_EXECUTION",
            TradingMode::DisabledWithPendingsExecution => "DISABLED_WITH_PENDINGS_EXECUTION",
            TradingMode::CloseOnly => "CLOSE_ONLY_MODE",
        }
    }

    /// New positions may be opened.
    pub fn allows_entries(self) -> bool {
        self == TradingMode::Enabled
    }
}

impl fmt::Display for TradingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The model ↔ broker names of the symbols found at the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolMap {
    /// Model symbol → broker symbol.
    pub to_broker: BTreeMap<String, String>,
    /// Broker symbol → model symbol.
    pub to_model: BTreeMap<String, String>,
    /// Disabled symbols (`"enabled": false`) the broker does not list, with their close
    /// matches: not an error (they do not trade), worth a warning.
    pub disabled_missing: Vec<Missing>,
}

impl SymbolMap {
    /// The broker's name of a model symbol.
    pub fn broker(&self, model: &str) -> Option<&str> {
        self.to_broker.get(model).map(String::as_str)
    }
    /// The model's name of a broker symbol.
    pub fn model(&self, broker: &str) -> Option<&str> {
        self.to_model.get(broker).map(String::as_str)
    }
}

/// A symbol of the config that the broker does not list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The model's symbol (the config's key).
    pub model: String,
    /// The broker name looked for.
    pub broker: String,
    /// Up to [`MAX_CLOSE`] broker names close to it, best first.
    pub close: Vec<String>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.model == self.broker {
            write!(f, "{}: not at the broker", self.model)?;
        } else {
            write!(
                f,
                "{} (broker_symbol {:?}): not at the broker",
                self.model, self.broker
            )?;
        }
        if self.close.is_empty() {
            write!(f, " (no close match in the broker's list)")
        } else {
            write!(
                f,
                "; close matches: {} (set \"broker_symbol\" in executor_config.json)",
                self.close.join(", ")
            )
        }
    }
}

/// Enabled symbols the broker does not list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveError {
    /// Each missing enabled symbol, in the config's (sorted) order.
    pub missing: Vec<Missing>,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "executor_config.json: {} enabled symbol(s) not at the broker: ",
            self.missing.len()
        )?;
        for (i, m) in self.missing.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResolveError {}

/// Checks the config's symbols against the broker's symbol names (`ProtoOALightSymbol.symbolName`
/// of `SymbolsListRes`). `Ok`: the names of every symbol found; `Err`: every enabled symbol not
/// found, each with its close matches.
pub fn resolve(
    config: &ExecutorConfig,
    broker_names: &[String],
) -> Result<SymbolMap, ResolveError> {
    let mut map = SymbolMap::default();
    let mut missing = Vec::new();
    for (model, sc) in &config.symbols {
        if broker_names.contains(&sc.broker_symbol) {
            map.to_broker
                .insert(model.clone(), sc.broker_symbol.clone());
            map.to_model.insert(sc.broker_symbol.clone(), model.clone());
            continue;
        }
        let m = Missing {
            model: model.clone(),
            broker: sc.broker_symbol.clone(),
            close: close_matches(&sc.broker_symbol, broker_names),
        };
        if sc.enabled {
            missing.push(m);
        } else {
            map.disabled_missing.push(m);
        }
    }
    if missing.is_empty() {
        Ok(map)
    } else {
        Err(ResolveError { missing })
    }
}

/// Up to [`MAX_CLOSE`] names of `names` close to `wanted`, best first (the module's rule).
pub fn close_matches(wanted: &str, names: &[String]) -> Vec<String> {
    let w = wanted.to_ascii_uppercase();
    let mut ranked: Vec<(u8, usize, &String)> = names
        .iter()
        .filter_map(|n| {
            let u = n.to_ascii_uppercase();
            let d = levenshtein(&w, &u);
            let rank = if u.starts_with(&w) || w.starts_with(&u) {
                0
            } else if u.contains(&w) || w.contains(&u) {
                1
            } else if d * 3 <= w.len().max(u.len()) {
                2
            } else {
                return None;
            };
            Some((rank, d, n))
        })
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.2 == b.2);
    ranked
        .into_iter()
        .take(MAX_CLOSE)
        .map(|(_, _, n)| n.clone())
        .collect()
}

/// Edit distance (insertions, deletions, substitutions) between two ASCII-or-not strings, by
/// `char`.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_value;
    use serde_json::json;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn lots() -> serde_json::Value {
        json!({"lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5})
    }

    #[test]
    fn a_mapped_symbol_resolves_both_ways() {
        let mut us = lots();
        us["broker_symbol"] = json!("US500.cash");
        let c = from_value(&json!({"US500": us, "EURUSD": lots()})).unwrap();
        let m = resolve(&c, &names(&["EURUSD", "US500.cash", "US30.cash"])).unwrap();
        assert_eq!(m.broker("US500"), Some("US500.cash"));
        assert_eq!(m.model("US500.cash"), Some("US500"));
        assert_eq!(m.broker("EURUSD"), Some("EURUSD"));
        assert_eq!(m.model("US30.cash"), None);
    }

    #[test]
    fn a_missing_enabled_symbol_is_named_with_up_to_three_close_matches() {
        let c = from_value(&json!({"US500": lots(), "EURUSD": lots(), "GOLD": lots()})).unwrap();
        let broker = names(&[
            "EURUSD",
            "USA500",
            "US500.cash",
            "US30.cash",
            "GER40.cash",
            "US500.c",
            "XAUUSD",
        ]);
        let e = resolve(&c, &broker).unwrap_err();
        let models: Vec<_> = e.missing.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(models, ["GOLD", "US500"]);
        let us = &e.missing[1];
        assert_eq!(us.close, ["US500.c", "US500.cash", "USA500"]);
        assert!(e.missing[0].close.is_empty(), "{:?}", e.missing[0]);
        let text = e.to_string();
        assert!(
            text.contains("US500: not at the broker; close matches: US500.c, US500.cash, USA500"),
            "{text}"
        );
        assert!(
            text.contains("GOLD: not at the broker (no close match"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_disabled_symbol_is_no_error_but_is_listed() {
        let mut off = lots();
        off["enabled"] = json!(false);
        let c = from_value(&json!({"US500": off, "EURUSD": lots()})).unwrap();
        let m = resolve(&c, &names(&["EURUSD", "US500.cash"])).unwrap();
        assert_eq!(m.broker("US500"), None);
        assert_eq!(m.disabled_missing.len(), 1);
        assert_eq!(m.disabled_missing[0].close, ["US500.cash"]);
    }

    #[test]
    fn a_renamed_broker_symbol_names_the_configured_name_and_the_new_one() {
        let mut us = lots();
        us["broker_symbol"] = json!("US500.cash");
        let c = from_value(&json!({"US500": us})).unwrap();
        let e = resolve(&c, &names(&["US500.cash.old", "SPX500"])).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("US500 (broker_symbol \"US500.cash\"): not at the broker; close matches: US500.cash.old"),
            "{text}"
        );
    }

    #[test]
    fn close_matches_ignore_case_and_far_names() {
        assert_eq!(
            close_matches("eurusd", &names(&["EURUSD.r", "GBPUSD", "BTCUSD"])),
            ["EURUSD.r"]
        );
        assert!(close_matches("AAPL", &names(&["MSFT", "NVDA"])).is_empty());
        assert_eq!(levenshtein("US500", "USA500"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn trading_mode_reads_the_wire_values_and_only_enabled_takes_entries() {
        assert_eq!(TradingMode::from_wire(None), TradingMode::Enabled);
        assert_eq!(TradingMode::from_wire(Some(0)), TradingMode::Enabled);
        assert_eq!(
            TradingMode::from_wire(Some(1)),
            TradingMode::DisabledWithoutPendingsExecution
        );
        assert_eq!(
            TradingMode::from_wire(Some(2)),
            TradingMode::DisabledWithPendingsExecution
        );
        assert_eq!(TradingMode::from_wire(Some(3)), TradingMode::CloseOnly);
        assert_eq!(
            TradingMode::from_wire(Some(9)),
            TradingMode::DisabledWithoutPendingsExecution
        );
        assert!(TradingMode::Enabled.allows_entries());
        for m in [
            TradingMode::CloseOnly,
            TradingMode::DisabledWithPendingsExecution,
            TradingMode::DisabledWithoutPendingsExecution,
        ] {
            assert!(!m.allows_entries(), "{m}");
        }
        assert_eq!(TradingMode::CloseOnly.to_string(), "CLOSE_ONLY_MODE");
    }
}
