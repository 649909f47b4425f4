//! The workspace's one UTC calendar: ISO-8601 timestamps (`2021-03-01T00:15:00Z`) <-> Unix
//! seconds, and civil dates (weekday, month starts), without std or alloc.
//!
//! The calendar itself (month lengths, leap years, day counts, weekdays) is `jiff`'s; this module
//! only owns the one text form the system writes and accepts: exactly `YYYY-MM-DDTHH:MM:SSZ`, ASCII
//! digits, no leap second. The wire ([`parse_time`]) takes years 1970..=9999; the bar files and
//! traces ([`parse_iso`]) any four-digit year.

use core::fmt;

pub use jiff::civil::{Date, DateTime, Weekday};
use jiff::{SignedDuration, civil};

/// Smallest time on the wire (1970-01-01T00:00:00Z).
pub const MIN_TIME: i64 = 0;
/// Largest accepted time (9999-12-31T23:59:59Z).
pub const MAX_TIME: i64 = 253_402_300_799;
/// Smallest time the text form can write (0000-01-01T00:00:00Z).
pub const MIN_ISO_TIME: i64 = -62_167_219_200;
/// Seconds in a UTC day (no leap seconds).
pub const DAY: i64 = 86_400;

const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// The UTC date and time of Unix seconds `t`, clamped to [`MIN_ISO_TIME`]..=[`MAX_TIME`].
pub fn datetime(t: i64) -> DateTime {
    let t = t.clamp(MIN_ISO_TIME, MAX_TIME);
    // In range by the clamp: 0000-01-01 ..= 9999-12-31 is inside jiff's civil range.
    EPOCH
        .checked_add(SignedDuration::from_secs(t))
        .unwrap_or(EPOCH)
}

/// The UTC date of Unix seconds `t` (clamped like [`datetime`]).
pub fn date(t: i64) -> Date {
    datetime(t).date()
}

/// Unix seconds of a UTC date and time.
pub fn unix(dt: DateTime) -> i64 {
    dt.duration_since(EPOCH).as_secs()
}

/// Unix seconds of midnight UTC starting `d`.
pub fn unix_day(d: Date) -> i64 {
    unix(d.to_datetime(civil::Time::midnight()))
}

fn digits(s: &[u8]) -> Option<u16> {
    let mut v: u16 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u16::from(b - b'0');
    }
    Some(v)
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (ASCII digits, any four-digit year) into Unix seconds.
/// `None` if the text is not exactly that form or names an impossible date/time (month 13,
/// 30 February, hour 24, leap second 60).
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    // At most 9999 / 99: every field fits the narrower jiff types, which validate the ranges.
    let y = i16::try_from(digits(&b[0..4])?).ok()?;
    let field = |r: core::ops::Range<usize>| digits(&b[r]).and_then(|v| i8::try_from(v).ok());
    let (mo, d) = (field(5..7)?, field(8..10)?);
    let (h, mi, se) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let date = Date::new(y, mo, d).ok()?;
    let time = civil::Time::new(h, mi, se, 0).ok()?;
    Some(unix(date.to_datetime(time)))
}

/// Parses a wire time: exactly `YYYY-MM-DDTHH:MM:SSZ`, years 1970..=9999 (see [`parse_iso`]).
pub fn parse_time(s: &str) -> Option<i64> {
    parse_iso(s).filter(|t| *t >= MIN_TIME)
}

fn write_iso(f: &mut fmt::Formatter<'_>, t: i64) -> fmt::Result {
    let dt = datetime(t);
    write!(
        f,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Display adapter for the wire: writes Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`. Times outside
/// [`MIN_TIME`]..=[`MAX_TIME`] are clamped (they cannot be produced by [`parse_time`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iso(pub i64);

impl fmt::Display for Iso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_iso(f, self.0.clamp(MIN_TIME, MAX_TIME))
    }
}

/// Display adapter for files and traces: writes Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, any
/// four-digit year; times outside [`MIN_ISO_TIME`]..=[`MAX_TIME`] are clamped (the text form
/// cannot hold them, and [`parse_iso`] cannot produce them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsoUtc(pub i64);

impl fmt::Display for IsoUtc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_iso(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: impl fmt::Display, out: &mut [u8; 32]) -> &str {
        crate::fmt_buf::write(out, format_args!("{t}")).unwrap()
    }

    #[test]
    fn known_times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2021-03-01T00:15:00Z"), Some(1_614_557_700));
        assert_eq!(parse_time("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Some(MAX_TIME));
        assert_eq!(parse_time("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_time("1900-02-29T00:00:00Z"), None);
        assert_eq!(parse_time("2021-04-31T00:00:00Z"), None);
        assert_eq!(parse_time("2021-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("2021-00-01T00:00:00Z"), None);
        assert_eq!(parse_time("2021-03-00T00:00:00Z"), None);
        assert_eq!(parse_time("2021-03-01T24:00:00Z"), None);
        assert_eq!(parse_time("2021-03-01T23:60:00Z"), None);
        assert_eq!(parse_time("2016-12-31T23:59:60Z"), None);
        assert_eq!(parse_time("2021-03-01 00:15:00Z"), None);
        assert_eq!(parse_time("2021-03-01T00:15:00"), None);
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_time("+021-03-01T00:15:00Z"), None);
        assert_eq!(parse_time("2021-03-01T00:15:0\u{663}Z"), None);
    }

    #[test]
    fn files_take_any_four_digit_year_the_wire_only_from_1970() {
        assert_eq!(parse_iso("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(parse_iso("0000-01-01T00:00:00Z"), Some(MIN_ISO_TIME));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), None);
        let mut b = [0u8; 32];
        assert_eq!(s(IsoUtc(-1), &mut b), "1969-12-31T23:59:59Z");
        assert_eq!(s(Iso(-1), &mut b), "1970-01-01T00:00:00Z");
        assert_eq!(s(IsoUtc(MAX_TIME + 1), &mut b), "9999-12-31T23:59:59Z");
        assert_eq!(s(IsoUtc(MIN_ISO_TIME - 1), &mut b), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn round_trip_days() {
        for t in [
            0i64,
            1,
            86_399,
            86_400,
            1_614_557_700,
            951_782_400,
            1_709_251_199,
            MAX_TIME,
        ] {
            let mut b = [0u8; 32];
            assert_eq!(parse_time(s(Iso(t), &mut b)), Some(t), "{t}");
        }
        for t in [MIN_ISO_TIME, -86_400, -1, 4_102_444_799] {
            let mut b = [0u8; 32];
            assert_eq!(parse_iso(s(IsoUtc(t), &mut b)), Some(t), "{t}");
        }
    }

    #[test]
    fn calendar_helpers() {
        // 1970-01-01 was a Thursday; 2024-03-04 a Monday.
        assert_eq!(date(0).weekday(), Weekday::Thursday);
        assert_eq!(
            date(parse_time("2024-03-04T12:00:00Z").unwrap()).weekday(),
            Weekday::Monday
        );
        let d = date(parse_time("2024-02-29T23:59:59Z").unwrap());
        assert_eq!(unix_day(d), parse_time("2024-02-29T00:00:00Z").unwrap());
        assert_eq!(
            unix_day(d.last_of_month().tomorrow().unwrap()),
            parse_time("2024-03-01T00:00:00Z").unwrap()
        );
    }
}
