//! Golden parity: every `models/*.zip` holds, as its plain weights member, exactly this crate's
//! import of its ONNX policy (bit for bit: the Python side's translation at pack time and this
//! one agree), and the loader's forward pass over that member (the core's) reproduces the logits
//! the training side recorded in `tests/golden/<SYM_TF>.csv.gz` (contract §8: columns `obs_*`
//! and `logit_*`, empty on warm-up rows) within `LOGIT_TOLERANCE`.
//!
//! Until the training side has produced models, this test prints a SKIPPED note on the real
//! stderr (visible in every run) and passes.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;

/// PARITY.md: torch vs a sequential f32 dot product differ by ≈1e-8 (untrained) to ≈1e-6
/// (logits ~3); 1e-5 leaves room for larger trained logits while still catching any wrong
/// weight, transpose or activation.
const LOGIT_TOLERANCE: Tolerance = Tolerance::Abs(1e-5);

fn list(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

struct Outcome {
    rows: usize,
    max_delta: f64,
    min_margin: f32,
}

fn check_golden(model: &oracle_model::LoadedModel, golden: &Path) -> Outcome {
    let gz = std::fs::read(golden).expect("read golden");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gunzip golden");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("golden header").split(',').collect();
    let col = |prefix: &str| -> Vec<usize> {
        let mut cols: Vec<(usize, usize)> = header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                h.strip_prefix(prefix)
                    .and_then(|k| k.parse::<usize>().ok())
                    .map(|k| (k, i))
            })
            .collect();
        cols.sort();
        assert!(
            cols.iter().enumerate().all(|(want, (k, _))| want == *k),
            "{}: {prefix}* columns are not 0..n",
            golden.display()
        );
        cols.into_iter().map(|(_, i)| i).collect()
    };
    let obs_cols = col("obs_");
    let logit_cols = col("logit_");
    assert_eq!(
        obs_cols.len(),
        model.model.obs_dim(),
        "{}: obs width",
        golden.display()
    );
    assert_eq!(
        logit_cols.len(),
        oracle_core::N_ACTIONS,
        "{}: logit width",
        golden.display()
    );

    let mut out = Outcome {
        rows: 0,
        max_delta: 0.0,
        min_margin: f32::INFINITY,
    };
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(
            f.len(),
            header.len(),
            "{} line {}: field count",
            golden.display(),
            n + 2
        );
        if f[logit_cols[0]].is_empty() {
            continue; // warm-up row
        }
        let parse = |i: usize| -> f32 {
            f[i].parse::<f64>()
                .unwrap_or_else(|e| panic!("{} line {}: '{}': {e}", golden.display(), n + 2, f[i]))
                as f32
        };
        let obs: Vec<f32> = obs_cols.iter().map(|&i| parse(i)).collect();
        let want: Vec<f32> = logit_cols.iter().map(|&i| parse(i)).collect();
        let mut x = [0.0f32; oracle_core::MAX_OBS];
        x[..obs.len()].copy_from_slice(&obs);
        let got = oracle_core::policy::logits(&model.model, &x);
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            let d = (f64::from(*g) - f64::from(*w)).abs();
            out.max_delta = out.max_delta.max(d);
            assert!(
                LOGIT_TOLERANCE.accepts(*g, *w),
                "{} line {}: logit_{j} = {g}, golden {w}, |Δ| = {d:e} > {LOGIT_TOLERANCE:?}",
                golden.display(),
                n + 2
            );
        }
        let mut sorted = want.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted.len() >= 2 {
            out.min_margin = out.min_margin.min(sorted[0] - sorted[1]);
        }
        out.rows += 1;
    }
    out
}

/// (model zip, golden csv.gz, expected decision rows) pairs: from `tests/golden/manifest.json`
/// when it exists, else by name (`models/X.zip` ↔ `tests/golden/X.csv.gz`).
fn pairs(root: &Path, models: &[PathBuf]) -> Vec<(PathBuf, PathBuf, Option<usize>)> {
    let golden_dir = root.join("tests/golden");
    let manifest = golden_dir.join("manifest.json");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let v: serde_json::Value = serde_json::from_str(&text).expect("manifest.json parses");
        return v["files"]
            .as_array()
            .expect("manifest.json: files[]")
            .iter()
            .map(|f| {
                let zip = f["zip"].as_str().expect("manifest.json: files[].zip");
                let file = f["file"].as_str().expect("manifest.json: files[].file");
                let rows = f["decision_rows"].as_u64().map(|r| r as usize);
                (root.join(zip), golden_dir.join(file), rows)
            })
            .collect();
    }
    models
        .iter()
        .filter_map(|zip| {
            let stem = zip.file_stem()?.to_str()?;
            let golden = golden_dir.join(format!("{stem}.csv.gz"));
            golden.exists().then_some((zip.clone(), golden, None))
        })
        .collect()
}

/// The zip's ONNX policy as this crate imports it, after checking that the zip's plain weights
/// member is that import bit for bit; and the model as the loader loads it.
fn load(zip: &Path) -> (onnx2rs::Mlp, oracle_model::LoadedModel) {
    let bytes = std::fs::read(zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
    let (member, onnx) =
        onnx2rs::policy_from_zip(&bytes).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
    let mlp = onnx2rs::convert(&onnx).unwrap_or_else(|e| panic!("{}:{member}: {e}", zip.display()));
    onnx2rs::check_zip_weights(&bytes).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
    let loaded = oracle_model::load_model_bytes(&zip.display().to_string(), &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    (mlp, loaded)
}

#[test]
fn golden_logits_match_every_model() {
    let root = workspace_root();
    let models = list(&root.join("models"), ".zip");
    if models.is_empty() {
        note(
            "SKIPPED golden_logits_match_every_model: no models/*.zip yet (the training side \
             produces them); nothing was compared",
        );
        return;
    }
    // Every model's policy must convert, golden or not.
    for zip in &models {
        let (mlp, _) = load(zip);
        note(&format!(
            "converted {}: {} layers, {} -> {}",
            zip.display(),
            mlp.layers.len(),
            mlp.input_dim(),
            mlp.output_dim()
        ));
    }
    let pairs = pairs(&root, &models);
    if pairs.is_empty() {
        note("SKIPPED golden logit comparison: no golden file matches a model yet");
        return;
    }
    for (zip, golden, rows) in &pairs {
        let (_, model) = load(zip);
        let o = check_golden(&model, golden);
        assert!(o.rows > 0, "{}: no decision rows", golden.display());
        if let Some(rows) = rows {
            assert_eq!(
                o.rows,
                *rows,
                "{}: decision rows vs manifest",
                golden.display()
            );
        }
        note(&format!(
            "golden {}: {} rows, max |Δlogit| = {:e} ({LOGIT_TOLERANCE:?}), smallest top-2 \
             logit margin = {:e}",
            golden.display(),
            o.rows,
            o.max_delta,
            o.min_margin
        ));
    }
}

/// The wide golden (`tests/golden/wide/`): an SB3 `net_arch=[256, 256]` relu actor converts to
/// `Gemm-Relu-Gemm-Relu-Gemm` dense layers whose logits match the training side's.
#[test]
fn wide_relu_golden_logits_match() {
    let root = workspace_root();
    let dir = root.join("tests/golden/wide");
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("wide manifest.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("wide manifest.json parses");
    let files = v["files"].as_array().expect("wide manifest: files[]");
    assert!(!files.is_empty(), "the wide manifest lists no files");
    for f in files {
        let zip = root.join(f["zip"].as_str().expect("files[].zip"));
        let (mlp, model) = load(&zip);
        let shape: Vec<(usize, usize, onnx2rs::Activation)> = mlp
            .layers
            .iter()
            .map(|l| (l.in_dim, l.out_dim, l.activation))
            .collect();
        let relu = onnx2rs::Activation::Relu;
        let k = mlp.input_dim();
        assert_eq!(
            shape,
            vec![
                (k, 256, relu),
                (256, 256, relu),
                (256, 7, onnx2rs::Activation::Identity)
            ]
        );
        let o = check_golden(&model, &dir.join(f["file"].as_str().expect("files[].file")));
        assert_eq!(Some(o.rows as u64), f["decision_rows"].as_u64());
        note(&format!(
            "wide golden {}: {} rows, max |Δlogit| = {:e}",
            zip.display(),
            o.rows,
            o.max_delta
        ));
    }
}
