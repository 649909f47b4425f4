//! Lots → cTrader protocol volume.
//!
//! Open API volumes are in **cents** of the base unit: `lotSize`, `minVolume`, `stepVolume`,
//! `maxVolume` and an order's `volume` alike. One 100,000-unit FX lot has `lotSize` 10,000,000, so
//! 0.01 lot EURUSD is volume 100,000. Rule: volume = lots × lotSize, rounded **down** to
//! `stepVolume`; below `minVolume` → refused; above `maxVolume` → refused (never silently
//! clamped: a size the user did not ask for is a surprise at 3 a.m.).

use serde::{Deserialize, Serialize};

/// What the broker says about a symbol (`ProtoOASymbol`), volumes in cents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SymbolSpec {
    /// Symbol name.
    pub name: String,
    /// Broker symbol id.
    pub id: i64,
    /// Price digits.
    pub digits: u32,
    /// Pip position (pip = 10^-pipPosition).
    pub pip_position: u32,
    /// Volume (cents) of one lot.
    pub lot_size: i64,
    /// Smallest order volume (cents).
    pub min_volume: i64,
    /// Volume step (cents).
    pub step_volume: i64,
    /// Largest order volume (cents).
    pub max_volume: i64,
    /// `tradingMode`: entries need ENABLED, exits go on in every mode.
    #[serde(default)]
    pub trading_mode: crate::symbols::TradingMode,
}

impl SymbolSpec {
    /// One point (tick) = 10^-digits.
    pub fn point(&self) -> f64 {
        10f64.powi(-(self.digits as i32))
    }
}

/// The ISO 4217 codes of the currencies brokers quote FX pairs in (metals such as XAU and XAG
/// are not among them: their lots are ounces).
const FX_CURRENCIES: [&str; 30] = [
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "HUF",
    "CZK", "MXN", "ZAR", "TRY", "SGD", "HKD", "CNH", "CNY", "ILS", "RUB", "THB", "INR", "KRW",
    "BRL", "RON", "TWD", "ISK",
];

/// Whether `name` is a currency pair: two of [`FX_CURRENCIES`] back to back (`USDJPY`, `EURUSD`;
/// not `XAUUSD`, `USTECH`, `US500`).
pub fn is_fx_pair(name: &str) -> bool {
    name.len() == 6
        && name.is_char_boundary(3)
        && FX_CURRENCIES.contains(&&name[..3])
        && FX_CURRENCIES.contains(&&name[3..])
}

/// Paper-alone symbol facts when no broker session gives them: currency pairs
/// ([`is_fx_pair`]) get 100,000-unit lots (lotSize 10,000,000 cents, min/step 0.01 lot,
/// 5 digits, 3 for JPY); anything else 1 unit per lot (lotSize 100, min/step 0.01 lot, 2 digits).
pub fn default_spec(name: &str) -> SymbolSpec {
    let fx = is_fx_pair(name);
    if fx {
        let jpy = name.ends_with("JPY");
        SymbolSpec {
            name: name.into(),
            id: 0,
            digits: if jpy { 3 } else { 5 },
            pip_position: if jpy { 2 } else { 4 },
            lot_size: 10_000_000,
            min_volume: 100_000,
            step_volume: 100_000,
            max_volume: 10_000_000_000,
            trading_mode: crate::symbols::TradingMode::Enabled,
        }
    } else {
        SymbolSpec {
            name: name.into(),
            id: 0,
            digits: 2,
            pip_position: 2,
            lot_size: 100,
            min_volume: 1,
            step_volume: 1,
            max_volume: 100_000_000,
            trading_mode: crate::symbols::TradingMode::Enabled,
        }
    }
}

/// Why a lot size cannot become a volume.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum VolumeError {
    /// The rounded volume is below the broker's minimum.
    #[error(
        "{lots} lots = volume {volume} (rounded down to step {step}) is below the broker minimum {min} ({min_lots} lots)"
    )]
    BelowMin {
        /// Lots asked.
        lots: f64,
        /// Volume after rounding.
        volume: i64,
        /// Step.
        step: i64,
        /// Minimum.
        min: i64,
        /// Minimum in lots.
        min_lots: f64,
    },
    /// The volume is above the broker's maximum.
    #[error("{lots} lots = volume {volume} is above the broker maximum {max} ({max_lots} lots)")]
    AboveMax {
        /// Lots asked.
        lots: f64,
        /// Volume.
        volume: i64,
        /// Maximum.
        max: i64,
        /// Maximum in lots.
        max_lots: f64,
    },
    /// Lots not finite or not > 0, or a symbol spec with a non-positive lot size or step.
    #[error("invalid lots {lots} or symbol spec (lotSize {lot_size}, stepVolume {step})")]
    Invalid {
        /// Lots asked.
        lots: f64,
        /// Lot size.
        lot_size: i64,
        /// Step.
        step: i64,
    },
}

/// lots × lotSize rounded down to the step, checked against min/max.
pub fn lots_to_volume(lots: f64, spec: &SymbolSpec) -> Result<i64, VolumeError> {
    if !lots.is_finite() || lots <= 0.0 || spec.lot_size <= 0 || spec.step_volume <= 0 {
        return Err(VolumeError::Invalid {
            lots,
            lot_size: spec.lot_size,
            step: spec.step_volume,
        });
    }
    // lots come from decimal text (0.01, 0.3): multiply then remove float noise at 1e-6 of a cent
    // before flooring, so 0.29 × 10,000,000 = 2,899,999.9999… counts as 2,900,000.
    let raw = lots * spec.lot_size as f64;
    if raw > i64::MAX as f64 / 2.0 {
        return Err(VolumeError::AboveMax {
            lots,
            volume: i64::MAX,
            max: spec.max_volume,
            max_lots: spec.max_volume as f64 / spec.lot_size as f64,
        });
    }
    let cents = (raw + 1e-6).floor() as i64;
    let volume = cents - cents % spec.step_volume;
    if volume < spec.min_volume || volume <= 0 {
        return Err(VolumeError::BelowMin {
            lots,
            volume,
            step: spec.step_volume,
            min: spec.min_volume,
            min_lots: spec.min_volume as f64 / spec.lot_size as f64,
        });
    }
    if volume > spec.max_volume {
        return Err(VolumeError::AboveMax {
            lots,
            volume,
            max: spec.max_volume,
            max_lots: spec.max_volume as f64 / spec.lot_size as f64,
        });
    }
    Ok(volume)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn paper_alone_facts_give_fx_names_100000_unit_lots_and_anything_else_one_unit() {
        let eur = default_spec("EURUSD");
        assert_eq!(
            (eur.lot_size, eur.min_volume, eur.digits),
            (10_000_000, 100_000, 5)
        );
        assert_eq!(lots_to_volume(0.01, &eur), Ok(100_000));
        let jpy = default_spec("EURJPY");
        assert_eq!((jpy.digits, jpy.pip_position), (3, 2));
        // A pair with the dollar first is FX too (USDJPY was taken for an index: 1-unit lots).
        let usdjpy = default_spec("USDJPY");
        assert_eq!(
            (usdjpy.lot_size, usdjpy.min_volume, usdjpy.digits),
            (10_000_000, 100_000, 3)
        );
        assert_eq!(default_spec("USDCHF").lot_size, 10_000_000);
        // Six capitals that are not two currencies: a metal, an index, a name.
        for name in ["XAUUSD", "USTECH", "GERMAN"] {
            assert_eq!(default_spec(name).lot_size, 100, "{name}");
        }
        // Six bytes with a two-byte letter across the halves: no pair, and no panic slicing it.
        assert!(!is_fx_pair("EU\u{c9}US"));
        assert!(is_fx_pair("GBPUSD") && !is_fx_pair("GBPXAU") && !is_fx_pair("EURUSDX"));
        let idx = default_spec("US500");
        assert_eq!((idx.lot_size, idx.min_volume, idx.digits), (100, 1, 2));
        let aapl = default_spec("AAPL");
        assert_eq!((aapl.lot_size, aapl.step_volume), (100, 1));
        assert_eq!(aapl.trading_mode, crate::symbols::TradingMode::Enabled);
    }

    pub fn eurusd() -> SymbolSpec {
        SymbolSpec {
            name: "EURUSD".into(),
            id: 1,
            digits: 5,
            pip_position: 4,
            lot_size: 10_000_000,
            min_volume: 100_000,
            step_volume: 100_000,
            max_volume: 10_000_000_000,
            trading_mode: crate::symbols::TradingMode::Enabled,
        }
    }
    /// An index CFD: 1 lot = 1 contract (100 cents), min 0.1, step 0.1.
    pub fn us500() -> SymbolSpec {
        SymbolSpec {
            name: "US500".into(),
            id: 2,
            digits: 2,
            pip_position: 0,
            lot_size: 100,
            min_volume: 10,
            step_volume: 10,
            max_volume: 1_000_000,
            trading_mode: crate::symbols::TradingMode::Enabled,
        }
    }
    /// A stock CFD: 1 lot = 1 share (100 cents), min 1 share, step 1 share.
    pub fn aapl() -> SymbolSpec {
        SymbolSpec {
            name: "AAPL".into(),
            id: 3,
            digits: 2,
            pip_position: 2,
            lot_size: 100,
            min_volume: 100,
            step_volume: 100,
            max_volume: 500_000,
            trading_mode: crate::symbols::TradingMode::Enabled,
        }
    }

    #[test]
    fn seed_table_maps_exactly() {
        let e = eurusd();
        assert_eq!(lots_to_volume(0.01, &e), Ok(100_000));
        assert_eq!(lots_to_volume(0.03, &e), Ok(300_000));
        assert_eq!(lots_to_volume(0.05, &e), Ok(500_000));
        let u = us500();
        assert_eq!(lots_to_volume(0.10, &u), Ok(10));
        assert_eq!(lots_to_volume(0.30, &u), Ok(30));
        assert_eq!(lots_to_volume(0.50, &u), Ok(50));
        let a = aapl();
        assert_eq!(lots_to_volume(1.0, &a), Ok(100));
        assert_eq!(lots_to_volume(3.0, &a), Ok(300));
        assert_eq!(lots_to_volume(5.0, &a), Ok(500));
    }

    #[test]
    fn rounds_down_to_step() {
        assert_eq!(lots_to_volume(0.029, &eurusd()), Ok(200_000));
        assert_eq!(lots_to_volume(0.29, &eurusd()), Ok(2_900_000));
        assert_eq!(lots_to_volume(0.15, &us500()), Ok(10));
        assert_eq!(lots_to_volume(2.7, &aapl()), Ok(200));
    }

    #[test]
    fn below_min_and_above_max_refused() {
        assert!(matches!(
            lots_to_volume(0.009, &eurusd()),
            Err(VolumeError::BelowMin { volume: 0, .. })
        ));
        assert!(matches!(
            lots_to_volume(0.05, &us500()),
            Err(VolumeError::BelowMin { .. })
        ));
        assert!(matches!(
            lots_to_volume(0.5, &aapl()),
            Err(VolumeError::BelowMin { .. })
        ));
        assert!(matches!(
            lots_to_volume(5001.0, &aapl()),
            Err(VolumeError::AboveMax { .. })
        ));
        assert!(matches!(
            lots_to_volume(-1.0, &aapl()),
            Err(VolumeError::Invalid { .. })
        ));
        let msg = lots_to_volume(0.009, &eurusd()).unwrap_err().to_string();
        assert!(
            msg.contains("below the broker minimum 100000 (0.01 lots)"),
            "{msg}"
        );
    }
}
