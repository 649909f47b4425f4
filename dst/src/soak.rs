//! The 30-day soak on the deterministic simulation's virtual clock (issue 17 item 7): weeks of
//! market time in seconds.
//!
//! [`soak_plan`] builds one [`Plan`] from a seed: all 20 bundled models ([`soak_models`]) over
//! `days` market days from Monday 2026-11-30 ([`SPAN_START_DAY`]). The bundled bar files cover
//! different years and the DST runs every stream on one market clock, so each symbol's bar file
//! is re-stamped onto that span ([`restamp_symbols`]): its bars in order with every price as it
//! was, each moved onto the next slot of its period the symbol's calendar has open (as the
//! benchmark and the chaos harness shift theirs; the twins see only the order of bars), enough
//! of them behind the start for every model's warm-up. A file too short to fill every open
//! slot (the M5 files hold 12 days) fills a daily session instead, the same hours every day.
//! History, the replay and `oracle replay`'s check all read the re-stamped bars. Then the
//! realistic calendar (weekends; the broker's weekly Saturday maintenance window;
//! Christmas and one extra holiday on a seeded weekday of the span), two more maintenance
//! windows at seeded trading hours, the access token expiring every 7 market days (every
//! refreshed token too), exactly 10 connection drops at seeded points (the broker's
//! `drop:random` fault, at most 10 times), 3 predictor kills (kill -9) at seeded batches and 3
//! executor kills (kill -9) after seeded journal writes.
//! [`run_soak`] runs it and returns the figures ([`SoakSummary`]); the invariants of every DST
//! seed hold at every step (history's bars each once, in order; a client order id at the broker
//! once; every trace equal to `oracle replay` at each kill and at the end).

use std::collections::BTreeMap;
use std::sync::Arc;

use oracle_ctrader::calendar::{Holiday, TradingCalendar};
use oracle_sim::bars::{Bar, format_iso_utc};
use oracle_sim::calendar::{CalendarMode, SymbolHours};
use oracle_sim::config::Fault;
use oracle_sim::symbols::SymbolData;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fixtures;
use crate::pipe::PipeFaults;
pub use crate::world::MarketBars;
use crate::world::{Defect, Failure, KillPoint, Plan, Summary, run};

const DAY_MS: i64 = 86_400_000;
/// Bars of its own timeframe a model needs behind the start (the DST's warm-up: the window,
/// the 60 extra bars the predictor asks for, and 5).
const WARMUP_EXTRA: usize = 65;
/// Market seconds per virtual second (the replay speed): an H1 bar lasts 15 virtual seconds,
/// whatever the coarsest stream (the timers, the heartbeats and the history rate limit run on
/// the virtual clock; faster, a reconnection's gap fill would last hours of market time).
const MARKET_SPEED: i64 = 240;
/// Connection drops the soak injects.
pub const RESETS: u64 = 10;
/// Predictor kills the soak injects.
pub const PREDICTOR_KILLS: usize = 3;
/// Executor kills the soak injects.
pub const EXECUTOR_KILLS: usize = 3;
/// Maintenance windows besides the weekly Saturday one.
pub const MAINTENANCE_WINDOWS: usize = 2;
/// The access token lives this many market days.
pub const TOKEN_MARKET_DAYS: i64 = 7;

/// What a soak did: the figures the README reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakSummary {
    /// The seed.
    pub seed: u64,
    /// Models that traded (bundled file stems).
    pub models: Vec<String>,
    /// Symbols whose bar file is too short to fill the span's every open slot of its period,
    /// and the daily session (UTC) their bars were re-stamped onto ("SYNFX02 12-21 UTC").
    pub sessions: Vec<String>,
    /// Market time the live replay started at (ISO-8601 UTC).
    pub start: String,
    /// Market time it ended at.
    pub end: String,
    /// Trading days in the span: weekdays the FX calendar (weekends, Christmas, the extra
    /// holiday) has open at 12:00 UTC.
    pub market_days: u32,
    /// Weekend days and holidays the span crossed (days closed at 12:00 UTC).
    pub closed_days: u32,
    /// The extra holiday (ISO date).
    pub holiday: String,
    /// Saturday maintenance windows in the span (the broker's weekly schedule).
    pub saturday_maintenance: u32,
    /// Maintenance windows in trading hours that began (the `maintenance` fault).
    pub maintenance_windows: u64,
    /// Live bars the predictor got over all streams.
    pub bars: u64,
    /// Live bars of history that never reached the executor's streams.
    pub missed_bars: u64,
    /// Orders sent.
    pub orders: u64,
    /// Client order ids that reached the broker more than once (extra times).
    pub duplicate_orders: u64,
    /// Token refreshes the session did (ahead of expiry or on the broker's invalidation).
    pub token_rotations: u64,
    /// Connection drops the broker injected.
    pub resets: u64,
    /// Connections the broker closed for any reason (drops, maintenance, …).
    pub server_closes: u64,
    /// Session connects.
    pub connects: u64,
    /// Predictor kills (kill -9, restarted from the bytes written).
    pub predictor_kills: u64,
    /// Executor kills (kill -9 after a journal write, restarted from the journal's bytes left:
    /// process kills and power losses in turn).
    pub executor_kills: u64,
    /// Restarts that would need a person: fatal authentication failures.
    pub restarts_needing_a_person: u64,
    /// Trace rows compared with `oracle replay` (at each kill and at the end), all equal.
    pub trace_rows_equal_replay: u64,
    /// Entries not chased (a closed market, a refusal).
    pub missed_entries: u64,
    /// Steps of the simulation.
    pub steps: u64,
}

impl SoakSummary {
    /// The figures as one block of text.
    pub fn text(&self) -> String {
        format!(
            "DST soak (seed {}, virtual clock): {} models (every bundled one, each symbol's bars re-stamped onto one span, prices unchanged{}) over {} market days ({} .. {}; {} closed days: weekends, Christmas if in span, holiday {}), {} Saturday maintenance windows + {} in trading hours\n  live bars {} (missed {}), orders {} (duplicates {}), entries not chased {}\n  token rotations survived {}, connection drops {} (server closes {}, connects {}), predictor kills {}, executor kills {}, restarts needing a person {}\n  trace rows = oracle replay: {}\n  models: {}",
            self.seed,
            self.models.len(),
            if self.sessions.is_empty() {
                String::new()
            } else {
                format!(
                    "; files too short for every hour trade a daily session: {}",
                    self.sessions.join(", ")
                )
            },
            self.market_days,
            self.start,
            self.end,
            self.closed_days,
            self.holiday,
            self.saturday_maintenance,
            self.maintenance_windows,
            self.bars,
            self.missed_bars,
            self.orders,
            self.duplicate_orders,
            self.missed_entries,
            self.token_rotations,
            self.resets,
            self.server_closes,
            self.connects,
            self.predictor_kills,
            self.executor_kills,
            self.restarts_needing_a_person,
            self.trace_rows_equal_replay,
            self.models.join(" ")
        )
    }

    /// What the soak must show; the first figure that is off, named.
    pub fn check(&self, days: u32) -> Result<(), String> {
        let want: [(&str, bool, String); 10] = [
            (
                "market days",
                self.market_days >= days,
                format!("{} < {days}", self.market_days),
            ),
            (
                "missed bars",
                self.missed_bars == 0,
                self.missed_bars.to_string(),
            ),
            (
                "duplicate orders",
                self.duplicate_orders == 0,
                self.duplicate_orders.to_string(),
            ),
            (
                "token rotations",
                // At least one per token lifetime; at most a few (a refresh ahead at half its
                // life, one after a drop): thousands are a storm.
                (u64::from(days) / TOKEN_MARKET_DAYS as u64
                    ..=4 * (u64::from(days) / TOKEN_MARKET_DAYS as u64 + 1))
                    .contains(&self.token_rotations),
                self.token_rotations.to_string(),
            ),
            (
                "connection drops",
                self.resets == RESETS,
                format!("{} (want {RESETS})", self.resets),
            ),
            (
                "predictor kills",
                self.predictor_kills == PREDICTOR_KILLS as u64,
                format!("{} (want {PREDICTOR_KILLS})", self.predictor_kills),
            ),
            (
                "executor kills",
                self.executor_kills == EXECUTOR_KILLS as u64,
                format!("{} (want {EXECUTOR_KILLS})", self.executor_kills),
            ),
            (
                "maintenance windows",
                self.maintenance_windows == MAINTENANCE_WINDOWS as u64,
                format!("{} (want {MAINTENANCE_WINDOWS})", self.maintenance_windows),
            ),
            (
                "restarts needing a person",
                self.restarts_needing_a_person == 0,
                self.restarts_needing_a_person.to_string(),
            ),
            (
                "live bars and trace rows",
                self.bars > 0 && self.trace_rows_equal_replay > 0,
                format!("{} bars, {} rows", self.bars, self.trace_rows_equal_replay),
            ),
        ];
        match want.iter().find(|w| !w.1) {
            Some((what, _, got)) => Err(format!("soak seed {}: {what}: {got}", self.seed)),
            None => Ok(()),
        }
    }
}

/// The span's first day, Monday 2026-11-30 (days since 1970-01-01): every symbol's bars are
/// re-stamped onto the weeks from here (a constant: the soak never reads today's date; Christmas
/// falls inside the span).
pub const SPAN_START_DAY: i64 = 20_787;
/// Where a short file's daily session ends (UTC hour): a symbol whose bars cannot fill every
/// slot of its period the calendar has open over the span trades the hours before it each day
/// (FX and the indices are open then; the stocks close at 21:00 UTC in winter).
const SESSION_END_HOUR: i64 = 21;

/// One symbol's trading hours as the broker builds them under the realistic calendar (its
/// class hours, Christmas), with the soak's extra `holiday`.
fn symbol_calendar(symbol: &str, holiday: Option<i64>) -> TradingCalendar {
    let mut h = SymbolHours::for_symbol(symbol, CalendarMode::Realistic);
    if let Some(days) = holiday {
        h.holidays.push(Holiday {
            name: "soak holiday".into(),
            time_zone: h.time_zone.clone(),
            date_days: days,
            recurring: false,
            start_second: None,
            end_second: None,
        });
    }
    h.calendar()
}

/// The FX calendar (Sunday 22:00 – Friday 22:00 UTC, Christmas) with `holiday`.
fn fx_calendar(holiday: Option<i64>) -> TradingCalendar {
    symbol_calendar("SYNFX01", holiday)
}

/// Market time `days` trading days (FX calendar, open at 12:00 UTC) after `start_ms`.
fn after_trading_days(start_ms: i64, days: u32, cal: &TradingCalendar) -> i64 {
    let mut d = start_ms.div_euclid(DAY_MS);
    let mut n = 0;
    while n < days {
        d += 1;
        if cal.is_open(d * DAY_MS + DAY_MS / 2) {
            n += 1;
        }
    }
    (d + 1) * DAY_MS
}

/// Every bundled model, by name (the soak runs them all).
pub fn soak_models() -> Vec<String> {
    fixtures::models().keys().cloned().collect()
}

/// A symbol's bars re-stamped onto the soak's span: its bar file's bars in order, every price
/// as it was, each moved onto the next slot of its period that the symbol's calendar has in
/// hours (a slot with an open instant: the bars the broker's history serves), `before` of them
/// on the last slots ahead of the span's start `t0`, the rest on the slots from `t0` until
/// `until` (later bars are left out). `session`: only slots opening in these UTC hours of the
/// day (a file too short for every open slot). None: the file is too short.
fn restamp(
    d: &SymbolData,
    cal: &TradingCalendar,
    session: Option<(i64, i64)>,
    t0: i64,
    before: usize,
    until: i64,
) -> Option<SymbolData> {
    let p = d.period.fixed_ms()?;
    let t0 = t0.div_euclid(p) * p;
    let open = |o: i64| {
        session.is_none_or(|(a, b)| (a..b).contains(&(o.rem_euclid(DAY_MS) / 3_600_000)))
            && cal.next_open(o).is_some_and(|t| t < o + p)
    };
    let mut slots = Vec::with_capacity(d.bars.len());
    let mut o = t0;
    while slots.len() < before {
        o -= p;
        // No open slot in 20 years: no calendar of the broker's is that closed.
        if o < t0 - 20 * 365 * DAY_MS {
            return None;
        }
        if open(o) {
            slots.push(o);
        }
    }
    slots.reverse();
    let mut o = t0;
    while o < until {
        if slots.len() == d.bars.len() {
            return None;
        }
        if open(o) {
            slots.push(o);
        }
        o += p;
    }
    Some(SymbolData {
        spec: d.spec.clone(),
        period: d.period,
        bars: d
            .bars
            .iter()
            .zip(slots)
            .map(|(b, time_ms)| Bar { time_ms, ..*b })
            .collect(),
    })
}

/// How one symbol's bars were re-stamped.
#[derive(Clone, Debug)]
pub struct Stamped {
    /// The symbol.
    pub symbol: String,
    /// Its bars, re-stamped.
    pub data: SymbolData,
    /// The daily session (UTC hours) when its file is too short for every open slot.
    pub session: Option<(i64, i64)>,
}

/// The largest warm-up of `models` (source bars): the World starts after it on every symbol.
fn largest_warmup(models: &[String], bundled: &BTreeMap<String, fixtures::Bundled>) -> usize {
    models
        .iter()
        .filter_map(|m| bundled.get(m))
        .map(|b| b.spec.window + WARMUP_EXTRA)
        .max()
        .unwrap_or(WARMUP_EXTRA)
}

/// Every symbol of `models` re-stamped onto the span from [`SPAN_START_DAY`] with the soak's
/// `holiday` (see [`restamp`]): bars enough behind the start for the largest warm-up (the
/// World starts after it on every symbol, in source bars), or for the symbol's own models'
/// warm-up in their timeframe if more, and bars to `days + 6` trading days on.
pub fn restamp_symbols(
    models: &[String],
    days: u32,
    holiday: Option<i64>,
) -> Result<Vec<Stamped>, String> {
    let bundled = fixtures::models();
    let symbols = fixtures::symbols();
    let t0 = SPAN_START_DAY * DAY_MS;
    let until = after_trading_days(t0, days + 6, &fx_calendar(holiday));
    let need = largest_warmup(models, bundled);
    let mut out: Vec<Stamped> = Vec::new();
    for m in models {
        let b = bundled
            .get(m)
            .ok_or_else(|| format!("{m}: not a bundled model"))?;
        let sym = &b.spec.symbol;
        if out.iter().any(|s| &s.symbol == sym) {
            continue;
        }
        let d = symbols
            .get(sym)
            .ok_or_else(|| format!("{m}: no bar file for its symbol {sym}"))?;
        let src = d.period.fixed_ms().unwrap_or(DAY_MS);
        // Source bars behind the start: the World's warm-up, or the symbol's models' own.
        let before = models
            .iter()
            .filter_map(|n| bundled.get(n))
            .filter(|x| &x.spec.symbol == sym)
            .filter_map(|x| {
                let ms = oracle_sim::bars::Period::from_name(&x.spec.timeframe)?.fixed_ms()?;
                Some((x.spec.window + WARMUP_EXTRA) * (ms / src).max(1) as usize)
            })
            .fold(need, usize::max);
        let cal = symbol_calendar(sym, holiday);
        let sessions = std::iter::once(None).chain(
            (1..SESSION_END_HOUR)
                .rev()
                .map(|h| Some((SESSION_END_HOUR - h, SESSION_END_HOUR))),
        );
        let stamped = sessions
            .into_iter()
            .find_map(|session| {
                restamp(d, &cal, session, t0, before, until).map(|data| Stamped {
                    symbol: sym.clone(),
                    data,
                    session,
                })
            })
            .ok_or_else(|| {
                format!(
                    "{sym}: its bar file's {} bars cannot cover {before} bars of warm-up and {days} market days, even an hour a day",
                    d.bars.len()
                )
            })?;
        out.push(stamped);
    }
    Ok(out)
}

/// The soak's plan for `seed` over `days` market days (see the module documentation).
// The struct update fills fields the soak leaves as drawn (none today).
pub fn soak_plan(seed: u64, days: u32) -> Plan {
    plan_and_sessions(seed, days).0
}

/// The soak's plan and the daily sessions of the symbols whose files are too short for every
/// open slot ("SYM hh–hh UTC").
// The struct update fills fields the soak leaves as drawn (none today).
#[allow(clippy::needless_update)]
fn plan_and_sessions(seed: u64, days: u32) -> (Plan, Vec<String>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x736f_616b);
    let models = soak_models();
    let cal = fx_calendar(None);
    // The extra holiday: a seeded weekday at least 3 trading days from either end of the span.
    let day0 = SPAN_START_DAY;
    // The span's first `days` trading days.
    let weekdays: Vec<i64> = (day0 + 1..)
        .filter(|d| cal.is_open(d * DAY_MS + DAY_MS / 2))
        .take(days as usize)
        .collect();
    let lo = 3.min(weekdays.len());
    let hi = weekdays.len().saturating_sub(3).max(lo + 1);
    let holiday = weekdays
        .get(r.random_range(lo..hi))
        .copied()
        .unwrap_or(day0 + 3);
    let cal = fx_calendar(Some(holiday));
    let stamped = restamp_symbols(&models, days, Some(holiday))
        .unwrap_or_else(|e| panic!("the soak's bars: {e}"));
    let bundled = fixtures::models();
    // The World's start: after the largest warm-up (source bars) on every symbol (as
    // `Start::AfterBars` takes it).
    let need = largest_warmup(&models, bundled);
    let start = stamped
        .iter()
        .filter_map(|s| {
            let b = &s.data.bars;
            b.get(need.min(b.len().saturating_sub(1)))
                .map(|b| b.time_ms)
        })
        .max()
        .unwrap_or(day0 * DAY_MS);
    let len_of = |s: &Stamped| s.data.period.fixed_ms().unwrap_or(DAY_MS);
    let coarsest = stamped.iter().map(len_of).max().unwrap_or(DAY_MS);
    // One trading day more: the first live bars may come after the open.
    let end = after_trading_days(start, days + 1, &cal);
    // Then on to the next Monday 00:00 UTC, where the replay ends after a weekend in which
    // every stream's last bar closed: a stock's D1 bar ends at midnight, hours before its next
    // tick, and ending at a weekday's midnight left the session waiting for it on its own
    // (virtual) clock, weeks of steps and thousands of token refreshes.
    let end_day = end.div_euclid(DAY_MS);
    let end = (end_day + (7 - (end_day + 3).rem_euclid(7)) % 7) * DAY_MS;
    let in_span = |s: &Stamped| {
        s.data
            .bars
            .iter()
            .filter(|b| b.time_ms >= start && b.time_ms < end)
            .count()
    };
    // `live_bars` of the coarsest stream: the World ends the replay where the last coarsest
    // symbol has had them, so the fewest any coarsest symbol has in the span (a stock's D1
    // has no Sunday bar) ends it near `end`.
    let live_bars = stamped
        .iter()
        .filter(|s| len_of(s) == coarsest)
        .map(in_span)
        .min()
        .unwrap_or(days as usize)
        .max(1);
    // A coarsest bar lasts `bar_wall_s` virtual seconds: market seconds per virtual second.
    let bar_wall_s = (coarsest / 1000 / MARKET_SPEED).max(1);
    let factor = coarsest as f64 / (bar_wall_s as f64 * 1000.0);
    let virtual_s = |market_ms: i64| ((market_ms as f64 / 1000.0) / factor).round() as i64;
    // 7 market days of market time (weekends in between count as they pass: 7 trading days
    // are 9.8 calendar days).
    let token_s = virtual_s(TOKEN_MARKET_DAYS * DAY_MS * 7 / 5).max(60);
    // Two maintenance windows of an hour of market time, at seeded trading hours of seeded
    // trading days (not the first or the last).
    let mut faults = Vec::new();
    let mut picked: Vec<i64> = Vec::new();
    // Trading days 1 .. days - 1, less the holiday: room for the windows from 4 days on.
    while picked.len() < MAINTENANCE_WINDOWS && weekdays.len() >= MAINTENANCE_WINDOWS + 2 {
        let d = weekdays[r.random_range(1..weekdays.len() - 1)];
        if d == holiday || picked.contains(&d) {
            continue;
        }
        picked.push(d);
    }
    picked.sort_unstable();
    for d in &picked {
        // 13:00–17:00 UTC: FX, indices and the New York stock session are all open.
        let at = d * DAY_MS + r.random_range(13..17) * 3_600_000;
        faults.push(Fault::Maintenance {
            after_s: virtual_s(at - start).max(1) as u64,
            for_s: virtual_s(3_600_000).max(1) as u64,
        });
    }
    // Exactly RESETS drops at seeded points: after any server frame with probability p, at
    // most RESETS times; p makes the tenth come well before the end.
    faults.push(Fault::DropRandom {
        p: 0.002,
        times: Some(RESETS),
    });
    // Predictor kills at seeded batches within the span: batches are at least the bar closes
    // of the finest stream.
    let closes: usize = stamped.iter().map(in_span).max().unwrap_or(10);
    let mut kills: Vec<(u64, KillPoint)> = Vec::new();
    while kills.len() < PREDICTOR_KILLS {
        let at = r.random_range(2..(closes as u64 * 9 / 10).max(3 + PREDICTOR_KILLS as u64));
        if kills.iter().any(|k| k.0 == at) {
            continue;
        }
        let pt = [
            KillPoint::BeforeLines,
            KillPoint::BeforePersist,
            KillPoint::AfterPersist,
        ][kills.len() % 3];
        kills.push((at, pt));
    }
    kills.sort_by_key(|k| k.0);
    // Executor kills after seeded journal writes (a soak writes thousands: intents, outcomes).
    let mut executor_kills: Vec<u64> = Vec::new();
    while executor_kills.len() < EXECUTOR_KILLS {
        let at = r.random_range(1..600);
        if !executor_kills.contains(&at) {
            executor_kills.push(at);
        }
    }
    executor_kills.sort_unstable();
    let sessions: Vec<String> = stamped
        .iter()
        .filter_map(|s| {
            s.session
                .map(|(a, b)| format!("{} {a:02}-{b:02} UTC", s.symbol))
        })
        .collect();
    let bars: BTreeMap<String, SymbolData> =
        stamped.into_iter().map(|s| (s.symbol, s.data)).collect();
    let plan = Plan {
        seed,
        models,
        live_bars,
        bar_wall_s,
        live_close: true,
        pipe: PipeFaults::none(),
        reject_every: None,
        lose_exec_every: None,
        token_expires_s: Some(token_s),
        history_rate_limit: 5,
        kills,
        restart_after_ms: r.random_range(1_000..30_000),
        blocked: None,
        maintenance: None,
        with_maintenance: false,
        no_answer_every: None,
        market_utc: false,
        calendar: CalendarMode::Realistic,
        token_ttl_s: Some(token_s),
        holidays: vec![("soak holiday".into(), holiday)],
        extra_faults: faults,
        executor_kills,
        // Process kills and power losses in turn.
        executor_kills_keep_written: (0..EXECUTOR_KILLS).map(|k| k % 2 == 0).collect(),
        bars: Some(MarketBars(Arc::new(bars))),
        // The soak's figures are its own: no refusal in open hours.
        market_closed_every: None,
        ..Plan::from_seed(seed)
    };
    (plan, sessions)
}

/// Runs the soak of `seed` over `days` market days.
pub fn run_soak(seed: u64, days: u32) -> Result<SoakSummary, Failure> {
    let (plan, sessions) = plan_and_sessions(seed, days);
    let s = run(&plan, Defect::None)?;
    Ok(summarize(&plan, &s, sessions))
}

fn summarize(plan: &Plan, s: &Summary, sessions: Vec<String>) -> SoakSummary {
    let holiday = plan.holidays.first().map(|h| h.1);
    let cal = fx_calendar(holiday);
    let (mut open, mut closed, mut saturdays) = (0u32, 0u32, 0u32);
    let maintenance = oracle_sim::calendar::weekly_maintenance();
    for d in s.start_ms.div_euclid(DAY_MS)..s.end_ms.div_euclid(DAY_MS) {
        if cal.is_open(d * DAY_MS + DAY_MS / 2) {
            open += 1;
        } else {
            closed += 1;
        }
        if maintenance.is_open(d * DAY_MS + 7 * 3_600_000) {
            saturdays += 1;
        }
    }
    let fired = |kind: &str| -> u64 {
        s.faults_fired
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, n)| n)
            .sum()
    };
    SoakSummary {
        seed: plan.seed,
        models: plan.models.clone(),
        sessions,
        start: format_iso_utc(s.start_ms),
        end: format_iso_utc(s.end_ms),
        market_days: open,
        closed_days: closed,
        holiday: holiday
            .map(|d| format_iso_utc(d * DAY_MS)[..10].to_string())
            .unwrap_or_default(),
        saturday_maintenance: saturdays,
        maintenance_windows: fired("Maintenance"),
        bars: s.bars,
        missed_bars: s.missed_bars,
        orders: s.orders,
        duplicate_orders: s.duplicate_orders,
        token_rotations: s.refreshes,
        resets: fired("DropRandom"),
        server_closes: s.server_closes,
        connects: s.connects,
        predictor_kills: s.kills,
        executor_kills: s.executor_kills,
        restarts_needing_a_person: s.fatal_auth,
        trace_rows_equal_replay: s.rows_checked,
        missed_entries: s.missed_entries,
        steps: s.steps,
    }
}
