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

#[test]
fn the_wide_row_runs_every_bundled_stream_through_its_own_copy_of_the_wide_policy() {
    let (twins, closes) = (20, 3);
    let wide = repo().join("tests/golden/wide/EURUSD_H1.zip");
    let v = oracle_xtask::bench::scale_worker_with(
        &repo().join("models"),
        &repo().join("data"),
        Some(&wide),
        twins,
        closes,
    )
    .expect("wide scale worker");
    assert_eq!(v["twins"], twins);
    assert_eq!(v["models"], 20, "one wide copy per bundled stream: {v}");
    let policy = v["policy"].as_str().expect("policy");
    assert!(
        policy.starts_with("[256,256] relu (") && policy.contains("one copy per stream"),
        "{v}"
    );
    assert_eq!(v["decisions"], twins * closes, "{v}");
    assert_eq!(v["fleet_calls"], closes, "{v}");
    // the bundled row of the same shape says whose models it runs
    let b =
        oracle_xtask::bench::scale_worker(&repo().join("models"), &repo().join("data"), twins, 1)
            .expect("scale worker");
    assert_eq!(b["policy"], "each bundled model's own");
}

#[test]
fn the_report_puts_the_wide_row_beside_the_twenty_twins_row_with_its_ratios() {
    use serde_json::json;
    let row = |p50: f64, p99: f64, hwm: f64, policy: &str| {
        json!({"twins": 20, "policy": policy, "mean_us_per_twin": p50 / 20.0, "hwm_kb": hwm,
               "bar_close_us": {"p50": p50, "p99": p99, "max": p99, "n": 300}})
    };
    let bundled = row(100.0, 200.0, 10240.0, "each bundled model's own");
    let wide = row(
        250.0,
        300.0,
        15360.0,
        "[256,256] relu (w.zip, one copy per stream)",
    );
    let ratios = oracle_xtask::bench::wide_ratios(&wide, Some(&bundled));
    assert_eq!(
        ratios,
        json!({"twins": 20, "p50": 2.5, "p99": 1.5, "hwm_rss": 1.5})
    );
    let md = oracle_xtask::bench::markdown(&json!({
        "scale": [bundled], "scale_wide": wide, "ratios": {"wide": ratios}
    }));
    let line = md
        .lines()
        .find(|l| l.contains("20 wide twins"))
        .unwrap_or_else(|| panic!("no wide row:\n{md}"));
    assert!(
        line.contains("[256,256] relu")
            && line.contains("p50 250.000 / p99 300.000")
            && line.contains("peak RSS 15.0 MB (×2.50 p50, ×1.50 p99, ×1.50 peak RSS"),
        "{line}"
    );
    // without a bundled row of as many twins there is no ratio to give
    assert!(
        oracle_xtask::bench::wide_ratios(&wide, None)["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("not available"))
    );
}
