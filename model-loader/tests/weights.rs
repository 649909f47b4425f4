//! The plain policy weights member (`SYM_TF_policy.weights`): the loader runs what it holds (no
//! ONNX parsing at load), refuses a zip without it naming the command that adds it, and refuses
//! one inconsistent with the metadata or the ONNX member, naming the field.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use oracle_core::{MAX_OBS, N_ACTIONS, policy};
use oracle_model::{
    LoadErrorKind, PolicyWeights, decode_weights, encode_weights, load_model, load_model_bytes,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const ZIP: &str = "EURUSD_H1.zip";
const WEIGHTS: &str = "EURUSD_H1_policy.weights";
const ONNX: &str = "EURUSD_H1_policy.onnx";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/EURUSD_H1.zip")
}

fn unpack(bytes: &[u8]) -> (BTreeMap<String, Vec<u8>>, Value) {
    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let meta: Value = serde_json::from_slice(a.comment()).unwrap();
    let mut members = BTreeMap::new();
    for i in 0..a.len() {
        let mut f = a.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        members.insert(f.name().to_owned(), data);
    }
    (members, meta)
}

/// A zip of these members with each one's sha256 in the metadata (only the members listed).
fn pack(members: &BTreeMap<String, Vec<u8>>, meta: &Value) -> Vec<u8> {
    let mut meta = meta.clone();
    meta["members"] = serde_json::json!({});
    for (name, data) in members {
        meta["members"][name]["sha256"] = Value::String(hex::encode(Sha256::digest(data)));
    }
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.set_comment(serde_json::to_string(&meta).unwrap());
    w.finish().unwrap().into_inner()
}

fn sample_parts() -> (BTreeMap<String, Vec<u8>>, Value) {
    unpack(&std::fs::read(sample()).expect("models/EURUSD_H1.zip"))
}

fn with_weights(w: &PolicyWeights) -> Vec<u8> {
    let (mut members, meta) = sample_parts();
    members.insert(WEIGHTS.into(), encode_weights(w));
    pack(&members, &meta)
}

fn sample_weights() -> PolicyWeights {
    decode_weights(&sample_parts().0[WEIGHTS]).expect("the bundled weights member decodes")
}

/// Observations spread over the policy's input range, from a fixed seed (a small LCG): the
/// market features in [-3, 3], a one-hot regime, a position and an unrealised P&L.
fn observations(obs_dim: usize, n_states: usize, n: usize) -> Vec<[f32; MAX_OBS]> {
    let mut s: u64 = 0x5eed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32) / ((1u64 << 24) as f32)
    };
    (0..n)
        .map(|_| {
            let mut o = [0.0f32; MAX_OBS];
            for v in o.iter_mut().take(5) {
                *v = next() * 6.0 - 3.0;
            }
            o[5 + (next() * n_states as f32) as usize % n_states] = 1.0;
            o[5 + n_states] = ((next() * 3.0) as i32 - 1) as f32;
            o[6 + n_states] = ((next() * 4.0) as i32) as f32 / 3.0;
            o[7 + n_states] = next() * 2.0 - 1.0;
            assert_eq!(obs_dim, 8 + n_states);
            o
        })
        .collect()
}

fn actions(model: &oracle_core::Model, obs: &[[f32; MAX_OBS]]) -> Vec<usize> {
    obs.iter()
        .map(|o| policy::choose(&policy::logits(model, o)))
        .collect()
}

#[test]
fn a_zip_without_the_weights_member_is_refused_naming_the_zip_and_the_pack_weights_command() {
    let (mut members, meta) = sample_parts();
    members
        .remove(WEIGHTS)
        .expect("the bundled zip holds the weights member");
    let e = load_model_bytes(ZIP, &pack(&members, &meta)).expect_err("must be refused");
    assert!(
        matches!(&e.kind, LoadErrorKind::MissingWeights { member, command }
            if member == WEIGHTS && command == "python -m oracle_training pack-weights EURUSD_H1.zip"),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.starts_with("EURUSD_H1.zip: "), "{text}");
    assert!(
        text.contains("`python -m oracle_training pack-weights EURUSD_H1.zip`"),
        "{text}"
    );

    // From a file, the command names the zip by the path it was loaded from.
    let dir = std::env::temp_dir().join(format!("oracle-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(ZIP);
    std::fs::write(&path, pack(&members, &meta)).unwrap();
    let e = load_model(&path).expect_err("must be refused");
    assert!(
        e.to_string().contains(&format!(
            "`python -m oracle_training pack-weights {}`",
            path.display()
        )),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_loader_runs_the_weights_member_so_a_flipped_bit_in_it_changes_an_action() {
    let original = load_model_bytes(ZIP, &std::fs::read(sample()).unwrap()).unwrap();
    let n_states = original.model.n_states();
    let obs = observations(original.model.obs_dim(), n_states, 2_000);
    let before = actions(&original.model, &obs);

    // The action layer's bias of the action chosen least often, its exponent's top bit flipped:
    // a value below 1 in magnitude becomes 2^128 times larger (still finite), so that action
    // takes over wherever its bias is positive, or disappears wherever it is negative. The ONNX
    // member is untouched and the weights member's sha256 in the metadata matches it.
    let mut w = sample_weights();
    let last = w.layers.last_mut().unwrap();
    let mut counts = [0usize; N_ACTIONS];
    for a in &before {
        counts[*a] += 1;
    }
    let target = if last.bias.iter().any(|b| *b > 0.0 && b.abs() < 1.0) {
        (0..N_ACTIONS)
            .filter(|k| last.bias[*k] > 0.0 && last.bias[*k].abs() < 1.0)
            .min_by_key(|k| counts[*k])
            .unwrap()
    } else {
        (0..N_ACTIONS).max_by_key(|k| counts[*k]).unwrap()
    };
    let b = last.bias[target];
    assert!(b.abs() < 1.0 && b != 0.0, "bias {b}");
    last.bias[target] = f32::from_bits(b.to_bits() ^ (1 << 30));
    assert!(last.bias[target].is_finite());

    let flipped = load_model_bytes(ZIP, &with_weights(&w)).expect("a consistent member loads");
    let after = actions(&flipped.model, &obs);
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(
        changed > 0,
        "one flipped bit in {WEIGHTS} changed no action over {} observations",
        obs.len()
    );

    // And the unflipped member, re-encoded, gives every action as before (the encoding is
    // lossless).
    let same = load_model_bytes(ZIP, &with_weights(&sample_weights())).unwrap();
    assert_eq!(actions(&same.model, &obs), before);
}

#[test]
fn a_weights_member_inconsistent_with_the_metadata_is_refused_naming_the_field() {
    let refuse =
        |w: &PolicyWeights| load_model_bytes(ZIP, &with_weights(w)).expect_err("must be refused");
    let shape_field = |e: &oracle_model::LoadError| match &e.kind {
        LoadErrorKind::ShapeMismatch { field, .. } => field.clone(),
        other => panic!("not a shape mismatch: {other}"),
    };

    // Another ONNX member's sha256.
    let mut w = sample_weights();
    w.onnx_sha256[0] ^= 1;
    let e = refuse(&w);
    assert_eq!(shape_field(&e), format!("{WEIGHTS}: onnx_sha256"), "{e}");
    assert!(e.to_string().contains(ONNX), "{e}");

    // One layer fewer than policy.net_arch + the action layer.
    let mut w = sample_weights();
    w.layers.remove(1);
    w.layers[1].in_dim = w.layers[0].out_dim;
    let e = refuse(&w);
    assert_eq!(shape_field(&e), format!("{WEIGHTS}: layers"), "{e}");

    // An observation size other than observation.dim.
    let mut w = sample_weights();
    let l0 = &mut w.layers[0];
    l0.in_dim += 1;
    l0.weights = vec![0.0; l0.in_dim * l0.out_dim];
    let e = refuse(&w);
    assert_eq!(shape_field(&e), format!("{WEIGHTS}: layer 0"), "{e}");

    // A hidden width other than policy.net_arch's.
    let mut w = sample_weights();
    w.layers[0].out_dim -= 1;
    let keep = w.layers[0].out_dim * w.layers[0].in_dim;
    w.layers[0].weights.truncate(keep);
    w.layers[0].bias.pop();
    w.layers[1].in_dim -= 1;
    let l1 = &mut w.layers[1];
    l1.weights = vec![0.0; l1.in_dim * l1.out_dim];
    let e = refuse(&w);
    assert_eq!(shape_field(&e), format!("{WEIGHTS}: layer 0"), "{e}");

    // An action count other than 7.
    let mut w = sample_weights();
    let last = w.layers.last_mut().unwrap();
    last.out_dim = 6;
    last.weights.truncate(6 * last.in_dim);
    last.bias.pop();
    let e = refuse(&w);
    assert_eq!(shape_field(&e), format!("{WEIGHTS}: layer 2"), "{e}");

    // An activation other than policy.activation's.
    let mut w = sample_weights();
    w.layers[0].activation = oracle_core::model::Activation::Relu;
    let e = refuse(&w);
    assert!(
        matches!(&e.kind, LoadErrorKind::InvalidField { field, .. } if field == "policy.activation"),
        "{e}"
    );
}

#[test]
fn a_malformed_weights_member_is_refused_naming_the_header_field() {
    let good = encode_weights(&sample_weights());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"ORPOLX\0\0".iter().chain(&good[8..]).copied().collect(),
            "magic",
        ),
        (
            [&good[..8], &2u32.to_le_bytes()[..], &good[12..]].concat(),
            "version",
        ),
        (
            [&good[..12], &2u32.to_le_bytes()[..], &good[16..]].concat(),
            "dtype",
        ),
        (
            [&good[..48], &0u32.to_le_bytes()[..], &good[52..]].concat(),
            "n_layers",
        ),
        (
            [&good[..60], &9u32.to_le_bytes()[..], &good[64..]].concat(),
            "layer 0 activation",
        ),
        (good[..good.len() - 4].to_vec(), "layer 2 bias"),
        ([&good[..], &[0u8][..]].concat(), "length"),
        (
            {
                let mut b = good.clone();
                let at = b.len() - 4;
                b[at..].copy_from_slice(&f32::NAN.to_le_bytes());
                b
            },
            "layer 2 bias",
        ),
    ];
    for (bytes, field) in cases {
        let e = decode_weights(&bytes).expect_err(field);
        assert_eq!(e.field, field, "{e}");
        let (mut members, meta) = sample_parts();
        members.insert(WEIGHTS.into(), bytes);
        let e = load_model_bytes(ZIP, &pack(&members, &meta)).expect_err(field);
        assert!(
            matches!(&e.kind, LoadErrorKind::BadWeights { member, source } if member == WEIGHTS && source.field == field),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("'{field}'")), "{e}");
    }
}

#[test]
fn every_bundled_weights_member_decodes_and_reencodes_to_the_same_bytes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("zip") {
            continue;
        }
        let (members, _) = unpack(&std::fs::read(&path).unwrap());
        let (name, bytes) = members
            .iter()
            .find(|(k, _)| k.ends_with("_policy.weights"))
            .unwrap_or_else(|| panic!("{}: no weights member", path.display()));
        let w = decode_weights(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&encode_weights(&w), bytes, "{name}");
        n += 1;
    }
    assert_eq!(n, 20, "the bundled models");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any prefix of a valid member, or a valid member with any one byte changed, decodes to an
    /// error naming a field or to layers whose sizes chain; it never panics or over-allocates.
    #[test]
    fn a_cut_or_corrupted_member_is_refused_by_a_field_or_decodes_consistently(
        cut in 0usize..22_200,
        at in 0usize..22_200,
        byte in 0u8..=255,
    ) {
        let good = encode_weights(&sample_weights());
        let cut = cut.min(good.len() - 1);
        let e = decode_weights(&good[..cut]).expect_err("a strict prefix never decodes");
        proptest::prop_assert!(!e.field.is_empty());
        let mut bad = good.clone();
        let at = at % good.len();
        bad[at] = byte;
        match decode_weights(&bad) {
            Err(e) => proptest::prop_assert!(!e.field.is_empty()),
            Ok(w) => {
                for pair in w.layers.windows(2) {
                    proptest::prop_assert_eq!(pair[0].out_dim, pair[1].in_dim);
                }
                for l in &w.layers {
                    proptest::prop_assert_eq!(l.weights.len(), l.in_dim * l.out_dim);
                    proptest::prop_assert_eq!(l.bias.len(), l.out_dim);
                }
            }
        }
    }
}
