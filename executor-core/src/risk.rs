//! The risk guard ("Cerca de Proteção"): sans-IO, time is a parameter.
//!
//! Entries are checked against: symbol enabled, state explained (reconciled), HALTED (daily loss,
//! max drawdown), stale signal, price available, spread, volume (lots → cents), free margin.
//! Exits are never refused by the guard.
//!
//! Prop-firm defaults are FTMO 2-Step: equity must stay above (balance at the broker day's start
//! − 5% of the initial balance), the day starting at midnight Europe/Prague (from the IANA time-zone
//! database compiled into the binary, DST included); and equity must never go below 90% of the
//! initial balance (static). Breaching either moves to HALTED: entries are refused with
//! `FAIL|HALTED_DAILY_LOSS` / `FAIL|HALTED_MAX_DRAWDOWN` until the next broker day (daily loss) or
//! until a person restarts with a new `initial_balance` (max drawdown).

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// The zone of FTMO's day (and the default).
pub const PRAGUE: &str = "Europe/Prague";

/// When the broker day starts: midnight in a time zone of the IANA database bundled into the
/// binary (no tzdata is read at run time), or at a fixed offset from UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayStart {
    name: String,
    tz: TimeZone,
}

impl Default for DayStart {
    fn default() -> Self {
        DayStart::parse(PRAGUE).expect("Europe/Prague is in the bundled time-zone database")
    }
}

impl DayStart {
    /// An IANA zone name (`Europe/Prague`, `America/New_York`, …), `CET`/`CEST` (the setting's
    /// old spelling: Europe/Prague), `UTC`, or a fixed `UTC+HH:MM` / `UTC-HH:MM` (up to 14 h).
    /// The error says why the text is not one.
    pub fn parse(s: &str) -> Result<DayStart, String> {
        let named = |name: &str, tz| DayStart {
            name: name.to_string(),
            tz,
        };
        match s {
            "CET" | "CEST" => return DayStart::parse(PRAGUE),
            "UTC" => return Ok(named("UTC", TimeZone::UTC)),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("UTC") {
            return fixed_offset(rest)
                .map(|o| named(s, TimeZone::fixed(o)))
                .ok_or_else(|| format!("{s:?} is not UTC+HH:MM or UTC-HH:MM (HH ≤ 14, MM < 60)"));
        }
        match jiff::tz::db().get(s) {
            Ok(tz) => Ok(DayStart {
                name: tz.iana_name().unwrap_or(s).to_string(),
                tz,
            }),
            Err(_) => Err(format!("{s:?} is not a time zone of the IANA database")),
        }
    }

    /// The zone's name (`Europe/Prague`, `UTC`, `UTC+02:00`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start (UTC seconds) of the broker day containing `t`: the zone's last midnight at or before
    /// `t` (where a DST switch skips midnight, the day starts at the first instant after it).
    pub fn day_start(&self, t: i64) -> i64 {
        let ts = Timestamp::from_second(t).unwrap_or(if t < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        // Only fails at the ends of jiff's range (years ±9999): the UTC day of the clamped
        // instant then (of `t` itself, `i64::MIN` would overflow).
        let s = ts.as_second();
        ts.to_zoned_datetime(self.tz.clone())
            .start_of_day()
            .map(|z| z.timestamp().as_second())
            .unwrap_or(s - s.rem_euclid(86_400))
    }
}

/// `+HH:MM` / `-HH:MM` (ASCII digits, HH ≤ 14, MM < 60) as an offset.
fn fixed_offset(s: &str) -> Option<Offset> {
    let b = s.as_bytes();
    if b.len() != 6
        || b[3] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 0 || i == 3 || c.is_ascii_digit())
    {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let n = |i: usize| i32::from(b[i] - b'0') * 10 + i32::from(b[i + 1] - b'0');
    let (h, m) = (n(1), n(4));
    if h > 14 || m > 59 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// What the daily-loss limit is measured from at the day's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DailyAnchor {
    /// Balance at the day's start (FTMO).
    Balance,
    /// Equity at the day's start.
    Equity,
    /// The higher of the two (The5ers).
    MaxOfBalanceEquity,
}

/// The `risk` block of `executor_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskConfig {
    /// Daily loss limit, percent of the initial balance (5).
    pub daily_loss_pct: f64,
    /// Total drawdown limit, percent of the initial balance, static (10).
    pub max_drawdown_pct: f64,
    /// Initial balance; `None` = the balance seen at the first start (kept in the journal).
    pub initial_balance: Option<f64>,
    /// Broker day boundary (midnight Europe/Prague).
    pub day_start: DayStart,
    /// Daily anchor (balance).
    pub daily_anchor: DailyAnchor,
    /// A signal whose bar closed more than this many seconds ago is stale (60).
    pub stale_after_secs: i64,
    /// Default `slippageInPoints` for entries (20).
    pub slippage_points: u32,
    /// Default spread limit in points (None = no limit unless the symbol sets one).
    pub max_spread_points: Option<f64>,
    /// An entry may use at most this percent of the free margin (90).
    pub max_margin_use_pct: f64,
    /// `risk.preset`: a prop firm's rules ([`crate::propfirm`]); `None` = this guard's limits
    /// above (daily loss and static drawdown), as before presets existed.
    pub preset: Option<crate::propfirm::Preset>,
    /// `risk.flat_before_weekend.minutes`: every position on a symbol closed this many minutes
    /// before its trading week's last close, entries refused until it opens again
    /// ([`crate::restrictions`]); `None`: off.
    pub flat_before_weekend_minutes: Option<u32>,
    /// `risk.news`: no order within ±`minutes` of a news event of the file ([`crate::restrictions`]);
    /// `None`: off.
    pub news: Option<NewsRule>,
}

/// `risk.news`: the news calendar file (read by the shell) and the window's half-width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsRule {
    /// The calendar file (relative: to the config file's folder).
    pub file: String,
    /// Minutes before and after each event.
    pub minutes: u32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            daily_loss_pct: 5.0,
            max_drawdown_pct: 10.0,
            initial_balance: None,
            day_start: DayStart::default(),
            daily_anchor: DailyAnchor::Balance,
            stale_after_secs: 60,
            slippage_points: 20,
            max_spread_points: None,
            max_margin_use_pct: 90.0,
            preset: None,
            flat_before_weekend_minutes: None,
            news: None,
        }
    }
}

/// Account money (account currency units, already divided by `moneyDigits`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Account {
    /// Balance.
    pub balance: f64,
    /// Equity (balance + floating P&L).
    pub equity: f64,
    /// Free margin.
    pub free_margin: f64,
}

/// Why trading is halted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Halt {
    /// Daily loss limit hit; lifts at the next broker day.
    DailyLoss {
        /// Equity when it tripped.
        equity: f64,
        /// The floor it went below.
        floor: f64,
        /// The broker day it belongs to.
        day_start: i64,
    },
    /// Total drawdown limit hit; needs a person.
    MaxDrawdown {
        /// Equity when it tripped.
        equity: f64,
        /// The floor it went below.
        floor: f64,
    },
    /// A person halted trading (`oracle halt`); lifted only by `oracle resume`.
    Operator {
        /// When (UTC ms).
        at_ms: i64,
    },
}

impl Halt {
    /// ACK reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Halt::DailyLoss { .. } => "HALTED_DAILY_LOSS",
            Halt::MaxDrawdown { .. } => "HALTED_MAX_DRAWDOWN",
            Halt::Operator { .. } => "HALTED_OPERATOR",
        }
    }
}

/// Daily-loss / drawdown state machine.
#[derive(Clone, Debug)]
pub struct RiskGuard {
    cfg: RiskConfig,
    initial: Option<f64>,
    day_start: Option<i64>,
    day_anchor: f64,
    halt: Option<Halt>,
}

impl RiskGuard {
    /// A guard; `initial` from the config or the journal.
    pub fn new(cfg: RiskConfig, initial: Option<f64>) -> Self {
        let initial = cfg.initial_balance.or(initial);
        RiskGuard {
            cfg,
            initial,
            day_start: None,
            day_anchor: 0.0,
            halt: None,
        }
    }

    /// The config.
    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    /// The initial balance in use.
    pub fn initial(&self) -> Option<f64> {
        self.initial
    }

    /// The current halt, if any.
    pub fn halt(&self) -> Option<Halt> {
        self.halt
    }

    /// A person lifts the halt (`oracle resume`); it trips again at the next update that is
    /// still past a floor.
    pub fn clear_halt(&mut self) {
        self.halt = None;
    }

    /// Restores the day anchor (from the journal after a restart within the same day).
    pub fn restore_day(&mut self, day_start: i64, anchor: f64) {
        self.day_start = Some(day_start);
        self.day_anchor = anchor;
    }

    /// (day start, anchor) for the journal.
    pub fn day(&self) -> Option<(i64, f64)> {
        self.day_start.map(|d| (d, self.day_anchor))
    }

    /// Feeds account state. Returns a new halt when one trips now, and whether a new day began.
    pub fn update(&mut self, now: i64, acc: Account) -> (Option<Halt>, bool) {
        let initial = *self.initial.get_or_insert(acc.balance);
        let ds = self.cfg.day_start.day_start(now);
        let mut new_day = false;
        if self.day_start != Some(ds) {
            new_day = true;
            self.day_start = Some(ds);
            self.day_anchor = match self.cfg.daily_anchor {
                DailyAnchor::Balance => acc.balance,
                DailyAnchor::Equity => acc.equity,
                DailyAnchor::MaxOfBalanceEquity => acc.balance.max(acc.equity),
            };
            if matches!(self.halt, Some(Halt::DailyLoss { .. })) {
                self.halt = None;
            }
        }
        if matches!(self.halt, Some(Halt::MaxDrawdown { .. })) {
            return (None, new_day);
        }
        let dd_floor = initial * (1.0 - self.cfg.max_drawdown_pct / 100.0);
        if acc.equity <= dd_floor {
            let h = Halt::MaxDrawdown {
                equity: acc.equity,
                floor: dd_floor,
            };
            self.halt = Some(h);
            return (Some(h), new_day);
        }
        let daily_floor = self.day_anchor - initial * self.cfg.daily_loss_pct / 100.0;
        if self.halt.is_none() && acc.equity <= daily_floor {
            let h = Halt::DailyLoss {
                equity: acc.equity,
                floor: daily_floor,
                day_start: ds,
            };
            self.halt = Some(h);
            return (Some(h), new_day);
        }
        (None, new_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oracle_ipc::parse_time;

    fn t(s: &str) -> i64 {
        parse_time(s).unwrap()
    }

    fn zone(s: &str) -> DayStart {
        DayStart::parse(s).unwrap()
    }

    /// The broker day of `at` starts at `start` in `d`.
    #[track_caller]
    fn starts(d: &DayStart, at: &str, start: &str) {
        assert_eq!(
            oracle_ipc::Iso(d.day_start(t(at))).to_string(),
            start,
            "day of {at} in {}",
            d.name()
        );
    }

    #[test]
    fn prague_midnight_in_winter_and_summer() {
        let d = DayStart::default();
        assert_eq!(d.name(), "Europe/Prague");
        // Winter: midnight CET = 23:00 UTC the day before.
        starts(&d, "2025-01-15T12:00:00Z", "2025-01-14T23:00:00Z");
        starts(&d, "2025-01-15T22:59:59Z", "2025-01-14T23:00:00Z");
        starts(&d, "2025-01-15T23:00:00Z", "2025-01-15T23:00:00Z");
        // Summer: midnight CEST = 22:00 UTC.
        starts(&d, "2025-07-01T10:00:00Z", "2025-06-30T22:00:00Z");
        // DST switch day 2025-03-30 (01:00 UTC): the day began at 23:00 UTC on the 29th.
        starts(&d, "2025-03-30T12:00:00Z", "2025-03-29T23:00:00Z");
        // 2025-10-26: the day began at 22:00 UTC on the 25th (still CEST at midnight).
        starts(&d, "2025-10-26T12:00:00Z", "2025-10-25T22:00:00Z");
    }

    #[test]
    fn the_march_switch_night_and_the_evening_after_it() {
        let d = DayStart::default();
        // Sunday 2025-03-30, the last of March: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        starts(&d, "2025-03-30T00:59:59Z", "2025-03-29T23:00:00Z");
        starts(&d, "2025-03-30T01:00:00Z", "2025-03-29T23:00:00Z");
        // The evening after: midnight is now 22:00 UTC, so that day had 23 hours.
        starts(&d, "2025-03-30T21:59:59Z", "2025-03-29T23:00:00Z");
        starts(&d, "2025-03-30T22:00:00Z", "2025-03-30T22:00:00Z");
        starts(&d, "2025-03-30T22:30:00Z", "2025-03-30T22:00:00Z");
        // A week earlier is not the switch: still CET, midnight at 23:00 UTC.
        starts(&d, "2025-03-23T22:30:00Z", "2025-03-22T23:00:00Z");
        starts(&d, "2025-03-23T23:00:00Z", "2025-03-23T23:00:00Z");
        // Another year, another date: Sunday 2024-03-31.
        starts(&d, "2024-03-31T22:30:00Z", "2024-03-31T22:00:00Z");
        starts(&d, "2024-03-30T22:30:00Z", "2024-03-29T23:00:00Z");
    }

    #[test]
    fn the_october_switch_night_and_the_evening_after_it() {
        let d = DayStart::default();
        // Sunday 2025-10-26, the last of October: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
        starts(&d, "2025-10-26T00:59:59Z", "2025-10-25T22:00:00Z");
        starts(&d, "2025-10-26T01:00:00Z", "2025-10-25T22:00:00Z");
        // The evening after: 22:30 UTC is 23:30 CET, still the 26th (a 25-hour day).
        starts(&d, "2025-10-26T22:30:00Z", "2025-10-25T22:00:00Z");
        starts(&d, "2025-10-26T22:59:59Z", "2025-10-25T22:00:00Z");
        starts(&d, "2025-10-26T23:00:00Z", "2025-10-26T23:00:00Z");
        // A week earlier is not the switch: still CEST, 22:30 UTC is already the next day.
        starts(&d, "2025-10-19T22:30:00Z", "2025-10-19T22:00:00Z");
    }

    #[test]
    fn a_winter_date_after_october_starts_at_23_utc() {
        let d = DayStart::default();
        starts(&d, "2025-11-15T12:00:00Z", "2025-11-14T23:00:00Z");
        starts(&d, "2025-11-15T22:30:00Z", "2025-11-14T23:00:00Z");
        starts(&d, "2025-12-31T23:30:00Z", "2025-12-31T23:00:00Z");
    }

    #[test]
    fn other_iana_zones_and_fixed_offsets_with_minutes() {
        // New York: EST (−5) until Sunday 2025-03-09, EDT (−4) after: its own rules, not the EU's.
        let ny = zone("America/New_York");
        starts(&ny, "2025-03-09T12:00:00Z", "2025-03-09T05:00:00Z");
        starts(&ny, "2025-03-10T12:00:00Z", "2025-03-10T04:00:00Z");
        starts(&ny, "2025-03-30T12:00:00Z", "2025-03-30T04:00:00Z");
        starts(&zone("UTC"), "2025-01-15T12:00:00Z", "2025-01-15T00:00:00Z");
        starts(
            &zone("UTC+02:00"),
            "2025-07-15T12:00:00Z",
            "2025-07-14T22:00:00Z",
        );
        starts(
            &zone("UTC-05:00"),
            "2025-07-15T12:00:00Z",
            "2025-07-15T05:00:00Z",
        );
        starts(
            &zone("UTC+05:30"),
            "2025-01-15T12:00:00Z",
            "2025-01-14T18:30:00Z",
        );
        starts(
            &zone("UTC+05:30"),
            "2025-01-15T18:29:59Z",
            "2025-01-14T18:30:00Z",
        );
        starts(
            &zone("UTC+05:30"),
            "2025-01-15T18:30:00Z",
            "2025-01-15T18:30:00Z",
        );
        starts(
            &zone("UTC-03:30"),
            "2025-01-15T02:00:00Z",
            "2025-01-14T03:30:00Z",
        );
    }

    #[test]
    fn day_start_names_parse_and_unknown_ones_are_refused() {
        for old in ["CET", "CEST", "Europe/Prague"] {
            assert_eq!(zone(old), DayStart::default(), "{old}");
            assert_eq!(zone(old).name(), "Europe/Prague");
        }
        assert_eq!(zone("UTC+05:30").name(), "UTC+05:30");
        assert_eq!(zone("Asia/Kolkata").name(), "Asia/Kolkata");
        for bad in [
            "Mars/Olympus",
            "",
            "UTC+15:00",
            "UTC+02:60",
            "UTC+2:00",
            "UTC02:00",
            "UTC+02:00:00",
            "UTC+0a:00",
        ] {
            let why = DayStart::parse(bad).expect_err(bad);
            assert!(why.contains(&format!("{bad:?}")), "{why}");
        }
    }

    #[test]
    fn ftmo_daily_loss_and_drawdown() {
        let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
        let now = t("2025-01-15T10:00:00Z");
        let acc = |b, e| Account {
            balance: b,
            equity: e,
            free_margin: e,
        };
        assert_eq!(g.update(now, acc(102_000.0, 102_000.0)).0, None);
        // Floor = 102,000 − 5,000 = 97,000.
        assert_eq!(g.update(now + 60, acc(102_000.0, 97_001.0)).0, None);
        let h = g.update(now + 120, acc(102_000.0, 96_999.0)).0.unwrap();
        assert_eq!(h.code(), "HALTED_DAILY_LOSS");
        assert!(g.halt().is_some());
        // Next broker day: lifted, new anchor.
        let (h, new_day) = g.update(t("2025-01-16T09:00:00Z"), acc(97_500.0, 97_500.0));
        assert!(new_day && h.is_none() && g.halt().is_none());
        // Static drawdown: equity ≤ 90,000.
        let h = g
            .update(t("2025-01-16T10:00:00Z"), acc(97_500.0, 89_999.0))
            .0
            .unwrap();
        assert_eq!(h.code(), "HALTED_MAX_DRAWDOWN");
        // Drawdown halt survives the day change.
        g.update(t("2025-01-17T10:00:00Z"), acc(95_000.0, 95_000.0));
        assert_eq!(g.halt().map(|h| h.code()), Some("HALTED_MAX_DRAWDOWN"));
    }

    fn acc(balance: f64, equity: f64) -> Account {
        Account {
            balance,
            equity,
            free_margin: equity,
        }
    }

    #[test]
    fn a_restart_during_the_day_keeps_the_days_anchor() {
        // Before the restart: the day (Prague) started with 100,000; 4,000 lost and realised since.
        let cfg = RiskConfig::default();
        let mut before = RiskGuard::new(cfg.clone(), Some(100_000.0));
        before.update(t("2025-01-15T08:00:00Z"), acc(100_000.0, 100_000.0));
        before.update(t("2025-01-15T10:00:00Z"), acc(96_000.0, 96_000.0));
        let (ds, anchor) = before.day().unwrap();
        assert_eq!(anchor, 100_000.0);
        // After: the journal's day is restored; the floor stays 100,000 − 5,000 = 95,000, so
        // 1,001 more lost halts (no second full allowance on the reduced 96,000).
        let mut after = RiskGuard::new(cfg, Some(100_000.0));
        after.restore_day(ds, anchor);
        let (h, new_day) = after.update(t("2025-01-15T11:00:00Z"), acc(96_000.0, 94_999.0));
        assert!(!new_day);
        assert_eq!(h.map(|h| h.code()), Some("HALTED_DAILY_LOSS"));
        assert_eq!(after.day(), Some((ds, 100_000.0)));
    }

    #[test]
    fn a_day_restored_from_yesterday_is_replaced_by_todays_balance() {
        let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
        // The journal's day began 2025-01-14 (Prague) with 100,000; the restart is on the 15th.
        g.restore_day(t("2025-01-13T23:00:00Z"), 100_000.0);
        let (h, new_day) = g.update(t("2025-01-15T11:00:00Z"), acc(96_000.0, 94_999.0));
        assert!(new_day && h.is_none());
        assert_eq!(g.day(), Some((t("2025-01-14T23:00:00Z"), 96_000.0)));
    }

    #[test]
    fn a_loss_carried_over_midnight_counts_against_the_new_day() {
        let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
        // 23:30 in Prague: balance 100,000, an open position 4,000 down: within the day's 5,000.
        let (h, _) = g.update(t("2025-01-15T22:30:00Z"), acc(100_000.0, 96_000.0));
        assert!(h.is_none());
        // 00:10 in Prague: a new day anchored on the balance at midnight (100,000, not the
        // equity), so the floating 4,000 still counts: 1,001 more halts.
        let (h, new_day) = g.update(t("2025-01-15T23:10:00Z"), acc(100_000.0, 95_500.0));
        assert!(new_day && h.is_none());
        assert_eq!(g.day(), Some((t("2025-01-15T23:00:00Z"), 100_000.0)));
        let (h, _) = g.update(t("2025-01-15T23:20:00Z"), acc(100_000.0, 94_999.0));
        assert_eq!(h.map(|h| h.code()), Some("HALTED_DAILY_LOSS"));
    }

    #[test]
    fn a_daily_halt_lifts_at_prague_midnight_not_utc_midnight() {
        let mut g = RiskGuard::new(RiskConfig::default(), Some(100_000.0));
        g.update(t("2025-07-15T08:00:00Z"), acc(100_000.0, 100_000.0));
        let (h, _) = g.update(t("2025-07-15T21:00:00Z"), acc(100_000.0, 94_000.0));
        assert_eq!(h.map(|h| h.code()), Some("HALTED_DAILY_LOSS"));
        // 23:59 CEST: still halted.
        g.update(t("2025-07-15T21:59:00Z"), acc(94_000.0, 94_000.0));
        assert!(g.halt().is_some());
        // 00:00 CEST = 22:00 UTC: a new day, lifted, anchored on 94,000.
        let (h, new_day) = g.update(t("2025-07-15T22:00:00Z"), acc(94_000.0, 94_000.0));
        assert!(new_day && h.is_none() && g.halt().is_none());
        assert_eq!(g.day(), Some((t("2025-07-15T22:00:00Z"), 94_000.0)));
    }

    #[test]
    fn initial_defaults_to_first_balance() {
        let mut g = RiskGuard::new(RiskConfig::default(), None);
        g.update(
            0,
            Account {
                balance: 10_000.0,
                equity: 10_000.0,
                free_margin: 10_000.0,
            },
        );
        assert_eq!(g.initial(), Some(10_000.0));
    }
}
