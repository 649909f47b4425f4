//! Bars and their validation (contract §1).

use core::fmt;

/// One closed bar, as the broker stamps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// The bar's **open** time, integer seconds since the Unix epoch (UTC).
    pub time: i64,
    /// Open bid price.
    pub open: f64,
    /// High bid price.
    pub high: f64,
    /// Low bid price.
    pub low: f64,
    /// Close bid price.
    pub close: f64,
    /// Tick volume (a non-negative integer in practice), used as f64.
    pub volume: f64,
}

/// Which price of a bar an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceField {
    /// `open`.
    Open,
    /// `high`.
    High,
    /// `low`.
    Low,
    /// `close`.
    Close,
}

impl fmt::Display for PriceField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PriceField::Open => "open",
            PriceField::High => "high",
            PriceField::Low => "low",
            PriceField::Close => "close",
        })
    }
}

/// Why a bar was rejected. A rejected bar leaves the twin unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BarError {
    /// A price is NaN or infinite.
    NonFinitePrice {
        /// The offending price.
        field: PriceField,
        /// Its value.
        value: f64,
    },
    /// A price is zero or negative.
    NonPositivePrice {
        /// The offending price.
        field: PriceField,
        /// Its value.
        value: f64,
    },
    /// `high < low`.
    HighBelowLow {
        /// The bar's high.
        high: f64,
        /// The bar's low.
        low: f64,
    },
    /// The volume is negative, NaN or infinite.
    BadVolume {
        /// The volume given.
        value: f64,
    },
    /// The bar's time equals the previous accepted bar's time.
    Duplicate {
        /// The repeated time.
        time: i64,
    },
    /// The bar's time is before the previous accepted bar's time.
    OutOfOrder {
        /// The bar's time.
        time: i64,
        /// The previous accepted bar's time.
        last: i64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarError::NonFinitePrice { field, value } => {
                write!(f, "{field} price is not finite ({value})")
            }
            BarError::NonPositivePrice { field, value } => {
                write!(f, "{field} price is not positive ({value})")
            }
            BarError::HighBelowLow { high, low } => write!(f, "high {high} is below low {low}"),
            BarError::BadVolume { value } => {
                write!(f, "volume is negative or not finite ({value})")
            }
            BarError::Duplicate { time } => write!(f, "duplicate bar time {time}"),
            BarError::OutOfOrder { time, last } => {
                write!(
                    f,
                    "bar time {time} is before the previous bar's time {last}"
                )
            }
        }
    }
}

impl core::error::Error for BarError {}

impl Bar {
    /// Checks the bar on its own (prices, volume), not its time against a previous bar.
    pub fn validate(&self) -> Result<(), BarError> {
        let prices = [
            (PriceField::Open, self.open),
            (PriceField::High, self.high),
            (PriceField::Low, self.low),
            (PriceField::Close, self.close),
        ];
        for (field, value) in prices {
            if !value.is_finite() {
                return Err(BarError::NonFinitePrice { field, value });
            }
        }
        for (field, value) in prices {
            if value <= 0.0 {
                return Err(BarError::NonPositivePrice { field, value });
            }
        }
        if self.high < self.low {
            return Err(BarError::HighBelowLow {
                high: self.high,
                low: self.low,
            });
        }
        if !self.volume.is_finite() || self.volume < 0.0 {
            return Err(BarError::BadVolume { value: self.volume });
        }
        Ok(())
    }

    /// Checks the bar and that its time is strictly after `last` (the previous accepted time).
    pub fn validate_after(&self, last: Option<i64>) -> Result<(), BarError> {
        self.validate()?;
        match last {
            Some(last) if self.time == last => Err(BarError::Duplicate { time: self.time }),
            Some(last) if self.time < last => Err(BarError::OutOfOrder {
                time: self.time,
                last,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar() -> Bar {
        Bar {
            time: 100,
            open: 1.0,
            high: 1.2,
            low: 0.9,
            close: 1.1,
            volume: 5.0,
        }
    }

    #[test]
    fn accepts_a_sane_bar() {
        assert_eq!(bar().validate_after(Some(99)), Ok(()));
        assert_eq!(bar().validate_after(None), Ok(()));
        let zero_volume = Bar {
            volume: 0.0,
            ..bar()
        };
        assert_eq!(zero_volume.validate(), Ok(()));
    }

    #[test]
    fn rejects_each_cause() {
        let nan = Bar {
            close: f64::NAN,
            ..bar()
        };
        assert!(matches!(
            nan.validate(),
            Err(BarError::NonFinitePrice {
                field: PriceField::Close,
                ..
            })
        ));
        let inf = Bar {
            high: f64::INFINITY,
            ..bar()
        };
        assert!(matches!(
            inf.validate(),
            Err(BarError::NonFinitePrice {
                field: PriceField::High,
                ..
            })
        ));
        let zero = Bar { open: 0.0, ..bar() };
        assert!(matches!(
            zero.validate(),
            Err(BarError::NonPositivePrice {
                field: PriceField::Open,
                ..
            })
        ));
        let inverted = Bar { high: 0.8, ..bar() };
        assert!(matches!(
            inverted.validate(),
            Err(BarError::HighBelowLow { .. })
        ));
        for volume in [-1.0, f64::NAN, f64::INFINITY] {
            let b = Bar { volume, ..bar() };
            assert!(matches!(b.validate(), Err(BarError::BadVolume { .. })));
        }
        assert_eq!(
            bar().validate_after(Some(100)),
            Err(BarError::Duplicate { time: 100 })
        );
        assert_eq!(
            bar().validate_after(Some(200)),
            Err(BarError::OutOfOrder {
                time: 100,
                last: 200
            })
        );
    }
}
