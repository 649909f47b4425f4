//! The 30-day soak on the DST's virtual clock (`oracle_dst::soak`): `DST_SOAK_DAYS` market days
//! (30 in the release profile, `scripts/test`'s own step; 5 in a debug build, where the twins run
//! unoptimised) from `DST_SOAK_SEED` (default 1). The figures are printed; every one is asserted.

use oracle_ctrader::calendar::Holiday;
use oracle_dst::soak::{
    EXECUTOR_KILLS, MAINTENANCE_WINDOWS, PREDICTOR_KILLS, RESETS, SPAN_START_DAY, SoakSummary,
    run_soak, soak_models, soak_plan,
};
use oracle_sim::calendar::{CalendarMode, SymbolHours};
use oracle_sim::config::Fault;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_soak_holds_every_figure_over_its_market_days() {
    let seed = env_u64("DST_SOAK_SEED", 1);
    let days = env_u64("DST_SOAK_DAYS", if cfg!(debug_assertions) { 5 } else { 30 }) as u32;
    let started = std::time::Instant::now();
    let s = match run_soak(seed, days) {
        Ok(s) => s,
        Err(f) => panic!("{f}"),
    };
    eprintln!(
        "{}\n  ({} steps in {:.1} s)",
        s.text(),
        s.steps,
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = s.check(days) {
        panic!("{e}\n{}", s.text());
    }
}

#[test]
fn the_soak_plan_has_the_calendar_the_token_lifetime_the_drops_the_windows_and_the_kills() {
    let p = soak_plan(1, 30);
    assert_eq!(p.calendar, CalendarMode::Realistic);
    assert_eq!(p.holidays.len(), 1, "{:?}", p.holidays);
    assert!(p.token_expires_s.is_some() && p.token_expires_s == p.token_ttl_s);
    assert_eq!(p.kills.len(), PREDICTOR_KILLS);
    assert_eq!(p.executor_kills.len(), EXECUTOR_KILLS);
    assert!(
        p.executor_kills.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        p.executor_kills
    );
    assert!(p.kills.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", p.kills);
    let windows = p
        .extra_faults
        .iter()
        .filter(|f| matches!(f, Fault::Maintenance { .. }))
        .count();
    assert_eq!(windows, MAINTENANCE_WINDOWS);
    assert!(
        p.extra_faults
            .iter()
            .any(|f| matches!(f, Fault::DropRandom { times: Some(n), .. } if *n == RESETS))
    );
    assert_eq!(p.models, soak_models());
    // Seeded: the same seed, the same plan; another seed moves the points.
    let q = soak_plan(1, 30);
    assert_eq!(format!("{p:?}"), format!("{q:?}"));
    let o = soak_plan(2, 30);
    assert_ne!(
        (p.kills.clone(), p.holidays.clone()),
        (o.kills.clone(), o.holidays.clone())
    );
}

#[test]
fn a_soak_figure_that_is_off_is_named() {
    let good = SoakSummary {
        seed: 1,
        models: vec!["SYNFX03_H1".into()],
        sessions: Vec::new(),
        start: String::new(),
        end: String::new(),
        market_days: 30,
        closed_days: 12,
        holiday: String::new(),
        saturday_maintenance: 6,
        maintenance_windows: MAINTENANCE_WINDOWS as u64,
        bars: 100,
        missed_bars: 0,
        orders: 4,
        duplicate_orders: 0,
        token_rotations: 4,
        resets: RESETS,
        server_closes: 12,
        connects: 13,
        predictor_kills: PREDICTOR_KILLS as u64,
        executor_kills: EXECUTOR_KILLS as u64,
        restarts_needing_a_person: 0,
        trace_rows_equal_replay: 100,
        missed_entries: 0,
        steps: 1,
    };
    assert_eq!(good.check(30), Ok(()));
    for (bad, name) in [
        (
            SoakSummary {
                missed_bars: 1,
                ..good.clone()
            },
            "missed bars",
        ),
        (
            SoakSummary {
                duplicate_orders: 1,
                ..good.clone()
            },
            "duplicate orders",
        ),
        (
            SoakSummary {
                token_rotations: 3,
                ..good.clone()
            },
            "token rotations",
        ),
        (
            SoakSummary {
                token_rotations: 2222,
                ..good.clone()
            },
            "token rotations",
        ),
        (
            SoakSummary {
                resets: RESETS - 1,
                ..good.clone()
            },
            "connection drops",
        ),
        (
            SoakSummary {
                predictor_kills: 2,
                ..good.clone()
            },
            "predictor kills",
        ),
        (
            SoakSummary {
                executor_kills: 0,
                ..good.clone()
            },
            "executor kills",
        ),
        (
            SoakSummary {
                restarts_needing_a_person: 1,
                ..good.clone()
            },
            "restarts needing a person",
        ),
        (
            SoakSummary {
                market_days: 29,
                ..good.clone()
            },
            "market days",
        ),
    ] {
        let e = bad.check(30).expect_err(name);
        assert!(e.contains(name), "{e}");
    }
}

#[test]
fn the_soak_plan_runs_every_bundled_model() {
    let all: Vec<String> = oracle_dst::fixtures::models().keys().cloned().collect();
    assert_eq!(all.len(), 20, "{all:?}");
    assert_eq!(soak_plan(1, 30).models, all);
}

#[test]
fn the_soak_bars_keep_every_price_in_order_on_open_slots_over_at_least_30_market_days() {
    const DAY_MS: i64 = 86_400_000;
    let p = soak_plan(1, 30);
    let bars = p.bars.as_ref().expect("the soak's re-stamped bars");
    let bundled = oracle_dst::fixtures::symbols();
    // Every model's symbol is re-stamped (one series per symbol).
    for m in &p.models {
        let sym = &oracle_dst::fixtures::models()[m].spec.symbol;
        assert!(bars.0.contains_key(sym), "{m}: {sym} not re-stamped");
    }
    let (name, day) = p.holidays[0].clone();
    for (sym, d) in bars.0.iter() {
        let src = &bundled[sym];
        assert_eq!(d.period, src.period, "{sym}");
        // Only times move: the file's bars, from its first, in order, every price and volume.
        assert!(
            d.bars.len() > 400 && d.bars.len() <= src.bars.len(),
            "{sym}"
        );
        for (i, (a, b)) in d.bars.iter().zip(&src.bars).enumerate() {
            assert_eq!(
                (a.open, a.high, a.low, a.close, a.volume),
                (b.open, b.high, b.low, b.close, b.volume),
                "{sym} bar {i}"
            );
        }
        // On the period's grid, strictly increasing, each bar with an open instant of the
        // symbol's realistic hours (the soak's holiday and Christmas closed): the bars the
        // broker's history serves.
        let len = d.period.fixed_ms().expect("a fixed period");
        let mut h = SymbolHours::for_symbol(sym, CalendarMode::Realistic);
        h.holidays.push(Holiday {
            name: name.clone(),
            time_zone: h.time_zone.clone(),
            date_days: day,
            recurring: false,
            start_second: None,
            end_second: None,
        });
        let cal = h.calendar();
        for w in d.bars.windows(2) {
            assert!(
                w[0].time_ms < w[1].time_ms,
                "{sym}: {} then {}",
                w[0].time_ms,
                w[1].time_ms
            );
        }
        for b in &d.bars {
            assert_eq!(
                b.time_ms.rem_euclid(len),
                0,
                "{sym}: {} off the grid",
                b.time_ms
            );
            assert!(
                cal.next_open(b.time_ms)
                    .is_some_and(|t| t < b.time_ms + len),
                "{sym}: bar at {} wholly in closed hours",
                b.time_ms
            );
        }
        // Bars on at least 30 FX trading days from the span's start (a day open at 12:00 UTC
        // with a bar of the symbol).
        let fx = {
            let mut h = SymbolHours::for_symbol("SYNFX01", CalendarMode::Realistic);
            h.holidays.push(Holiday {
                name: name.clone(),
                time_zone: h.time_zone.clone(),
                date_days: day,
                recurring: false,
                start_second: None,
                end_second: None,
            });
            h.calendar()
        };
        let mut days: Vec<i64> = d
            .bars
            .iter()
            .map(|b| b.time_ms.div_euclid(DAY_MS))
            .filter(|x| *x >= SPAN_START_DAY && fx.is_open(x * DAY_MS + DAY_MS / 2))
            .collect();
        days.dedup();
        assert!(
            days.len() >= 31,
            "{sym}: bars on {} market days of the span",
            days.len()
        );
    }
}
