//! What the executor tells its operator, decided sans-IO (`docs/alerts.md`): which
//! [`oracle_alerts::Event`]s the core's state and the shell's counters call for, time as a
//! parameter (UTC seconds). Sending them (`oracle-alerts`' queue and worker) and the metrics are
//! the shell's (`oracle-executor`'s `alerting.rs`, `Telemetry`).
//!
//! - a limit's used share crossing a threshold upwards (once, re-armed 5 points below it), and
//!   the day's highest daily-loss share for the summary ([`AlertWatches::limit`]);
//! - the guard's status: its limits, and a halt newly in force, told once
//!   ([`AlertWatches::guard`]);
//! - the broker down for more than `alerts.disconnect_after_s` (once per outage, then "back
//!   after N s") on the wall clock;
//! - the daily summary at each midnight Europe/Prague on the engine's clock (a replay's virtual
//!   time), from the first instant that is a real one ([`AlertWatches::due`]);
//! - a `FAIL` ACK or an `ERR` answer as a refusal ([`refusal`]).

use oracle_alerts::watch::{DisconnectWatch, HeadroomWatch, SummaryClock};
use oracle_alerts::{AlertsConfig, DailySummary, Event};

use crate::operator::GuardStatus;

/// A clock reading taken as a real instant (after 2001-09-09): a replay's clock before its
/// first bar is 0.
pub const REAL_INSTANT: i64 = 1_000_000_000;

/// The shell's counters the daily summary reads (its metrics at the instant asked).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// The balance as last read (0 before the first read).
    pub balance: f64,
    /// The equity as last read.
    pub equity: f64,
    /// Orders sent so far (both sides).
    pub orders: u64,
    /// Refusals so far (every reason).
    pub refused: u64,
    /// Positions held at the last count.
    pub positions: u64,
}

/// Each limit of the guard's status with its used share (percent) and what is left (money):
/// `daily loss`, then `max loss`.
pub fn limits(g: &GuardStatus) -> impl Iterator<Item = (&'static str, f64, f64)> + '_ {
    [("daily loss", &g.daily), ("max loss", &g.max_loss)]
        .into_iter()
        .filter_map(|(name, h)| h.as_ref().map(|h| (name, h.share_used * 100.0, h.money)))
}

/// A refusal in an answer line: the order (`SHORT_WEAK EURUSD`; empty for an `ERR`) and the
/// reason code; `None` for any other answer. Allocates only for a refusal.
pub fn refusal(line: &str) -> Option<(String, &str)> {
    let f: Vec<&str> = line.splitn(6, '|').collect();
    match f.as_slice() {
        ["ACK", sym, action, "FAIL", reason, ..] => Some((format!("{action} {sym}"), *reason)),
        ["ERR", code, ..] => Some((String::new(), *code)),
        _ => None,
    }
}

/// What the watches remember between hooks.
#[derive(Debug)]
pub struct AlertWatches {
    headroom: HeadroomWatch,
    disconnect: DisconnectWatch,
    /// Started at the first clock reading that is a real instant (a replay's clock is 0 until
    /// its first bar).
    summary: Option<SummaryClock>,
    /// The balance at the start of the day (the first read, then each summary's end).
    day_balance: Option<f64>,
    day_orders: u64,
    day_refusals: u64,
    /// The highest daily-loss share used this day.
    day_loss_used: Option<f64>,
    /// The halt in force as last told (its reason code), so each halt is told once.
    halt: Option<String>,
    /// The deposit currency in the texts, as the guard's status last gave it (the broker's;
    /// empty: not known to the executor, as on paper, left out).
    currency: String,
}

impl AlertWatches {
    /// With `cfg`'s thresholds and disconnect delay.
    pub fn new(cfg: &AlertsConfig) -> Self {
        AlertWatches {
            headroom: HeadroomWatch::new(&cfg.headroom_thresholds_pct),
            disconnect: DisconnectWatch::new(cfg.disconnect_after_s),
            summary: None,
            day_balance: None,
            day_orders: 0,
            day_refusals: 0,
            day_loss_used: None,
            halt: None,
            currency: String::new(),
        }
    }

    /// A limit's used share now (percent) and what is left: the alert when a threshold is
    /// crossed upwards.
    pub fn limit(&mut self, limit: &str, used_pct: f64, left: f64) -> Option<Event> {
        if limit == "daily loss" {
            self.day_loss_used = Some(self.day_loss_used.map_or(used_pct, |u| u.max(used_pct)));
        }
        let threshold_pct = self.headroom.observe(limit, used_pct)?;
        Some(Event::Headroom {
            limit: limit.into(),
            used_pct,
            threshold_pct,
            left,
            currency: self.currency.clone(),
        })
    }

    /// The answering side's guard after its orders were answered: each limit's crossing
    /// ([`AlertWatches::limit`]), and a halt newly in force (told once; a later halt after a
    /// resume is told again), in that order.
    pub fn guard(&mut self, g: &GuardStatus) -> Vec<Event> {
        if let Some(c) = &g.currency
            && self.currency != *c
        {
            self.currency.clone_from(c);
        }
        let mut out: Vec<Event> = limits(g)
            .filter_map(|(limit, used_pct, left)| self.limit(limit, used_pct, left))
            .collect();
        let newly = match &g.halted {
            Some(h) if self.halt.as_deref() != Some(h.reason.as_str()) => {
                self.halt = Some(h.reason.clone());
                Some(h)
            }
            Some(_) => None,
            None => {
                self.halt = None;
                None
            }
        };
        if let Some(h) = newly {
            let until = match h.ends_ms {
                Some(_) => "until midnight Europe/Prague",
                None => "until `oracle resume`",
            };
            let what = h
                .reason
                .strip_prefix("HALTED_")
                .unwrap_or(&h.reason)
                .to_lowercase()
                .replace('_', " ");
            out.push(Event::Halted {
                reason: format!("{what} ({}) by {}, {until}", h.reason, h.by),
                flattened: g.open_positions == 0,
            });
        }
        out
    }

    /// The broker session was lost at `now` (UTC seconds).
    pub fn disconnected(&mut self, now: i64) {
        self.disconnect.disconnected(now);
    }

    /// The broker session is back at `now`: "back after N s" when the loss was alerted.
    pub fn connected(&mut self, now: i64) -> Option<Event> {
        self.disconnect.connected(now)
    }

    /// The events due at `wall` (the disconnect alert, UTC seconds) and `clock` (the daily
    /// summary, the engine's clock), with the shell's counters `f` at that instant.
    pub fn due(&mut self, wall: i64, clock: i64, f: Figures) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(e) = self.disconnect.poll(wall) {
            out.push(e);
        }
        if self.day_balance.is_none() && f.balance != 0.0 {
            self.day_balance = Some(f.balance);
        }
        if clock >= REAL_INSTANT {
            let day = match &mut self.summary {
                None => {
                    self.summary = Some(SummaryClock::new(clock));
                    None
                }
                Some(c) => c.poll(clock),
            };
            if let Some(day) = day {
                out.push(Event::DailySummary(DailySummary {
                    day,
                    currency: self.currency.clone(),
                    balance_start: self.day_balance.unwrap_or(f.balance),
                    balance_end: f.balance,
                    equity: f.equity,
                    orders: u32::try_from(f.orders - self.day_orders).unwrap_or(u32::MAX),
                    refused: u32::try_from(f.refused - self.day_refusals).unwrap_or(u32::MAX),
                    open_positions: u32::try_from(f.positions).unwrap_or(u32::MAX),
                    daily_loss_used_pct: self.day_loss_used.take(),
                }));
                self.day_balance = Some(f.balance);
                self.day_orders = f.orders;
                self.day_refusals = f.refused;
            }
        }
        out
    }

    /// The highest daily-loss share used this day (percent), if one was seen.
    pub fn day_loss_used(&self) -> Option<f64> {
        self.day_loss_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::HaltStatus;
    use crate::propfirm::Headroom;

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn watches() -> AlertWatches {
        AlertWatches::new(&AlertsConfig::default())
    }

    fn account(balance: f64, equity: f64) -> Figures {
        Figures {
            balance,
            equity,
            ..Figures::default()
        }
    }

    #[test]
    fn an_ok_or_a_hold_is_no_refusal_and_a_fail_or_an_err_names_its_reason() {
        assert_eq!(
            refusal(
                "ACK|AAPL|SHORT_WEAK|FAIL|BROKER_NOT_ENOUGH_MONEY|TF:M1|BT:2026-12-04T10:00:00Z"
            ),
            Some(("SHORT_WEAK AAPL".to_string(), "BROKER_NOT_ENOUGH_MONEY"))
        );
        assert_eq!(
            refusal("ERR|UNKNOWN_SYMBOL|XAUUSD"),
            Some((String::new(), "UNKNOWN_SYMBOL"))
        );
        assert_eq!(refusal("ACK|EURUSD|LONG_WEAK|OK|T:12|P:1.1|TF:M1"), None);
        assert_eq!(refusal("ACK|EURUSD|WAIT|HOLD|TF:M1"), None);
    }

    #[test]
    fn the_summary_starts_at_the_first_real_instant_and_covers_the_day_that_ended() {
        let mut w = watches();
        // A replay's clock before its first bar: no summary clock yet.
        assert!(w.due(0, 0, Figures::default()).is_empty());
        assert!(w.summary.is_none());
        let start = account(100_000.0, 100_000.0);
        assert!(w.due(0, utc("2026-12-04T20:00:00Z"), start).is_empty());
        assert_eq!(w.day_balance, Some(100_000.0));
        let later = Figures {
            orders: 1,
            refused: 1,
            ..account(99_750.5, 99_800.0)
        };
        assert!(w.due(0, utc("2026-12-04T22:59:59Z"), later).is_empty());
        assert_eq!(w.day_orders, 0, "not yet midnight in Prague");
        let out = w.due(0, utc("2026-12-04T23:00:00Z"), later);
        assert_eq!((w.day_orders, w.day_refusals), (1, 1));
        assert_eq!(w.day_balance, Some(99_750.5));
        let [Event::DailySummary(d)] = out.as_slice() else {
            panic!("one summary: {out:?}");
        };
        assert_eq!((d.balance_start, d.balance_end), (100_000.0, 99_750.5));
        assert_eq!((d.orders, d.refused), (1, 1));
    }

    #[test]
    fn a_disconnect_longer_than_the_delay_is_told_once_and_its_end_follows() {
        // The watch's decisions over the hooks the live event task calls (wall clock seconds).
        let mut w = watches();
        w.disconnected(1_000);
        assert!(w.due(1_060, 0, Figures::default()).is_empty());
        assert!(
            w.disconnect.deadline().is_some(),
            "60 s is not more than 60 s"
        );
        assert_eq!(w.due(1_061, 0, Figures::default()).len(), 1);
        assert_eq!(w.disconnect.deadline(), None, "told once");
        assert!(w.connected(1_300).is_some(), "back after 300 s");
        assert_eq!(w.disconnect.deadline(), None);
    }

    fn status(daily_used: f64, halted: Option<&str>, open: usize) -> GuardStatus {
        let room = |used: f64| Headroom {
            floor: 95_000.0,
            money: 5_000.0 * (1.0 - used),
            pct_of_initial: 5.0 * (1.0 - used),
            share_used: used,
        };
        GuardStatus {
            side: "live".into(),
            preset: Some("ftmo-2step".into()),
            halted: halted.map(|r| HaltStatus {
                reason: r.into(),
                since_ms: 0,
                by: "guard".into(),
                ends_ms: Some(1),
            }),
            balance: Some(100_000.0),
            equity: Some(100_000.0 - 5_000.0 * daily_used),
            daily: Some(room(daily_used)),
            max_loss: Some(room(daily_used / 2.0)),
            act_at_share: Some(0.8),
            next_day_start_ms: None,
            trading_days: None,
            min_trading_days: None,
            best_day_share: None,
            best_day_max_share: None,
            open_positions: open,
            currency: None,
            approximate: Vec::new(),
        }
    }

    #[test]
    fn the_guards_crossings_and_its_halt_are_each_told_once() {
        let mut w = watches();
        assert!(
            w.guard(&status(0.3, None, 2)).is_empty(),
            "30% crosses nothing"
        );
        assert_eq!(w.guard(&status(0.55, None, 2)).len(), 1, "50% crossed");
        assert!(
            w.guard(&status(0.6, None, 2)).is_empty(),
            "once per crossing"
        );
        let out = w.guard(&status(0.81, Some("HALTED_DAILY_LOSS"), 0));
        // 80% crossed, and the halt.
        assert!(
            matches!(
                out.as_slice(),
                [Event::Headroom { .. }, Event::Halted { reason, flattened: true }]
                    if reason == "daily loss (HALTED_DAILY_LOSS) by guard, until midnight Europe/Prague"
            ),
            "{out:?}"
        );
        assert!(
            w.guard(&status(0.82, Some("HALTED_DAILY_LOSS"), 0))
                .is_empty(),
            "a halt in force is told once"
        );
        assert_eq!(w.day_loss_used(), Some(82.0));
        // Resumed, then halted again: told again.
        assert!(w.guard(&status(0.0, None, 0)).is_empty());
        assert_eq!(w.guard(&status(0.0, Some("HALTED_OPERATOR"), 0)).len(), 1);
    }

    #[test]
    fn the_daily_summary_names_the_deposit_currency_the_guards_status_gave() {
        let mut w = watches();
        let f = account(100_000.0, 100_000.0);
        w.due(0, utc("2026-12-04T20:00:00Z"), f);
        w.guard(&GuardStatus {
            currency: Some("EUR".into()),
            ..status(0.0, None, 0)
        });
        let out = w.due(0, utc("2026-12-04T23:00:00Z"), f);
        let Some(Event::DailySummary(d)) = out.first() else {
            panic!("a summary at the Prague midnight: {out:?}");
        };
        assert_eq!(d.currency, "EUR");
        assert!(
            Event::DailySummary(d.clone()).text().contains("EUR"),
            "{d:?}"
        );
    }

    #[test]
    fn a_limit_crossing_keeps_the_days_highest_share() {
        let mut w = watches();
        assert!(
            w.limit("daily loss", 55.0, 2_250.0).is_some(),
            "50% crossed"
        );
        assert!(w.limit("daily loss", 30.0, 3_500.0).is_none());
        assert_eq!(w.day_loss_used(), Some(55.0));
    }
}
