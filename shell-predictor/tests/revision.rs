//! Revisions (docs/ipc.md, "Revisions"): a `REV:1` bar, a `HISTORY` answer or the priming bars
//! after a restart that differ from a bar a twin took rewind the twin to its state before that
//! bar, so it ends where a run that saw the corrected bar from the start ends.

mod support;

use oracle_core::{Bar, Step};
use oracle_predictor::engine::{Predictor, REMEMBERED, Settings};
use oracle_predictor::twins::Loader;
use oracle_predictor::twins::ZipLoader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::*;

const SYM: &str = "EURUSD";

/// One model on one stream: the fake twin (`EURUSD M1`, window 20) or a real zip.
struct Model {
    tf: &'static str,
    name: &'static str,
    loader: fn() -> Arc<dyn Loader>,
    install: fn(&Path),
    window: usize,
    extra: usize,
}

fn fake_loader() -> Arc<dyn Loader> {
    Arc::new(FakeLoader)
}

fn zip_loader() -> Arc<dyn Loader> {
    Arc::new(ZipLoader)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const FAKE: Model = Model {
    tf: "M1",
    name: "EURUSD_M1",
    loader: fake_loader,
    install: |models| std::fs::write(models.join("EURUSD_M1.zip"), "EURUSD M1 20").expect("write"),
    window: 20,
    extra: 50,
};

const REAL: Model = Model {
    tf: "H1",
    name: "EURUSD_H1",
    loader: zip_loader,
    install: |models| {
        std::fs::copy(
            repo().join("models/EURUSD_H1.zip"),
            models.join("EURUSD_H1.zip"),
        )
        .map(|_| ())
        .expect("copy model")
    },
    window: 350,
    extra: 20,
};

fn new_predictor(root: &Path, m: &Model) -> Predictor {
    std::fs::create_dir_all(root.join("models")).expect("models dir");
    if std::fs::read_dir(root.join("models"))
        .expect("models")
        .next()
        .is_none()
    {
        (m.install)(&root.join("models"));
    }
    let mut p = Predictor::new(
        Settings {
            models_dir: root.join("models"),
            state_dir: root.join("state"),
            trace_dir: Some(root.join("trace")),
            history_extra: m.extra,
        },
        (m.loader)(),
    )
    .expect("predictor");
    assert!(p.scan().is_empty(), "not connected yet");
    p
}

/// The executor answers one `HISTORY` request from `series[..upto]`; returns what the
/// predictor sent back (only `HISTORY_END` can produce lines).
fn answer(p: &mut Predictor, m: &Model, req: &str, series: &[Bar], upto: usize) -> Vec<String> {
    let f: Vec<&str> = req.split('|').collect();
    assert_eq!(f[..3], ["HISTORY", SYM, m.tf], "{req}");
    let count: usize = f[3].parse().expect("count");
    let from = upto.saturating_sub(count);
    for (i, b) in series[from..upto].iter().enumerate() {
        let out = p.handle_line(&bar_line(SYM, m.tf, b, (from + i) as u64, true));
        assert!(out.is_empty(), "{out:?}");
    }
    p.handle_line(&format!("HISTORY_END|{SYM}|{}|{}", m.tf, upto - from))
}

/// Connects: one `HISTORY` request, answered from `series[..upto]`.
fn connect(p: &mut Predictor, m: &Model, series: &[Bar], upto: usize) {
    let reqs = p.on_connected();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let out = answer(p, m, &reqs[0], series, upto);
    assert!(out.is_empty(), "history sends no signals: {out:?}");
}

/// Bar `i` of `series` live, then the state write; returns the lines sent.
fn live(p: &mut Predictor, m: &Model, series: &[Bar], i: usize) -> Vec<String> {
    let out = p.handle_line(&bar_line(SYM, m.tf, &series[i], i as u64, false));
    p.persist().expect("persist");
    out
}

/// A fresh predictor on `series`: history up to `from`, then bars `from..to` live. Returns the
/// signals.
fn plain_run(root: &Path, m: &Model, series: &[Bar], from: usize, to: usize) -> Vec<String> {
    let mut p = new_predictor(root, m);
    connect(&mut p, m, series, from);
    let mut out = Vec::new();
    for i in from..to {
        let o = live(&mut p, m, series, i);
        assert_eq!(o.len(), 1, "one signal per live bar: {o:?}");
        out.extend(o);
    }
    out
}

fn read(root: &Path, file: &str) -> String {
    std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The state file, the trace and its bars (a later row for a time replacing the earlier one)
/// of `a` equal those of `b`.
fn assert_same_files(a: &Path, b: &Path, name: &str) {
    assert_eq!(
        read(a, "state/predictor-state.json"),
        read(b, "state/predictor-state.json"),
        "state file"
    );
    for f in [
        format!("trace/{name}.csv"),
        format!("trace/{name}.bars.csv"),
    ] {
        assert_eq!(dedup_trace(&read(a, &f)), read(b, &f), "{f}");
    }
}

/// The target of a `SIGNAL` line: `DIR:…|INT:…`.
fn target(signal: &str) -> String {
    let i = signal.find("|DIR:").unwrap_or_else(|| panic!("{signal}"));
    signal[i..].to_string()
}

/// `b` with its close moved by the factor `f` (high and low widened to keep it valid).
fn revise(b: &Bar, f: f64) -> Bar {
    let close = b.close * f;
    Bar {
        close,
        high: b.high.max(close),
        low: b.low.min(close),
        ..*b
    }
}

fn with(series: &[Bar], i: usize, bar: Bar) -> Vec<Bar> {
    let mut c = series.to_vec();
    c[i] = bar;
    c
}

const FACTORS: [f64; 12] = [
    1.001, 0.999, 1.002, 0.998, 1.005, 0.995, 1.01, 0.99, 1.02, 0.98, 1.04, 0.96,
];

#[derive(Clone, Copy, Debug)]
enum After {
    /// The history answer comes in, then the next live bar.
    HistoryThenLive,
    /// The next live bar arrives while the history request is pending (held, then signalled).
    LiveDuringHistory,
    /// The predictor is killed before the answer and restarted from its state file.
    Crash,
}

/// Runs `series` to bar `r` live, revises bar `r` to `c[r]`, lets the rewind finish (`after`),
/// then bar `r + 1` live; checks everything against a fresh run on `c`.
fn revision_case(
    m: &Model,
    tag: &str,
    series: &[Bar],
    c: &[Bar],
    from: usize,
    r: usize,
    after: After,
) {
    let root = tmpdir(&format!("rev-{tag}"));
    let mut p = new_predictor(&root, m);
    connect(&mut p, m, series, from);
    for i in from..r {
        assert_eq!(live(&mut p, m, series, i).len(), 1);
    }
    let before_r = read(&root, "state/predictor-state.json");
    assert_eq!(live(&mut p, m, series, r).len(), 1);
    assert_ne!(read(&root, "state/predictor-state.json"), before_r);

    let out = p.handle_line(&rev_line(SYM, m.tf, &c[r], r as u64));
    assert_eq!(
        out,
        [format!("HISTORY|{SYM}|{}|{}", m.tf, m.window + m.extra)],
        "a rewind asks for history"
    );
    assert_eq!(
        read(&root, "state/predictor-state.json"),
        before_r,
        "the rewound state (before the revised bar) is on disk before the history answer"
    );
    assert_eq!(p.counters()[m.name].revised, 1);

    let signal = match after {
        After::HistoryThenLive => {
            let o = answer(&mut p, m, &out[0], c, r + 1);
            assert!(o.is_empty(), "bars stepped again send no signal: {o:?}");
            p.persist().expect("persist");
            live(&mut p, m, c, r + 1)
        }
        After::LiveDuringHistory => {
            assert!(
                live(&mut p, m, c, r + 1).is_empty(),
                "held while history is pending"
            );
            // The executor's answer already has bar r + 1: it still gets its SIGNAL.
            let o = answer(&mut p, m, &out[0], c, r + 2);
            p.persist().expect("persist");
            o
        }
        After::Crash => {
            drop(p);
            let mut p = new_predictor(&root, m);
            connect(&mut p, m, c, r + 1);
            let o = live(&mut p, m, c, r + 1);
            assert_eq!(p.counters()[m.name].revised, 0, "nothing differs any more");
            o
        }
    };
    assert_eq!(signal.len(), 1, "{signal:?}");

    let reference = tmpdir(&format!("rev-{tag}-ref"));
    let expected = plain_run(&reference, m, c, from, r + 2);
    assert_eq!(
        signal[0],
        expected[expected.len() - 1],
        "the next live bar's SIGNAL is the corrected run's"
    );
    assert_same_files(&root, &reference, m.name);
    std::fs::remove_dir_all(&root).expect("cleanup");
    std::fs::remove_dir_all(&reference).expect("cleanup");
}

/// A bar `r` (from 60 on) and the first factor whose revision of it changes the target of
/// bar `r + 1` (fake twin, whole runs from bar `from`).
fn fake_revision(tag: &str, series: &[Bar], from: usize) -> (usize, Vec<Bar>) {
    let root = tmpdir(&format!("rev-search-{tag}"));
    let orig = plain_run(&root, &FAKE, series, from, series.len());
    std::fs::remove_dir_all(&root).expect("cleanup");
    for r in 60..series.len() - 1 {
        for f in FACTORS {
            let c = with(series, r, revise(&series[r], f));
            let root = tmpdir(&format!("rev-search-{tag}-{r}-{f}"));
            let sig = plain_run(&root, &FAKE, &c, from, r + 2);
            std::fs::remove_dir_all(&root).expect("cleanup");
            if target(&sig[sig.len() - 1]) != target(&orig[r + 1 - from]) {
                return (r, c);
            }
        }
    }
    panic!("no revision changes a next decision");
}

#[test]
fn rev_rewinds_to_the_run_that_saw_the_corrected_bar() {
    let from = 40;
    let a = bars(120, 1_600_000_000, 0.4);
    let (r, c) = fake_revision("rev", &a, from);
    revision_case(&FAKE, "fake-a", &a, &c, from, r, After::HistoryThenLive);
    revision_case(&FAKE, "fake-b", &a, &c, from, r, After::LiveDuringHistory);
    revision_case(&FAKE, "fake-c", &a, &c, from, r, After::Crash);
}

fn real_bars() -> Vec<Bar> {
    let text = std::fs::read_to_string(repo().join("data/EURUSD_H1.csv")).expect("bars");
    text.lines()
        .skip(1)
        .take(480)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<f64>().expect("number");
            Bar {
                time: oracle_predictor::isotime::parse(f[0]).expect("time"),
                open: n(1),
                high: n(2),
                low: n(3),
                close: n(4),
                volume: n(5),
            }
        })
        .collect()
}

/// A bar `r` (from `from + 5` on) and a revision of it that changes the real model's target at
/// `r + 1`, found with the twin alone (restore before `r`, step the revised bar and the next).
fn real_revision(series: &[Bar], from: usize) -> (usize, Vec<Bar>) {
    let path = repo().join("models/EURUSD_H1.zip");
    let mut twin = ZipLoader.load(&path).expect("model");
    let w = twin.spec().window;
    let target = |s: Step| match s {
        Step::Decision(d) => (d.position.direction, d.position.intensity),
        Step::WarmingUp(_) => panic!("warming up"),
    };
    for b in &series[from - w..from + 5] {
        twin.handle_bar(b).expect("bar");
    }
    for r in from + 5..series.len() - 1 {
        let before = twin.state().expect("state");
        twin.handle_bar(&series[r]).expect("bar");
        let after = twin.state().expect("state");
        let orig = target(twin.handle_bar(&series[r + 1]).expect("bar"));
        for f in FACTORS {
            let bar = revise(&series[r], f);
            twin.restore(&before, &series[r - w..r]).expect("restore");
            twin.handle_bar(&bar).expect("revised bar");
            if target(twin.handle_bar(&series[r + 1]).expect("bar")) != orig {
                return (r, with(series, r, bar));
            }
        }
        twin.restore(&after, &series[r + 1 - w..=r])
            .expect("restore");
    }
    panic!("no revision changes the real model's next target");
}

#[test]
fn rev_on_the_real_model_changes_the_next_target_as_the_corrected_run() {
    let a = real_bars();
    let from = 400;
    let (r, c) = real_revision(&a, from);
    assert!(r + 2 <= a.len());
    // Confirm the change on whole runs, then revise.
    let (o, v) = (tmpdir("rev-real-orig"), tmpdir("rev-real-corr"));
    let orig = plain_run(&o, &REAL, &a, from, r + 2);
    let corr = plain_run(&v, &REAL, &c, from, r + 2);
    assert_ne!(
        target(&orig[orig.len() - 1]),
        target(&corr[corr.len() - 1]),
        "the revision of bar {r} changes the target of bar {}",
        r + 1
    );
    std::fs::remove_dir_all(&o).expect("cleanup");
    std::fs::remove_dir_all(&v).expect("cleanup");
    revision_case(&REAL, "real", &a, &c, from, r, After::LiveDuringHistory);
}

#[test]
fn a_history_answer_that_differs_rewinds() {
    let from = 40;
    let a = bars(120, 1_600_000_000, 0.4);
    let (r, c) = fake_revision("hist", &a, from);
    for (tag, extra) in [("long", 50), ("short", 5)] {
        let m = Model { extra, ..FAKE };
        let root = tmpdir(&format!("rev-hist-{tag}"));
        let mut p = new_predictor(&root, &m);
        connect(&mut p, &m, &a, from);
        for i in from..r + 2 {
            assert_eq!(live(&mut p, &m, &a, i).len(), 1);
        }
        // Reconnect: the answer (up to bar r + 2, which the twin has not seen) has bar r revised.
        p.on_disconnected();
        let reqs = p.on_connected();
        assert_eq!(reqs, [format!("HISTORY|{SYM}|M1|{extra}")]);
        let out = answer(&mut p, &m, &reqs[0], &c, r + 3);
        let out = if extra < 20 {
            // Five bars do not reach a window before bar r: the rewound state is saved and a
            // window's worth asked for.
            assert_eq!(out, [format!("HISTORY|{SYM}|M1|{}", 20 + 2 * REMEMBERED)]);
            let saved: serde_json::Value =
                serde_json::from_str(&read(&root, "state/predictor-state.json")).expect("json");
            assert_eq!(
                saved["models"]["EURUSD_M1"]["state"]["last_bar_time"],
                a[r - 1].time,
                "the rewound state is on disk"
            );
            answer(&mut p, &m, &out[0], &c, r + 3)
        } else {
            out
        };
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(p.counters()["EURUSD_M1"].revised, 1);
        p.persist().expect("persist");
        let sig = live(&mut p, &m, &c, r + 3);
        let reference = tmpdir(&format!("rev-hist-{tag}-ref"));
        let expected = plain_run(&reference, &m, &c, from, r + 4);
        assert_eq!(sig, expected[expected.len() - 1..]);
        assert_same_files(&root, &reference, "EURUSD_M1");
        std::fs::remove_dir_all(&root).expect("cleanup");
        std::fs::remove_dir_all(&reference).expect("cleanup");
    }
}

#[test]
fn a_restart_whose_priming_differs_at_the_saved_bar_steps_it_again() {
    let from = 40;
    let a = bars(120, 1_600_000_000, 0.4);
    let (r, c) = fake_revision("restart", &a, from);
    let root = tmpdir("rev-restart");
    let mut p = new_predictor(&root, &FAKE);
    connect(&mut p, &FAKE, &a, from);
    for i in from..=r {
        assert_eq!(live(&mut p, &FAKE, &a, i).len(), 1);
    }
    let saved: serde_json::Value =
        serde_json::from_str(&read(&root, "state/predictor-state.json")).expect("json");
    let last = &saved["models"]["EURUSD_M1"]["last_bar"];
    assert_eq!(last["time"], a[r].time, "the last bar is saved");
    assert_eq!(last["close"], a[r].close);
    assert_eq!(last["before"]["last_bar_time"], a[r - 1].time);
    drop(p); // down while bar r is revised and bar r + 1 closes
    let mut p = new_predictor(&root, &FAKE);
    connect(&mut p, &FAKE, &c, r + 2);
    assert_eq!(p.counters()["EURUSD_M1"].revised, 1);
    let sig = live(&mut p, &FAKE, &c, r + 2);
    let reference = tmpdir("rev-restart-ref");
    let expected = plain_run(&reference, &FAKE, &c, from, r + 3);
    assert_eq!(sig, expected[expected.len() - 1..]);
    assert_same_files(&root, &reference, "EURUSD_M1");
    let rows = read(&root, "trace/EURUSD_M1.csv");
    let t = oracle_predictor::isotime::format(a[r].time);
    assert_eq!(
        rows.lines().filter(|l| l.starts_with(&t)).count(),
        2,
        "the re-stepped row is appended:\n{rows}"
    );
    std::fs::remove_dir_all(&root).expect("cleanup");
    std::fs::remove_dir_all(&reference).expect("cleanup");
}

#[test]
fn old_or_identical_revisions_change_nothing() {
    let (from, r) = (40, 70);
    let a = bars(120, 1_600_000_000, 0.4);
    let root = tmpdir("rev-noop");
    let mut p = new_predictor(&root, &FAKE);
    connect(&mut p, &FAKE, &a, from);
    for i in from..=r {
        assert_eq!(live(&mut p, &FAKE, &a, i).len(), 1);
    }
    let files = |root: &Path| {
        (
            read(root, "state/predictor-state.json"),
            read(root, "trace/EURUSD_M1.csv"),
        )
    };
    let before = files(&root);
    // The same values again: nothing to do.
    assert!(
        p.handle_line(&rev_line(SYM, "M1", &a[r], r as u64))
            .is_empty()
    );
    // Older than the remembered bars: not applied, counted.
    let old = r - REMEMBERED;
    assert!(
        p.handle_line(&rev_line(SYM, "M1", &revise(&a[old], 1.01), old as u64))
            .is_empty()
    );
    p.persist().expect("persist");
    assert_eq!(files(&root), before);
    let n = &p.counters()["EURUSD_M1"];
    assert_eq!((n.revised, n.revision_unapplied, n.ignored), (0, 1, 0));
    // The oldest remembered bar is still revised.
    let oldest = r + 1 - REMEMBERED;
    let out = p.handle_line(&rev_line(
        SYM,
        "M1",
        &revise(&a[oldest], 1.01),
        oldest as u64,
    ));
    assert_eq!(out, [format!("HISTORY|{SYM}|M1|70")]);
    assert_eq!(p.counters()["EURUSD_M1"].revised, 1);
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn a_revision_of_a_held_bar_replaces_it() {
    let a = bars(60, 1_600_000_000, 0.0);
    let c = with(
        &with(&a, 29, revise(&a[29], 1.004)),
        30,
        revise(&a[30], 0.996),
    );
    let run = |root: &Path, revise_held: bool| {
        let mut p = new_predictor(root, &FAKE);
        let reqs = p.on_connected();
        assert_eq!(reqs, [format!("HISTORY|{SYM}|M1|40")]);
        let hist = if revise_held { &a } else { &c };
        for (i, b) in hist[10..30].iter().enumerate() {
            assert!(
                p.handle_line(&bar_line(SYM, "M1", b, 10 + i as u64, true))
                    .is_empty()
            );
        }
        let held = if revise_held { &a } else { &c };
        assert!(
            p.handle_line(&bar_line(SYM, "M1", &held[30], 30, false))
                .is_empty()
        );
        if revise_held {
            // Bar 29 waits in the history buffer, bar 30 in the live one.
            for i in [29, 30] {
                assert!(
                    p.handle_line(&rev_line(SYM, "M1", &c[i], i as u64))
                        .is_empty()
                );
            }
        }
        let out = p.handle_line(&format!("HISTORY_END|{SYM}|M1|20"));
        p.persist().expect("persist");
        (out, p.counters()["EURUSD_M1"].clone())
    };
    let root = tmpdir("rev-held");
    let (out, n) = run(&root, true);
    let reference = tmpdir("rev-held-ref");
    let (expected, _) = run(&reference, false);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out, expected, "the revised bar is the one taken");
    assert_eq!(
        (n.bars, n.live_bars, n.signals, n.revised, n.ignored),
        (21, 1, 1, 0, 0),
        "taken once"
    );
    for f in [
        "state/predictor-state.json",
        "trace/EURUSD_M1.csv",
        "trace/EURUSD_M1.bars.csv",
    ] {
        assert_eq!(read(&root, f), read(&reference, f), "{f}");
    }
    std::fs::remove_dir_all(&root).expect("cleanup");
    std::fs::remove_dir_all(&reference).expect("cleanup");
}
