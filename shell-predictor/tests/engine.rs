//! The predictor's logic over lines: warm-up, one signal per live bar, idempotent bars, ACKs
//! that never move a virtual position, atomic state and an exact restart.

mod support;

use oracle_core::Bar;
use oracle_predictor::engine::{Predictor, Settings};
use std::path::Path;
use std::sync::Arc;
use support::*;

fn predictor(root: &Path) -> Predictor {
    Predictor::new(
        Settings {
            models_dir: root.join("models"),
            state_dir: root.join("state"),
            trace_dir: Some(root.join("trace")),
            history_extra: 50,
        },
        Arc::new(FakeLoader),
    )
    .expect("predictor")
}

fn setup(root: &Path) {
    std::fs::create_dir_all(root.join("models")).expect("models dir");
    std::fs::write(root.join("models/EURUSD_M1.zip"), "EURUSD M1 20").expect("write");
    std::fs::write(root.join("models/EURUSD_M5.zip"), "EURUSD M5 10").expect("write");
    std::fs::write(root.join("models/GBPUSD_M1.zip"), "GBPUSD M1 15").expect("write");
}

/// The executor's side of a session: answers HISTORY from `avail` (the bars "closed so far").
fn serve_history(
    p: &mut Predictor,
    requests: &[String],
    streams: &[(&str, &str, &[Bar])],
    upto: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for r in requests {
        let f: Vec<&str> = r.split('|').collect();
        assert_eq!(f[0], "HISTORY", "{r}");
        let count: usize = f[3].parse().expect("count");
        let (_, _, bars) = streams
            .iter()
            .find(|(s, t, _)| *s == f[1] && *t == f[2])
            .expect("stream");
        let avail = &bars[..upto];
        let from = avail.len().saturating_sub(count);
        for (i, b) in avail[from..].iter().enumerate() {
            out.extend(p.handle_line(&bar_line(f[1], f[2], b, (from + i) as u64, true)));
        }
        out.extend(p.handle_line(&format!(
            "HISTORY_END|{}|{}|{}",
            f[1],
            f[2],
            avail.len() - from
        )));
    }
    out
}

fn run(
    root: &Path,
    streams: &[(&str, &str, &[Bar])],
    from: usize,
    to: usize,
) -> (Vec<String>, Predictor) {
    let mut p = predictor(root);
    assert!(p.scan().is_empty(), "not connected yet: no requests");
    let reqs = p.on_connected();
    assert_eq!(reqs.len(), streams.len(), "{reqs:?}");
    let mut out = serve_history(&mut p, &reqs, streams, from);
    assert!(out.is_empty(), "history sends no signals: {out:?}");
    for i in from..to {
        for (sym, tf, bars) in streams {
            let o = p.handle_line(&bar_line(sym, tf, &bars[i], i as u64, false));
            p.persist().expect("persist");
            out.extend(o);
        }
    }
    (out, p)
}

#[test]
fn one_signal_per_model_per_live_bar_and_acks_change_nothing() {
    let root = tmpdir("signals");
    setup(&root);
    let (a, b, c) = (
        bars(120, 1_600_000_000, 0.0),
        bars(120, 1_600_000_000, 1.0),
        bars(120, 1_600_000_000, 2.0),
    );
    let streams: [(&str, &str, &[Bar]); 3] = [
        ("EURUSD", "M1", &a),
        ("EURUSD", "M5", &b),
        ("GBPUSD", "M1", &c),
    ];
    let (out, mut p) = run(&root, &streams, 40, 120);
    assert_eq!(out.len(), 3 * 80, "one SIGNAL per model per live bar");
    assert!(out.iter().all(|l| l.starts_with("SIGNAL|")));
    assert!(
        out[0].contains("|TF:M1|BT:") && out[0].contains("|SEQ:40|DIR:"),
        "{}",
        out[0]
    );
    // A duplicate bar is ignored, and so is an old one.
    assert!(
        p.handle_line(&bar_line("EURUSD", "M1", &a[119], 119, false))
            .is_empty()
    );
    assert!(
        p.handle_line(&bar_line("EURUSD", "M1", &a[50], 50, false))
            .is_empty()
    );
    // ACKs are counted, never applied.
    let trace_before = std::fs::read_to_string(root.join("trace/EURUSD_M1.csv")).expect("trace");
    let state_before =
        std::fs::read_to_string(root.join("state/predictor-state.json")).expect("state");
    let bt = oracle_predictor::isotime::format(a[119].time);
    p.handle_line(&format!("ACK|EURUSD|WAIT|FAIL|MARGIN|BT:{bt}|SEQ:119"));
    p.handle_line(&format!(
        "ACK|EURUSD|WAIT|WAIT_SYNC|MISSED_ENTRY|BT:{bt}|SEQ:119"
    ));
    p.handle_line("ACK|EURUSD|WAIT|OK|T:1|P:1.1");
    p.handle_line("garbage|line");
    p.persist().expect("persist");
    assert_eq!(
        std::fs::read_to_string(root.join("trace/EURUSD_M1.csv")).expect("trace"),
        trace_before
    );
    assert_eq!(
        std::fs::read_to_string(root.join("state/predictor-state.json")).expect("state"),
        state_before
    );
    let c = &p.counters()["EURUSD_M1"];
    assert_eq!(
        (
            c.signals,
            c.live_bars,
            c.ignored,
            c.ack_fail,
            c.ack_wait_sync,
            c.drift
        ),
        (80, 80, 2, 1, 1, 2)
    );
    assert_eq!(p.malformed, 1);
    // The trace has one row per bar the twin saw (its window of history, then the live bars).
    let rows = trace_before.lines().count() - 1;
    assert_eq!(rows, 20 + 80);
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn restart_from_state_equals_the_uninterrupted_run() {
    let (a, c) = (bars(200, 1_600_000_000, 0.3), bars(200, 1_600_000_000, 2.2));
    let streams: [(&str, &str, &[Bar]); 2] = [("EURUSD", "M1", &a), ("GBPUSD", "M1", &c)];
    let whole = tmpdir("whole");
    std::fs::create_dir_all(whole.join("models")).expect("dir");
    std::fs::write(whole.join("models/EURUSD_M1.zip"), "EURUSD M1 20").expect("write");
    std::fs::write(whole.join("models/GBPUSD_M1.zip"), "GBPUSD M1 15").expect("write");
    let (out_whole, _) = run(&whole, &streams, 30, 200);

    let parts = tmpdir("parts");
    std::fs::create_dir_all(parts.join("models")).expect("dir");
    std::fs::write(parts.join("models/EURUSD_M1.zip"), "EURUSD M1 20").expect("write");
    std::fs::write(parts.join("models/GBPUSD_M1.zip"), "GBPUSD M1 15").expect("write");
    let (first, p) = run(&parts, &streams, 30, 90);
    drop(p); // "killed" after bar 89; bars 90..130 close while it is down
    let mut p = predictor(&parts);
    p.scan();
    let reqs = p.on_connected();
    assert_eq!(
        reqs,
        ["HISTORY|EURUSD|M1|70", "HISTORY|GBPUSD|M1|65"],
        "window + extra"
    );
    let hist = serve_history(&mut p, &reqs, &streams, 130);
    assert!(hist.is_empty());
    let mut rest = Vec::new();
    for i in 130..200 {
        for (sym, tf, bars) in &streams {
            rest.extend(p.handle_line(&bar_line(sym, tf, &bars[i], i as u64, false)));
            p.persist().expect("persist");
        }
    }
    for name in ["EURUSD_M1", "GBPUSD_M1"] {
        let w = std::fs::read_to_string(whole.join(format!("trace/{name}.csv"))).expect("trace");
        let r = std::fs::read_to_string(parts.join(format!("trace/{name}.csv"))).expect("trace");
        assert_eq!(
            w, r,
            "{name}: the restarted trace equals the uninterrupted one"
        );
    }
    // The signals after the restart are the uninterrupted run's for the same bars.
    let tail: Vec<&String> = out_whole
        .iter()
        .filter(|l| rest.iter().any(|x| x == *l))
        .collect();
    assert_eq!(tail.len(), rest.len());
    assert_eq!(first.len() + 2 * 40 + rest.len(), out_whole.len());
    let sw = std::fs::read_to_string(whole.join("state/predictor-state.json")).expect("state");
    let sp = std::fs::read_to_string(parts.join("state/predictor-state.json")).expect("state");
    assert_eq!(sw, sp, "same final state");
    std::fs::remove_dir_all(&whole).expect("cleanup");
    std::fs::remove_dir_all(&parts).expect("cleanup");
}

#[test]
fn a_model_replaced_while_stopped_restarts_from_flat() {
    let (a, c) = (bars(200, 1_600_000_000, 0.3), bars(200, 1_600_000_000, 2.2));
    let streams: [(&str, &str, &[Bar]); 2] = [("EURUSD", "M1", &a), ("GBPUSD", "M1", &c)];
    let root = tmpdir("replaced");
    std::fs::create_dir_all(root.join("models")).expect("dir");
    std::fs::write(root.join("models/EURUSD_M1.zip"), "EURUSD M1 20").expect("write");
    std::fs::write(root.join("models/GBPUSD_M1.zip"), "GBPUSD M1 15").expect("write");
    let (_, p) = run(&root, &streams, 30, 90);
    drop(p);
    // A new EURUSD model lands while the predictor is down; GBPUSD is untouched.
    std::fs::write(root.join("models/EURUSD_M1.zip"), "EURUSD M1 20 v2").expect("write");
    let mut p = predictor(&root);
    p.scan();
    let reqs = p.on_connected();
    serve_history(&mut p, &reqs, &streams, 130);
    p.persist().expect("persist");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("state/predictor-state.json")).expect("state"),
    )
    .expect("json");
    let seen = |m: &str| state["models"][m]["state"]["bars_seen"].as_u64().expect(m);
    // Restored: it goes on counting from the 90 bars it had seen. Replaced: a fresh warm-up
    // from FLAT over its 20-bar window, as with no state at all.
    assert!(
        seen("GBPUSD_M1") > 90,
        "unchanged model continues from its state"
    );
    assert_eq!(seen("EURUSD_M1"), 20, "replaced model warms up from FLAT");
    assert_eq!(
        state["models"]["EURUSD_M1"]["model_sha256"], "EURUSD M1 20 v2",
        "the state now belongs to the new file"
    );
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn bad_zip_is_skipped_and_new_zips_are_picked_up() {
    let root = tmpdir("scan");
    setup(&root);
    std::fs::write(root.join("models/BROKEN_H1.zip"), "PK garbage").expect("write");
    let mut p = predictor(&root);
    p.scan();
    assert_eq!(p.model_names(), ["EURUSD_M1", "EURUSD_M5", "GBPUSD_M1"]);
    let reqs = p.on_connected();
    assert_eq!(reqs.len(), 3);
    // Dropped in while running: loaded on the next poll, and its history asked for.
    std::fs::write(root.join("models/USDJPY_M1.zip"), "USDJPY M1 10").expect("write");
    let new = p.scan();
    assert_eq!(new, ["HISTORY|USDJPY|M1|20"], "twice the window");
    assert!(p.scan().is_empty(), "a file is loaded once");
    // A second model for a stream already traded is refused.
    std::fs::write(root.join("models/EURUSD_M1_v2.zip"), "EURUSD M1 20").expect("write");
    assert!(p.scan().is_empty());
    assert_eq!(p.model_names().len(), 4);
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn live_bars_during_history_are_held_then_signalled() {
    let root = tmpdir("interleave");
    std::fs::create_dir_all(root.join("models")).expect("dir");
    std::fs::write(root.join("models/EURUSD_M1.zip"), "EURUSD M1 20").expect("write");
    let a = bars(60, 1_600_000_000, 0.0);
    let mut p = predictor(&root);
    p.scan();
    let reqs = p.on_connected();
    assert_eq!(reqs, ["HISTORY|EURUSD|M1|40"]);
    for (i, b) in a[10..30].iter().enumerate() {
        assert!(
            p.handle_line(&bar_line("EURUSD", "M1", b, 10 + i as u64, true))
                .is_empty()
        );
    }
    // A live bar overtakes the end of history, and the last history bar comes again live.
    assert!(
        p.handle_line(&bar_line("EURUSD", "M1", &a[29], 29, false))
            .is_empty()
    );
    assert!(
        p.handle_line(&bar_line("EURUSD", "M1", &a[30], 30, false))
            .is_empty()
    );
    let out = p.handle_line("HISTORY_END|EURUSD|M1|20");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("|SEQ:30|"));
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn a_live_close_writes_its_trace_rows_with_the_states_not_before_its_signals_are_sent() {
    let root = tmpdir("trace-after-send");
    setup(&root);
    let (a, b, c) = (
        bars(60, 1_600_000_000, 0.0),
        bars(60, 1_600_000_000, 1.0),
        bars(60, 1_600_000_000, 2.0),
    );
    let streams: [(&str, &str, &[Bar]); 3] = [
        ("EURUSD", "M1", &a),
        ("EURUSD", "M5", &b),
        ("GBPUSD", "M1", &c),
    ];
    let mut p = predictor(&root);
    assert!(p.scan().is_empty());
    let reqs = p.on_connected();
    serve_history(&mut p, &reqs, &streams, 40);
    p.persist().expect("persist");
    let path = root.join("trace/EURUSD_M1.csv");
    // (No file yet is an empty one.)
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    let before = read();
    let bt = oracle_predictor::isotime::format(a[40].time);
    assert!(!before.contains(&bt), "{before}");
    let out = p.handle_lines(&[
        bar_line("EURUSD", "M1", &a[40], 40, false),
        bar_line("GBPUSD", "M1", &c[40], 40, false),
    ]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        read(),
        before,
        "the close's trace rows were written before its SIGNALs went out"
    );
    // Nor as they go out (the executor fsyncs the batch's intents then): with the states.
    p.after_send();
    assert_eq!(
        read(),
        before,
        "the close's trace rows were written as its SIGNALs went out"
    );
    p.persist().expect("persist");
    let after = read();
    assert!(
        after.starts_with(&before) && after[before.len()..].starts_with(&bt),
        "the close's row, with the states: {after}"
    );
}
