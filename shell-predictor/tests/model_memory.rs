//! The resident memory of loaded models, the way the predictor loads them (`ZipLoader::load`:
//! one malloc arena, every model leaked for the process's life, a trim after loading): the
//! process's anonymous resident memory (`/proc/self/smaps_rollup`) before and after loading 20
//! models, printed, for the 20 bundled models (`models/*.zip`) and for 20 loads of the wide
//! golden model (a `[256, 256]` policy).
//!
//! Rerun it with `cargo test -p oracle-predictor --test model_memory -- --nocapture` (a plain
//! `main`: its output is always printed).
//!
//! It asserts one structural property, not a figure: a model keeps resident only the weights
//! its policy uses. A bundled `[64, 64]` model must cost less resident memory than half of the
//! weight buffer of the largest policy a model can hold (`MAX_POLICY_WEIGHTS` f32); before
//! models were sized to their policy, every model held (and wrote) that whole buffer.

use std::path::{Path, PathBuf};

use oracle_predictor::twins::Loader;
use oracle_predictor::twins::ZipLoader;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The process's anonymous resident memory in bytes, `None` where /proc has no
/// `smaps_rollup` (not Linux, or an old kernel).
fn anonymous() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("Anonymous:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Loads `zips` as the predictor does, drops their twins (a twin is the bar ring, not the
/// model), trims, and returns the anonymous resident growth.
fn models_resident(zips: &[PathBuf]) -> Option<u64> {
    oracle_resident::trim();
    let before = anonymous()?;
    let twins: Vec<_> = zips
        .iter()
        .map(|z| {
            ZipLoader
                .load(z)
                .unwrap_or_else(|e| panic!("{}: {e}", z.display()))
        })
        .collect();
    drop(twins);
    oracle_resident::trim();
    let after = anonymous()?;
    Some(after.saturating_sub(before))
}

fn main() {
    oracle_resident::limit_arenas();
    let mut bundled: Vec<PathBuf> = std::fs::read_dir(repo().join("models"))
        .expect("models/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    bundled.sort();
    assert_eq!(bundled.len(), 20, "the 20 bundled models: {bundled:?}");
    let wide = vec![repo().join("tests/golden/wide/EURUSD_H1.zip"); 20];

    let full_weights = (oracle_core::MAX_POLICY_WEIGHTS * size_of::<f32>()) as u64;
    // One load first, not counted: what any first load touches once (the main thread's stack
    // in a debug build, the allocator's bookkeeping) is not a model's.
    if models_resident(&bundled[..1]).is_none() {
        println!("model_memory: no /proc/self/smaps_rollup here, nothing measured");
        return;
    }
    let Some(b) = models_resident(&bundled) else {
        println!("model_memory: no /proc/self/smaps_rollup here, nothing measured");
        return;
    };
    let w = models_resident(&wide).expect("smaps_rollup");
    println!(
        "model_memory: 20 bundled models: +{} KiB anonymous resident ({} KiB a model)",
        b / 1024,
        b / 20 / 1024
    );
    println!(
        "model_memory: 20 wide [256, 256] models: +{} KiB anonymous resident ({} KiB a model)",
        w / 1024,
        w / 20 / 1024
    );
    println!(
        "model_memory: a full weight buffer (MAX_POLICY_WEIGHTS f32) is {} KiB",
        full_weights / 1024
    );
    assert!(
        b / 20 < full_weights / 2,
        "a bundled [64, 64] model keeps {} bytes resident, the unused weights of a \
         {full_weights}-byte full buffer are resident",
        b / 20
    );
    println!("model_memory: ok");
}
