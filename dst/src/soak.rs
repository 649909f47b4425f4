//! The 30-day soak on the deterministic simulation's virtual clock (issue 17 item 7): weeks of
//! market time in seconds.
//!
//! [`soak_plan`] builds one [`Plan`] from a seed: every bundled model the DST can run whose
//! bars cover one common span (the DST runs every stream on one market clock, and the bundled
//! bar files cover different years: [`soak_models`] picks the largest set), `days` market days
//! of bars, the realistic calendar (weekends; the broker's weekly Saturday maintenance window;
//! Christmas and one extra holiday on a seeded weekday of the span), two more maintenance
//! windows at seeded trading hours, the access token expiring every 7 market days (every
//! refreshed token too), exactly 10 connection drops at seeded points (the broker's
//! `drop:random` fault, at most 10 times), 3 predictor kills (kill -9) at seeded batches and 3
//! executor kills (kill -9) after seeded journal writes.
//! [`run_soak`] runs it and returns the figures ([`SoakSummary`]); the invariants of every DST
//! seed hold at every step (history's bars each once, in order; a client order id at the broker
//! once; every trace equal to `oracle replay` at each kill and at the end).

use oracle_ctrader::calendar::{Holiday, TradingCalendar};
use oracle_sim::bars::format_iso_utc;
use oracle_sim::calendar::{CalendarMode, SymbolHours};
use oracle_sim::config::Fault;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fixtures;
use crate::pipe::PipeFaults;
use crate::world::{Defect, Failure, KillPoint, Plan, Summary, run};

const DAY_MS: i64 = 86_400_000;
/// Bars of its own timeframe a model needs behind the start (the DST's warm-up: the window,
/// the 60 extra bars the predictor asks for, and 5).
const WARMUP_EXTRA: usize = 65;
/// Virtual seconds a bar of the coarsest stream lasts (the replay speed).
const BAR_WALL_S: i64 = 60;
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
    /// Executor kills (kill -9 after a journal write, restarted from the journal's durable bytes).
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
            "DST soak (seed {}, virtual clock): {} models (of the 20 bundled: those whose bars cover one span) over {} market days ({} .. {}; {} closed days: weekends, Christmas if in span, holiday {}), {} Saturday maintenance windows + {} in trading hours\n  live bars {} (missed {}), orders {} (duplicates {}), entries not chased {}\n  token rotations survived {}, connection drops {} (server closes {}, connects {}), predictor kills {}, executor kills {}, restarts needing a person {}\n  trace rows = oracle replay: {}\n  models: {}",
            self.seed,
            self.models.len(),
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
                self.token_rotations >= u64::from(days) / TOKEN_MARKET_DAYS as u64,
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

/// One candidate model: its name, warm-up time (Unix ms: the bar whose index is its warm-up
/// count), the last bar's open time, its symbol and its bar length.
struct Candidate {
    name: String,
    warm_ms: i64,
    last_ms: i64,
    symbol: String,
    len_ms: i64,
}

/// Models the DST can run (their stream is their symbol's source series: every bundled model
/// but the coarser of a symbol with two), with their data's reach.
fn candidates() -> Vec<Candidate> {
    let symbols = fixtures::symbols();
    fixtures::models()
        .iter()
        .filter_map(|(name, b)| {
            let d = symbols.get(&b.spec.symbol)?;
            if d.period.name() != b.spec.timeframe {
                return None;
            }
            let need = b.spec.window + WARMUP_EXTRA;
            Some(Candidate {
                name: name.clone(),
                warm_ms: d.bars.get(need)?.time_ms,
                last_ms: d.bars.last()?.time_ms,
                symbol: b.spec.symbol.clone(),
                len_ms: d.period.fixed_ms()?,
            })
        })
        .collect()
}

/// The FX calendar (Sunday 22:00 – Friday 22:00 UTC, Christmas) with `holiday`.
fn fx_calendar(holiday: Option<i64>) -> TradingCalendar {
    let mut h = SymbolHours::for_symbol("SYNFX01", CalendarMode::Realistic);
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

/// The largest set of models whose bars cover one span of `days` trading days from a common
/// start (ties: the earliest start); their names, sorted.
pub fn soak_models(days: u32) -> Vec<String> {
    let cs = candidates();
    let cal = fx_calendar(None);
    let mut best: Vec<String> = Vec::new();
    let mut starts: Vec<i64> = cs.iter().map(|c| c.warm_ms).collect();
    starts.sort_unstable();
    for t in starts {
        // A week beyond the span: the last bars close, and the start can move.
        let end = after_trading_days(t, days + 5, &cal);
        let mut set: Vec<String> = cs
            .iter()
            .filter(|c| c.warm_ms <= t && c.last_ms > end)
            .map(|c| c.name.clone())
            .collect();
        set.sort();
        if set.len() > best.len() {
            best = set;
        }
    }
    best
}

/// The soak's plan for `seed` over `days` market days (see the module documentation).
// The struct update fills fields the soak leaves as drawn (none today).
#[allow(clippy::needless_update)]
pub fn soak_plan(seed: u64, days: u32) -> Plan {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x736f_616b);
    let models = soak_models(days);
    let cs: Vec<Candidate> = candidates()
        .into_iter()
        .filter(|c| models.contains(&c.name))
        .collect();
    // The World's start: the latest warm-up over the chosen symbols' source series.
    let start = cs.iter().map(|c| c.warm_ms).max().unwrap_or(0);
    let coarsest = cs.iter().map(|c| c.len_ms).max().unwrap_or(DAY_MS);
    let cal = fx_calendar(None);
    // The extra holiday: a seeded weekday at least 3 trading days from either end.
    let day0 = start.div_euclid(DAY_MS);
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
    // One trading day more: the first live bars may come after the open.
    let end = after_trading_days(start, days + 1, &cal);
    // `live_bars` of the coarsest stream reach `end` on every coarsest symbol.
    let symbols = fixtures::symbols();
    let live_bars = cs
        .iter()
        .filter(|c| c.len_ms == coarsest)
        .filter_map(|c| {
            let bars = &symbols.get(&c.symbol)?.bars;
            Some(
                bars.iter()
                    .filter(|b| b.time_ms >= start && b.time_ms < end)
                    .count(),
            )
        })
        .max()
        .unwrap_or(days as usize)
        .max(1);
    // Virtual seconds per market second: a coarsest bar lasts BAR_WALL_S.
    let factor = coarsest as f64 / (BAR_WALL_S as f64 * 1000.0);
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
    let closes: usize = cs
        .iter()
        .map(|c| {
            symbols.get(&c.symbol).map_or(0, |d| {
                d.bars
                    .iter()
                    .filter(|b| b.time_ms >= start && b.time_ms < end)
                    .count()
            })
        })
        .max()
        .unwrap_or(10);
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
    Plan {
        seed,
        models,
        live_bars,
        bar_wall_s: BAR_WALL_S,
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
        ..Plan::from_seed(seed)
    }
}

/// Runs the soak of `seed` over `days` market days.
pub fn run_soak(seed: u64, days: u32) -> Result<SoakSummary, Failure> {
    let plan = soak_plan(seed, days);
    let s = run(&plan, Defect::None)?;
    Ok(summarize(&plan, &s))
}

fn summarize(plan: &Plan, s: &Summary) -> SoakSummary {
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
