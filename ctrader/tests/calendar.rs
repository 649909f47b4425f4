//! The trading calendar from a broker's schedule, holidays and zone: FX hours, an index's daily
//! break, a stock session across a daylight-saving change, a holiday. Every instant is a
//! parameter; nothing here reads a clock.

use oracle_ctrader::calendar::{Holiday, TradingCalendar};
use oracle_ctrader::proto::{ProtoOaHoliday, ProtoOaInterval, ProtoOaSymbol};

const H: u32 = 3600;
const D: u32 = 86_400;

fn ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn days(date: &str) -> i64 {
    ms(&format!("{date}T00:00:00Z")) / 86_400_000
}

/// FX: Sunday 22:00 to Friday 22:00 UTC.
fn fx() -> TradingCalendar {
    TradingCalendar::new("UTC", &[(22 * H, 5 * D + 22 * H)], &[]).unwrap()
}

#[test]
fn fx_opens_sunday_22_utc_and_closes_friday_22_utc() {
    let c = fx();
    // Saturday 2026-12-05 noon: closed; opens Sunday 22:00.
    let sat = ms("2026-12-05T12:00:00Z");
    assert!(!c.is_open(sat));
    assert_eq!(c.next_open(sat), Some(ms("2026-12-06T22:00:00Z")));
    assert!(!c.is_open(ms("2026-12-06T21:59:59Z")));
    assert!(c.is_open(ms("2026-12-06T22:00:00Z")));
    // Wednesday: open; closes Friday 22:00.
    let wed = ms("2026-12-09T10:30:00Z");
    assert!(c.is_open(wed));
    assert_eq!(c.next_open(wed), Some(wed));
    assert_eq!(c.next_close(wed), Some(ms("2026-12-11T22:00:00Z")));
    assert!(c.is_open(ms("2026-12-11T21:59:59Z")));
    assert!(!c.is_open(ms("2026-12-11T22:00:00Z")));
}

/// US500-like index in New York time: Sunday 18:00 to Friday 17:00 with a daily break 17:00-18:00.
fn index_ny() -> TradingCalendar {
    let mut iv = vec![(18 * H, D + 17 * H)];
    for d in 1..5 {
        iv.push((d * D + 18 * H, (d + 1) * D + 17 * H));
    }
    TradingCalendar::new("America/New_York", &iv, &[]).unwrap()
}

#[test]
fn an_index_daily_break_follows_new_york_daylight_saving() {
    let c = index_ny();
    // Summer (EDT, UTC-4): the break is 21:00-22:00 UTC.
    let tue = ms("2026-07-14T20:59:00Z");
    assert!(c.is_open(tue));
    assert_eq!(c.next_close(tue), Some(ms("2026-07-14T21:00:00Z")));
    assert!(!c.is_open(ms("2026-07-14T21:30:00Z")));
    assert_eq!(
        c.next_open(ms("2026-07-14T21:30:00Z")),
        Some(ms("2026-07-14T22:00:00Z"))
    );
    // Winter (EST, UTC-5): the same break is 22:00-23:00 UTC.
    assert!(c.is_open(ms("2026-12-08T21:30:00Z")));
    assert_eq!(
        c.next_close(ms("2026-12-08T21:30:00Z")),
        Some(ms("2026-12-08T22:00:00Z"))
    );
    assert_eq!(
        c.next_open(ms("2026-12-08T22:00:00Z")),
        Some(ms("2026-12-08T23:00:00Z"))
    );
    // Friday 17:00 New York closes for the weekend; Sunday 18:00 reopens.
    assert_eq!(
        c.next_open(ms("2026-12-11T22:00:00Z")),
        Some(ms("2026-12-13T23:00:00Z"))
    );
}

/// A stock session in Berlin: Monday to Friday 09:00-17:30 local.
fn stock_berlin(holidays: &[Holiday]) -> TradingCalendar {
    let iv: Vec<(u32, u32)> = (1..=5)
        .map(|d| (d * D + 9 * H, d * D + 17 * H + 1800))
        .collect();
    TradingCalendar::new("Europe/Berlin", &iv, holidays).unwrap()
}

#[test]
fn a_stock_session_in_berlin_keeps_local_hours_across_the_clock_change() {
    let c = stock_berlin(&[]);
    // Friday 2026-03-27 (CET, UTC+1): opens 08:00 UTC.
    assert_eq!(
        c.next_open(ms("2026-03-27T06:00:00Z")),
        Some(ms("2026-03-27T08:00:00Z"))
    );
    // Clocks go forward Sunday 2026-03-29: Monday opens 09:00 CEST = 07:00 UTC.
    assert_eq!(
        c.next_open(ms("2026-03-27T17:00:00Z")),
        Some(ms("2026-03-30T07:00:00Z"))
    );
    assert_eq!(
        c.next_close(ms("2026-03-30T07:00:00Z")),
        Some(ms("2026-03-30T15:30:00Z"))
    );
}

#[test]
fn a_holiday_closes_its_day_in_its_zone_and_the_next_open_is_after_it() {
    let xmas = Holiday {
        name: "Christmas".into(),
        time_zone: "Europe/Berlin".into(),
        date_days: days("2026-12-25"),
        recurring: true,
        start_second: None,
        end_second: None,
    };
    let c = stock_berlin(std::slice::from_ref(&xmas));
    // Thursday 24th closes at 17:30 CET = 16:30 UTC; Friday 25th is the holiday; next open is
    // Monday 28th 09:00 CET = 08:00 UTC.
    assert_eq!(
        c.next_open(ms("2026-12-24T16:30:00Z")),
        Some(ms("2026-12-28T08:00:00Z"))
    );
    assert!(!c.is_open(ms("2026-12-25T10:00:00Z")));
    // Recurring: the next year too (Monday 2028-12-25 closed, Tuesday opens).
    assert!(!c.is_open(ms("2028-12-25T10:00:00Z")));
    assert_eq!(
        c.next_open(ms("2028-12-25T10:00:00Z")),
        Some(ms("2028-12-26T08:00:00Z"))
    );
    // Without the holiday the 25th trades.
    assert!(stock_berlin(&[]).is_open(ms("2026-12-25T10:00:00Z")));
}

#[test]
fn a_holiday_with_seconds_closes_only_that_part_of_the_day() {
    let early_close = Holiday {
        name: "New Year's Eve".into(),
        time_zone: "UTC".into(),
        date_days: days("2026-12-31"),
        recurring: false,
        start_second: Some(14 * 3600),
        end_second: Some(86_400),
    };
    let c = TradingCalendar::new("UTC", &[(22 * H, 5 * D + 22 * H)], &[early_close]).unwrap();
    assert!(c.is_open(ms("2026-12-31T13:59:59Z")));
    assert_eq!(
        c.next_close(ms("2026-12-31T10:00:00Z")),
        Some(ms("2026-12-31T14:00:00Z"))
    );
    assert_eq!(
        c.next_open(ms("2026-12-31T14:00:00Z")),
        Some(ms("2027-01-01T00:00:00Z"))
    );
    // Not recurring: a year later the same day trades until the weekend.
    assert!(c.is_open(ms("2027-12-31T15:00:00Z")));
}

#[test]
fn a_bad_holiday_is_refused_naming_it() {
    let h = Holiday {
        name: "Half day".into(),
        time_zone: "UTC".into(),
        date_days: 20_000,
        recurring: false,
        start_second: Some(50_000),
        end_second: None,
    };
    let e = TradingCalendar::new("UTC", &[(0, D)], &[h]).unwrap_err();
    assert!(e.to_string().contains("Half day"), "{e}");
}

#[test]
fn an_empty_schedule_never_opens() {
    let c = TradingCalendar::new("UTC", &[], &[]).unwrap();
    let t = ms("2026-12-09T10:00:00Z");
    assert!(!c.is_open(t));
    assert_eq!(c.next_open(t), None);
    assert_eq!(c.next_close(t), Some(t));
}

#[test]
fn the_calendar_of_a_symbol_by_id_res_is_its_schedule_holidays_and_zone() {
    let sym = ProtoOaSymbol {
        schedule: vec![ProtoOaInterval {
            start_second: 22 * H,
            end_second: 5 * D + 22 * H,
        }],
        schedule_time_zone: Some("UTC".into()),
        holiday: vec![ProtoOaHoliday {
            holiday_id: 1,
            name: "Boxing Day".into(),
            schedule_time_zone: "Europe/London".into(),
            holiday_date: days("2026-12-28"),
            is_recurring: false,
            ..Default::default()
        }],
        ..Default::default()
    };
    let c = TradingCalendar::from_symbol(&sym).unwrap();
    assert!(c.is_open(ms("2026-12-27T22:30:00Z")));
    assert_eq!(
        c.next_close(ms("2026-12-27T22:30:00Z")),
        Some(ms("2026-12-28T00:00:00Z"))
    );
    assert_eq!(
        c.next_open(ms("2026-12-28T00:00:00Z")),
        Some(ms("2026-12-29T00:00:00Z"))
    );
    let bad = ProtoOaSymbol {
        schedule_time_zone: Some("Nowhere/Else".into()),
        ..sym
    };
    let e = TradingCalendar::from_symbol(&bad).unwrap_err();
    assert!(e.to_string().contains("Nowhere/Else"), "{e}");
}

#[test]
fn in_the_repeated_hour_of_a_fall_back_both_readings_follow_the_wall_clock() {
    // New York falls back on Sunday 2026-11-01 at 02:00 EDT → 01:00 EST. An index break
    // 01:00-02:00 local on Sundays (made up) closes both occurrences of 01:xx.
    let c = TradingCalendar::new("America/New_York", &[(0, H), (2 * H, 6 * D)], &[]).unwrap();
    assert!(c.is_open(ms("2026-11-01T04:30:00Z")), "00:30 EDT");
    assert!(!c.is_open(ms("2026-11-01T05:30:00Z")), "01:30 EDT");
    assert!(!c.is_open(ms("2026-11-01T06:30:00Z")), "01:30 EST");
    assert_eq!(
        c.next_open(ms("2026-11-01T05:00:00Z")),
        Some(ms("2026-11-01T07:00:00Z")),
        "02:00 EST"
    );
}

/// The first minute at or after `t` (minute aligned) whose state is `open`, by brute force.
fn scan(c: &TradingCalendar, t: i64, open: bool, minutes: i64) -> Option<i64> {
    (0..minutes)
        .map(|m| t + m * 60_000)
        .find(|&x| c.is_open(x) == open)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    #[test]
    fn next_open_and_next_close_are_the_first_such_minute(
        minute in 28_401_120i64..30_504_960, // 2024-01-01 .. 2028-01-01, in minutes
        which in 0usize..3,
    ) {
        let xmas = Holiday {
            name: "Christmas".into(),
            time_zone: "Europe/Berlin".into(),
            date_days: days("2026-12-25"),
            recurring: true,
            start_second: None,
            end_second: None,
        };
        let c = match which {
            0 => fx(),
            1 => index_ny(),
            _ => stock_berlin(&[xmas]),
        };
        let t = minute * 60_000;
        // Within 6 days every one of these calendars opens and closes.
        let horizon = 6 * 24 * 60;
        proptest::prop_assert_eq!(c.next_open(t), scan(&c, t, true, horizon));
        proptest::prop_assert_eq!(c.next_close(t), scan(&c, t, false, horizon));
    }
}
