//! The 30-day soak on the DST's virtual clock (`oracle_dst::soak`): `DST_SOAK_DAYS` market days
//! (30 in the release profile, `scripts/test`'s own step; 5 in a debug build, where the twins run
//! unoptimised) from `DST_SOAK_SEED` (default 1). The figures are printed; every one is asserted.

use oracle_dst::soak::{
    EXECUTOR_KILLS, MAINTENANCE_WINDOWS, PREDICTOR_KILLS, RESETS, SoakSummary, run_soak,
    soak_models, soak_plan,
};
use oracle_sim::calendar::CalendarMode;
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
    assert_eq!(p.models, soak_models(30));
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
