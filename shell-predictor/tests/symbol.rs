//! One symbol identity: a model whose `symbol.name` and `symbol.clean` differ (an FTMO-style
//! `GER40.cash` for the instrument `GER40`) is asked for, streamed and signalled under
//! `symbol.name` — the name the executor streams it under (docs/contract.md, "Symbol identity").

use oracle_predictor::backend::ZipLoader;
use oracle_predictor::engine::{Predictor, Settings};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `models/EURUSD_H1.zip` re-packed as `<name>_H1.zip` with `symbol.name = name` and
/// `symbol.clean = clean` (members renamed, bytes and hashes unchanged).
fn renamed_model(dir: &Path, name: &str, clean: &str) -> PathBuf {
    let src = std::fs::read(repo().join("models/EURUSD_H1.zip")).expect("bundled model");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(&src)).expect("zip");
    let comment = String::from_utf8(z.comment().to_vec()).expect("utf8 comment");
    let mut meta: serde_json::Value =
        serde_json::from_str(&comment.replace("EURUSD_H1_", &format!("{name}_H1_"))).expect("json");
    meta["symbol"]["name"] = name.into();
    meta["symbol"]["clean"] = clean.into();
    let path = dir.join(format!("{name}_H1.zip"));
    let mut w = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..z.len() {
        let mut f = z.by_index(i).expect("member");
        let renamed = f.name().replacen("EURUSD_H1_", &format!("{name}_H1_"), 1);
        let mut body = Vec::new();
        f.read_to_end(&mut body).expect("read");
        w.start_file(renamed, zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(&body).expect("write");
    }
    w.set_comment(meta.to_string());
    w.finish().expect("finish");
    path
}

#[test]
fn a_model_whose_name_and_clean_differ_is_asked_for_under_its_name() {
    let root = std::env::temp_dir().join(format!("oracle-pred-symbol-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("models")).expect("dir");
    renamed_model(&root.join("models"), "GER40.cash", "GER40");
    let mut p = Predictor::new(
        Settings {
            models_dir: root.join("models"),
            state_dir: root.join("state"),
            trace_dir: None,
            history_extra: 50,
        },
        Arc::new(ZipLoader),
    )
    .expect("predictor");
    // The executor streams the model under the symbol its scan of the models folder finds.
    let scanned = oracle_executor::config::scan_models(&root.join("models")).expect("scan");
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].symbol, "GER40.cash", "the executor's stream key");
    assert!(p.scan().is_empty(), "not connected yet: no requests");
    let reqs = p.on_connected();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(
        reqs[0].starts_with("HISTORY|GER40.cash|H1|"),
        "the stream is asked under symbol.name, as the executor streams it: {reqs:?}"
    );
    // Bars of that stream reach the twin and its signal carries the same name.
    let bars = std::fs::read_to_string(repo().join("data/EURUSD_H1.csv")).expect("bars");
    let rows: Vec<&str> = bars.lines().skip(1).take(401).collect();
    let bar = |i: usize, hist: bool| {
        let f: Vec<&str> = rows[i].split(',').collect();
        format!(
            "BAR|GER40.cash|H1|{}|{}|{}|{}|{}|{}|SEQ:{}{}",
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            f[5],
            i + 1,
            if hist { "|HIST:1" } else { "" }
        )
    };
    for i in 0..400 {
        let out = p.handle_line(&bar(i, true));
        assert!(out.is_empty(), "history sends nothing: {out:?}");
    }
    let _ = p.handle_line("HISTORY_END|GER40.cash|H1|400");
    let out = p.handle_line(&bar(400, false));
    assert!(
        out.iter().any(|l| l.starts_with("SIGNAL|GER40.cash|")),
        "one SIGNAL under symbol.name for the live bar: {out:?}"
    );
    std::fs::remove_dir_all(&root).expect("cleanup");
}
