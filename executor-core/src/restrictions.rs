//! A funded account's optional rules, sans-IO: flat before the weekend, and no order within
//! ±N minutes of a news event (`docs/propfirm.md`, "Funded-account restrictions").
//!
//! Both are off by default and set in `executor_config.json`'s `risk` block
//! (`"flat_before_weekend": {"minutes": 15}`, `"news": {"file": "news.csv", "minutes": 2}`).
//! The shell reads the news file and each symbol's trading calendar; the core gets values:
//! the events ([`parse_news`]) and each symbol's weekend ([`WeekEnd`], from [`week_end`] over
//! the broker's schedule). Time is a parameter.
//!
//! - **Weekend.** From `minutes` before the last close of a symbol's trading week (the close
//!   that starts a closure of at least a day spanning a Saturday, from its schedule: not a fixed
//!   Friday 22:00) until its market opens again after it, entries on the symbol are refused
//!   ([`Refusal::Weekend`], `FAIL|WEEKEND`, missed, never chased); at the start of that window
//!   every position on the symbol is closed (the flatten path, `Timer::Weekend`).
//! - **News.** Within `[event − minutes, event + minutes]` (both ends included, seconds) of an
//!   event targeting a symbol, entries on it are refused ([`Refusal::NewsWindow`],
//!   `FAIL|NEWS_WINDOW`) and its exits are held and sent at the window's end (one second after
//!   it), like the exits held while a market is closed. A flatten (the guard's at a limit, a
//!   person's, the weekend's) is never held: a breach beats the news rule.

use std::collections::BTreeMap;

use crate::policy::Refusal;

/// A day in milliseconds.
const DAY_MS: i64 = 86_400_000;

/// A closure at least this long (milliseconds) that spans a Saturday (UTC) ends a trading week.
pub const WEEKEND_MIN_CLOSED_MS: i64 = DAY_MS;

/// A symbol's weekend: the last close of its trading week and the first open after it (UTC
/// Unix milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeekEnd {
    /// The week's last close.
    pub close_ms: i64,
    /// The market's next open after it.
    pub open_ms: i64,
}

/// Whether `[close_ms, open_ms)` holds an instant of a Saturday (UTC).
fn spans_saturday(close_ms: i64, open_ms: i64) -> bool {
    if open_ms - close_ms >= 7 * DAY_MS {
        return true;
    }
    let (first, last) = (
        close_ms.div_euclid(DAY_MS),
        (open_ms - 1).div_euclid(DAY_MS),
    );
    // 1970-01-01 was a Thursday: (day + 4) mod 7 is 0 on a Sunday, 6 on a Saturday.
    (first..=last).any(|d| (d + 4).rem_euclid(7) == 6)
}

/// The weekend of a market whose open is after `now_ms`, from its calendar: `next_close(t)` /
/// `next_open(t)` are the first instants at or after `t` when it is closed / open (the shell's
/// `TradingCalendar::next_close` / `next_open`). The first closure of at least
/// [`WEEKEND_MIN_CLOSED_MS`] that spans a Saturday (UTC) and ends after `now_ms`, looking from a
/// week before `now_ms` (so a weekend under way is found). `None`: no such closure within about
/// a month of closes (a market open all week, an empty schedule).
pub fn week_end(
    now_ms: i64,
    next_close: impl Fn(i64) -> Option<i64>,
    next_open: impl Fn(i64) -> Option<i64>,
) -> Option<WeekEnd> {
    let mut t = now_ms.saturating_sub(7 * DAY_MS);
    for _ in 0..128 {
        let c = next_close(t)?;
        let o = next_open(c)?;
        if o > now_ms && o - c >= WEEKEND_MIN_CLOSED_MS && spans_saturday(c, o) {
            return Some(WeekEnd {
                close_ms: c,
                open_ms: o,
            });
        }
        if o <= t {
            return None;
        }
        t = o;
    }
    None
}

/// One event of the news calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsEvent {
    /// Its time, UTC Unix milliseconds.
    pub at_ms: i64,
    /// What it targets: currencies (three capital letters: every symbol whose name holds
    /// them), symbols (that symbol), or `*` (every symbol).
    pub targets: Vec<String>,
    /// Its title (log lines, ledger notes).
    pub title: String,
}

impl NewsEvent {
    /// Whether the event targets `symbol` (a model's symbol name, case ignored).
    pub fn targets(&self, symbol: &str) -> bool {
        let sym = symbol.to_ascii_uppercase();
        self.targets.iter().any(|t| {
            let t = t.to_ascii_uppercase();
            t == "*"
                || t == sym
                || (t.len() == 3 && t.bytes().all(|b| b.is_ascii_uppercase()) && sym.contains(&t))
        })
    }
}

/// Parses a news calendar (`docs/propfirm.md`): one event a line,
/// `time,targets,title` with `time` an RFC 3339 instant with its offset
/// (`2026-12-11T13:30:00Z`), `targets` separated by spaces, and a title (commas allowed).
/// Empty lines and lines starting with `#` are skipped, and so is a first line
/// `time,targets,title`. Every bad line is an error naming `file:line`. The events come back
/// sorted by time.
pub fn parse_news(file: &str, text: &str) -> Result<Vec<NewsEvent>, Vec<String>> {
    let mut events = Vec::new();
    let mut errs = Vec::new();
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{file}:{}", i + 1);
        if std::mem::take(&mut first)
            && line
                .split(',')
                .map(str::trim)
                .eq(["time", "targets", "title"])
        {
            continue;
        }
        let mut parts = line.splitn(3, ',').map(str::trim);
        let (Some(time), Some(targets), Some(title)) = (parts.next(), parts.next(), parts.next())
        else {
            errs.push(format!(
                "{at}: expected `time,targets,title` (e.g. `2026-12-11T13:30:00Z,USD US500,US Non-Farm Payrolls`), got `{line}`"
            ));
            continue;
        };
        let at_ms = match time.parse::<jiff::Timestamp>() {
            Ok(ts) => ts.as_millisecond(),
            Err(e) => {
                errs.push(format!(
                    "{at}: time `{time}` is not an instant with its offset like 2026-12-11T13:30:00Z ({e})"
                ));
                continue;
            }
        };
        let targets: Vec<String> = targets.split_whitespace().map(str::to_string).collect();
        if targets.is_empty() {
            errs.push(format!(
                "{at}: no targets (currencies like USD, symbols like US500, or *)"
            ));
            continue;
        }
        if let Some(bad) = targets
            .iter()
            .find(|t| *t != "*" && !oracle_ipc::valid_symbol(t))
        {
            errs.push(format!(
                "{at}: target `{bad}` is not a currency, a symbol name (1-32 of A-Z a-z 0-9 . _ - #) or *"
            ));
            continue;
        }
        if title.is_empty() {
            errs.push(format!("{at}: the event has no title"));
            continue;
        }
        events.push(NewsEvent {
            at_ms,
            targets,
            title: title.to_string(),
        });
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    events.sort_by_key(|e| e.at_ms);
    Ok(events)
}

/// A news window a symbol is in: its events' windows merged where they overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsWindow {
    /// Its first second (UTC Unix s).
    pub start: i64,
    /// Its last second (UTC Unix s, included).
    pub end: i64,
    /// The title of the event whose window holds the instant asked.
    pub title: String,
}

impl NewsWindow {
    /// The first instant after the window (UTC Unix ms): its held exits go then.
    pub fn until_ms(&self) -> i64 {
        (self.end + 1).saturating_mul(1000)
    }
}

/// The optional rules as values: what the core checks at each decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restrictions {
    /// Flat this many minutes before a symbol's weekend (`None`: the rule is off).
    pub weekend_minutes: Option<u32>,
    /// Each symbol's next weekend (the shell's, from its calendar), and when it was asked (UTC
    /// ms): `None` when the calendar states none (asked again later).
    pub week_ends: BTreeMap<String, (i64, Option<WeekEnd>)>,
    /// The news windows' half-width, minutes (`None`: the rule is off).
    pub news_minutes: Option<u32>,
    /// The news events, sorted by time.
    pub news: Vec<NewsEvent>,
}

/// A symbol with no weekend known is asked again this long after (milliseconds).
pub const WEEK_END_RECHECK_MS: i64 = 60_000;

impl Restrictions {
    /// The rules of `risk` with the news file's `events`.
    pub fn new(risk: &crate::risk::RiskConfig, events: Vec<NewsEvent>) -> Self {
        Restrictions {
            weekend_minutes: risk.flat_before_weekend_minutes,
            week_ends: BTreeMap::new(),
            news_minutes: risk.news.as_ref().map(|n| n.minutes),
            news: if risk.news.is_some() {
                events
            } else {
                Vec::new()
            },
        }
    }

    /// Whether either rule is on.
    pub fn any(&self) -> bool {
        self.weekend_minutes.is_some() || self.news_minutes.is_some()
    }

    /// `symbol`'s weekend as its calendar states it at `now_ms` (`None`: none).
    pub fn set_week_end(&mut self, symbol: &str, now_ms: i64, we: Option<WeekEnd>) {
        self.week_ends.insert(symbol.to_string(), (now_ms, we));
    }

    /// Of `symbols`, those whose weekend must be asked (again) at `now_ms`: never asked, past
    /// (its market opened again), or none known and asked [`WEEK_END_RECHECK_MS`] ago. Empty
    /// with the rule off.
    pub fn week_ends_due<'a>(
        &self,
        now_ms: i64,
        symbols: impl IntoIterator<Item = &'a String>,
    ) -> Vec<String> {
        if self.weekend_minutes.is_none() {
            return Vec::new();
        }
        symbols
            .into_iter()
            .filter(|s| match self.week_ends.get(*s) {
                None => true,
                Some((_, Some(we))) => we.open_ms <= now_ms,
                Some((asked, None)) => now_ms - asked >= WEEK_END_RECHECK_MS,
            })
            .cloned()
            .collect()
    }

    /// When `symbol` must be flat (UTC ms): `minutes` before its weekend's close.
    pub fn flat_at(&self, symbol: &str) -> Option<(i64, WeekEnd)> {
        let m = i64::from(self.weekend_minutes?);
        let (_, we) = self.week_ends.get(symbol)?;
        let we = (*we)?;
        Some((we.close_ms - m * 60_000, we))
    }

    /// `symbol`'s weekend when `now_ms` is in its flat window (from [`Restrictions::flat_at`]
    /// until the market opens after the weekend).
    pub fn weekend(&self, symbol: &str, now_ms: i64) -> Option<WeekEnd> {
        let (at, we) = self.flat_at(symbol)?;
        (at <= now_ms && now_ms < we.open_ms).then_some(we)
    }

    /// The news window `symbol` is in at `now` (UTC Unix s), overlapping windows merged.
    pub fn news_window(&self, symbol: &str, now: i64) -> Option<NewsWindow> {
        let half = i64::from(self.news_minutes?) * 60;
        let mut hit: Option<NewsWindow> = None;
        for e in self.news.iter().filter(|e| e.targets(symbol)) {
            let t = e.at_ms.div_euclid(1000);
            let (start, end) = (t - half, t + half);
            match &mut hit {
                None if start <= now && now <= end => {
                    hit = Some(NewsWindow {
                        start,
                        end,
                        title: e.title.clone(),
                    });
                }
                // A later event whose window overlaps the one found extends it.
                Some(w) if start <= w.end + 1 => w.end = w.end.max(end),
                Some(_) => break,
                None => {}
            }
        }
        hit
    }

    /// The news window `symbol` is in at `now` (UTC Unix s), else the next one to come (`None`:
    /// the rule off, or no event targeting it ends at or after `now`).
    pub fn current_or_next_news_window(&self, symbol: &str, now: i64) -> Option<NewsWindow> {
        let half = i64::from(self.news_minutes?) * 60;
        let next = self
            .news
            .iter()
            .filter(|e| e.targets(symbol))
            .find(|e| e.at_ms.div_euclid(1000) + half >= now)?;
        self.news_window(symbol, now.max(next.at_ms.div_euclid(1000) - half))
    }

    /// Why an entry on `symbol` at `now` (UTC Unix s) is refused by these rules, if it is.
    pub fn entry_refusal(&self, symbol: &str, now: i64) -> Option<Refusal> {
        if let Some(we) = self.weekend(symbol, now.saturating_mul(1000)) {
            return Some(Refusal::Weekend {
                close_ms: we.close_ms,
                until_ms: we.open_ms,
            });
        }
        let w = self.news_window(symbol, now)?;
        Some(Refusal::NewsWindow {
            title: w.title.clone(),
            until_ms: w.until_ms(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str, minutes: u32) -> Restrictions {
        Restrictions {
            news_minutes: Some(minutes),
            news: parse_news("news.csv", text).expect("news"),
            ..Restrictions::default()
        }
    }

    #[test]
    fn the_news_window_shown_is_the_one_in_force_else_the_next_merged_with_its_overlaps() {
        // 13:30 and 13:32 (windows ±2 min overlap: 13:28-13:34), then 15:00 (14:58-15:02).
        let r = rules(
            "2026-12-11T13:30:00Z,USD,NFP\n2026-12-11T13:32:00Z,USD,Claims\n2026-12-11T15:00:00Z,EUR,ECB\n",
            2,
        );
        let at = |s: &str| s.parse::<jiff::Timestamp>().expect("time").as_second();
        let w = |sym: &str, now: &str| {
            r.current_or_next_news_window(sym, at(now))
                .map(|w| (w.start, w.end, w.title))
        };
        let (s1328, s1334) = (at("2026-12-11T13:28:00Z"), at("2026-12-11T13:34:00Z"));
        // Before: the next window, merged.
        assert_eq!(
            w("EURUSD", "2026-12-11T12:00:00Z"),
            Some((s1328, s1334, "NFP".into()))
        );
        // Inside the second event's part: in force, named by the event whose window holds now.
        assert_eq!(
            w("EURUSD", "2026-12-11T13:33:00Z").map(|x| (x.0, x.1)),
            Some((at("2026-12-11T13:30:00Z"), s1334))
        );
        // Its last second is still in force; the second after, the next one (EUR only).
        assert_eq!(
            w("EURUSD", "2026-12-11T13:34:00Z").map(|x| x.1),
            Some(s1334)
        );
        assert_eq!(
            w("EURUSD", "2026-12-11T13:34:01Z").map(|x| x.2),
            Some("ECB".into())
        );
        assert_eq!(
            w("GBPUSD", "2026-12-11T13:34:01Z"),
            None,
            "no USD event left"
        );
        // The rule off: none.
        let off = Restrictions {
            news_minutes: None,
            ..r.clone()
        };
        assert_eq!(
            off.current_or_next_news_window("EURUSD", at("2026-12-11T12:00:00Z")),
            None
        );
    }
}
