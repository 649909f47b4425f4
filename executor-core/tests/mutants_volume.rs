//! Lots → volume at the edges the seed table does not reach (each test kills mutants that
//! survived `scripts/mutants --area volume`): a broker minimum above the step, a step or lot
//! size of zero, a volume exactly at the maximum, and volumes too large for an `i64`.

mod common;

use common::eurusd;
use oracle_executor_core::volume::{SymbolSpec, VolumeError, lots_to_volume};

#[test]
fn a_point_is_ten_to_the_minus_digits() {
    assert_eq!(eurusd().point(), 1e-5);
    let index = SymbolSpec {
        digits: 2,
        ..eurusd()
    };
    assert_eq!(index.point(), 0.01);
    let whole = SymbolSpec {
        digits: 0,
        ..eurusd()
    };
    assert_eq!(whole.point(), 1.0);
}

#[test]
fn an_order_below_a_broker_minimum_larger_than_the_step_is_refused_not_sent() {
    // A broker whose minimum is 0.03 lot with a 0.01 step.
    let spec = SymbolSpec {
        min_volume: 300_000,
        ..eurusd()
    };
    assert_eq!(
        lots_to_volume(0.01, &spec),
        Err(VolumeError::BelowMin {
            lots: 0.01,
            volume: 100_000,
            step: 100_000,
            min: 300_000,
            min_lots: 0.03,
        })
    );
    assert!(matches!(
        lots_to_volume(0.02, &spec),
        Err(VolumeError::BelowMin {
            volume: 200_000,
            ..
        })
    ));
    // Exactly the minimum, and a size that rounds down onto it, are orders.
    assert_eq!(lots_to_volume(0.03, &spec), Ok(300_000));
    assert_eq!(lots_to_volume(0.039, &spec), Ok(300_000));
    assert_eq!(lots_to_volume(0.04, &spec), Ok(400_000));
}

#[test]
fn a_step_or_lot_size_of_zero_or_less_is_an_invalid_spec_not_a_division_by_zero() {
    for (lot_size, step_volume) in [
        (10_000_000, 0),
        (10_000_000, -100_000),
        (0, 100_000),
        (-1, 100_000),
    ] {
        let spec = SymbolSpec {
            lot_size,
            step_volume,
            ..eurusd()
        };
        assert_eq!(
            lots_to_volume(0.01, &spec),
            Err(VolumeError::Invalid {
                lots: 0.01,
                lot_size,
                step: step_volume,
            }),
            "lotSize {lot_size}, stepVolume {step_volume}"
        );
    }
    let e = lots_to_volume(
        0.01,
        &SymbolSpec {
            step_volume: 0,
            ..eurusd()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("stepVolume 0"), "{e}");
}

#[test]
fn lots_that_are_not_a_positive_number_are_invalid() {
    for lots in [0.0, -0.0, -0.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(
                lots_to_volume(lots, &eurusd()),
                Err(VolumeError::Invalid { .. })
            ),
            "{lots}"
        );
    }
}

#[test]
fn exactly_the_broker_maximum_is_an_order_one_step_more_is_refused() {
    let spec = SymbolSpec {
        max_volume: 500_000,
        ..eurusd()
    };
    assert_eq!(lots_to_volume(0.05, &spec), Ok(500_000));
    assert_eq!(
        lots_to_volume(0.06, &spec),
        Err(VolumeError::AboveMax {
            lots: 0.06,
            volume: 600_000,
            max: 500_000,
            max_lots: 0.05,
        })
    );
}

#[test]
fn a_broker_minimum_of_zero_still_refuses_a_volume_of_zero() {
    let spec = SymbolSpec {
        min_volume: 0,
        ..eurusd()
    };
    // 0.001 lot is 10,000 cents: below one 100,000 step, so it rounds down to nothing.
    assert_eq!(
        lots_to_volume(0.001, &spec),
        Err(VolumeError::BelowMin {
            lots: 0.001,
            volume: 0,
            step: 100_000,
            min: 0,
            min_lots: 0.0,
        })
    );
    assert_eq!(lots_to_volume(0.01, &spec), Ok(100_000));
}

#[test]
fn a_volume_past_two_to_the_62_cents_is_refused_as_above_the_maximum_whatever_the_maximum() {
    // A spec with no practical maximum: the size itself is the limit (no i64 overflow).
    let spec = SymbolSpec {
        lot_size: 1,
        min_volume: 1,
        step_volume: 1,
        max_volume: i64::MAX,
        ..eurusd()
    };
    let two_62 = 2f64.powi(62);
    // Exactly 2^62 cents is still computed exactly.
    assert_eq!(lots_to_volume(two_62, &spec), Ok(1_i64 << 62));
    // 1.5 × 2^62 fits an i64, but is refused before any rounding.
    assert_eq!(
        lots_to_volume(1.5 * two_62, &spec),
        Err(VolumeError::AboveMax {
            lots: 1.5 * two_62,
            volume: i64::MAX,
            max: i64::MAX,
            max_lots: i64::MAX as f64,
        })
    );
    // With a real lot size the refusal names the maximum in lots.
    let e = lots_to_volume(1e30, &eurusd()).unwrap_err();
    assert_eq!(
        e,
        VolumeError::AboveMax {
            lots: 1e30,
            volume: i64::MAX,
            max: 10_000_000_000,
            max_lots: 1000.0,
        }
    );
}
