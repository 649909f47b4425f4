//! The predictor runs the fleet path: the twins of every stream whose bar arrived at the same
//! instant step in one call of the core's `Twin::handle_bars_mut` (window passes in SIMD lanes),
//! and what they decide is what one twin at a time decides, bit for bit: the same `SIGNAL`s, the
//! same traces (which equal `oracle replay`), the same state file.

mod renamed;

use oracle_predictor::engine::{Predictor, Settings};
use oracle_predictor::twins::{FleetStats, ZipLoader, fleet_stats};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-pred-fleet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("models")).expect("tmp dir");
    d
}

/// (model name, stream symbol, bar file): three bundled H1 models and a copy of EURUSD_H1 on
/// the stream `COPYA`, fed EURUSD's bars.
const MODELS: [(&str, &str, &str); 4] = [
    ("COPYA_H1", "COPYA", "EURUSD_H1"),
    ("EURUSD_H1", "EURUSD", "EURUSD_H1"),
    ("SYNFX01_H1", "SYNFX01", "SYNFX01_H1"),
    ("SYNFX03_H1", "SYNFX03", "SYNFX03_H1"),
];

fn setup(root: &Path) {
    for (name, _, _) in MODELS {
        if name == "COPYA_H1" {
            renamed::renamed_model(&root.join("models"), "COPYA", "COPYA");
        } else {
            std::fs::copy(
                repo().join(format!("models/{name}.zip")),
                root.join(format!("models/{name}.zip")),
            )
            .expect("copy model");
        }
    }
}

/// Bar file lines (without the header).
fn bar_rows(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(format!("data/{file}.csv"))).expect("bars");
    text.lines().skip(1).map(str::to_string).collect()
}

fn bar_line(sym: &str, csv: &str, seq: usize, hist: bool) -> String {
    let f: Vec<&str> = csv.split(',').collect();
    format!(
        "BAR|{sym}|H1|{}|{}|{}|{}|{}|{}|SEQ:{seq}{}",
        f[0],
        f[1],
        f[2],
        f[3],
        f[4],
        f[5],
        if hist { "|HIST:1" } else { "" }
    )
}

/// Warms every stream up over `..UPTO` (one `HISTORY` answer each), then sends the live bars
/// `UPTO..TO`; `together` hands the predictor each instant's bars of all streams in one call
/// (as the shell does with frames received together), and the last `TAIL` instants in one
/// call (two bars of each stream in it, as after a stall), else one line at a time. Returns the
/// lines sent and the fleet path's counts over the live bars.
fn run(root: &Path, together: bool) -> (Vec<String>, FleetStats) {
    const UPTO: usize = 400;
    const TO: usize = 460;
    const TAIL: usize = 2;
    let rows: Vec<(&str, Vec<String>)> = MODELS
        .iter()
        .map(|(_, sym, file)| (*sym, bar_rows(file)))
        .collect();
    let mut p = Predictor::new(
        Settings {
            models_dir: root.join("models"),
            state_dir: root.join("state"),
            trace_dir: Some(root.join("trace")),
            history_extra: 50,
        },
        Arc::new(ZipLoader),
    )
    .expect("predictor");
    assert!(p.scan().is_empty(), "not connected yet: no requests");
    assert_eq!(p.model_names().len(), MODELS.len(), "every model loads");
    let reqs = p.on_connected();
    assert_eq!(reqs.len(), MODELS.len(), "{reqs:?}");
    for r in &reqs {
        let f: Vec<&str> = r.split('|').collect();
        let (sym, bars) = rows.iter().find(|(s, _)| *s == f[1]).expect("stream");
        let count: usize = f[3].parse().expect("count");
        let from = UPTO.saturating_sub(count);
        for (i, row) in bars[from..UPTO].iter().enumerate() {
            assert!(
                p.handle_line(&bar_line(sym, row, from + i, true))
                    .is_empty()
            );
        }
        let end = p.handle_line(&format!("HISTORY_END|{sym}|H1|{}", UPTO - from));
        assert!(end.is_empty(), "history sends no signals: {end:?}");
    }
    let start = fleet_stats();
    let mut out = Vec::new();
    let line = |i: usize, sym: &str, bars: &[String]| bar_line(sym, &bars[i], i, false);
    if together {
        for i in UPTO..TO - TAIL {
            let lines: Vec<String> = rows.iter().map(|(s, b)| line(i, s, b)).collect();
            out.extend(p.handle_lines(&lines));
            p.persist().expect("persist");
        }
        let lines: Vec<String> = (TO - TAIL..TO)
            .flat_map(|i| rows.iter().map(move |(s, b)| line(i, s, b)))
            .collect();
        out.extend(p.handle_lines(&lines));
        p.persist().expect("persist");
    } else {
        for i in UPTO..TO {
            for (s, b) in &rows {
                out.extend(p.handle_line(&line(i, s, b)));
            }
            p.persist().expect("persist");
        }
    }
    let end = fleet_stats();
    let counters = p.counters();
    for (name, _, _) in MODELS {
        let c = &counters[name];
        assert_eq!((c.live_bars, c.signals), (60, 60), "{name}: {c:?}");
    }
    let stats = FleetStats {
        calls: end.calls - start.calls,
        twins: end.twins - start.twins,
        widest: end.widest,
    };
    (out, stats)
}

fn replay_over(model: &str, rows: &[String]) -> String {
    let dir = tmpdir(&format!("replay-{model}"));
    let csv = dir.join("bars.csv");
    std::fs::write(
        &csv,
        format!("time,open,high,low,close,volume\n{}\n", rows.join("\n")),
    )
    .expect("write");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    oracle_model::replay(
        &repo().join(format!("models/{model}.zip")),
        &csv,
        &mut out,
        &mut err,
    )
    .expect("replay");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    String::from_utf8(out).expect("utf8")
}

#[test]
fn twins_whose_bars_arrive_together_step_in_one_fleet_call_bit_for_bit_as_one_by_one() {
    let fleet_root = tmpdir("together");
    let solo_root = tmpdir("alone");
    setup(&fleet_root);
    setup(&solo_root);

    let (fleet, fs) = run(&fleet_root, true);
    // 58 instants in one call each, then the two-instant tail: two calls (the second bar of
    // a stream steps after the first).
    assert_eq!(
        fs,
        FleetStats {
            calls: 60,
            twins: 240,
            widest: 4
        },
        "the live bars of one instant go through the core's fleet path together"
    );

    let (solo, ss) = run(&solo_root, false);
    assert_eq!(
        (ss.calls, ss.twins),
        (240, 240),
        "one line at a time: one twin per call"
    );

    assert_eq!(fleet.len(), 4 * 60, "one SIGNAL per model per live bar");
    assert_eq!(fleet, solo, "the same SIGNALs, in the same order");
    for (name, _, file) in MODELS {
        let read = |root: &Path| {
            std::fs::read_to_string(root.join(format!("trace/{name}.csv"))).expect("trace")
        };
        let trace = read(&fleet_root);
        assert_eq!(trace, read(&solo_root), "{name}: fleet trace = one by one");
        // A fresh twin warms up over the last `window` (350) history bars, then runs live.
        let model = if name == "COPYA_H1" {
            "EURUSD_H1"
        } else {
            name
        };
        let expected = replay_over(model, &bar_rows(file)[50..460]);
        assert_eq!(trace, expected, "{name}: fleet trace = oracle replay");
    }
    let state = |root: &Path| {
        std::fs::read_to_string(root.join("state/predictor-state.json")).expect("state")
    };
    assert_eq!(state(&fleet_root), state(&solo_root), "the same state file");

    std::fs::remove_dir_all(&fleet_root).expect("cleanup");
    std::fs::remove_dir_all(&solo_root).expect("cleanup");
}
