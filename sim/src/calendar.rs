//! Trading hours the simulator serves and enforces (`--calendar`).
//!
//! `always-open` (the default, what every existing run uses: the bundled bar files run through
//! weekends) lists each symbol as open around the clock in UTC with no holidays. `realistic`
//! gives each symbol the hours of its class, as a cTrader broker states them in
//! `ProtoOASymbol` (`schedule` in seconds from Sunday 00:00 in `scheduleTimeZone`, `holiday[]`):
//!
//! | class | zone | hours |
//! |---|---|---|
//! | FX and metals (`EURUSD`, `XAUUSD`, `SYNFX…`) | UTC | Sunday 22:00 – Friday 22:00 |
//! | indices (`US500`, `GER40.cash`, `SYNIDX…`) | America/New_York | Sunday 18:00 – Friday 17:00, daily break 17:00–18:00 |
//! | stocks and anything else (`AAPL`, `SYNSTK…`) | America/New_York | Monday – Friday 09:30–16:00 |
//!
//! and one holiday for every symbol, Christmas Day (25 December, recurring, the whole day in
//! the symbol's zone). The broker then enforces them on market time: an order (new or close)
//! while the symbol is closed gets `MARKET_CLOSED` and no fill; no spot (so no live trendbar) is
//! sent for a tick in closed hours; history holds no bar that lies wholly in closed hours
//! (trendbars exist only where ticks occurred). At a timed speed (`--speed Nx`, bars per
//! second) Saturday 06:00–08:00 UTC market time is a maintenance window: its start disconnects
//! every client (`ProtoOAClientDisconnectEvent`), and every request in it gets
//! `SERVER_IS_UNDER_MAINTENANCE` with `maintenanceEndTimestamp` (the wall time the replay reaches
//! 08:00), then the connection is closed. Not at the fast speed (the market moves only while a
//! client is subscribed there, so the window would never end): use the `maintenance` fault.
//!
//! The calendar arithmetic is the client's own [`TradingCalendar`], so the simulator and the
//! executor cannot disagree about an instant.

use oracle_ctrader::calendar::{Holiday, TradingCalendar, WEEK_SECONDS};

const H: u32 = 3600;
const D: u32 = 86_400;

/// The weekly maintenance window of `--calendar realistic` (market time, timed speeds):
/// Saturday 06:00–08:00 UTC. As a calendar whose "open" hours are the window.
pub fn weekly_maintenance() -> TradingCalendar {
    TradingCalendar::new("UTC", &[(6 * D + 6 * H, 6 * D + 8 * H)], &[]).expect("a valid window")
}

/// Which hours the simulator serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CalendarMode {
    /// Open around the clock in UTC, no holidays (the default).
    #[default]
    AlwaysOpen,
    /// Each symbol's class hours and a holiday (see the module documentation).
    Realistic,
}

impl CalendarMode {
    /// Parses `--calendar`: `always-open` or `realistic`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "always-open" | "always" | "24/7" => Ok(Self::AlwaysOpen),
            "realistic" => Ok(Self::Realistic),
            other => Err(format!(
                "--calendar {other}: expected always-open or realistic"
            )),
        }
    }
}

/// One symbol's hours as `ProtoOASymbol` states them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolHours {
    /// `scheduleTimeZone`.
    pub time_zone: String,
    /// `schedule`: `[start, end)` seconds from Sunday 00:00 in the zone.
    pub schedule: Vec<(u32, u32)>,
    /// `holiday[]`.
    pub holidays: Vec<Holiday>,
}

/// A symbol's class, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolClass {
    /// FX pairs and metals.
    Fx,
    /// Index CFDs.
    Index,
    /// Stocks (and anything not recognised).
    Stock,
}

const INDICES: [&str; 10] = [
    "US500", "US30", "US100", "NAS100", "SPX500", "GER40", "UK100", "JP225", "EU50", "FRA40",
];

/// The class of `name` (`GER40.cash` is an index, `SYNFX01` FX, `AAPL` a stock).
pub fn class_of(name: &str) -> SymbolClass {
    let up = name.to_ascii_uppercase();
    let base = up.split('.').next().unwrap_or(&up);
    let fx_like =
        base.len() == 6 && base.bytes().all(|b| b.is_ascii_uppercase()) && !base.starts_with("SYN");
    if up.starts_with("SYNFX") || up.starts_with("XAU") || up.starts_with("XAG") || fx_like {
        SymbolClass::Fx
    } else if up.starts_with("SYNIDX") || INDICES.contains(&base) {
        SymbolClass::Index
    } else {
        SymbolClass::Stock
    }
}

impl SymbolHours {
    /// Open all week in UTC, no holidays.
    pub fn always_open() -> Self {
        Self {
            time_zone: "UTC".into(),
            schedule: vec![(0, WEEK_SECONDS)],
            holidays: Vec::new(),
        }
    }

    /// The hours `mode` gives symbol `name`.
    pub fn for_symbol(name: &str, mode: CalendarMode) -> Self {
        if mode == CalendarMode::AlwaysOpen {
            return Self::always_open();
        }
        let (time_zone, schedule): (&str, Vec<(u32, u32)>) = match class_of(name) {
            SymbolClass::Fx => ("UTC", vec![(22 * H, 5 * D + 22 * H)]),
            SymbolClass::Index => (
                "America/New_York",
                (0..5)
                    .map(|d| (d * D + 18 * H, (d + 1) * D + 17 * H))
                    .collect(),
            ),
            SymbolClass::Stock => (
                "America/New_York",
                (1..=5)
                    .map(|d| (d * D + 9 * H + 1800, d * D + 16 * H))
                    .collect(),
            ),
        };
        Self {
            time_zone: time_zone.into(),
            schedule,
            holidays: vec![Holiday {
                name: "Christmas Day".into(),
                time_zone: time_zone.into(),
                // 2000-12-25, recurring: days since 1970-01-01.
                date_days: 11_316,
                recurring: true,
                start_second: None,
                end_second: None,
            }],
        }
    }

    /// The calendar these hours make.
    pub fn calendar(&self) -> TradingCalendar {
        TradingCalendar::new(&self.time_zone, &self.schedule, &self.holidays)
            .expect("the simulator's own hours are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_name() {
        assert_eq!(class_of("EURUSD"), SymbolClass::Fx);
        assert_eq!(class_of("XAUUSD"), SymbolClass::Fx);
        assert_eq!(class_of("SYNFX03"), SymbolClass::Fx);
        assert_eq!(class_of("US500"), SymbolClass::Index);
        assert_eq!(class_of("GER40.cash"), SymbolClass::Index);
        assert_eq!(class_of("SYNIDX02"), SymbolClass::Index);
        assert_eq!(class_of("AAPL"), SymbolClass::Stock);
        assert_eq!(class_of("SYNSTK01"), SymbolClass::Stock);
    }

    #[test]
    fn the_christmas_date_is_the_25th_of_december() {
        let c = SymbolHours::for_symbol("EURUSD", CalendarMode::Realistic).calendar();
        // Wednesday 2026-12-23 12:00 UTC open, Friday 2026-12-25 12:00 UTC closed.
        assert!(c.is_open(1_798_027_200_000));
        assert!(!c.is_open(1_798_200_000_000));
    }

    #[test]
    fn calendar_mode_parses_and_names_a_bad_value() {
        assert_eq!(
            CalendarMode::parse("realistic"),
            Ok(CalendarMode::Realistic)
        );
        assert_eq!(
            CalendarMode::parse("always-open"),
            Ok(CalendarMode::AlwaysOpen)
        );
        let e = CalendarMode::parse("weekdays").unwrap_err();
        assert!(e.contains("weekdays") && e.contains("realistic"), "{e}");
    }
}
