//! A symbol's trading calendar, as the broker states it: `ProtoOASymbol.schedule` (weekly
//! intervals in seconds from Sunday 00:00 in `scheduleTimeZone`) and `holiday[]`
//! (`ProtoOAHoliday`: a date in days since 1970-01-01, recurring or not, optionally a start and
//! end second of that day, in the holiday's own `scheduleTimeZone`).
//!
//! Pure: no clock, no I/O. Parsed once ([`TradingCalendar::new`], [`TradingCalendar::from_symbol`]),
//! then asked [`TradingCalendar::is_open`], [`TradingCalendar::next_open`] and
//! [`TradingCalendar::next_close`] for an instant given as UTC Unix milliseconds. All calendar
//! arithmetic is `jiff`'s (the workspace's pinned version, its bundled tzdb), so the schedule's
//! zone follows its daylight-saving rules: an interval is wall-clock time in that zone.
//!
//! ## Choices where Spotware's documentation is silent
//! - An interval is half-open, `[start_second, end_second)`, with `0 <= start < end <= 604800`
//!   (604800 = the next Sunday 00:00); anything else is refused, naming the interval.
//! - A wall-clock instant a daylight-saving change skips or repeats counts as its wall-clock
//!   time: in a repeated hour the schedule applies to both occurrences.
//! - A holiday without `startSecond`/`endSecond` closes its whole day; with them, `[start, end)`
//!   of that day (`end` up to 86400). A recurring holiday recurs on the same month and day.
//! - An empty schedule means the symbol never trades (the simulator sends one for a symbol whose
//!   data is exhausted).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::proto::ProtoOaSymbol;

/// Seconds in a week.
pub const WEEK_SECONDS: u32 = 7 * 86_400;

/// One holiday of a symbol (the fields of `ProtoOAHoliday`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holiday {
    /// Its name (for messages).
    pub name: String,
    /// The IANA zone its date and seconds are in.
    pub time_zone: String,
    /// The date, days since 1970-01-01.
    pub date_days: i64,
    /// Every year on the same month and day.
    pub recurring: bool,
    /// First closed second of the day (None with `end_second` None: the whole day).
    pub start_second: Option<i32>,
    /// First second open again (exclusive end; up to 86400).
    pub end_second: Option<i32>,
}

/// A schedule or holiday the calendar cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The zone is not in the tz database.
    #[error("trading calendar: unknown time zone `{0}` (scheduleTimeZone)")]
    UnknownTimeZone(String),
    /// An interval outside one week or empty.
    #[error(
        "trading calendar: schedule interval #{index} [{start}, {end}) is not within one week \
         (0 <= startSecond < endSecond <= 604800)"
    )]
    BadInterval {
        /// Its position in the schedule.
        index: usize,
        /// Its start second.
        start: u32,
        /// Its end second.
        end: u32,
    },
    /// A holiday whose date or seconds make no sense.
    #[error("trading calendar: holiday `{name}`: {reason}")]
    BadHoliday {
        /// The holiday's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Clone, Debug)]
struct HolidayRule {
    tz: TimeZone,
    date: Date,
    recurring: bool,
    /// `[start, end)` seconds of the day.
    start: i32,
    end: i32,
}

impl HolidayRule {
    fn covers(&self, ts: Timestamp) -> bool {
        let z = ts.to_zoned_datetime(self.tz.clone());
        let d = z.date();
        let same_day = if self.recurring {
            d.month() == self.date.month() && d.day() == self.date.day()
        } else {
            d == self.date
        };
        let sod = second_of_day(z.time());
        same_day && self.start <= sod && sod < self.end
    }

    /// The civil dates this holiday falls on in `years`.
    fn dates(&self, years: std::ops::RangeInclusive<i16>) -> Vec<Date> {
        if !self.recurring {
            return vec![self.date];
        }
        years
            .filter_map(|y| Date::new(y, self.date.month(), self.date.day()).ok())
            .collect()
    }
}

/// When a symbol trades. See the module documentation.
#[derive(Clone, Debug)]
pub struct TradingCalendar {
    tz_name: String,
    tz: TimeZone,
    /// `[start, end)` seconds from Sunday 00:00, wall clock in `tz`.
    intervals: Vec<(u32, u32)>,
    holidays: Vec<HolidayRule>,
}

fn zone(name: &str) -> Result<TimeZone, CalendarError> {
    if name.is_empty() || name.eq_ignore_ascii_case("UTC") {
        return Ok(TimeZone::UTC);
    }
    jiff::tz::db()
        .get(name)
        .map_err(|_| CalendarError::UnknownTimeZone(name.to_string()))
}

fn second_of_day(t: Time) -> i32 {
    i32::from(t.hour()) * 3600 + i32::from(t.minute()) * 60 + i32::from(t.second())
}

/// The civil date-time `secs` seconds after `base` (seconds may reach past midnight).
fn civil_plus(base: DateTime, secs: i64) -> Option<DateTime> {
    base.checked_add(SignedDuration::from_secs(secs)).ok()
}

impl TradingCalendar {
    /// A calendar from a schedule in `time_zone` and holidays. Errors name the zone, the interval
    /// or the holiday at fault.
    pub fn new(
        time_zone: &str,
        schedule: &[(u32, u32)],
        holidays: &[Holiday],
    ) -> Result<Self, CalendarError> {
        let tz = zone(time_zone)?;
        let mut intervals = Vec::with_capacity(schedule.len());
        for (index, &(start, end)) in schedule.iter().enumerate() {
            if start >= end || end > WEEK_SECONDS {
                return Err(CalendarError::BadInterval { index, start, end });
            }
            intervals.push((start, end));
        }
        intervals.sort_unstable();
        let mut rules = Vec::with_capacity(holidays.len());
        for h in holidays {
            let bad = |reason: String| CalendarError::BadHoliday {
                name: h.name.clone(),
                reason,
            };
            let htz = if h.time_zone.is_empty() {
                tz.clone()
            } else {
                zone(&h.time_zone)
                    .map_err(|_| bad(format!("unknown time zone `{}`", h.time_zone)))?
            };
            let date = Date::constant(1970, 1, 1)
                .checked_add(SignedDuration::from_hours(24 * h.date_days))
                .map_err(|_| {
                    bad(format!(
                        "date {} (days since 1970-01-01) out of range",
                        h.date_days
                    ))
                })?;
            let (start, end) = match (h.start_second, h.end_second) {
                (None, None) => (0, 86_400),
                (Some(s), Some(e)) if 0 <= s && s < e && e <= 86_400 => (s, e),
                (s, e) => {
                    return Err(bad(format!(
                        "seconds [{s:?}, {e:?}) are not within one day (0 <= start < end <= 86400, both or neither)"
                    )));
                }
            };
            rules.push(HolidayRule {
                tz: htz,
                date,
                recurring: h.recurring,
                start,
                end,
            });
        }
        Ok(Self {
            tz_name: if time_zone.is_empty() {
                "UTC".into()
            } else {
                time_zone.to_string()
            },
            tz,
            intervals,
            holidays: rules,
        })
    }

    /// The calendar a `ProtoOASymbol` (from `SymbolByIdRes`) states.
    pub fn from_symbol(symbol: &ProtoOaSymbol) -> Result<Self, CalendarError> {
        let schedule: Vec<(u32, u32)> = symbol
            .schedule
            .iter()
            .map(|i| (i.start_second, i.end_second))
            .collect();
        let holidays: Vec<Holiday> = symbol
            .holiday
            .iter()
            .map(|h| Holiday {
                name: h.name.clone(),
                time_zone: h.schedule_time_zone.clone(),
                date_days: h.holiday_date,
                recurring: h.is_recurring,
                start_second: h.start_second,
                end_second: h.end_second,
            })
            .collect();
        Self::new(
            symbol.schedule_time_zone.as_deref().unwrap_or("UTC"),
            &schedule,
            &holidays,
        )
    }

    /// Open all week (no holidays), in UTC.
    pub fn always_open() -> Self {
        Self {
            tz_name: "UTC".into(),
            tz: TimeZone::UTC,
            intervals: vec![(0, WEEK_SECONDS)],
            holidays: Vec::new(),
        }
    }

    /// The schedule's zone, as given.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// Whether the market is open at `utc_ms` (Unix milliseconds).
    pub fn is_open(&self, utc_ms: i64) -> bool {
        let Ok(ts) = Timestamp::from_millisecond(utc_ms) else {
            return false;
        };
        self.open_at(ts)
    }

    fn open_at(&self, ts: Timestamp) -> bool {
        let z = ts.to_zoned_datetime(self.tz.clone());
        let ws = u32::try_from(z.weekday().to_sunday_zero_offset()).unwrap_or(0) * 86_400
            + u32::try_from(second_of_day(z.time())).unwrap_or(0);
        self.intervals.iter().any(|&(s, e)| s <= ws && ws < e)
            && !self.holidays.iter().any(|h| h.covers(ts))
    }

    /// The first instant at or after `utc_ms` when the market is open (None: not within about
    /// a year, e.g. an empty schedule).
    pub fn next_open(&self, utc_ms: i64) -> Option<i64> {
        self.next_state(utc_ms, true)
    }

    /// The first instant at or after `utc_ms` when the market is closed (None: not within about
    /// a year, e.g. open all week with no holiday).
    pub fn next_close(&self, utc_ms: i64) -> Option<i64> {
        self.next_state(utc_ms, false)
    }

    fn next_state(&self, utc_ms: i64, open: bool) -> Option<i64> {
        if self.is_open(utc_ms) == open {
            return Some(utc_ms);
        }
        // The state only changes at a candidate instant: an interval's or a holiday's wall-clock
        // boundary (either reading of an ambiguous one) or a daylight-saving change. The first
        // candidate after `utc_ms` in the wanted state is the answer. Two weeks cover most
        // cases; a holiday-long closure needs the longer look.
        [2, 60]
            .into_iter()
            .find_map(|weeks| self.scan(utc_ms, open, weeks))
    }

    fn scan(&self, utc_ms: i64, open: bool, weeks: i64) -> Option<i64> {
        let t = Timestamp::from_millisecond(utc_ms).ok()?;
        let z = t.to_zoned_datetime(self.tz.clone());
        let sunday = z
            .date()
            .checked_sub(SignedDuration::from_hours(
                24 * i64::from(z.weekday().to_sunday_zero_offset()),
            ))
            .ok()?
            .to_datetime(Time::midnight());
        // Candidates are complete up to one day before the last week's end (an ambiguous
        // reading moves a boundary by hours, never by a day).
        let horizon = self
            .tz
            .to_zoned_datetime(civil_plus(
                sunday,
                weeks * i64::from(WEEK_SECONDS) - 86_400,
            )?)
            .ok()?
            .timestamp();
        let mut cands: Vec<Timestamp> = Vec::new();
        let mut civil = |tz: &TimeZone, dt: DateTime| {
            let amb = tz.to_ambiguous_zoned_datetime(dt);
            for ts in [amb.clone().earlier(), amb.clone().later(), amb.compatible()]
                .into_iter()
                .flatten()
            {
                cands.push(ts.timestamp());
            }
        };
        for w in -1..=weeks {
            for &(s, e) in &self.intervals {
                for sec in [s, e] {
                    let off = w * i64::from(WEEK_SECONDS) + i64::from(sec);
                    if let Some(dt) = civil_plus(sunday, off) {
                        civil(&self.tz, dt);
                    }
                }
            }
        }
        let year = z.date().year();
        let last_year = horizon.to_zoned_datetime(self.tz.clone()).date().year();
        for h in &self.holidays {
            for d in h.dates(year.saturating_sub(1)..=last_year.saturating_add(1)) {
                let midnight = d.to_datetime(Time::midnight());
                for sec in [h.start, h.end] {
                    if let Some(dt) = civil_plus(midnight, i64::from(sec)) {
                        civil(&h.tz, dt);
                    }
                }
            }
        }
        for tr in self.tz.following(t) {
            if tr.timestamp() > horizon {
                break;
            }
            cands.push(tr.timestamp());
        }
        for h in &self.holidays {
            for tr in h.tz.following(t) {
                if tr.timestamp() > horizon {
                    break;
                }
                cands.push(tr.timestamp());
            }
        }
        cands.retain(|c| *c > t && *c <= horizon);
        cands.sort_unstable();
        cands.dedup();
        cands
            .into_iter()
            .find(|c| self.open_at(*c) == open)
            .map(|c| c.as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn an_interval_past_the_week_is_refused_naming_it() {
        let e = TradingCalendar::new("UTC", &[(0, 10), (100, 604_801)], &[]).unwrap_err();
        assert_eq!(
            e,
            CalendarError::BadInterval {
                index: 1,
                start: 100,
                end: 604_801
            }
        );
        assert!(e.to_string().contains("#1"), "{e}");
    }

    #[test]
    fn an_unknown_zone_is_refused_naming_it() {
        let e = TradingCalendar::new("Mars/Olympus", &[(0, 10)], &[]).unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn always_open_never_closes() {
        let c = TradingCalendar::always_open();
        let t = ms("2026-12-05T12:00:00Z");
        assert!(c.is_open(t));
        assert_eq!(c.next_close(t), None);
        assert_eq!(c.next_open(t), Some(t));
    }
}
