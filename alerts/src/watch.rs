//! When to alert (pure, time is a parameter in UTC seconds): a limit's threshold crossed, a
//! connection down too long, the daily summary's instant at midnight Europe/Prague.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::event::Event;

/// The zone whose midnight ends the trading day (FTMO's).
pub const PRAGUE: &str = "Europe/Prague";

fn prague() -> TimeZone {
    // The bundled database (`tzdb-bundle-always`) has it; UTC would only be reached if a build
    // dropped the bundle, which the tests below would catch.
    jiff::tz::db().get(PRAGUE).unwrap_or(TimeZone::UTC)
}

/// The first midnight Europe/Prague strictly after `t` (UTC seconds), DST included (a day is 23 h
/// on the last Sunday of March, 25 h on the last Sunday of October).
pub fn next_prague_midnight(t: i64) -> i64 {
    let ts = Timestamp::from_second(t).unwrap_or(Timestamp::MAX);
    let z = ts.to_zoned_datetime(prague());
    z.tomorrow()
        .and_then(|d| d.start_of_day())
        .map(|z| z.timestamp().as_second())
        .unwrap_or(t + 86_400)
}

/// Prague's civil date (`2026-12-05`) at `t`.
pub fn prague_date(t: i64) -> String {
    let ts = Timestamp::from_second(t).unwrap_or(Timestamp::MAX);
    ts.to_zoned_datetime(prague()).date().to_string()
}

/// The daily summary's clock: due once at each midnight Europe/Prague.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryClock {
    next: i64,
}

impl SummaryClock {
    /// A clock started at `now`: the first summary is due at the next Prague midnight.
    pub fn new(now: i64) -> Self {
        SummaryClock {
            next: next_prague_midnight(now),
        }
    }

    /// When the next summary is due (the shell's timer).
    pub fn next_due(&self) -> i64 {
        self.next
    }

    /// At `now`: the Prague date of the day that ended, once per midnight reached (a process
    /// asleep over several midnights gets one summary, for the day before the last).
    pub fn poll(&mut self, now: i64) -> Option<String> {
        if now < self.next {
            return None;
        }
        let ended = prague_date(last_midnight(now) - 1);
        self.next = next_prague_midnight(now);
        Some(ended)
    }
}

/// The last Prague midnight at or before `t`.
fn last_midnight(t: i64) -> i64 {
    let ts = Timestamp::from_second(t).unwrap_or(Timestamp::MAX);
    ts.to_zoned_datetime(prague())
        .start_of_day()
        .map(|z| z.timestamp().as_second())
        .unwrap_or(t)
}

/// A limit's used share crossing its thresholds upward: each threshold is reported once, and
/// again only after the share fell `HYSTERESIS_PCT` below it (no alert storm around 80%).
#[derive(Clone, Debug, PartialEq)]
pub struct HeadroomWatch {
    thresholds: Vec<u8>,
    /// Per limit: the highest threshold reported and not since re-armed.
    levels: Vec<(String, Option<u8>)>,
}

/// How far below a threshold the used share must fall to re-arm it, percentage points.
pub const HYSTERESIS_PCT: f64 = 5.0;

impl HeadroomWatch {
    /// Watches `thresholds_pct` (ascending, `alerts.headroom_thresholds_pct`).
    pub fn new(thresholds_pct: &[u8]) -> Self {
        HeadroomWatch {
            thresholds: thresholds_pct.to_vec(),
            levels: Vec::new(),
        }
    }

    /// `limit` (`daily loss`) is `used_pct` used: the highest threshold newly crossed, if any.
    pub fn observe(&mut self, limit: &str, used_pct: f64) -> Option<u8> {
        let i = match self.levels.iter().position(|(l, _)| l == limit) {
            Some(i) => i,
            None => {
                self.levels.push((limit.to_string(), None));
                self.levels.len() - 1
            }
        };
        let level = &mut self.levels[i].1;
        // Re-arm what the share fell well below.
        while let Some(l) = *level {
            if used_pct < f64::from(l) - HYSTERESIS_PCT {
                *level = self.thresholds.iter().copied().rfind(|&t| t < l);
            } else {
                break;
            }
        }
        let reached = self
            .thresholds
            .iter()
            .copied()
            .rfind(|&t| used_pct >= f64::from(t))?;
        if level.is_none_or(|l| reached > l) {
            *level = Some(reached);
            Some(reached)
        } else {
            None
        }
    }
}

/// The broker connection down for longer than a threshold: one alert when it passes, one when
/// the connection is back (only if the first was sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisconnectWatch {
    after_s: u64,
    down_since: Option<i64>,
    alerted: bool,
}

impl DisconnectWatch {
    /// Alerts after `after_s` seconds down (`alerts.disconnect_after_s`).
    pub fn new(after_s: u64) -> Self {
        DisconnectWatch {
            after_s,
            down_since: None,
            alerted: false,
        }
    }

    /// The connection was lost at `now` (a second loss while down keeps the first instant).
    pub fn disconnected(&mut self, now: i64) {
        if self.down_since.is_none() {
            self.down_since = Some(now);
            self.alerted = false;
        }
    }

    /// The connection is back at `now`: [`Event::Reconnected`] when the loss was alerted.
    pub fn connected(&mut self, now: i64) -> Option<Event> {
        let since = self.down_since.take()?;
        std::mem::take(&mut self.alerted).then(|| Event::Reconnected {
            after_s: u64::try_from(now - since).unwrap_or(0),
        })
    }

    /// When [`DisconnectWatch::poll`] would alert (the shell's timer), if it still may.
    pub fn deadline(&self) -> Option<i64> {
        let since = self.down_since?;
        (!self.alerted).then(|| since + i64::try_from(self.after_s).unwrap_or(i64::MAX) + 1)
    }

    /// At `now`: [`Event::Disconnected`] once the connection has been down for more than
    /// `after_s` seconds.
    pub fn poll(&mut self, now: i64) -> Option<Event> {
        let since = self.down_since?;
        let down = u64::try_from(now - since).unwrap_or(0);
        if self.alerted || down <= self.after_s {
            return None;
        }
        self.alerted = true;
        Some(Event::Disconnected { for_s: down })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn the_summary_is_due_at_prague_midnight_across_both_dst_switches() {
        // Winter (CET, UTC+1): midnight is 23:00 UTC the day before.
        assert_eq!(
            next_prague_midnight(utc("2026-12-06T12:00:00Z")),
            utc("2026-12-06T23:00:00Z")
        );
        // 2026-03-29: clocks go 02:00 CET -> 03:00 CEST. That day starts at 23:00 UTC on the
        // 28th and ends at 22:00 UTC on the 29th (23 hours).
        assert_eq!(
            next_prague_midnight(utc("2026-03-28T12:00:00Z")),
            utc("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            next_prague_midnight(utc("2026-03-28T23:00:00Z")),
            utc("2026-03-29T22:00:00Z")
        );
        // 2026-10-25: clocks go 03:00 CEST -> 02:00 CET (a 25-hour day).
        assert_eq!(
            next_prague_midnight(utc("2026-10-24T22:00:00Z")),
            utc("2026-10-25T23:00:00Z")
        );

        let mut c = SummaryClock::new(utc("2026-03-28T20:00:00Z"));
        assert_eq!(c.next_due(), utc("2026-03-28T23:00:00Z"));
        assert_eq!(c.poll(utc("2026-03-28T22:59:59Z")), None);
        assert_eq!(
            c.poll(utc("2026-03-28T23:00:00Z")).as_deref(),
            Some("2026-03-28")
        );
        assert_eq!(c.poll(utc("2026-03-28T23:00:01Z")), None);
        assert_eq!(c.next_due(), utc("2026-03-29T22:00:00Z"));
        // A fixed UTC+1 would say 23:00 UTC: one hour late.
        assert_eq!(c.poll(utc("2026-03-29T21:59:59Z")), None);
        assert_eq!(
            c.poll(utc("2026-03-29T22:00:00Z")).as_deref(),
            Some("2026-03-29")
        );
        assert_eq!(c.next_due(), utc("2026-03-30T22:00:00Z"));

        // Asleep over two midnights: one summary, for the day that ended last.
        let mut c = SummaryClock::new(utc("2026-10-24T12:00:00Z"));
        assert_eq!(
            c.poll(utc("2026-10-26T08:00:00Z")).as_deref(),
            Some("2026-10-25")
        );
        assert_eq!(c.next_due(), utc("2026-10-26T23:00:00Z"));
    }

    #[test]
    fn each_threshold_is_reported_once_and_re_armed_below_it() {
        let mut w = HeadroomWatch::new(&[50, 80]);
        assert_eq!(w.observe("daily loss", 10.0), None);
        assert_eq!(w.observe("daily loss", 50.0), Some(50));
        assert_eq!(w.observe("daily loss", 60.0), None);
        assert_eq!(w.observe("max loss", 55.0), Some(50), "limits are apart");
        assert_eq!(w.observe("daily loss", 79.9), None);
        assert_eq!(w.observe("daily loss", 80.0), Some(80));
        assert_eq!(w.observe("daily loss", 78.0), None, "within the hysteresis");
        assert_eq!(w.observe("daily loss", 80.5), None);
        assert_eq!(
            w.observe("daily loss", 70.0),
            None,
            "80 re-armed, 50 still reported"
        );
        assert_eq!(w.observe("daily loss", 81.0), Some(80));
        assert_eq!(w.observe("daily loss", 0.0), None, "both re-armed");
        assert_eq!(
            w.observe("daily loss", 95.0),
            Some(80),
            "a jump reports the highest"
        );
        assert_eq!(w.observe("daily loss", 96.0), None);
    }

    #[test]
    fn a_disconnect_is_an_alert_only_after_more_than_the_threshold_and_its_end_follows() {
        let mut w = DisconnectWatch::new(60);
        assert_eq!(w.poll(1_000), None);
        w.disconnected(1_000);
        w.disconnected(1_030);
        assert_eq!(w.deadline(), Some(1_061));
        assert_eq!(w.poll(1_060), None, "60 s is not more than 60 s");
        assert_eq!(w.poll(1_061), Some(Event::Disconnected { for_s: 61 }));
        assert_eq!(w.poll(1_200), None, "once");
        assert_eq!(w.deadline(), None);
        assert_eq!(
            w.connected(1_300),
            Some(Event::Reconnected { after_s: 300 })
        );
        // A short blip: no alert either way.
        w.disconnected(2_000);
        assert_eq!(w.poll(2_010), None);
        assert_eq!(w.connected(2_020), None);
        assert_eq!(w.poll(5_000), None);
    }
}
