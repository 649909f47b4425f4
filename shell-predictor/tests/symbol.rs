//! One symbol identity: a model whose `symbol.name` and `symbol.clean` differ (an FTMO-style
//! `GER40.cash` for the instrument `GER40`) is asked for, streamed and signalled under
//! `symbol.name` — the name the executor streams it under (docs/contract.md, "Symbol identity").

mod renamed;

use oracle_predictor::engine::{Predictor, Settings};
use oracle_predictor::twins::ZipLoader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_model_whose_name_and_clean_differ_is_asked_for_under_its_name() {
    let root = std::env::temp_dir().join(format!("oracle-pred-symbol-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("models")).expect("dir");
    renamed::renamed_model(&root.join("models"), "GER40.cash", "GER40");
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

#[test]
fn a_model_whose_symbol_cannot_be_streamed_is_refused_at_load_naming_it() {
    let root = std::env::temp_dir().join(format!("oracle-pred-badsym-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("models")).expect("dir");
    // The zip's file name matches its metadata, but no IPC line can carry a symbol with a
    // space: the loader refuses it once, when it reads `symbol.name` (core's `Symbol`), so the
    // predictor never asks `HISTORY|EUR USD|…`. (The loader took it before `Metadata.symbol`
    // was typed; the predictor refused it after.)
    let path = renamed::renamed_model(&root.join("models"), "EUR USD", "EURUSD");
    let refused = oracle_model::load_model(&path).expect_err("refused by the loader");
    assert!(
        matches!(&refused.kind, oracle_model::LoadErrorKind::InvalidField { field, .. } if field == "symbol.name"),
        "names the field: {refused}"
    );
    let err = oracle_predictor::twins::Loader::load(&ZipLoader, &path)
        .err()
        .expect("refused");
    assert!(
        err.contains("EUR USD") && err.contains("symbol"),
        "names the symbol: {err}"
    );
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
    assert!(p.scan().is_empty());
    assert!(p.model_names().is_empty(), "not loaded");
    assert!(p.on_connected().is_empty(), "no HISTORY for it");
}

#[test]
fn a_loaded_model_carries_its_typed_stream_key() {
    let path = repo().join("models/SYNFX01_M15.zip");
    let twin = oracle_predictor::twins::Loader::load(&ZipLoader, &path).expect("bundled model");
    let spec = twin.spec();
    assert_eq!(spec.name, "SYNFX01_M15");
    assert_eq!(
        spec.stream,
        oracle_core::StreamKey::parse("SYNFX01", "M15").expect("key")
    );
    assert_eq!(spec.stream.timeframe.seconds(), 900);
}
