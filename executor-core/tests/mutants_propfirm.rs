//! The prop-firm guard's presets and edges that `scripts/mutants --area propfirm` found
//! unpinned by `tests/propfirm.rs`. Time is a parameter (UTC ms).

use oracle_executor_core::propfirm::{Guard, MaxLoss, Preset, Rules};
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
