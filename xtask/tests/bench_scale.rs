//! The bench's scale leg times what the predictor runs: its engine (`Predictor::handle_lines`)
//! with every stream's bar of one instant handed over together, the twins stepping through the
//! core's fleet path in one call per close.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_scale_leg_steps_the_fleet_through_the_predictor_engine() {
    let (twins, closes) = (25, 4);
    let v = oracle_xtask::bench::scale_worker(
        &repo().join("models"),
        &repo().join("data"),
        twins,
        closes,
    )
    .expect("scale worker");
    assert_eq!(v["twins"], twins);
    assert_eq!(
        v["decisions"],
        twins * closes,
        "one SIGNAL per twin per close, from the engine's lines: {v}"
    );
    assert_eq!(v["fleet_calls"], closes, "one fleet call per close: {v}");
    assert_eq!(
        v["fleet_widest"], twins,
        "every twin of the close in it: {v}"
    );
    assert_eq!(v["bar_close_us"]["n"], closes);
}
