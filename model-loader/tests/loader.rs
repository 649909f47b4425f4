//! Loader refusals (each names the file and the field), folder loading, and the replay trace.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use oracle_core::{Symbol, Timeframe};
use oracle_model::{
    LoadErrorKind, LoadLimits, MAX_MEMBER_BYTES, SUPPORTED_TIMEFRAMES, TRACE_HEADER, load_dir,
    load_model, load_model_bytes, load_model_bytes_limited, load_model_limited, replay,
};
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

    // An ONNX member other than the one the weights member was read from (the loader never
    // parses the ONNX: the weights member records its sha256, and that must match).
    let mut mem = members.clone();
    mem.insert(onnx_name.into(), b"not an onnx graph".to_vec());
    let mut m = meta.clone();
    rehash(&mem, &mut m);
    let e = refuse(&pack(&mem, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::ShapeMismatch { field, .. } if field == "EURUSD_H1_policy.weights: onnx_sha256"),
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

/// The byte range of `name`'s (compressed) data in a zip, from its local header.
fn member_data(bytes: &[u8], name: &str) -> (usize, std::ops::Range<usize>) {
    let sig = b"PK\x03\x04";
    let at = (0..bytes.len() - 30)
        .find(|&i| {
            bytes[i..i + 4] == sig[..] && {
                let n = u16::from_le_bytes([bytes[i + 26], bytes[i + 27]]) as usize;
                bytes.get(i + 30..i + 30 + n) == Some(name.as_bytes())
            }
        })
        .expect("local header");
    let n = u16::from_le_bytes([bytes[at + 26], bytes[at + 27]]) as usize;
    let extra = u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
    let csize = u32::from_le_bytes(bytes[at + 18..at + 22].try_into().unwrap()) as usize;
    let start = at + 30 + n + extra;
    (at, start..start + csize)
}

/// Sets `name`'s declared uncompressed size, in its local header and the central directory.
fn declare_size(bytes: &mut [u8], name: &str, size: u32) {
    let (local, _) = member_data(bytes, name);
    bytes[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
    let sig = b"PK\x01\x02";
    let central = (0..bytes.len() - 46)
        .find(|&i| {
            bytes[i..i + 4] == sig[..] && {
                let n = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
                bytes.get(i + 46..i + 46 + n) == Some(name.as_bytes())
            }
        })
        .expect("central header");
    bytes[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
}

/// The sample zip with its `_hmm.pkl` replaced by `size` zero bytes (hashes updated): a 1 GiB
/// member compresses to about 1 MB, so the zip stays small.
fn zip_with_big_member(size: usize) -> Option<(Vec<u8>, &'static str)> {
    let path = sample_zip()?;
    let (mut members, mut meta) = unpack(&std::fs::read(path).unwrap());
    let big = "EURUSD_H1_hmm.pkl";
    members.insert(big.into(), vec![0u8; size]);
    rehash(&members, &mut meta);
    Some((pack(&members, &meta), big))
}

#[test]
fn a_member_over_the_cap_is_refused_by_its_declared_size_without_being_read() {
    let Some((mut bytes, big)) = zip_with_big_member(4 << 20) else {
        return;
    };
    assert!(bytes.len() < 200_000, "the test zip stays small");
    let limits = LoadLimits {
        max_member_bytes: 1 << 20,
        ..LoadLimits::DEFAULT
    };
    // Corrupt the member's compressed data: reading it would fail (or hash wrong), so a refusal
    // for its size proves the loader never read it.
    let (_, data) = member_data(&bytes, big);
    for b in &mut bytes[data.start + 4..data.end - 4] {
        *b = 0xA5;
    }
    let e = load_model_bytes_limited("BIG.zip", &bytes, &limits).expect_err("refused");
    assert!(
        matches!(&e.kind, LoadErrorKind::MemberTooLarge { member, cap } if member == big && *cap == 1 << 20),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with("BIG.zip: ") && text.contains(big) && text.contains("1048576"),
        "{text}"
    );
}

#[test]
fn a_member_whose_header_understates_its_size_is_refused_while_streaming() {
    let Some((mut bytes, big)) = zip_with_big_member(4 << 20) else {
        return;
    };
    // The header says 1000 bytes; the data inflates to 4 MiB.
    declare_size(&mut bytes, big, 1000);
    let limits = LoadLimits {
        max_member_bytes: 1 << 20,
        ..LoadLimits::DEFAULT
    };
    let e = load_model_bytes_limited("LIAR.zip", &bytes, &limits).expect_err("refused");
    assert!(
        matches!(&e.kind, LoadErrorKind::MemberTooLarge { member, .. } if member == big),
        "{e}"
    );
}

#[test]
fn a_member_over_the_default_cap_is_refused_by_load_model() {
    let Some((bytes, big)) = zip_with_big_member(MAX_MEMBER_BYTES as usize + 1) else {
        return;
    };
    let dir = temp_dir("cap");
    let path = dir.join("EURUSD_H1.zip");
    std::fs::write(&path, &bytes).unwrap();
    let e = load_model(&path).expect_err("refused");
    assert_eq!(e.file, "EURUSD_H1.zip");
    assert!(
        matches!(&e.kind, LoadErrorKind::MemberTooLarge { member, cap } if member == big && *cap == MAX_MEMBER_BYTES),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_zip_file_over_the_cap_is_refused_before_it_is_read() {
    let Some(path) = sample_zip() else { return };
    let limits = LoadLimits {
        max_zip_bytes: 1000,
        ..LoadLimits::DEFAULT
    };
    let e = load_model_limited(&path, &limits).expect_err("refused");
    assert!(
        matches!(e.kind, LoadErrorKind::ZipTooLarge { cap: 1000, .. }),
        "{e}"
    );
    assert!(e.to_string().starts_with("EURUSD_H1.zip: "), "{e}");
}

#[test]
fn a_timeframe_the_system_cannot_stream_is_refused_with_the_supported_list() {
    let Some(path) = sample_zip() else { return };
    let (members, meta) = unpack(&std::fs::read(path).unwrap());
    for tf in ["H2", "MN1", "m15", ""] {
        let mut m = meta.clone();
        m["symbol"]["timeframe"] = Value::String(tf.into());
        let e = refuse(&pack(&members, &m));
        assert!(
            matches!(&e.kind, LoadErrorKind::InvalidField { field, .. } if field == "symbol.timeframe"),
            "{tf}: {e}"
        );
        let text = e.to_string();
        assert!(text.contains(&SUPPORTED_TIMEFRAMES.join(", ")), "{text}");
    }
    assert!(!SUPPORTED_TIMEFRAMES.contains(&"MN1"));
}

/// `symbol.timeframe` is read once, at load, into core's `Timeframe`; a value that is not one
/// of the streamed timeframes refuses the zip, naming the zip's file and the field.
#[test]
fn the_metadata_timeframe_is_parsed_at_load_and_a_bad_one_names_the_zip_and_the_field() {
    let Some(path) = sample_zip() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let m = load_model(&path).unwrap();
    assert_eq!(m.metadata.timeframe, Timeframe::H1);
    assert_eq!(m.metadata.name(), "EURUSD_H1");

    let (members, meta) = unpack(&bytes);
    let dir = temp_dir("timeframe");
    for bad in ["H2", "MN1", "h1", " H1"] {
        let mut md = meta.clone();
        md["symbol"]["timeframe"] = Value::String(bad.into());
        let file = format!("EURUSD_{}.zip", bad.trim());
        let p = dir.join(&file);
        std::fs::write(&p, pack(&members, &md)).unwrap();
        let e = load_model(&p).expect_err(bad);
        assert_eq!(e.file, file, "{bad:?}");
        assert!(
            matches!(&e.kind, LoadErrorKind::InvalidField { field, .. } if field == "symbol.timeframe"),
            "{bad:?}: {e}"
        );
        let text = e.to_string();
        assert!(text.starts_with(&format!("{file}: ")), "{text}");
        assert!(text.contains(&format!("{bad:?}")), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `symbol.name` is read once, at load, into core's `Symbol` (the name IPC lines, streams and the
/// executor's keys carry); a name no stream could carry refuses the zip, naming the zip's file and
/// the field, instead of loading a model whose bars could never be keyed.
#[test]
fn the_metadata_symbol_is_parsed_at_load_and_a_bad_one_names_the_zip_and_the_field() {
    let Some(path) = sample_zip() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let m = load_model(&path).unwrap();
    assert_eq!(m.metadata.symbol, Symbol::new("EURUSD").unwrap());

    let (members, meta) = unpack(&bytes);
    let dir = temp_dir("symbol");
    let long = "E".repeat(oracle_core::MAX_SYMBOL + 1);
    for bad in ["EUR USD", "EURUSD!", "EUR\u{e9}USD", long.as_str()] {
        // The zip and its members named as the metadata says, so only the symbol is at fault.
        let renamed: BTreeMap<String, Vec<u8>> = members
            .iter()
            .map(|(n, d)| (n.replacen("EURUSD_H1", &format!("{bad}_H1"), 1), d.clone()))
            .collect();
        let mut md = meta.clone();
        md["symbol"]["name"] = Value::String(bad.into());
        md["members"] = Value::Object(serde_json::Map::new());
        rehash(&renamed, &mut md);
        let file = format!("{bad}_H1.zip");
        let p = dir.join(&file);
        std::fs::write(&p, pack(&renamed, &md)).unwrap();
        let e = load_model(&p).expect_err(bad);
        assert_eq!(e.file, file, "{bad:?}");
        assert!(
            matches!(&e.kind, LoadErrorKind::InvalidField { field, .. } if field == "symbol.name"),
            "{bad:?}: {e}"
        );
        let text = e.to_string();
        assert!(text.starts_with(&format!("{file}: ")), "{text}");
        assert!(text.contains(&format!("{bad:?}")), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_zip_named_for_another_symbol_or_timeframe_is_refused() {
    let Some(path) = sample_zip() else { return };
    let bytes = std::fs::read(path).unwrap();
    let dir = temp_dir("names");
    for wrong in [
        "SYNFX02_M5.zip",
        "EURUSD_M15.zip",
        "SYNFX99_H1.zip",
        "eurusd_H1.zip",
    ] {
        let p = dir.join(wrong);
        std::fs::write(&p, &bytes).unwrap();
        let e = load_model(&p).expect_err(wrong);
        assert_eq!(e.file, wrong);
        assert!(
            matches!(&e.kind, LoadErrorKind::WrongFileName { symbol, timeframe, expected }
                if symbol == "EURUSD" && *timeframe == Timeframe::H1 && expected == "EURUSD_H1.zip"),
            "{e}"
        );
        assert!(e.to_string().contains("EURUSD_H1.zip"), "{e}");
    }
    let out = load_dir(&dir).unwrap();
    assert!(out.models.is_empty());
    assert_eq!(out.errors.len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The loader takes `net_arch` up to what the core holds (`[256, 256]`, or e.g.
/// `[128, 128, 128]`) and refuses more by name before converting the policy.
#[test]
fn a_net_arch_beyond_256_256_is_refused_naming_policy_net_arch() {
    let Some(path) = sample_zip() else { return };
    let (members, meta) = unpack(&std::fs::read(path).unwrap());
    for arch in [
        serde_json::json!([256, 256, 256]),
        serde_json::json!([512]),
        serde_json::json!([64, 64, 64, 64]),
    ] {
        let mut m = meta.clone();
        m["policy"]["net_arch"] = arch.clone();
        let e = refuse(&pack(&members, &m));
        assert!(
            matches!(&e.kind, LoadErrorKind::InvalidField { field, .. } if field == "policy.net_arch"),
            "{arch}: {e}"
        );
        assert!(e.to_string().contains("[256, 256]"), "{e}");
    }
    // Within the limit the metadata passes and the (64, 64) policy's shape is what is refused.
    let mut m = meta.clone();
    m["policy"]["net_arch"] = serde_json::json!([128, 128, 128]);
    let e = refuse(&pack(&members, &m));
    assert!(
        matches!(&e.kind, LoadErrorKind::ShapeMismatch { .. }),
        "{e}"
    );
}
