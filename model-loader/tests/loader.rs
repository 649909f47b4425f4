//! Loader refusals (each names the file and the field), folder loading, and the replay trace.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use oracle_model::{LoadErrorKind, TRACE_HEADER, load_dir, load_model, load_model_bytes, replay};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample_zip() -> Option<PathBuf> {
    let p = repo().join("models/EURUSD_H1.zip");
    if p.exists() {
        Some(p)
    } else {
        println!("no models/EURUSD_H1.zip: loader mutation tests skipped");
        None
    }
}

/// The members and metadata of a zip.
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

fn pack(members: &BTreeMap<String, Vec<u8>>, meta: &Value) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.set_comment(serde_json::to_string(meta).unwrap());
    w.finish().unwrap().into_inner()
}

fn rehash(members: &BTreeMap<String, Vec<u8>>, meta: &mut Value) {
    for (name, data) in members {
        meta["members"][name]["sha256"] = Value::String(hex::encode(Sha256::digest(data)));
    }
}

fn refuse(bytes: &[u8]) -> oracle_model::LoadError {
    load_model_bytes("BAD.zip", bytes).expect_err("must be refused")
}

#[test]
fn the_sample_model_loads() {
    let Some(path) = sample_zip() else { return };
    let m = load_model(&path).unwrap();
    assert_eq!(m.name, "EURUSD_H1");
    assert_eq!(m.metadata.window, 350);
    assert_eq!(m.model.obs_dim(), 5 + m.model.n_states() + 3);
}

#[test]
fn refusals_name_the_file_and_the_field() {
    let Some(path) = sample_zip() else { return };
    let bytes = std::fs::read(path).unwrap();
    let (members, meta) = unpack(&bytes);
    let hmm_name = "EURUSD_H1_hmm.json";
    let onnx_name = "EURUSD_H1_policy.onnx";

    // Wrong version.
    let mut m = meta.clone();
    m["format_version"] = Value::String("1.0".into());
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::WrongVersion { found } if found == "1.0"),
        "{e}"
    );
    assert!(e.to_string().starts_with("BAD.zip: "), "{e}");

    // Missing field.
    let mut m = meta.clone();
    m["training_config"]
        .as_object_mut()
        .unwrap()
        .remove("point");
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::MissingField { field } if field == "training_config.point"),
        "{e}"
    );
    assert!(e.to_string().contains("training_config.point"));

    // Wrong type.
    let mut m = meta.clone();
    m["window"] = Value::String("350".into());
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::WrongType { field, .. } if field == "window"),
        "{e}"
    );

    // Shape mismatch between metadata fields.
    let mut m = meta.clone();
    m["observation"]["dim"] = Value::from(14);
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::ShapeMismatch { field, .. } if field == "observation.dim"),
        "{e}"
    );

    // Actions that differ from the contract's table.
    let mut m = meta.clone();
    m["actions"]["2"]["intensity"] = Value::from(3);
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::InvalidField { field, .. } if field == "actions.2"),
        "{e}"
    );

    // Hash mismatch: a member changed after the metadata was written.
    let mut mem = members.clone();
    mem.get_mut(hmm_name).unwrap().push(b' ');
    let e = refuse(&pack(&mem, &meta));
    assert!(
        matches!(&e.kind, LoadErrorKind::HashMismatch { member, .. } if member == hmm_name),
        "{e}"
    );

    // A member the metadata lists is absent.
    let mut mem = members.clone();
    mem.remove("EURUSD_H1_hmm.pkl");
    let e = refuse(&pack(&mem, &meta));
    assert!(
        matches!(&e.kind, LoadErrorKind::MissingMember { member } if member == "EURUSD_H1_hmm.pkl"),
        "{e}"
    );

    // HMM member with a field missing (hashes updated so only the content is wrong).
    let mut mem = members.clone();
    let mut h: Value = serde_json::from_slice(&mem[hmm_name]).unwrap();
    h.as_object_mut().unwrap().remove("transmat");
    mem.insert(hmm_name.into(), serde_json::to_vec(&h).unwrap());
    let mut m = meta.clone();
    rehash(&mem, &mut m);
    let e = refuse(&pack(&mem, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::MemberField { member, field, .. } if member == hmm_name && field == "transmat"),
        "{e}"
    );

    // HMM member with a wrong shape.
    let mut mem = members.clone();
    let mut h: Value = serde_json::from_slice(&mem[hmm_name]).unwrap();
    h["means"].as_array_mut().unwrap().pop();
    mem.insert(hmm_name.into(), serde_json::to_vec(&h).unwrap());
    let mut m = meta.clone();
    rehash(&mem, &mut m);
    let e = refuse(&pack(&mem, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::MemberField { field, .. } if field == "means"),
        "{e}"
    );

    // An ONNX member onnx2rs cannot read.
    let mut mem = members.clone();
    mem.insert(onnx_name.into(), b"not an onnx graph".to_vec());
    let mut m = meta.clone();
    rehash(&mem, &mut m);
    let e = refuse(&pack(&mem, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::UnsupportedGraph { member, .. } if member == onnx_name),
        "{e}"
    );

    // Policy shape that disagrees with the metadata's net_arch.
    let mut m = meta.clone();
    m["policy"]["net_arch"] = serde_json::json!([64, 32]);
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::ShapeMismatch { .. }),
        "{e}"
    );

    // No metadata at all.
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("x", zip::write::SimpleFileOptions::default())
        .unwrap();
    let e = refuse(&w.finish().unwrap().into_inner());
    assert!(matches!(e.kind, LoadErrorKind::NoMetadata), "{e}");

    // Not a zip.
    assert!(matches!(refuse(b"hello").kind, LoadErrorKind::NotZip(_)));
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-model-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_bad_zip_in_a_folder_does_not_stop_the_others() {
    let Some(path) = sample_zip() else { return };
    let dir = temp_dir("dir");
    std::fs::copy(&path, dir.join("EURUSD_H1.zip")).unwrap();
    std::fs::write(dir.join("AAA_M1.zip"), b"garbage").unwrap();
    let (members, mut meta) = unpack(&std::fs::read(&path).unwrap());
    meta["format_version"] = Value::String("3.0".into());
    std::fs::write(dir.join("ZZZ_H1.zip"), pack(&members, &meta)).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a model").unwrap();
    let out = load_dir(&dir).unwrap();
    assert_eq!(out.models.len(), 1);
    assert_eq!(out.models[0].name, "EURUSD_H1");
    let files: Vec<&str> = out.errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, ["AAA_M1.zip", "ZZZ_H1.zip"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_shipped_model_loads() {
    let dir = repo().join("models");
    let Ok(out) = load_dir(&dir) else {
        println!("no models/ folder");
        return;
    };
    for e in &out.errors {
        println!("refused: {e}");
    }
    assert!(out.errors.is_empty());
    println!("{} models loaded", out.models.len());
}

#[test]
fn replay_trace_format_and_rejections() {
    let Some(path) = sample_zip() else { return };
    let data = repo().join("data/EURUSD_H1.csv");
    let Ok(text) = std::fs::read_to_string(&data) else {
        println!("no data/EURUSD_H1.csv: replay test skipped");
        return;
    };
    let mut lines: Vec<String> = text.lines().take(401).map(str::to_owned).collect();
    // Inject bad lines: NaN close, a duplicate of the previous bar, an out-of-order bar, junk.
    let dup = lines[10].clone();
    let mut nan: Vec<String> = lines[20].split(',').map(str::to_owned).collect();
    nan[4] = "nan".into();
    lines.insert(11, dup); // line 12
    lines.insert(22, nan.join(",")); // line 23
    let old = lines[5].clone();
    lines.insert(30, old); // line 31
    lines.insert(40, "2017-01-01T00:00:00Z,1,2".into()); // line 41
    let dir = temp_dir("replay");
    let csv = dir.join("bars.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let summary = replay(&path, &csv, &mut out, &mut err).unwrap();
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert_eq!(summary.rejected, 4, "{err}");
    assert_eq!(summary.bars, 400);
    assert_eq!(summary.decisions, 400 - 349);
    for line_no in [12, 23, 31, 41] {
        assert!(
            err.contains(&format!(":{line_no}: bar rejected: ")),
            "{err}"
        );
    }
    let trace: Vec<&str> = out.lines().collect();
    assert_eq!(trace[0], TRACE_HEADER);
    assert_eq!(trace.len(), 401);
    assert_eq!(
        trace[1],
        format!("{},WARMUP,0,0,0.0000000000,0.000000", &lines[1][..20])
    );
    assert!(trace[349].contains(",WARMUP,") && !trace[350].contains("WARMUP"));
    for l in &trace[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 6);
        assert_eq!(f[4].split('.').nth(1).unwrap().len(), 10);
        assert_eq!(f[5].split('.').nth(1).unwrap().len(), 6);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
