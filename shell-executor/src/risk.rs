//! The risk guard ("Cerca de Proteção"): sans-IO, time is a parameter.
//!
//! Entries are checked against: symbol enabled, state explained (reconciled), HALTED (daily loss,
//! max drawdown), stale signal, price available, spread, volume (lots → cents), free margin.
//! Exits are never refused by the guard.
//!
//! Prop-firm defaults are FTMO 2-Step: equity must stay above (balance at the broker day's start
//! − 5% of the initial balance), the day starting at midnight CE(S)T; and equity must never go below
//! 90% of the initial balance (static). Breaching either moves to HALTED: entries are refused with
//! `FAIL|HALTED_DAILY_LOSS` / `FAIL|HALTED_MAX_DRAWDOWN` until the next broker day (daily loss) or
//! until a person restarts with a new `initial_balance` (max drawdown).

use oracle_ipc::time::{civil_from_days, days_from_civil};

/// When the broker day starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayStart {
    /// Midnight Europe/Prague (CET, CEST in summer; EU rules: last Sunday of March / October
    /// at 01:00 UTC). FTMO's day.
    Cet,
    /// Midnight at a fixed offset from UTC, in seconds.
    Fixed(i32),
}

impl DayStart {
    /// `CET`, `UTC`, `UTC+HH:MM`, `UTC-HH:MM`.
    pub fn parse(s: &str) -> Option<DayStart> {
        match s {
            "CET" | "CEST" | "Europe/Prague" => return Some(DayStart::Cet),
            "UTC" => return Some(DayStart::Fixed(0)),
            _ => {}
        }
        let rest = s.strip_prefix("UTC")?;
        let (sign, hm) = match rest.as_bytes().first()? {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return None,
        };
        let (h, m) = hm.split_once(':')?;
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        Some(DayStart::Fixed(sign * (h * 3600 + m * 60)))
    }

    /// Offset from UTC (seconds) in force at `t`.
    pub fn offset_at(self, t: i64) -> i64 {
        match self {
            DayStart::Fixed(o) => i64::from(o),
            DayStart::Cet => {
                let (y, _, _) = civil_from_days(t.div_euclid(86_400));
                let start = last_sunday(y, 3) * 86_400 + 3600;
                let end = last_sunday(y, 10) * 86_400 + 3600;
                if t >= start && t < end { 7200 } else { 3600 }
            }
        }
    }

    /// Start (UTC seconds) of the broker day containing `t`.
    pub fn day_start(self, t: i64) -> i64 {
        let off = self.offset_at(t);
        let local = t + off;
        let midnight_local = local - local.rem_euclid(86_400);
        let cand = midnight_local - off;
        // The offset at midnight may differ from the one now (a switch during the night).
        midnight_local - self.offset_at(cand)
    }
}

/// Day count of the last Sunday of `month` in `year`.
fn last_sunday(year: i64, month: u32) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday: weekday 0 = Sunday → (days + 4) mod 7.
    let wd = (last + 4).rem_euclid(7);
    last - wd
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
    /// Broker day boundary (CET).
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
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            daily_loss_pct: 5.0,
            max_drawdown_pct: 10.0,
            initial_balance: None,
            day_start: DayStart::Cet,
            daily_anchor: DailyAnchor::Balance,
            stale_after_secs: 60,
            slippage_points: 20,
            max_spread_points: None,
            max_margin_use_pct: 90.0,
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
}

impl Halt {
    /// ACK reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Halt::DailyLoss { .. } => "HALTED_DAILY_LOSS",
            Halt::MaxDrawdown { .. } => "HALTED_MAX_DRAWDOWN",
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

    #[test]
    fn cet_day_start_winter_and_summer() {
        let d = DayStart::Cet;
        // Winter: midnight CET = 23:00 UTC the day before.
        assert_eq!(
            d.day_start(t("2025-01-15T12:00:00Z")),
            t("2025-01-14T23:00:00Z")
        );
        assert_eq!(
            d.day_start(t("2025-01-15T22:59:59Z")),
            t("2025-01-14T23:00:00Z")
        );
        assert_eq!(
            d.day_start(t("2025-01-15T23:00:00Z")),
            t("2025-01-15T23:00:00Z")
        );
        // Summer: midnight CEST = 22:00 UTC.
        assert_eq!(
            d.day_start(t("2025-07-01T10:00:00Z")),
            t("2025-06-30T22:00:00Z")
        );
        // DST switch day 2025-03-30 (01:00 UTC): the day began at 23:00 UTC on the 29th.
        assert_eq!(
            d.day_start(t("2025-03-30T12:00:00Z")),
            t("2025-03-29T23:00:00Z")
        );
        // 2025-10-26: the day began at 22:00 UTC on the 25th (still CEST at midnight).
        assert_eq!(
            d.day_start(t("2025-10-26T12:00:00Z")),
            t("2025-10-25T22:00:00Z")
        );
        assert_eq!(DayStart::parse("UTC+02:00"), Some(DayStart::Fixed(7200)));
        assert_eq!(DayStart::parse("UTC-05:00"), Some(DayStart::Fixed(-18000)));
        assert_eq!(
            DayStart::Fixed(0).day_start(t("2025-01-15T12:00:00Z")),
            t("2025-01-15T00:00:00Z")
        );
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
