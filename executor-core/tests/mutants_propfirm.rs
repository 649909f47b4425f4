//! The prop-firm guard's presets and edges that `scripts/mutants --area propfirm` found
//! unpinned by `tests/propfirm.rs`. Time is a parameter (UTC ms).

use oracle_executor_core::propfirm::{Guard, Halt, Limit, MaxLoss, Preset, Rules};
use oracle_ipc::parse_time;

fn ms(s: &str) -> i64 {
    parse_time(s).expect("an ISO time") * 1000
}

#[test]
fn the_1step_preset_has_no_minimum_trading_days_and_the_2step_has_four() {
    let one = Rules::preset(Preset::Ftmo1Step);
    assert_eq!(one.min_trading_days, 0);
    assert_eq!(one.max_loss, MaxLoss::TrailingEodToInitial);
    assert_eq!(one.best_day_max_share, Some(0.5));
    assert_eq!(Rules::preset(Preset::Ftmo2Step).min_trading_days, 4);
    // No day traded yet: the 1-Step's (absent) minimum is met, the 2-Step's is not.
    let g = Guard::new(one, 100_000.0, ms("2025-01-15T08:00:00Z")).expect("valid rules");
    assert!(g.progress().min_days_met());
    let g = Guard::new(
        Rules::preset(Preset::Ftmo2Step),
        100_000.0,
        ms("2025-01-15T08:00:00Z"),
    )
    .expect("valid rules");
    assert!(!g.progress().min_days_met());
}

#[test]
fn a_rules_share_must_be_above_zero_and_at_most_one_and_a_percent_at_most_100() {
    let base = || Rules::preset(Preset::Custom);
    let at = ms("2025-01-15T08:00:00Z");
    // The edges that are allowed: a share of exactly 1, a percent of exactly 100.
    let edges = Rules {
        act_at_share: 1.0,
        best_day_max_share: Some(1.0),
        daily_loss_pct: 100.0,
        max_loss_pct: 100.0,
        ..base()
    };
    assert_eq!(edges.validate(), Ok(()));
    // A zero share is refused, naming the field.
    for (key, rules) in [
        (
            "act_at_share",
            Rules {
                act_at_share: 0.0,
                ..base()
            },
        ),
        (
            "best_day_max_share",
            Rules {
                best_day_max_share: Some(0.0),
                ..base()
            },
        ),
        (
            "best_day_max_share",
            Rules {
                best_day_max_share: Some(1.01),
                ..base()
            },
        ),
        (
            "max_loss_pct",
            Rules {
                max_loss_pct: 0.0,
                ..base()
            },
        ),
        (
            "max_loss_pct",
            Rules {
                max_loss_pct: 100.5,
                ..base()
            },
        ),
    ] {
        let e = Guard::new(rules, 100_000.0, at).expect_err(key);
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
}

#[test]
fn the_guard_reports_the_halt_in_force_with_its_limit_time_and_equity() {
    let at = ms("2025-01-15T09:00:00Z");
    let mut g = Guard::new(Rules::preset(Preset::Ftmo2Step), 100_000.0, at).expect("valid rules");
    g.on_equity(at, 100_000.0, 100_000.0).expect("finite");
    assert_eq!(g.halted(), None);
    // 4,100 of the 5,000 daily allowance used: 82%, past the 80% at which the guard acts.
    let v = g
        .on_equity(at + 60_000, 100_000.0, 95_900.0)
        .expect("finite");
    let want = Halt {
        limit: Limit::DailyLoss,
        at_ms: at + 60_000,
        equity: 95_900.0,
    };
    assert_eq!(v.halted, Some(want));
    assert_eq!(g.halted(), Some(want));
    assert_eq!(g.state().halted, Some(want));
}

#[test]
fn a_daily_halt_escalates_to_a_max_loss_halt_and_a_halt_is_never_restamped_by_the_same_limit() {
    let at = ms("2025-01-15T09:00:00Z");
    let mut g = Guard::new(Rules::preset(Preset::Ftmo2Step), 100_000.0, at).expect("valid rules");
    g.on_equity(at, 100_000.0, 100_000.0).expect("finite");
    let daily = Halt {
        limit: Limit::DailyLoss,
        at_ms: at + 1_000,
        equity: 95_900.0,
    };
    g.on_equity(at + 1_000, 100_000.0, 95_900.0)
        .expect("finite");
    assert_eq!(g.halted(), Some(daily));
    // Deeper into the daily limit: the halt in force is the first one, not restamped.
    let v = g
        .on_equity(at + 2_000, 100_000.0, 95_800.0)
        .expect("finite");
    assert_eq!(v.act, Some(Limit::DailyLoss));
    assert_eq!(g.halted(), Some(daily));
    // 81% of the maximum loss while the daily halt holds: it escalates to a max-loss halt.
    let max = Halt {
        limit: Limit::MaxLoss,
        at_ms: at + 3_000,
        equity: 91_900.0,
    };
    let v = g
        .on_equity(at + 3_000, 100_000.0, 91_900.0)
        .expect("finite");
    assert_eq!(v.act, Some(Limit::MaxLoss));
    assert_eq!(g.halted(), Some(max));
    // Deeper still, and back to a daily-only act: the max-loss halt stays as it was.
    g.on_equity(at + 4_000, 100_000.0, 91_800.0)
        .expect("finite");
    assert_eq!(g.halted(), Some(max));
    let v = g
        .on_equity(at + 5_000, 100_000.0, 95_900.0)
        .expect("finite");
    assert_eq!(v.act, Some(Limit::DailyLoss));
    assert_eq!(g.halted(), Some(max));
}

#[test]
fn a_balance_back_at_the_initial_has_no_best_day_share() {
    let at = ms("2025-01-13T08:00:00Z");
    let mut g = Guard::new(Rules::preset(Preset::Ftmo1Step), 100_000.0, at).expect("valid rules");
    // Nothing yet: no profit, no share.
    assert_eq!(g.progress().best_day_share, None);
    // A winning day, then a losing one back to the initial balance: the total profit is 0.
    g.on_equity(at, 100_000.0, 100_000.0).expect("finite");
    g.on_equity(ms("2025-01-13T12:00:00Z"), 101_000.0, 101_000.0)
        .expect("finite");
    g.on_equity(ms("2025-01-14T12:00:00Z"), 100_000.0, 100_000.0)
        .expect("finite");
    let p = g.progress();
    assert_eq!((p.best_day_profit, p.total_profit), (1_000.0, 0.0));
    assert_eq!(p.best_day_share, None);
    assert_eq!(p.best_day_ok(), Some(false));
}
