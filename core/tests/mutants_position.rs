//! The position rule pinned by the core's own tests (each test kills mutants that survived
//! `scripts/mutants --area position`): a position is flat only when it has no direction, the
//! unrealised P&L marks at the exit price, money per point other than 1 scales the money, and
//! the rule's transitions hold, close and open exactly as the seed says.

use oracle_core::model::CostParams;
use oracle_core::position::{
    Action, Position, apply, close_price, gross_pnl, lots, open_price, realized_pnl, unrealized_pnl,
};

/// EURUSD as in the contract's worked example.
fn eurusd() -> CostParams {
    CostParams {
        point: 0.00001,
        pip_value: 10.0,
        spread_points: 7.0,
        slippage_points: 2.0,
        commission_per_lot: 7.0,
        digits: 5,
        lot_sizes: [0.0, 0.01, 0.03, 0.05],
    }
}

fn long(intensity: u8, entry_price: f64) -> Position {
    Position {
        direction: 1,
        intensity,
        entry_price,
    }
}

fn short(intensity: u8, entry_price: f64) -> Position {
    Position {
        direction: -1,
        intensity,
        entry_price,
    }
}

#[track_caller]
fn near(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn an_action_displays_as_its_metadata_name() {
    let shown: Vec<String> = Action::ALL.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        shown,
        [
            "WAIT",
            "LONG_WEAK",
            "LONG_MODERATE",
            "LONG_STRONG",
            "SHORT_WEAK",
            "SHORT_MODERATE",
            "SHORT_STRONG"
        ]
    );
}

#[test]
fn a_position_is_flat_only_without_a_direction() {
    assert!(Position::FLAT.is_flat());
    assert!(!long(1, 1.1).is_flat());
    assert!(!short(3, 1.1).is_flat());
}

#[test]
fn unrealized_pnl_is_zero_when_flat_and_marks_an_open_position_at_its_exit_price() {
    let c = eurusd();
    assert_eq!(unrealized_pnl(&c, 1.0, &Position::FLAT, 1.2), 0.0);
    // Long 0.01 lot from 1.08509, marked at 1.08700 − 2 points of slippage: 189 points.
    let l = long(1, 1.08509);
    near(unrealized_pnl(&c, 1.0, &l, 1.08700), 189.0 * 0.01);
    // Short 0.05 lot from 1.10000, marked at 1.09900 + 9 points (spread + slippage): 91 points.
    let s = short(3, 1.10000);
    near(unrealized_pnl(&c, 1.0, &s, 1.09900), 91.0 * 0.05);
    // Unrealised P&L is gross: no commission until the close.
    near(
        unrealized_pnl(&c, 1.0, &l, 1.08700),
        gross_pnl(&c, 1.0, &l, close_price(&c, 1, 1.08700)),
    );
}

#[test]
fn money_per_point_other_than_one_scales_gross_realized_and_unrealized_pnl() {
    // USDJPY-like: point 0.001, one point of 1.0 lot is worth 0.67 of the account currency.
    let c = CostParams {
        point: 0.001,
        pip_value: 6.7,
        spread_points: 10.0,
        slippage_points: 0.0,
        commission_per_lot: 5.0,
        digits: 3,
        lot_sizes: [0.0, 1.0, 2.0, 4.0],
    };
    let mpp = c.pip_value / 10.0;
    let p = long(2, 150.000);
    // 150.250 − 150.000 = 250 points × 0.67 × 2 lots = 335.
    near(gross_pnl(&c, mpp, &p, 150.250), 335.0);
    near(realized_pnl(&c, mpp, &p, 150.250), 335.0 - 5.0 * 2.0);
    near(unrealized_pnl(&c, mpp, &p, 150.250), 335.0);
    // And a short that lost: entry 150.000, exit 150.100 = −100 points × 0.67 × 4 lots.
    let s = short(3, 150.000);
    near(gross_pnl(&c, mpp, &s, 150.100), -268.0);
}

#[test]
fn a_flat_position_has_no_gross_pnl_whatever_the_price() {
    let c = eurusd();
    for exit in [0.0, 1.08, 150.0] {
        assert_eq!(gross_pnl(&c, 1.0, &Position::FLAT, exit), 0.0, "{exit}");
        assert_eq!(gross_pnl(&c, 2.5, &Position::FLAT, exit), 0.0, "{exit}");
    }
}

#[test]
fn lots_of_an_intensity_past_three_are_zero() {
    let c = eurusd();
    assert_eq!(lots(&c, 0), 0.0);
    assert_eq!(lots(&c, 2), 0.03);
    assert_eq!(lots(&c, 3), 0.05);
    assert_eq!(lots(&c, 4), 0.0);
    assert_eq!(lots(&c, u8::MAX), 0.0);
}

#[test]
fn opening_pays_the_spread_on_the_long_side_and_slippage_on_both() {
    let c = eurusd();
    near(open_price(&c, 1, 1.1), 1.1 + 9.0 * 0.00001);
    near(open_price(&c, -1, 1.1), 1.1 - 2.0 * 0.00001);
    near(close_price(&c, 1, 1.1), 1.1 - 2.0 * 0.00001);
    near(close_price(&c, -1, 1.1), 1.1 + 9.0 * 0.00001);
}

#[test]
fn the_same_target_holds_with_no_close_and_no_open() {
    let c = eurusd();
    let p = long(2, 1.1);
    let t = apply(&c, 1.0, p, Action::LongModerate, 1.3);
    assert_eq!(t.position, p);
    assert_eq!(t.closed_pnl, None);
    assert!(!t.opened);
    let t = apply(&c, 1.0, Position::FLAT, Action::Wait, 1.3);
    assert_eq!(t.position, Position::FLAT);
    assert_eq!(t.closed_pnl, None);
    assert!(!t.opened);
}

#[test]
fn a_change_of_target_closes_fully_then_opens_the_new_one() {
    let c = eurusd();
    // Flat → long: nothing closed, a long opened at the long open price.
    let t = apply(&c, 1.0, Position::FLAT, Action::LongWeak, 1.08500);
    assert_eq!(t.closed_pnl, None);
    assert!(t.opened);
    assert_eq!(t.position, long(1, open_price(&c, 1, 1.08500)));
    // Long weak → long strong (intensity change): the weak one is closed with its P&L.
    let t2 = apply(&c, 1.0, t.position, Action::LongStrong, 1.08700);
    near(t2.closed_pnl.unwrap(), 1.82);
    assert!(t2.opened);
    assert_eq!(t2.position, long(3, open_price(&c, 1, 1.08700)));
    // Long → short: closed, then a short opened.
    let t3 = apply(&c, 1.0, t2.position, Action::ShortWeak, 1.08700);
    let entry = open_price(&c, 1, 1.08700);
    near(
        t3.closed_pnl.unwrap(),
        realized_pnl(&c, 1.0, &long(3, entry), close_price(&c, 1, 1.08700)),
    );
    assert_eq!(t3.position, short(1, open_price(&c, -1, 1.08700)));
    // Short → WAIT: closed, flat, nothing opened.
    let t4 = apply(&c, 1.0, t3.position, Action::Wait, 1.08600);
    let s = short(1, open_price(&c, -1, 1.08700));
    near(
        t4.closed_pnl.unwrap(),
        realized_pnl(&c, 1.0, &s, close_price(&c, -1, 1.08600)),
    );
    assert!(!t4.opened);
    assert_eq!(t4.position, Position::FLAT);
}
