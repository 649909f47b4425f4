//! A real torch-exported actor (tests/fixtures/tiny_policy.onnx, made by make_fixture.py):
//! 3 → 4 → 4 → 7 with two all-zero hidden biases, which the exporter deduplicated into one
//! initializer plus an `Identity` node. Also: the emitted Rust for it (committed, included
//! here, so it must compile), the zip reader and the CLI.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use onnx2rs::{Activation, Error, convert, emit_rust, policy_from_zip};

/// torch / onnxruntime vs the loader's forward pass (the core's) on this small net (PARITY.md: ≈1e-8
/// to 1e-6 depending on logit size).
const FIXTURE_TOLERANCE: Tolerance = Tolerance::Abs(1e-6);
const FIXTURE: &str = "tests/fixtures/tiny_policy.onnx";
const EMITTED: &str = "tests/fixtures/tiny_policy.rs";

/// The committed emitted file, compiled as part of this test (not every const is read).
#[allow(dead_code)]
mod emitted {
    include!("fixtures/tiny_policy.rs");
}

fn manifest(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(manifest(FIXTURE)).expect("read fixture")
}

fn rows(v: &serde_json::Value, key: &str) -> Vec<Vec<f32>> {
    v[key]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

#[test]
fn torch_export_with_dedup_identity_converts() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest("tests/fixtures/tiny_policy.expected.json"))
            .expect("read expected"),
    )
    .expect("json");
    let nodes: Vec<&str> = expected["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        nodes.contains(&"Identity"),
        "fixture must contain the dedup Identity: {nodes:?}"
    );

    let mlp = convert(&fixture_bytes()).expect("converts");
    let shape: Vec<_> = mlp
        .layers
        .iter()
        .map(|l| (l.in_dim, l.out_dim, l.activation))
        .collect();
    assert_eq!(
        shape,
        [
            (3, 4, Activation::Tanh),
            (4, 4, Activation::Tanh),
            (4, 7, Activation::Identity)
        ]
    );
    assert!(mlp.layers[0].bias.iter().all(|&b| b == 0.0));
    assert!(mlp.layers[1].bias.iter().all(|&b| b == 0.0));
    assert!(mlp.layers[2].bias.iter().any(|&b| b != 0.0));

    let inputs = rows(&expected, "inputs");
    let mut max_delta = 0.0f64;
    for reference in ["torch", "onnxruntime"] {
        let want = rows(&expected, reference);
        assert_eq!(want.len(), inputs.len());
        for (i, (x, w)) in inputs.iter().zip(&want).enumerate() {
            let got = loader_logits(&mlp, x);
            for (j, (g, r)) in got.iter().zip(w).enumerate() {
                max_delta = max_delta.max((f64::from(*g) - f64::from(*r)).abs());
                assert!(
                    FIXTURE_TOLERANCE.accepts(*g, *r),
                    "{reference} row {i} logit {j}: got {g}, want {r} ({FIXTURE_TOLERANCE:?})"
                );
            }
        }
    }
    note(&format!(
        "fixture: {} inputs, max |Δlogit| vs torch/onnxruntime = {max_delta:e} ({FIXTURE_TOLERANCE:?})",
        inputs.len()
    ));
}

#[test]
fn emitted_rust_is_fresh_and_bit_exact() {
    let mlp = convert(&fixture_bytes()).expect("converts");
    let fresh = emit_rust(&mlp, FIXTURE, &fixture_bytes());
    assert!(fresh.starts_with(onnx2rs::EMIT_HEADER));
    assert!(fresh.contains(&onnx2rs::sha256_hex(&fixture_bytes())));
    let committed = std::fs::read_to_string(manifest(EMITTED)).expect("read emitted");
    assert!(
        committed == fresh,
        "{EMITTED} is stale; regenerate with `onnx2rs {FIXTURE} --emit-rust {EMITTED}` \
         (from tools/onnx2rs)"
    );

    // The included consts are the converted weights, bit for bit.
    assert_eq!(emitted::INPUT_DIM, mlp.input_dim());
    assert_eq!(emitted::OUTPUT_DIM, mlp.output_dim());
    assert_eq!(emitted::N_LAYERS, 3);
    assert_eq!(
        emitted::SOURCE_SHA256,
        onnx2rs::sha256_hex(&fixture_bytes())
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(emitted::L0_ACTIVATION, emitted::Activation::Tanh);
    assert_eq!(
        bits(emitted::L0_WEIGHTS.as_flattened()),
        bits(&mlp.layers[0].weights)
    );
    assert_eq!(bits(&emitted::L0_BIAS), bits(&mlp.layers[0].bias));
    assert_eq!(
        bits(emitted::L1_WEIGHTS.as_flattened()),
        bits(&mlp.layers[1].weights)
    );
    assert_eq!(bits(&emitted::L1_BIAS), bits(&mlp.layers[1].bias));
    assert_eq!(
        bits(emitted::L2_WEIGHTS.as_flattened()),
        bits(&mlp.layers[2].weights)
    );
    assert_eq!(bits(&emitted::L2_BIAS), bits(&mlp.layers[2].bias));
    assert_eq!(
        emitted::ACTIVATIONS,
        [
            emitted::Activation::Tanh,
            emitted::Activation::Tanh,
            emitted::Activation::Identity
        ]
    );
    assert_eq!(emitted::LAYER_DIMS, [(3, 4), (4, 4), (4, 7)]);
}

/// Emitted code for awkward values (NaN, ±inf, −0, subnormals, extremes) compiles with
/// `#![deny(warnings)]` under rustc and round-trips bit for bit.
#[test]
fn emitted_rust_for_awkward_values_compiles_and_round_trips() {
    let special = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        f32::MIN_POSITIVE,
        1e-45,
        f32::MAX,
        f32::MIN,
        std::f32::consts::PI,
        0.1,
        -1.5e-7,
        123456.79,
    ];
    let mlp = onnx2rs::Mlp {
        layers: vec![
            onnx2rs::Dense {
                in_dim: 3,
                out_dim: 4,
                weights: special.to_vec(),
                bias: vec![1.0, -2.0, 3.5, 1e30],
                activation: Activation::Relu,
            },
            onnx2rs::Dense {
                in_dim: 4,
                out_dim: 1,
                weights: vec![0.5; 4],
                bias: vec![0.0],
                activation: Activation::Identity,
            },
        ],
    };
    let src = emit_rust(&mlp, "in-memory \"test\"\nmodel", b"bytes");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx2rs-emit");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("emitted.rs"), &src).expect("write emitted");
    let mut checks = String::new();
    for (i, v) in special.iter().enumerate() {
        checks.push_str(&format!(
            "    assert!(m::L0_WEIGHTS[{}][{}].to_bits() == {}u32);\n",
            i / 3,
            i % 3,
            v.to_bits()
        ));
    }
    let main = format!(
        "#![deny(warnings)]\nmod m {{\n    include!(\"emitted.rs\");\n}}\nfn main() {{\n\
         assert!(m::L0_ACTIVATION == m::Activation::Relu);\n\
         assert!(m::N_LAYERS == 2 && m::INPUT_DIM == 3 && m::OUTPUT_DIM == 1);\n\
         assert!(m::L0_BIAS[3] == 1e30);\n\
         let _ = (m::SOURCE, m::SOURCE_SHA256, m::LAYER_DIMS, m::ACTIVATIONS, m::L1_WEIGHTS, m::L1_BIAS, m::L1_ACTIVATION, m::L0_IN, m::L0_OUT, m::L1_IN, m::L1_OUT, m::Activation::Tanh, m::Activation::Identity);\n\
         {checks}}}\n"
    );
    std::fs::write(dir.join("main.rs"), main).expect("write main");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let exe = dir.join("emitted_check");
    let out = Command::new(&rustc)
        .current_dir(&dir)
        .args(["--edition", "2021", "-o"])
        .arg(&exe)
        .arg("main.rs")
        .output()
        .expect("run rustc");
    assert!(
        out.status.success(),
        "emitted code does not compile:\n{}\n--- source ---\n{src}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run compiled check");
    assert!(
        run.status.success(),
        "emitted values do not round-trip:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn make_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("start file");
        w.write_all(data).expect("write member");
    }
    w.finish().expect("finish zip").into_inner()
}

#[test]
fn policy_member_is_found_in_a_model_zip() {
    let onnx = fixture_bytes();
    let zip = make_zip(&[
        ("EURUSD_M15_hmm.json", b"{}"),
        ("EURUSD_M15_policy.onnx", &onnx),
        ("EURUSD_M15_model.zip", b"sb3"),
    ]);
    let (member, bytes) = policy_from_zip(&zip).expect("finds member");
    assert_eq!(member, "EURUSD_M15_policy.onnx");
    assert_eq!(bytes, onnx);

    let e = policy_from_zip(&make_zip(&[("a.json", b"{}")])).expect_err("no member");
    assert!(matches!(e, Error::NoPolicyMember { .. }), "{e}");
    assert!(e.to_string().contains("a.json"), "{e}");

    let e = policy_from_zip(&make_zip(&[("a_policy.onnx", b""), ("b_policy.onnx", b"")]))
        .expect_err("two members");
    assert!(
        e.to_string().contains("a_policy.onnx, b_policy.onnx"),
        "{e}"
    );

    let e = policy_from_zip(b"not a zip").expect_err("garbage");
    assert!(matches!(e, Error::Zip(_)), "{e}");
}

#[test]
fn cli_prints_summary_and_emits_rust() {
    let exe = env!("CARGO_BIN_EXE_onnx2rs");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx2rs-cli");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let zip_path = dir.join("TEST_M15.zip");
    std::fs::write(
        &zip_path,
        make_zip(&[("TEST_M15_policy.onnx", &fixture_bytes())]),
    )
    .expect("write zip");
    let out_rs = dir.join("out.rs");
    let out = Command::new(exe)
        .arg(&zip_path)
        .arg("--emit-rust")
        .arg(&out_rs)
        .output()
        .expect("run cli");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TEST_M15_policy.onnx"), "{stdout}");
    assert!(stdout.contains("layer 0: 3 -> 4, tanh"), "{stdout}");
    assert!(stdout.contains("layer 2: 4 -> 7, identity"), "{stdout}");
    let src = std::fs::read_to_string(&out_rs).expect("emitted file");
    assert!(src.starts_with("// generated by onnx2rs, do not edit"));
    let zip_sha = onnx2rs::sha256_hex(&std::fs::read(&zip_path).expect("zip"));
    assert!(
        src.contains(&format!("// source sha256: {zip_sha}")),
        "{src}"
    );

    // An unsupported graph: non-zero exit, message on stderr.
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"\x08\x01garbage").expect("write bad");
    let out = Command::new(exe).arg(&bad).output().expect("run cli");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.onnx") && stderr.contains("error"),
        "{stderr}"
    );

    let out = Command::new(exe).output().expect("run cli");
    assert_eq!(out.status.code(), Some(2));
}
