//! `onnx2rs weights ZIP…` / `check_zip_weights`: a model zip's plain weights member must be this
//! crate's import of its ONNX policy, bit for bit.

mod common;

use std::io::{Cursor, Read, Write};
use std::process::Command;

use common::*;
use onnx2rs::{Error, check_zip_weights, weights_member};

const WEIGHTS: &str = "EURUSD_H1_policy.weights";

fn sample() -> Vec<u8> {
    std::fs::read(workspace_root().join("models/EURUSD_H1.zip")).expect("models/EURUSD_H1.zip")
}

/// The sample zip with `WEIGHTS` replaced (`Some`) or left out (`None`).
fn with_member(data: Option<Vec<u8>>) -> Vec<u8> {
    let src = sample();
    let mut a = zip::ZipArchive::new(Cursor::new(&src)).expect("zip");
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..a.len() {
        let mut f = a.by_index(i).expect("member");
        let name = f.name().to_owned();
        let mut body = Vec::new();
        f.read_to_end(&mut body).expect("read");
        let body = if name == WEIGHTS {
            match &data {
                Some(d) => d.clone(),
                None => continue,
            }
        } else {
            body
        };
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .expect("start");
        out.write_all(&body).expect("write");
    }
    out.finish().expect("finish").into_inner()
}

fn member(zip_bytes: &[u8], name: &str) -> Vec<u8> {
    let mut a = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("zip");
    let mut f = a.by_name(name).expect(name);
    let mut v = Vec::new();
    f.read_to_end(&mut v).expect("read");
    v
}

#[test]
fn every_bundled_zip_holds_the_import_of_its_onnx_bit_for_bit() {
    let dir = workspace_root().join("models");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("models/") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("zip") {
            continue;
        }
        let bytes = std::fs::read(&p).expect("read");
        let (name, floats) =
            check_zip_weights(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(name.ends_with("_policy.weights") && floats > 0);
        n += 1;
    }
    assert_eq!(n, 20, "the bundled models");
    // The import, encoded, is the member's bytes.
    let z = sample();
    let onnx = member(&z, "EURUSD_H1_policy.onnx");
    assert_eq!(
        weights_member(&onnx).expect("converts"),
        member(&z, WEIGHTS)
    );
}

#[test]
fn a_weights_member_with_a_flipped_bit_is_not_the_import_and_the_difference_is_named() {
    let mut w = member(&sample(), WEIGHTS);
    // The header is 48 + 8 + 8 * 3 bytes; the first float is layer 0's weights[0].
    let first = 48 + 8 + 8 * 3;
    w[first] ^= 1;
    let e = check_zip_weights(&with_member(Some(w))).expect_err("must differ");
    assert!(
        matches!(&e, Error::WeightsDiffer { member, detail }
            if member == WEIGHTS && detail.starts_with("layer 0 weights[0] is ")),
        "{e}"
    );
}

#[test]
fn a_zip_without_the_weights_member_is_refused_naming_pack_weights() {
    let e = check_zip_weights(&with_member(None)).expect_err("must be refused");
    assert!(
        matches!(&e, Error::NoWeightsMember { member } if member == WEIGHTS),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("python -m oracle_training pack-weights"),
        "{e}"
    );
}

#[test]
fn the_weights_command_checks_each_zip_and_fails_naming_the_bad_one() {
    let dir = std::env::temp_dir().join(format!("onnx2rs-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("EURUSD_H1.zip");
    std::fs::write(&good, sample()).expect("write");
    let bad = dir.join("BAD_H1.zip");
    std::fs::write(&bad, with_member(None)).expect("write");
    let bin = env!("CARGO_BIN_EXE_onnx2rs");
    let ok = Command::new(bin)
        .arg("weights")
        .arg(&good)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(
        stdout.contains("EURUSD_H1_policy.weights is the ONNX policy's import, bit for bit"),
        "{stdout}"
    );
    let fail = Command::new(bin)
        .arg("weights")
        .arg(&good)
        .arg(&bad)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&fail.stderr);
    assert!(!fail.status.success());
    assert!(
        stderr.contains("BAD_H1.zip") && stderr.contains(WEIGHTS),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
