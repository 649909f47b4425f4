//! Bars: the project's CSV bar files, trendbar periods, aggregation, and the trendbar delta
//! encoding of the Open API.
//!
//! Prices are integers in 1e-5 units ("wire prices"), as on the Open API wire, whatever the
//! symbol's `digits`; they are parsed from the CSV's decimal text exactly (no float round trip).
//! Times are Unix milliseconds (UTC).

use std::path::Path;

use oracle_ipc::time::{self, Date, IsoUtc};

/// One bar: open time (Unix ms, UTC), bid OHLC in 1e-5 units, tick volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Open time, Unix milliseconds.
    pub time_ms: i64,
    /// Open price (1e-5 units).
    pub open: i64,
    /// High price (1e-5 units).
    pub high: i64,
    /// Low price (1e-5 units).
    pub low: i64,
    /// Close price (1e-5 units).
    pub close: i64,
    /// Tick volume.
    pub volume: i64,
}

/// A trendbar period: the system's one [`oracle_ipc::Timeframe`] (defined in `oracle-core`), with
/// the simulator's calendar arithmetic in [`PeriodExt`]. `W1` buckets start on Monday 00:00 UTC
/// (Spotware does not document it); `MN1` is a calendar month (UTC).
pub type Period = oracle_ipc::Timeframe;

/// Every period, shortest first.
pub const ALL_PERIODS: [Period; 14] = Period::ALL;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// What the simulator computes with a [`Period`]: its `ProtoOATrendbarPeriod` number, its name
/// in any case, and its buckets on the UTC calendar (its name and fixed length are the
/// timeframe's own: `name()`, `fixed_ms()`).
pub trait PeriodExt: Sized {
    /// The `ProtoOATrendbarPeriod` number.
    fn number(self) -> i32;
    /// The period for a `ProtoOATrendbarPeriod` number.
    fn from_number(n: i32) -> Option<Self>;
    /// Parses a period name in any case (`m15`, `H1`): the simulator's command line and file
    /// names. The wire's exact-case parse is `Timeframe::from_name`.
    fn parse_name(s: &str) -> Option<Self>;
    /// Start of the bucket (bar open time) that contains `t_ms`.
    fn bucket_start(self, t_ms: i64) -> i64;
    /// End (exclusive) of the bucket that starts at `start_ms`.
    fn bucket_end(self, start_ms: i64) -> i64;
    /// True when every bucket of `self` is a union of whole buckets of `finer`.
    fn is_multiple_of(&self, finer: Self) -> bool;
}

impl PeriodExt for Period {
    fn number(self) -> i32 {
        oracle_ctrader::proto::ProtoOaTrendbarPeriod::from(self) as i32
    }

    fn from_number(n: i32) -> Option<Self> {
        oracle_ctrader::units::timeframe_of_period_number(n)
    }

    fn parse_name(s: &str) -> Option<Self> {
        ALL_PERIODS
            .iter()
            .copied()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    fn bucket_start(self, t_ms: i64) -> i64 {
        match self {
            Period::W1 => {
                // Weeks start on Monday 00:00 UTC.
                let d = date_of(t_ms);
                day_ms(d) - i64::from(d.weekday().to_monday_zero_offset()) * DAY_MS
            }
            Period::MN1 => day_ms(date_of(t_ms).first_of_month()),
            p => {
                // Fixed periods other than W1 divide a day, so UTC-aligned buckets.
                let len = p.fixed_ms().unwrap_or(MINUTE_MS);
                t_ms.div_euclid(len) * len
            }
        }
    }

    fn bucket_end(self, start_ms: i64) -> i64 {
        match self.fixed_ms() {
            Some(len) => start_ms + len,
            None => match date_of(start_ms).last_of_month().tomorrow() {
                Ok(next) => day_ms(next),
                // December 9999: the calendar's end.
                Err(_) => (time::MAX_TIME + 1) * 1000,
            },
        }
    }

    fn is_multiple_of(&self, finer: Period) -> bool {
        if *self == finer {
            return true;
        }
        match (self.fixed_ms(), finer.fixed_ms()) {
            (_, None) => false,
            (None, Some(f)) => DAY_MS % f == 0,
            (Some(s), Some(f)) => {
                if *self == Period::W1 {
                    DAY_MS % f == 0
                } else {
                    s % f == 0 && finer != Period::W1
                }
            }
        }
    }
}

/// A trendbar in the Open API's delta encoding (`ProtoOATrendbar`): `low` plus unsigned deltas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trendbar {
    /// The bar's period.
    pub period: Period,
    /// Open time in whole Unix minutes (`utcTimestampInMinutes`).
    pub utc_minutes: u32,
    /// Low price, 1e-5 units.
    pub low: i64,
    /// open − low.
    pub delta_open: u64,
    /// close − low.
    pub delta_close: u64,
    /// high − low.
    pub delta_high: u64,
    /// Tick volume.
    pub volume: i64,
}

impl Trendbar {
    /// Encodes a bar. Prices must satisfy low ≤ open, close ≤ high (checked when bars load).
    pub fn encode(period: Period, bar: &Bar) -> Self {
        Trendbar {
            period,
            utc_minutes: u32::try_from(bar.time_ms.div_euclid(MINUTE_MS)).unwrap_or(u32::MAX),
            low: bar.low,
            delta_open: (bar.open - bar.low).max(0) as u64,
            delta_close: (bar.close - bar.low).max(0) as u64,
            delta_high: (bar.high - bar.low).max(0) as u64,
            volume: bar.volume,
        }
    }

    /// Decodes back to a bar.
    pub fn decode(&self) -> Bar {
        Bar {
            time_ms: i64::from(self.utc_minutes) * MINUTE_MS,
            open: self.low + self.delta_open as i64,
            high: self.low + self.delta_high as i64,
            low: self.low,
            close: self.low + self.delta_close as i64,
            volume: self.volume,
        }
    }
}

/// Why a bar file was refused.
#[derive(Debug, thiserror::Error)]
pub enum BarError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The first line is not the expected header.
    #[error("{path}: line 1: expected header `time,open,high,low,close,volume`, got `{got}`")]
    Header {
        /// The file.
        path: String,
        /// What was there.
        got: String,
    },
    /// A bar line is invalid.
    #[error("{path}: line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file has no bars.
    #[error("{path}: no bars")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Reads a bar CSV file (DESIGN.md format).
pub fn read_bar_file(path: &Path) -> Result<Vec<Bar>, BarError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| BarError::Io {
        path: p.clone(),
        source,
    })?;
    parse_bars(&p, &text)
}

/// Parses bar CSV text: header `time,open,high,low,close,volume`, oldest first, ISO-8601 UTC open
/// times, decimal bid prices, integer tick volume. Refuses NaN, non-positive prices, high < low,
/// open/close outside [low, high], more than 5 decimals, and times not after the previous one.
pub fn parse_bars(path: &str, text: &str) -> Result<Vec<Bar>, BarError> {
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => break l.trim().trim_start_matches('\u{feff}').to_string(),
            None => {
                return Err(BarError::Empty {
                    path: path.to_string(),
                });
            }
        }
    };
    let cols: Vec<String> = header
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    if cols != ["time", "open", "high", "low", "close", "volume"] {
        return Err(BarError::Header {
            path: path.to_string(),
            got: header,
        });
    }
    let mut bars: Vec<Bar> = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| BarError::Line {
            path: path.to_string(),
            line: line_no,
            reason,
        };
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 6 {
            return Err(bad(format!("expected 6 fields, got {}", f.len())));
        }
        let time_ms = parse_iso_utc(f[0]).ok_or_else(|| bad(format!("bad time `{}`", f[0])))?;
        let mut px = [0i64; 4];
        for (k, name) in ["open", "high", "low", "close"].iter().enumerate() {
            let v = parse_price(f[k + 1]).map_err(|e| bad(format!("{name}: {e}")))?;
            if v <= 0 {
                return Err(bad(format!("{name} is not positive")));
            }
            px[k] = v;
        }
        let [open, high, low, close] = px;
        if high < low {
            return Err(bad("high < low".into()));
        }
        if open < low || open > high || close < low || close > high {
            return Err(bad("open/close outside [low, high]".into()));
        }
        let volume: i64 = f[5]
            .parse::<i64>()
            .ok()
            .or_else(|| {
                f[5].parse::<f64>()
                    .ok()
                    .filter(|v| v.fract() == 0.0 && *v >= 0.0)
                    .map(|v| v as i64)
            })
            .filter(|v| *v >= 0)
            .ok_or_else(|| bad(format!("bad volume `{}`", f[5])))?;
        if let Some(prev) = bars.last() {
            if time_ms <= prev.time_ms {
                return Err(bad("time is not after the previous bar's".into()));
            }
        }
        bars.push(Bar {
            time_ms,
            open,
            high,
            low,
            close,
            volume,
        });
    }
    if bars.is_empty() {
        return Err(BarError::Empty {
            path: path.to_string(),
        });
    }
    Ok(bars)
}

/// Parses a decimal price into 1e-5 units exactly. At most 5 decimals.
pub fn parse_price(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty".into());
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(format!("not a number `{s}`"));
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a decimal number `{s}`"));
    }
    let frac_trim = frac.trim_end_matches('0');
    if frac_trim.len() > 5 {
        return Err(format!("more than 5 decimals `{s}`"));
    }
    let int_v: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| format!("too large `{s}`"))?
    };
    let mut frac_v: i64 = 0;
    for (k, b) in frac_trim.bytes().enumerate() {
        frac_v += i64::from(b - b'0') * 10i64.pow(4 - k as u32);
    }
    let v = int_v
        .checked_mul(100_000)
        .and_then(|v| v.checked_add(frac_v))
        .ok_or_else(|| format!("too large `{s}`"))?;
    Ok(if neg { -v } else { v })
}

/// Formats a 1e-5 price with `digits` decimals (for logs and CSV output).
pub fn format_price(p: i64, digits: u32) -> String {
    let sign = if p < 0 { "-" } else { "" };
    let a = p.unsigned_abs();
    let int = a / 100_000;
    let frac = a % 100_000;
    if digits == 0 {
        return format!("{sign}{int}");
    }
    let frac_s = format!("{frac:05}");
    let d = (digits as usize).min(5);
    format!("{sign}{int}.{}", &frac_s[..d])
}

/// A 1e-5 wire price as the f64 a client sees in `executionPrice` (rounded to `digits`).
pub fn price_to_f64(p: i64, digits: u32) -> f64 {
    let v = p as f64 / 100_000.0;
    let scale = 10f64.powi(digits as i32);
    (v * scale).round() / scale
}

/// An f64 price (e.g. `baseSlippagePrice`) to 1e-5 units, rounded to nearest.
pub fn price_from_f64(v: f64) -> i64 {
    (v * 100_000.0).round() as i64
}

/// Parses `YYYY-MM-DDTHH:MM[:SS[.fff]]Z` (also `+00:00` or a space instead of `T`) to Unix ms.
pub fn parse_iso_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let y: i16 = d.next()?.parse().ok()?;
    let m: i8 = d.next()?.parse().ok()?;
    let day: i8 = d.next()?.parse().ok()?;
    if d.next().is_some() {
        return None;
    }
    // The calendar checks the day against the month (no 30 February).
    let date = Date::new(y, m, day).ok()?;
    let mut t = time.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let (ss, ms) = match t.next() {
        None => (0, 0),
        Some(sec) => match sec.split_once('.') {
            None => (sec.parse::<i64>().ok()?, 0),
            Some((a, b)) => {
                let frac: String = b.chars().chain("000".chars()).take(3).collect();
                (a.parse::<i64>().ok()?, frac.parse::<i64>().ok()?)
            }
        },
    };
    if t.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(day_ms(date) + (hh * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// Formats Unix ms as `YYYY-MM-DDTHH:MM:SSZ` (the workspace's one writer, [`oracle_ipc::time`]).
pub fn format_iso_utc(t_ms: i64) -> String {
    IsoUtc(t_ms.div_euclid(1000)).to_string()
}

/// The UTC date of Unix ms `t_ms`.
pub fn date_of(t_ms: i64) -> Date {
    time::date(t_ms.div_euclid(1000))
}

/// Unix ms of midnight UTC starting `d`.
pub fn day_ms(d: Date) -> i64 {
    time::unix_day(d) * 1000
}

/// Aggregates bars of a finer period into `period` buckets. Each output bar is stamped with the
/// bucket's start; empty buckets produce no bar (gaps are normal).
pub fn aggregate(bars: &[Bar], period: Period) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for b in bars {
        let start = period.bucket_start(b.time_ms);
        match out.last_mut() {
            Some(cur) if cur.time_ms == start => {
                cur.high = cur.high.max(b.high);
                cur.low = cur.low.min(b.low);
                cur.close = b.close;
                cur.volume += b.volume;
            }
            _ => out.push(Bar {
                time_ms: start,
                ..*b
            }),
        }
    }
    out
}

/// Guesses the period of a bar series from its smallest gap between consecutive bars.
pub fn infer_period(bars: &[Bar]) -> Option<Period> {
    let gap = bars.windows(2).map(|w| w[1].time_ms - w[0].time_ms).min()?;
    ALL_PERIODS
        .iter()
        .copied()
        .find(|p| p.fixed_ms() == Some(gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_the_system_timeframe_numbered_as_the_open_api() {
        // The one Timeframe: what the IPC codec parses is what the simulator buckets.
        let tf: oracle_ipc::Timeframe = Period::M15;
        assert_eq!(oracle_ipc::Timeframe::from_name("M15"), Some(tf));
        for (i, p) in ALL_PERIODS.into_iter().enumerate() {
            // ProtoOATrendbarPeriod: M1 = 1 … MN1 = 14, in the order of the periods.
            assert_eq!(p.number(), i as i32 + 1, "{p}");
            assert_eq!(Period::from_number(p.number()), Some(p));
            assert_eq!(Period::parse_name(&p.name().to_ascii_lowercase()), Some(p));
            assert_eq!(Period::parse_name(p.name()), Some(p));
        }
        assert_eq!(Period::from_number(0), None);
        assert_eq!(Period::parse_name("H2"), None);
    }

    #[test]
    fn prices_parse_exactly() {
        assert_eq!(parse_price("1.08542"), Ok(108_542));
        assert_eq!(parse_price("1.1"), Ok(110_000));
        assert_eq!(parse_price("4512.25"), Ok(451_225_000));
        assert_eq!(parse_price("187"), Ok(18_700_000));
        assert_eq!(parse_price("1.085420"), Ok(108_542));
        assert!(parse_price("1.085421").is_err());
        assert!(parse_price("NaN").is_err());
        assert!(parse_price("").is_err());
        assert_eq!(format_price(108_542, 5), "1.08542");
        assert_eq!(format_price(451_225_000, 2), "4512.25");
    }

    #[test]
    fn iso_times_round_trip() {
        let t = parse_iso_utc("2021-03-01T00:15:00Z").unwrap();
        assert_eq!(t, 1_614_557_700_000);
        assert_eq!(format_iso_utc(t), "2021-03-01T00:15:00Z");
        assert_eq!(parse_iso_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso_utc("2024-02-29 23:59"), Some(1_709_251_140_000));
        assert!(parse_iso_utc("2021-13-01T00:00:00Z").is_none());
    }

    #[test]
    fn a_day_past_the_months_end_is_not_a_time() {
        // Was read as 2 March (only 1..=31 was checked).
        assert!(parse_iso_utc("2021-02-30T00:00:00Z").is_none());
        assert!(parse_iso_utc("2021-04-31 00:00").is_none());
        assert!(parse_iso_utc("2023-02-29T00:00:00Z").is_none());
        assert_eq!(
            parse_iso_utc("2024-02-29T00:00:00.250Z"),
            Some(1_709_164_800_250)
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_end_on_the_next_first() {
        let at = |s: &str| parse_iso_utc(s).unwrap();
        let w1 = |s: &str| format_iso_utc(Period::W1.bucket_start(at(s)));
        // Sunday night belongs to the week that began the Monday before; Monday 00:00 starts one.
        assert_eq!(w1("2024-03-10T23:59:59Z"), "2024-03-04T00:00:00Z");
        assert_eq!(w1("2024-03-11T00:00:00Z"), "2024-03-11T00:00:00Z");
        assert_eq!(w1("2024-03-09T12:00:00Z"), "2024-03-04T00:00:00Z");
        // Across a month and a year.
        assert_eq!(w1("2025-01-01T08:00:00Z"), "2024-12-30T00:00:00Z");
        let mn = |s: &str| {
            let start = Period::MN1.bucket_start(at(s));
            (
                format_iso_utc(start),
                format_iso_utc(Period::MN1.bucket_end(start)),
            )
        };
        assert_eq!(
            mn("2024-12-31T23:59:59Z"),
            ("2024-12-01T00:00:00Z".into(), "2025-01-01T00:00:00Z".into())
        );
        assert_eq!(
            mn("2024-02-29T12:00:00Z"),
            ("2024-02-01T00:00:00Z".into(), "2024-03-01T00:00:00Z".into())
        );
    }

    #[test]
    fn csv_is_validated_with_line_numbers() {
        let ok = "time,open,high,low,close,volume\n2021-03-01T00:00:00Z,1.1,1.2,1.0,1.15,10\n";
        assert_eq!(parse_bars("x", ok).unwrap().len(), 1);
        let bad = "time,open,high,low,close,volume\n2021-03-01T00:00:00Z,1.1,1.0,1.2,1.15,10\n";
        let e = parse_bars("x", bad).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("high < low"), "{e}");
        let back = "time,open,high,low,close,volume\n2021-03-01T00:15:00Z,1,1,1,1,1\n2021-03-01T00:00:00Z,1,1,1,1,1\n";
        assert!(
            parse_bars("x", back)
                .unwrap_err()
                .to_string()
                .contains("line 3")
        );
        let nan = "time,open,high,low,close,volume\n2021-03-01T00:15:00Z,NaN,1,1,1,1\n";
        assert!(parse_bars("x", nan).is_err());
    }

    #[test]
    fn trendbar_delta_round_trip() {
        let b = Bar {
            time_ms: 1_614_557_700_000,
            open: 108_542,
            high: 108_600,
            low: 108_500,
            close: 108_510,
            volume: 42,
        };
        let t = Trendbar::encode(Period::M15, &b);
        assert_eq!(
            (t.low, t.delta_open, t.delta_close, t.delta_high),
            (108_500, 42, 10, 100)
        );
        assert_eq!(t.utc_minutes, 26_909_295);
        assert_eq!(t.decode(), b);
    }

    #[test]
    fn buckets() {
        let t = parse_iso_utc("2021-03-03T13:47:00Z").unwrap();
        assert_eq!(
            format_iso_utc(Period::H4.bucket_start(t)),
            "2021-03-03T12:00:00Z"
        );
        assert_eq!(
            format_iso_utc(Period::D1.bucket_start(t)),
            "2021-03-03T00:00:00Z"
        );
        assert_eq!(
            format_iso_utc(Period::W1.bucket_start(t)),
            "2021-03-01T00:00:00Z"
        );
        assert_eq!(
            format_iso_utc(Period::MN1.bucket_start(t)),
            "2021-03-01T00:00:00Z"
        );
        assert_eq!(
            format_iso_utc(Period::MN1.bucket_end(Period::MN1.bucket_start(t))),
            "2021-04-01T00:00:00Z"
        );
        assert!(Period::H1.is_multiple_of(Period::M15));
        assert!(!Period::M15.is_multiple_of(Period::H1));
        assert!(!Period::M10.is_multiple_of(Period::M15));
        assert!(Period::MN1.is_multiple_of(Period::D1));
    }

    #[test]
    fn aggregation_stamps_bucket_start() {
        let m = |min: i64, o, h, l, c| Bar {
            time_ms: min * 60_000,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: 1,
        };
        let bars = [
            m(0, 10, 12, 9, 11),
            m(15, 11, 15, 10, 14),
            m(30, 14, 14, 8, 9),
            m(60, 9, 9, 9, 9),
        ];
        let h1 = aggregate(&bars, Period::H1);
        assert_eq!(h1.len(), 2);
        assert_eq!(
            h1[0],
            Bar {
                time_ms: 0,
                open: 10,
                high: 15,
                low: 8,
                close: 9,
                volume: 3
            }
        );
        assert_eq!(h1[1].time_ms, 3_600_000);
        assert_eq!(infer_period(&bars), Some(Period::M15));
    }
}
