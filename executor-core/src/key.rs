//! The executor's names for a model's stream ([`StreamKey`]: symbol + timeframe, the system's
//! one key, `Copy`, no heap) and their text at the edges.
//!
//! A model is keyed by the stream it trades. Its text, byte for byte what the executor wrote
//! before the key was typed:
//!
//! - [`KeyText::model_name`]: `EURUSD_M15` (logs, operator output, the drift ledger);
//! - [`KeyText::label`]: `oracle:EURUSD_M15`, the broker position label (on the wire);
//! - [`serde`]: the journal's `{"symbol":"EURUSD","tf":"M15"}` (what a restart reads); a bad
//!   symbol or timeframe in a journal line is an error naming it.

use std::fmt;

pub use oracle_ipc::{StreamKey, StreamKeyError, Symbol, Timeframe};

/// A model's stream key as the executor writes it.
pub trait KeyText {
    /// `EURUSD_M15`: the model's name.
    fn model_name(&self) -> ModelName;
    /// `oracle:EURUSD_M15`: the broker position label of the model's positions.
    fn label(&self) -> String;
}

impl KeyText for StreamKey {
    fn model_name(&self) -> ModelName {
        ModelName(*self)
    }

    fn label(&self) -> String {
        format!("oracle:{}", self.model_name())
    }
}

/// The order the executor lists a model's orders in (a flatten's closes, the held exits, the
/// operator's rows): by symbol, then by timeframe *name* (`EURUSD H1` before `EURUSD M15`),
/// as before the key was typed. [`StreamKey`]'s own order (by timeframe length) is the maps'.
pub fn by_name(a: &StreamKey, b: &StreamKey) -> std::cmp::Ordering {
    a.symbol
        .cmp(&b.symbol)
        .then_with(|| a.timeframe.as_str().cmp(b.timeframe.as_str()))
}

/// A key shown as its model's name, `EURUSD_M15` (see [`KeyText::model_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelName(pub StreamKey);

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.0.symbol, self.0.timeframe)
    }
}

/// The key of `symbol` (a name the edge already checked, or not) on `tf`; the error names the
/// symbol at fault.
pub fn key_of(symbol: &str, tf: Timeframe) -> Result<StreamKey, KeyError> {
    Symbol::new(symbol)
        .map(|s| StreamKey::new(s, tf))
        .map_err(|_| KeyError::Symbol(symbol.to_string()))
}

/// A model's symbol or timeframe text that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a symbol name.
    #[error("symbol {0:?} is not 1-32 bytes of A-Z a-z 0-9 . _ - #")]
    Symbol(String),
    /// Not a timeframe name.
    #[error("timeframe {0:?} is not one of M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1 MN1")]
    Timeframe(String),
}

/// The key of `symbol` and `tf` as text (a file's, a journal's); the error names the one at
/// fault.
pub fn parse_key(symbol: &str, tf: &str) -> Result<StreamKey, KeyError> {
    let timeframe = Timeframe::from_name(tf).ok_or_else(|| KeyError::Timeframe(tf.to_string()))?;
    key_of(symbol, timeframe)
}

/// The journal's form of a key, `{"symbol":"EURUSD","tf":"M15"}` (the form the executor has
/// always written): use with `#[serde(with = "crate::key::serde")]`.
pub mod serde {
    use ::serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::StreamKey;

    #[derive(Serialize)]
    struct Out<'a> {
        symbol: &'a str,
        tf: &'a str,
    }

    #[derive(Deserialize)]
    struct In<'a> {
        #[serde(borrow)]
        symbol: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        tf: std::borrow::Cow<'a, str>,
    }

    /// Writes `{"symbol":…,"tf":…}`.
    pub fn serialize<S: Serializer>(k: &StreamKey, s: S) -> Result<S::Ok, S::Error> {
        Out {
            symbol: k.symbol.as_str(),
            tf: k.timeframe.as_str(),
        }
        .serialize(s)
    }

    /// Reads `{"symbol":…,"tf":…}`; a bad symbol or timeframe is an error naming it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StreamKey, D::Error> {
        let k = In::deserialize(d)?;
        super::parse_key(&k.symbol, &k.tf).map_err(::serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_model_and_labels_its_positions_as_before() {
        let k = parse_key("EURUSD", "M15").unwrap();
        assert_eq!(k.model_name().to_string(), "EURUSD_M15");
        assert_eq!(k.label(), "oracle:EURUSD_M15");
    }

    #[test]
    fn models_are_listed_by_symbol_then_timeframe_name_as_before() {
        let k = |s, t| parse_key(s, t).unwrap();
        let mut keys = vec![
            k("GBPUSD", "M15"),
            k("EURUSD", "M15"),
            k("EURUSD", "H1"),
            k("EURUSD", "D1"),
        ];
        keys.sort_by(by_name);
        assert_eq!(
            keys,
            [
                k("EURUSD", "D1"),
                k("EURUSD", "H1"),
                k("EURUSD", "M15"),
                k("GBPUSD", "M15")
            ]
        );
    }

    #[test]
    fn a_bad_symbol_or_timeframe_is_an_error_naming_it() {
        let e = parse_key("EUR/USD", "M15").unwrap_err();
        assert_eq!(e, KeyError::Symbol("EUR/USD".into()));
        assert!(e.to_string().contains("EUR/USD"), "{e}");
        let e = parse_key("EURUSD", "m15").unwrap_err();
        assert_eq!(e, KeyError::Timeframe("m15".into()));
        assert!(e.to_string().contains("m15"), "{e}");
    }
}
