//! The risk guard at the edges its unit tests do not reach (each test kills mutants that
//! survived `scripts/mutants --area risk`). Time is always a parameter here.

use oracle_executor_core::risk::{Account, DailyAnchor, DayStart, Halt, RiskConfig, RiskGuard};

/// Unix seconds of an RFC 3339 UTC time.
fn t(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn acc(balance: f64, equity: f64) -> Account {
    Account {
        balance,
        equity,
        free_margin: equity,
    }
}

#[test]
fn the_broker_day_of_a_time_past_the_calendar_is_that_of_its_first_or_last_instant() {
    let first = jiff::Timestamp::MIN.as_second();
    let last = jiff::Timestamp::MAX.as_second();
    for zone in ["Europe/Prague", "UTC", "UTC+05:30"] {
        let d = DayStart::parse(zone).unwrap();
        // Far past the end: the day of the last instant, not of the first, and no overflow.
        assert_eq!(d.day_start(i64::MAX), d.day_start(last), "{zone}");
        assert_eq!(d.day_start(last + 1), d.day_start(last), "{zone}");
        assert_eq!(d.day_start(i64::MIN), d.day_start(first), "{zone}");
        assert_eq!(d.day_start(first - 1), d.day_start(first), "{zone}");
        // Where the zone's midnight is before the first instant, the UTC midnight before it.
        let start = d.day_start(first);
        assert!(start <= first && first - start < 86_400, "{zone}: {start}");
        assert_eq!(start.rem_euclid(86_400), 0, "{zone}: {start}");
    }
}

#[test]
fn fixed_offsets_up_to_14_hours_and_59_minutes_are_accepted() {
    // UTC+14:00 (Kiribati's offset): midnight is 10:00 UTC the day before.
    let d = DayStart::parse("UTC+14:00").unwrap();
    assert_eq!(
        d.day_start(t("2025-01-15T12:00:00Z")),
        t("2025-01-15T10:00:00Z")
    );
    let d = DayStart::parse("UTC+14:59").unwrap();
    assert_eq!(
        d.day_start(t("2025-01-15T12:00:00Z")),
        t("2025-01-15T09:01:00Z")
    );
    let d = DayStart::parse("UTC-14:00").unwrap();
    assert_eq!(
        d.day_start(t("2025-01-15T12:00:00Z")),
        t("2025-01-14T14:00:00Z")
    );
    let d = DayStart::parse("UTC+00:59").unwrap();
    assert_eq!(
        d.day_start(t("2025-01-15T12:00:00Z")),
        t("2025-01-14T23:01:00Z")
    );
    let d = DayStart::parse("UTC+10:00").unwrap();
    assert_eq!(
        d.day_start(t("2025-01-15T12:00:00Z")),
        t("2025-01-15T14:00:00Z") - 86_400
    );
    let d = DayStart::parse("UTC-00:30").unwrap();
    assert_eq!(
        d.day_start(t("2025-01-15T12:00:00Z")),
        t("2025-01-15T00:30:00Z")
    );
    for bad in [
        "UTC+15:00",
        "UTC+99:00",
        "UTC*02:00",
        "UTC+02-00",
        "UTC+02:0x",
        // Not digits, though they would make a valid-looking offset if read as digits
        // (':' − '0' = 10) or underflow ('/' < '0').
        "UTC+0::00",
        "UTC+0/:00",
    ] {
        let why = DayStart::parse(bad).expect_err(bad);
        assert!(why.contains(bad), "{why}");
    }
}

#[test]
fn the_guard_keeps_the_limits_it_was_configured_with() {
    let cfg = RiskConfig {
        daily_loss_pct: 4.0,
        max_drawdown_pct: 8.0,
        stale_after_secs: 30,
        ..RiskConfig::default()
    };
    let g = RiskGuard::new(cfg.clone(), None);
    assert_eq!(g.config(), &cfg);
}

#[test]
fn a_configured_initial_balance_wins_over_the_journals_and_the_journals_over_the_first_balance() {
    let cfg = RiskConfig {
        initial_balance: Some(50_000.0),
        ..RiskConfig::default()
    };
    let mut g = RiskGuard::new(cfg, Some(100_000.0));
    assert_eq!(g.initial(), Some(50_000.0));
    // The drawdown floor is 90% of the configured 50,000, not of the journal's 100,000.
    let (h, _) = g.update(t("2025-01-15T10:00:00Z"), acc(46_000.0, 46_000.0));
    assert_eq!(h, None);
    let mut j = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
    assert_eq!(j.initial(), Some(100_000.0));
    j.update(t("2025-01-15T10:00:00Z"), acc(120_000.0, 120_000.0));
    assert_eq!(j.initial(), Some(100_000.0));
}

#[test]
fn a_daily_halt_is_reported_once_and_held_until_the_next_day() {
    let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
    let day = t("2025-01-14T23:00:00Z");
    g.update(t("2025-01-15T08:00:00Z"), acc(100_000.0, 100_000.0));
    let (h, _) = g.update(t("2025-01-15T09:00:00Z"), acc(100_000.0, 94_000.0));
    let first = Halt::DailyLoss {
        equity: 94_000.0,
        floor: 95_000.0,
        day_start: day,
    };
    assert_eq!(h, Some(first));
    // Further losses the same day: no second report, the first halt stays as it was.
    let (h, new_day) = g.update(t("2025-01-15T10:00:00Z"), acc(100_000.0, 93_000.0));
    assert_eq!((h, new_day), (None, false));
    assert_eq!(g.halt(), Some(first));
    // A recovery the same day does not lift it either.
    let (h, _) = g.update(t("2025-01-15T11:00:00Z"), acc(100_000.0, 99_000.0));
    assert_eq!(h, None);
    assert_eq!(g.halt(), Some(first));
}

#[test]
fn a_max_drawdown_halt_is_reported_once_and_outlives_the_day() {
    let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
    let (h, _) = g.update(t("2025-01-15T08:00:00Z"), acc(95_000.0, 89_000.0));
    let dd = Halt::MaxDrawdown {
        equity: 89_000.0,
        floor: 90_000.0,
    };
    assert_eq!(h, Some(dd));
    let (h, new_day) = g.update(t("2025-01-16T08:00:00Z"), acc(88_000.0, 88_000.0));
    assert_eq!((h, new_day), (None, true));
    assert_eq!(g.halt(), Some(dd));
}

#[test]
fn the_daily_anchor_can_be_the_days_equity_or_the_higher_of_balance_and_equity() {
    let at = t("2025-01-15T08:00:00Z");
    let day = t("2025-01-14T23:00:00Z");
    let anchor = |a: DailyAnchor, balance: f64, equity: f64| {
        let cfg = RiskConfig {
            daily_anchor: a,
            ..RiskConfig::default()
        };
        let mut g = RiskGuard::new(cfg, Some(100_000.0));
        g.update(at, acc(balance, equity));
        g.day()
    };
    assert_eq!(
        anchor(DailyAnchor::Balance, 100_000.0, 98_000.0),
        Some((day, 100_000.0))
    );
    assert_eq!(
        anchor(DailyAnchor::Equity, 100_000.0, 98_000.0),
        Some((day, 98_000.0))
    );
    assert_eq!(
        anchor(DailyAnchor::MaxOfBalanceEquity, 100_000.0, 98_000.0),
        Some((day, 100_000.0))
    );
    assert_eq!(
        anchor(DailyAnchor::MaxOfBalanceEquity, 100_000.0, 103_000.0),
        Some((day, 103_000.0))
    );
}

#[test]
fn no_day_is_known_before_the_first_update_or_restore() {
    let g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
    assert_eq!(g.day(), None);
    assert_eq!(g.halt(), None);
    let mut r = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
    r.restore_day(t("2025-01-14T23:00:00Z"), 101_000.0);
    assert_eq!(r.day(), Some((t("2025-01-14T23:00:00Z"), 101_000.0)));
}

#[test]
fn a_person_lifting_a_halt_clears_it_until_the_next_update_still_past_a_floor() {
    let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
    let (h, _) = g.update(t("2025-01-15T09:00:00Z"), acc(100_000.0, 89_000.0));
    let tripped = Halt::MaxDrawdown {
        equity: 89_000.0,
        floor: 90_000.0,
    };
    assert_eq!(h, Some(tripped));
    g.clear_halt();
    assert_eq!(g.halt(), None, "lifted");
    // Still past the floor at the next update: it trips again.
    let (h, _) = g.update(t("2025-01-15T09:01:00Z"), acc(100_000.0, 89_000.0));
    assert_eq!(h, Some(tripped));
    assert_eq!(g.halt(), Some(tripped));
}
