//! Units of the Open API and the trendbar delta encoding.
//!
//! - **Prices** on the wire are integers in 1e-5 units whatever the symbol's `digits`
//!   ([`PRICE_SCALE`]); [`price_to_f64`] divides and rounds to `digits`, [`price_from_f64`] is the
//!   inverse.
//! - **Trendbars** carry `low` and `deltaOpen/deltaClose/deltaHigh` above it, and the bar's *open*
//!   time in minutes. [`decode_trendbar`] gives a [`Bar`] (integer 1e-5 prices, open time in Unix
//!   seconds); [`encode_trendbar`] is the inverse (the simulator uses it).
//! - **Volumes** (order volume, `lotSize`, `minVolume`, `stepVolume`, `maxVolume`) are in cents of
//!   the base unit: [`VolumeSpec`] turns lots into a protocol volume.
//! - **Money** (balance, P&L, commission) is an integer scaled by `moneyDigits`: [`money_to_f64`].
//!
//! **Choice (Spotware silent):** the known server bug where historical bars with `deltaClose = 0`
//! also have `deltaHigh = 0` would decode to `high < open`/`close`; [`decode_trendbar`] clamps
//! `high` up to `max(open, close)` so every decoded bar satisfies `low <= open, close <= high`.

use crate::proto::{ProtoOaTrendbar, ProtoOaTrendbarPeriod};
use oracle_core::Timeframe;

/// Wire prices are integers × 10⁵.
pub const PRICE_SCALE: i64 = 100_000;

/// A price in wire units (1e-5), e.g. `108_542` is 1.08542.
pub type PriceUnits = i64;

/// Wire price units → decimal price rounded to `digits` (0..=5; larger values are treated as 5).
/// The result is the `f64` nearest to the decimal value, so it prints as the broker shows it.
pub fn price_to_f64(units: PriceUnits, digits: u32) -> f64 {
    let digits = digits.min(5);
    let drop = 10i64.pow(5 - digits);
    // Round half away from zero to `digits` decimals, in integers (exact).
    let half = drop / 2;
    let q = if units >= 0 {
        (units + half) / drop
    } else {
        (units - half) / drop
    };
    q as f64 / 10f64.powi(digits as i32)
}

/// Decimal price → wire units (rounded to the nearest 1e-5).
pub fn price_from_f64(price: f64) -> PriceUnits {
    (price * PRICE_SCALE as f64).round() as PriceUnits
}

/// Rounds wire units to the symbol's `digits` (e.g. 5 digits: unchanged; 3 digits: multiple of 100).
pub fn round_units_to_digits(units: PriceUnits, digits: u32) -> PriceUnits {
    let digits = digits.min(5);
    let drop = 10i64.pow(5 - digits);
    let half = drop / 2;
    let q = if units >= 0 {
        (units + half) / drop
    } else {
        (units - half) / drop
    };
    q * drop
}

/// One OHLCV bar with exact integer prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bar {
    /// Open time of the bar, Unix seconds (UTC).
    pub open_time: i64,
    /// Open, wire units (1e-5).
    pub open: PriceUnits,
    /// High, wire units (1e-5).
    pub high: PriceUnits,
    /// Low, wire units (1e-5).
    pub low: PriceUnits,
    /// Close, wire units (1e-5).
    pub close: PriceUnits,
    /// Tick volume.
    pub volume: i64,
}

impl Bar {
    /// `[open, high, low, close]` as decimal prices rounded to `digits`.
    pub fn ohlc_f64(&self, digits: u32) -> [f64; 4] {
        [self.open, self.high, self.low, self.close].map(|p| price_to_f64(p, digits))
    }
}

/// Why a trendbar cannot be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrendbarError {
    /// `utcTimestampInMinutes` is absent (it is optional in the schema, but a bar has no meaning
    /// without it).
    #[error("trendbar has no utcTimestampInMinutes")]
    NoTimestamp,
    /// A delta does not fit an `i64` price.
    #[error("trendbar delta out of range")]
    DeltaOutOfRange,
    /// Encoding: prices violate `low <= open, close <= high` or `low < 0`.
    #[error("bar prices are inconsistent (need 0 <= low <= open, close <= high)")]
    InconsistentPrices,
    /// Encoding: the open time is not a whole minute, or out of the `u32` minutes range.
    #[error("bar open time {0} is not a whole minute in range")]
    BadOpenTime(i64),
}

/// Decodes a wire trendbar (see the module docs for the `deltaHigh` clamp).
pub fn decode_trendbar(tb: &ProtoOaTrendbar) -> Result<Bar, TrendbarError> {
    let minutes = tb
        .utc_timestamp_in_minutes
        .ok_or(TrendbarError::NoTimestamp)?;
    let low = tb.low.unwrap_or(0);
    let add = |d: Option<u64>| -> Result<i64, TrendbarError> {
        let d = i64::try_from(d.unwrap_or(0)).map_err(|_| TrendbarError::DeltaOutOfRange)?;
        low.checked_add(d).ok_or(TrendbarError::DeltaOutOfRange)
    };
    let open = add(tb.delta_open)?;
    let close = add(tb.delta_close)?;
    let high = add(tb.delta_high)?.max(open).max(close);
    Ok(Bar {
        open_time: i64::from(minutes) * 60,
        open,
        high,
        low,
        close,
        volume: tb.volume,
    })
}

/// Encodes a bar as a wire trendbar of `period` (the inverse of [`decode_trendbar`]).
pub fn encode_trendbar(
    bar: &Bar,
    period: ProtoOaTrendbarPeriod,
) -> Result<ProtoOaTrendbar, TrendbarError> {
    if bar.low < 0
        || bar.open < bar.low
        || bar.close < bar.low
        || bar.high < bar.open
        || bar.high < bar.close
    {
        return Err(TrendbarError::InconsistentPrices);
    }
    if bar.open_time % 60 != 0 {
        return Err(TrendbarError::BadOpenTime(bar.open_time));
    }
    let minutes =
        u32::try_from(bar.open_time / 60).map_err(|_| TrendbarError::BadOpenTime(bar.open_time))?;
    // The differences are non-negative (checked above), so the casts are lossless.
    Ok(ProtoOaTrendbar {
        volume: bar.volume,
        period: Some(period as i32),
        low: Some(bar.low),
        delta_open: Some((bar.open - bar.low) as u64),
        delta_close: Some((bar.close - bar.low) as u64),
        delta_high: Some((bar.high - bar.low) as u64),
        utc_timestamp_in_minutes: Some(minutes),
    })
}

/// A symbol's volume constraints, all in cents of the base unit (as `ProtoOASymbol` gives them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Volume of one lot (10,000,000 for a 100,000-unit FX lot).
    pub lot_size: i64,
    /// Smallest order volume.
    pub min_volume: i64,
    /// Volume granularity.
    pub step_volume: i64,
    /// Largest order volume.
    pub max_volume: i64,
}

/// Why lots cannot be turned into an order volume.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VolumeError {
    /// After rounding down to the step, the volume is below the symbol's minimum.
    #[error("volume {volume} (from {lots} lots) is below the minimum {min}")]
    BelowMin {
        /// Requested lots.
        lots: f64,
        /// Volume after rounding down to the step.
        volume: i64,
        /// The symbol's `minVolume`.
        min: i64,
    },
    /// The volume is above the symbol's maximum.
    #[error("volume {volume} (from {lots} lots) is above the maximum {max}")]
    AboveMax {
        /// Requested lots.
        lots: f64,
        /// Volume after rounding down to the step.
        volume: i64,
        /// The symbol's `maxVolume`.
        max: i64,
    },
    /// Lots not finite or not positive, or a spec field not positive.
    #[error("invalid lots {0} or volume spec")]
    Invalid(f64),
}

impl VolumeSpec {
    /// Lots → protocol volume: `lots × lotSize`, rounded **down** to `stepVolume`, refused below
    /// `minVolume` or above `maxVolume`. A tiny epsilon absorbs binary float error so that e.g.
    /// 0.07 lots × 10,000,000 gives exactly 700,000 and not 699,999.
    pub fn volume_for_lots(&self, lots: f64) -> Result<i64, VolumeError> {
        if !lots.is_finite() || lots <= 0.0 || self.lot_size <= 0 || self.step_volume <= 0 {
            return Err(VolumeError::Invalid(lots));
        }
        let raw = lots * self.lot_size as f64;
        let steps = (raw / self.step_volume as f64 + 1e-9).floor();
        let volume = steps as i64 * self.step_volume;
        if volume < self.min_volume || volume <= 0 {
            return Err(VolumeError::BelowMin {
                lots,
                volume,
                min: self.min_volume,
            });
        }
        if volume > self.max_volume {
            return Err(VolumeError::AboveMax {
                lots,
                volume,
                max: self.max_volume,
            });
        }
        Ok(volume)
    }

    /// Protocol volume → lots.
    pub fn lots_for_volume(&self, volume: i64) -> f64 {
        volume as f64 / self.lot_size as f64
    }
}

/// Protocol volume (cents) → units of the base asset (e.g. 100,000 → 1,000.00 units).
pub fn volume_to_units(volume: i64) -> f64 {
    volume as f64 / 100.0
}

/// A money amount scaled by `moneyDigits` → decimal (e.g. `123456` with 2 digits → 1234.56).
pub fn money_to_f64(value: i64, money_digits: u32) -> f64 {
    value as f64 / 10f64.powi(money_digits as i32)
}

/// Trendbar period length in seconds (`None` for `MN1`).
pub fn period_seconds(period: ProtoOaTrendbarPeriod) -> Option<i64> {
    period.seconds()
}

/// The Open API's trendbar period of a timeframe (the edge between the system's one
/// [`Timeframe`] and the protobuf enum; the two sets are the same).
impl From<Timeframe> for ProtoOaTrendbarPeriod {
    fn from(tf: Timeframe) -> Self {
        match tf {
            Timeframe::M1 => ProtoOaTrendbarPeriod::M1,
            Timeframe::M2 => ProtoOaTrendbarPeriod::M2,
            Timeframe::M3 => ProtoOaTrendbarPeriod::M3,
            Timeframe::M4 => ProtoOaTrendbarPeriod::M4,
            Timeframe::M5 => ProtoOaTrendbarPeriod::M5,
            Timeframe::M10 => ProtoOaTrendbarPeriod::M10,
            Timeframe::M15 => ProtoOaTrendbarPeriod::M15,
            Timeframe::M30 => ProtoOaTrendbarPeriod::M30,
            Timeframe::H1 => ProtoOaTrendbarPeriod::H1,
            Timeframe::H4 => ProtoOaTrendbarPeriod::H4,
            Timeframe::H12 => ProtoOaTrendbarPeriod::H12,
            Timeframe::D1 => ProtoOaTrendbarPeriod::D1,
            Timeframe::W1 => ProtoOaTrendbarPeriod::W1,
            Timeframe::MN1 => ProtoOaTrendbarPeriod::Mn1,
        }
    }
}

/// The timeframe of an Open API trendbar period (every period is one).
impl From<ProtoOaTrendbarPeriod> for Timeframe {
    fn from(p: ProtoOaTrendbarPeriod) -> Self {
        match p {
            ProtoOaTrendbarPeriod::M1 => Timeframe::M1,
            ProtoOaTrendbarPeriod::M2 => Timeframe::M2,
            ProtoOaTrendbarPeriod::M3 => Timeframe::M3,
            ProtoOaTrendbarPeriod::M4 => Timeframe::M4,
            ProtoOaTrendbarPeriod::M5 => Timeframe::M5,
            ProtoOaTrendbarPeriod::M10 => Timeframe::M10,
            ProtoOaTrendbarPeriod::M15 => Timeframe::M15,
            ProtoOaTrendbarPeriod::M30 => Timeframe::M30,
            ProtoOaTrendbarPeriod::H1 => Timeframe::H1,
            ProtoOaTrendbarPeriod::H4 => Timeframe::H4,
            ProtoOaTrendbarPeriod::H12 => Timeframe::H12,
            ProtoOaTrendbarPeriod::D1 => Timeframe::D1,
            ProtoOaTrendbarPeriod::W1 => Timeframe::W1,
            ProtoOaTrendbarPeriod::Mn1 => Timeframe::MN1,
        }
    }
}

/// The timeframe of a `ProtoOATrendbarPeriod` number on the wire; `None` for a number the
/// enum does not have.
pub fn timeframe_of_period_number(n: i32) -> Option<Timeframe> {
    ProtoOaTrendbarPeriod::try_from(n).ok().map(Timeframe::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timeframe_is_one_trendbar_period_and_back_with_the_same_length() {
        for tf in Timeframe::ALL {
            let p = ProtoOaTrendbarPeriod::from(tf);
            assert_eq!(Timeframe::from(p), tf);
            assert_eq!(timeframe_of_period_number(p as i32), Some(tf));
            assert_eq!(p.seconds(), tf.fixed_seconds(), "{tf}");
            assert!(p.as_str_name().eq_ignore_ascii_case(tf.as_str()), "{tf}");
        }
        assert_eq!(timeframe_of_period_number(0), None);
        assert_eq!(timeframe_of_period_number(15), None);
    }
    use proptest::prelude::*;

    #[test]
    fn decode_known_bar() {
        let tb = ProtoOaTrendbar {
            volume: 42,
            period: Some(ProtoOaTrendbarPeriod::M15 as i32),
            low: Some(108_500),
            delta_open: Some(12),
            delta_close: Some(30),
            delta_high: Some(55),
            utc_timestamp_in_minutes: Some(26_917_935), // 2021-03-07T...: any whole minute
        };
        let b = decode_trendbar(&tb).unwrap();
        assert_eq!(b.open_time, 26_917_935 * 60);
        assert_eq!(
            (b.open, b.high, b.low, b.close),
            (108_512, 108_555, 108_500, 108_530)
        );
        assert_eq!(b.ohlc_f64(5), [1.08512, 1.08555, 1.085, 1.0853]);
        assert_eq!(encode_trendbar(&b, ProtoOaTrendbarPeriod::M15).unwrap(), tb);
    }

    #[test]
    fn rounding_to_digits() {
        assert_eq!(price_to_f64(15_234_567, 3), 152.346);
        assert_eq!(price_to_f64(15_234_549, 2), 152.35);
        assert_eq!(price_to_f64(15_234_449, 2), 152.34);
        assert_eq!(price_to_f64(108_542, 5), 1.08542);
        assert_eq!(price_from_f64(1.08542), 108_542);
        assert_eq!(round_units_to_digits(15_234_567, 3), 15_234_600);
    }

    #[test]
    fn delta_high_zero_bug_is_clamped() {
        let tb = ProtoOaTrendbar {
            volume: 1,
            period: None,
            low: Some(100),
            delta_open: Some(5),
            delta_close: Some(0),
            delta_high: Some(0),
            utc_timestamp_in_minutes: Some(1),
        };
        let b = decode_trendbar(&tb).unwrap();
        assert_eq!(b.high, 105);
    }

    #[test]
    fn volumes_in_cents() {
        let fx = VolumeSpec {
            lot_size: 10_000_000,
            min_volume: 100_000,
            step_volume: 100_000,
            max_volume: 10_000_000_000,
        };
        assert_eq!(fx.volume_for_lots(1.0), Ok(10_000_000));
        assert_eq!(fx.volume_for_lots(0.01), Ok(100_000));
        assert_eq!(fx.volume_for_lots(0.07), Ok(700_000));
        assert_eq!(fx.volume_for_lots(0.015), Ok(100_000));
        assert!(matches!(
            fx.volume_for_lots(0.005),
            Err(VolumeError::BelowMin { .. })
        ));
        assert!(matches!(
            fx.volume_for_lots(2000.0),
            Err(VolumeError::AboveMax { .. })
        ));
        assert_eq!(money_to_f64(123_456, 2), 1234.56);
    }

    proptest! {
        #[test]
        fn trendbar_roundtrip(low in 0i64..10_000_000_000, o in 0i64..1_000_000, c in 0i64..1_000_000,
                              extra in 0i64..1_000_000, minutes in 0u32..u32::MAX, vol in 0i64..1_000_000) {
            let bar = Bar { open_time: i64::from(minutes) * 60, open: low + o, close: low + c,
                            high: low + o.max(c) + extra, low, volume: vol };
            let tb = encode_trendbar(&bar, ProtoOaTrendbarPeriod::H1).unwrap();
            prop_assert_eq!(decode_trendbar(&tb).unwrap(), bar);
        }
    }
}
