//! `Twin::handle_bars` must leave every twin and every outcome exactly
//! as `Twin::handle_bar` on each twin does, bit for bit, whatever the mix of models, window
//! phases, warm-up states and rejected bars.

use oracle_core::model::{CovarianceParams, ModelParams};
use oracle_core::synthetic::{self, Bars};
use oracle_core::{Bar, BarError, Model, Step, Twin};

fn models() -> Vec<Box<Model>> {
    let mut out: Vec<Box<Model>> = Vec::new();
    for (i, (k, full)) in [
        (5, false),
        (5, true),
        (5, false),
        (3, true),
        (5, true),
        (8, false),
        (2, true),
        (5, false),
        (5, true),
        (1, false),
        (5, false),
        (3, false),
        (3, false),
        (2, true),
        (2, false),
        (8, false),
        (8, true),
        (7, false),
        (7, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = synthetic::model_params(7 + i as u64, k, full);
        if i == 7 {
            p.window = 300; // a different window breaks a lockstep group
        }
        if i == 8 {
            p.hmm_periods.momentum = 25; // so does a different HMM lookback
        }
        if i == 11 || i == 12 {
            unreachable_likely_state(&mut p);
        }
        if i == 13 || i == 14 {
            // Predictions overflow: `Σu` becomes ∞, then the posterior NaN.
            for row in &mut p.hmm.transmat[..2] {
                row[..2].copy_from_slice(&[1e308, 1e308]);
            }
        }
        out.push(Box::new(Model::new(&p).expect("synthetic model")));
    }
    out
}

/// State 2 is never predicted (`startprob` and every `transmat[k][2]` are 0) but is often the
/// only state whose emission does not underflow (states 0 and 1 have tiny variances), so on
/// many bars `Σu = 0` and the filter takes its `pred / Σpred` branch.
fn unreachable_likely_state(p: &mut ModelParams) {
    p.hmm.startprob[..3].copy_from_slice(&[0.5, 0.5, 0.0]);
    for row in &mut p.hmm.transmat[..3] {
        row[..3].copy_from_slice(&[0.6, 0.4, 0.0]);
    }
    p.hmm.means[..3].copy_from_slice(&[[0.5, 0.5, 0.5], [-0.5, 0.0, -0.5], [0.0, 0.0, 0.0]]);
    p.hmm.covars = CovarianceParams::Diag({
        let mut c = [[1.0; 3]; oracle_core::MAX_STATES];
        c[0] = [1e-4; 3];
        c[1] = [2e-4; 3];
        c
    });
}

/// `Debug` prints floats as their shortest round trip, so equal strings mean equal bits.
fn same(a: &Result<Step, BarError>, b: &Result<Step, BarError>) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn handle_bars_equals_handle_bar_on_each_twin() {
    let ms = models();
    // Each model twice, so groups of four form; twins start at different times, so their
    // windows wrap at different places and some are still warming up.
    let mut solo: Vec<Twin<'_>> = Vec::new();
    let mut feeds: Vec<Bars> = Vec::new();
    for (i, m) in ms.iter().chain(ms.iter()).enumerate() {
        let mut t: Twin<'_> = Twin::new(m).expect("twin");
        let mut bars = Bars::new(100 + i as u64, 1_600_000_000);
        for _ in 0..(i * 37) % 420 {
            let _ = t.handle_bar(bars.next().expect("infinite"));
        }
        solo.push(t);
        feeds.push(bars);
    }
    let mut fleet = solo.clone();
    let n = solo.len();
    let mut out = vec![Ok(Step::Decision(dummy_decision())); n];
    let mut decisions = 0;
    for round in 0..500 {
        let bars: Vec<Bar> = feeds
            .iter_mut()
            .enumerate()
            .map(|(i, f)| {
                let b = f.next().expect("infinite");
                // Now and then a duplicate (rejected) bar.
                if (round + i) % 53 == 0 {
                    Bar {
                        time: b.time - 1_000_000,
                        ..b
                    }
                } else {
                    b
                }
            })
            .collect();
        assert_eq!(Twin::handle_bars(&mut fleet, &bars, &mut out), n);
        for i in 0..n {
            let want = solo[i].handle_bar(bars[i]);
            assert!(same(&want, &out[i]), "round {round}, twin {i}");
            assert_eq!(
                format!("{:?}", solo[i].state()),
                format!("{:?}", fleet[i].state())
            );
            if matches!(want, Ok(Step::Decision(_))) {
                decisions += 1;
            }
        }
    }
    assert!(decisions > 7_000, "{decisions}");
    // A short `out` limits the count; the rest is untouched.
    let bars: Vec<Bar> = feeds
        .iter_mut()
        .map(|f| f.next().expect("infinite"))
        .collect();
    let mut short = vec![Err(BarError::Duplicate { time: 0 }); 3];
    assert_eq!(Twin::handle_bars(&mut fleet, &bars, &mut short), 3);
    for i in 0..3 {
        assert!(same(&solo[i].handle_bar(bars[i]), &short[i]));
    }
    assert_eq!(
        format!("{:?}", solo[3].state()),
        format!("{:?}", fleet[3].state())
    );
}

fn dummy_decision() -> oracle_core::Decision {
    let ms = models();
    let mut t: Twin<'_> = Twin::new(&ms[0]).expect("twin");
    let mut bars = Bars::new(1, 1_600_000_000);
    loop {
        if let Ok(Step::Decision(d)) = t.handle_bar(bars.next().expect("infinite")) {
            return d;
        }
    }
}

/// The shell keeps each twin in its own box beside its files; `handle_bars_mut` runs those
/// borrowed twins through the same lanes, bit for bit as `handle_bar` on each.
#[test]
fn handle_bars_mut_over_boxed_twins_equals_handle_bar_on_each_twin() {
    let ms = models();
    let mut solo: Vec<Twin<'_>> = Vec::new();
    let mut feeds: Vec<Bars> = Vec::new();
    for (i, m) in ms.iter().chain(ms.iter()).enumerate() {
        let mut t: Twin<'_> = Twin::new(m).expect("twin");
        let mut bars = Bars::new(300 + i as u64, 1_600_000_000);
        for _ in 0..(i * 29) % 400 {
            let _ = t.handle_bar(bars.next().expect("infinite"));
        }
        solo.push(t);
        feeds.push(bars);
    }
    let mut boxed: Vec<Box<Twin<'_>>> = solo.iter().cloned().map(Box::new).collect();
    let n = solo.len();
    let mut out = vec![Err(BarError::Duplicate { time: 0 }); n];
    let mut decisions = 0;
    for round in 0..200 {
        let bars: Vec<Bar> = feeds
            .iter_mut()
            .map(|f| f.next().expect("infinite"))
            .collect();
        let mut refs: Vec<&mut Twin<'_>> = boxed.iter_mut().map(|b| &mut **b).collect();
        assert_eq!(Twin::handle_bars_mut(&mut refs, &bars, &mut out), n);
        for i in 0..n {
            let want = solo[i].handle_bar(bars[i]);
            assert!(same(&want, &out[i]), "round {round}, twin {i}");
            assert_eq!(
                format!("{:?}", solo[i].state()),
                format!("{:?}", boxed[i].state())
            );
            if matches!(want, Ok(Step::Decision(_))) {
                decisions += 1;
            }
        }
    }
    assert!(decisions > 2_000, "{decisions}");
}
