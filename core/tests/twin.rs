//! Twin-level tests: a naive from-scratch reference (no caching, no ring) must agree bit for bit,
//! restore + priming must reproduce the uninterrupted run, the position rule must match a simple
//! model, and no bar sequence may panic or change a twin when rejected.

use oracle_core::model::{Activation, CovarianceParams, ModelParams};
use oracle_core::position::{self, Action, Position};
use oracle_core::synthetic::{self, Bars};
use oracle_core::{Bar, BarError, Model, Step, Twin, TwinState};
use proptest::prelude::*;

const LOG_2PI: f64 = 1.837_877_066_409_345_3;

fn seq(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut s = 0.0;
    for v in values {
        s += v;
    }
    s
}

/// Everything recomputed from the `W` bars of one window, straight from the contract's text.
struct Naive {
    features: [f64; 5],
    posterior: Vec<f64>,
    regime: usize,
}

fn naive(p: &ModelParams, w: &[Bar]) -> Naive {
    let n = w.len() - 1;
    let c: Vec<f64> = w.iter().map(|b| b.close).collect();
    let h: Vec<f64> = w.iter().map(|b| b.high).collect();
    let l: Vec<f64> = w.iter().map(|b| b.low).collect();
    let v: Vec<f64> = w.iter().map(|b| b.volume).collect();
    let m = &p.market;
    let roc = c[n] / c[n - m.roc] - 1.0;
    let tr = |i: usize| {
        (h[i] - l[i])
            .max((h[i] - c[i - 1]).abs())
            .max((l[i] - c[i - 1]).abs())
    };
    let pa = m.atr as f64;
    let mut atr = seq((1..=m.atr).map(tr)) / pa;
    for i in m.atr + 1..=n {
        atr = (atr * (pa - 1.0) + tr(i)) / pa;
    }
    let alpha = 2.0 / (m.ema as f64 + 1.0);
    let mut e = seq(c[..m.ema].iter().copied()) / m.ema as f64;
    for ci in &c[m.ema..=n] {
        e = e + alpha * (ci - e);
    }
    let hh = h[n + 1 - m.range..=n]
        .iter()
        .copied()
        .fold(f64::MIN, f64::max);
    let ll = l[n + 1 - m.range..=n]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    let s = seq(v[n + 1 - m.volume_ma..=n].iter().copied()) / m.volume_ma as f64;
    let vol = if s > 0.0 { v[n] / s - 1.0 } else { 0.0 };
    let features = [roc, atr / c[n], c[n] / e - 1.0, (hh - ll) / c[n], vol];

    // HMM, emissions recomputed for every window index.
    let hp = &p.hmm_periods;
    let lb = hp.momentum.max(hp.consistency).max(hp.range - 1);
    let hm = &p.hmm;
    let k = hm.n_states;
    let mut alpha_v: Vec<f64> = Vec::new();
    for i in lb..=n {
        let mom = c[i] / c[i - hp.momentum] - 1.0;
        let ups = (i + 1 - hp.consistency..=i)
            .filter(|&j| c[j] > c[j - 1])
            .count();
        let cons = ups as f64 / hp.consistency as f64;
        let rh = h[i + 1 - hp.range..=i]
            .iter()
            .copied()
            .fold(f64::MIN, f64::max);
        let rl = l[i + 1 - hp.range..=i]
            .iter()
            .copied()
            .fold(f64::MAX, f64::min);
        let raw = [mom, cons, (rh - rl) / c[i]];
        let x: Vec<f64> = (0..3)
            .map(|d| (raw[d] - hm.feature_mean[d]) / hm.feature_std[d])
            .collect();
        let ll: Vec<f64> = (0..k)
            .map(|s| {
                let mu = &hm.means[s];
                let (cst, q) = match &hm.covars {
                    CovarianceParams::Diag(cv) => {
                        let cc: Vec<f64> = cv[s].iter().map(|v| v.max(f64::MIN_POSITIVE)).collect();
                        let slog = seq(cc.iter().map(|v| libm::log(*v)));
                        let q = seq((0..3).map(|d| (x[d] - mu[d]) * (x[d] - mu[d]) / cc[d]));
                        (slog, q)
                    }
                    CovarianceParams::Full(cv) => {
                        let chol = |jit: f64| -> Option<[[f64; 3]; 3]> {
                            let mut lm = [[0.0; 3]; 3];
                            for j in 0..3 {
                                let sj =
                                    cv[s][j][j] + jit - seq((0..j).map(|q| lm[j][q] * lm[j][q]));
                                if sj <= 0.0 || sj.is_nan() {
                                    return None;
                                }
                                lm[j][j] = libm::sqrt(sj);
                                for r in j + 1..3 {
                                    let t = seq((0..j).map(|q| lm[r][q] * lm[j][q]));
                                    lm[r][j] = (cv[s][r][j] - t) / lm[j][j];
                                }
                            }
                            Some(lm)
                        };
                        let lm = chol(0.0).or_else(|| chol(1e-7)).expect("pd");
                        let logdet = 2.0 * seq((0..3).map(|j| libm::log(lm[j][j])));
                        let mut z = [0.0; 3];
                        for r in 0..3 {
                            let t = seq((0..r).map(|q| lm[r][q] * z[q]));
                            z[r] = ((x[r] - mu[r]) - t) / lm[r][r];
                        }
                        (logdet, seq(z.iter().map(|v| v * v)))
                    }
                };
                -0.5 * (3.0 * LOG_2PI + cst + q)
            })
            .collect();
        let mx = ll
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, |a, b| if b > a { b } else { a });
        let b: Vec<f64> = ll.iter().map(|v| libm::exp(v - mx)).collect();
        let pred: Vec<f64> = if i == lb {
            hm.startprob[..k].to_vec()
        } else {
            (0..k)
                .map(|j| seq((0..k).map(|q| alpha_v[q] * hm.transmat[q][j])))
                .collect()
        };
        let u: Vec<f64> = (0..k).map(|j| pred[j] * b[j]).collect();
        let su = seq(u.iter().copied());
        alpha_v = if su > 0.0 && su.is_finite() {
            u.iter().map(|x| x / su).collect()
        } else {
            let sp = seq(pred.iter().copied());
            pred.iter().map(|x| x / sp).collect()
        };
    }
    let mut regime = 0;
    for (i, v) in alpha_v.iter().enumerate() {
        if *v > alpha_v[regime] {
            regime = i;
        }
    }
    Naive {
        features,
        posterior: alpha_v,
        regime,
    }
}

/// Row-major, one output at a time: the plain textbook forward pass.
fn naive_logits(p: &ModelParams, obs: &[f32]) -> Vec<f32> {
    let mut x = obs.to_vec();
    for (l, layer) in p.layers[..p.n_layers].iter().enumerate() {
        let w = p.layer_weights(l).expect("layer weights");
        x = (0..layer.out_dim)
            .map(|o| {
                let mut s = 0.0f32;
                for (i, xi) in x.iter().enumerate() {
                    s += w[o * layer.in_dim + i] * xi;
                }
                let v = s + layer.bias[o];
                match layer.activation {
                    Activation::Tanh => libm::tanh(f64::from(v)) as f32,
                    Activation::Relu => v.max(0.0),
                    Activation::Identity => v,
                }
            })
            .collect();
    }
    x
}

fn run_against_naive(params: &ModelParams, n_bars: usize) -> usize {
    let model = Model::new(params).expect("model");
    let mut twin: Twin<'_> = Twin::new(&model).expect("twin");
    let bars: Vec<Bar> = Bars::new(7, 1_600_000_000).take(n_bars).collect();
    let w = params.window;
    let mut decisions = 0;
    for (t, bar) in bars.iter().enumerate() {
        let step = twin.handle_bar(*bar).expect("bar");
        match step {
            Step::WarmingUp(_) => assert!(t + 1 < w),
            Step::Decision(d) => {
                decisions += 1;
                let r = naive(params, &bars[t + 1 - w..=t]);
                assert_eq!(
                    d.market_features.map(f64::to_bits),
                    r.features.map(f64::to_bits),
                    "bar {t}"
                );
                for (a, b) in d.posterior[..d.n_states].iter().zip(&r.posterior) {
                    assert_eq!(a.to_bits(), b.to_bits(), "posterior bar {t}");
                }
                assert_eq!(d.regime, r.regime, "regime bar {t}");
                let logits = naive_logits(params, &d.obs[..d.obs_dim]);
                for (a, b) in d.logits.iter().zip(&logits) {
                    assert_eq!(a.to_bits(), b.to_bits(), "logits bar {t}");
                }
            }
        }
    }
    decisions
}

#[test]
fn twin_equals_naive_reference_diag() {
    let params = synthetic::model_params(3, 5, false);
    assert!(run_against_naive(&params, 800) > 400);
}

#[test]
fn twin_equals_naive_reference_full() {
    let params = synthetic::model_params(4, 3, true);
    assert!(run_against_naive(&params, 800) > 400);
}

/// The ATR and EMA of every window still to come advance with each bar the twin takes (one chain
/// per window start): a window shorter than the twin's ring, the shortest and longest periods a
/// model may have, and restarts primed mid-stream keep the naive window's bits.
#[test]
fn market_chains_keep_the_naive_windows_bits_for_any_window_periods_and_restart() {
    for (window, atr, ema) in [
        (300, 14, 200),
        (60, 1, 1),
        (60, 2, 2),
        (40, 39, 40),
        (350, 349, 350),
    ] {
        let mut params = synthetic::model_params(21, 3, false);
        params.window = window;
        params.market.atr = atr;
        params.market.ema = ema;
        assert!(
            run_against_naive(&params, 700) > 300,
            "{window} {atr} {ema}"
        );
        let model = Model::new(&params).unwrap();
        let bars: Vec<Bar> = Bars::new(7, 1_600_000_000).take(700).collect();
        let mut full: Twin<'_> = Twin::new(&model).unwrap();
        let steps: Vec<(Step, TwinState)> = bars
            .iter()
            .map(|b| (full.handle_bar(*b).unwrap(), full.state()))
            .collect();
        for cut in [window, window + 3, 500] {
            let mut twin: Twin<'_> = Twin::restore(&model, &steps[cut].1).unwrap();
            // Primed with one bar more than the window: the ring holds more than a window.
            for b in &bars[cut - window..=cut] {
                twin.prime(*b).unwrap();
            }
            for (t, b) in bars.iter().enumerate().skip(cut + 1) {
                assert_eq!(
                    twin.handle_bar(*b).unwrap(),
                    steps[t].0,
                    "cut {cut}, bar {t}"
                );
            }
        }
    }
}

/// The filter's `pred / Σpred` branch: state 2 is never predicted but is often the only state
/// whose emission does not underflow, so `Σu = 0` on many bars.
#[test]
fn twin_equals_naive_reference_when_observations_are_impossible() {
    let mut params = Box::new(synthetic::model_params(6, 3, false));
    params.hmm.startprob[..3].copy_from_slice(&[0.5, 0.5, 0.0]);
    for row in &mut params.hmm.transmat[..3] {
        row[..3].copy_from_slice(&[0.6, 0.4, 0.0]);
    }
    params.hmm.means[..3].copy_from_slice(&[[0.5, 0.5, 0.5], [-0.5, 0.0, -0.5], [0.0; 3]]);
    let mut c = [[1.0; 3]; oracle_core::MAX_STATES];
    c[0] = [1e-4; 3];
    c[1] = [2e-4; 3];
    params.hmm.covars = CovarianceParams::Diag(c);
    assert!(run_against_naive(&params, 600) > 200);
    // Overflowing predictions: `Σu = ∞`, then NaN posteriors.
    let mut params = Box::new(synthetic::model_params(8, 2, true));
    for row in &mut params.hmm.transmat[..2] {
        row[..2].copy_from_slice(&[1e308, 1e308]);
    }
    assert!(run_against_naive(&params, 500) > 100);
}

#[test]
fn relu_policy_runs_and_matches_naive() {
    let mut params = synthetic::model_params(5, 4, false);
    for layer in &mut params.layers[..2] {
        layer.activation = Activation::Relu;
    }
    assert!(run_against_naive(&params, 500) > 100);
}

/// SB3's `net_arch=[256, 256]` with relu (the widest the core holds) and `[128, 128, 128]` with
/// tanh run bit for bit like the textbook forward pass; a 100-wide layer exercises the padded
/// 128-lane block.
#[test]
fn wide_policies_up_to_256_256_match_naive() {
    let params = synthetic::model_params_with(9, 8, false, &[256, 256], Activation::Relu);
    assert!(run_against_naive(&params, 450) > 50);
    let params = synthetic::model_params_with(10, 5, true, &[128, 128, 128], Activation::Tanh);
    assert!(run_against_naive(&params, 450) > 50);
    let params = synthetic::model_params_with(11, 3, false, &[100, 33], Activation::Tanh);
    assert!(run_against_naive(&params, 450) > 50);
}

/// A policy wider than the core holds is refused, naming the weight count (not a panic).
#[test]
fn a_policy_beyond_256_256_is_refused_by_size() {
    let needed = oracle_core::model::policy_weights(16, &[256, 256, 256]);
    assert!(needed > oracle_core::MAX_POLICY_WEIGHTS);
    let p = Box::new(synthetic::model_params_with(
        12,
        8,
        false,
        &[256, 256, 256],
        Activation::Relu,
    ));
    assert_eq!(
        Model::new(&p).err(),
        Some(oracle_core::ModelError::PolicyTooLarge { weights: needed })
    );
    assert!(matches!(
        refusal(12, 5, false, |p| p.layers[1].out_dim = 257),
        Some(oracle_core::ModelError::BadLayerShape {
            layer: 1,
            out_dim: 257,
            ..
        })
    ));
}

/// `rebuild` in place gives exactly `Model::new`'s model, also over a wider model (the padding
/// of the wider one's weights is cleared), and leaves the model unchanged on a refusal.
/// `Model::new(p)` equals `m` (in its own frame: debug builds keep every temporary).
fn equals_new(m: &Model, p: &ModelParams) -> bool {
    *m == Model::new(p).expect("model")
}

#[test]
fn rebuild_in_place_equals_new_and_keeps_the_model_on_error() {
    let wide = Box::new(synthetic::model_params_with(
        13,
        8,
        true,
        &[256, 256],
        Activation::Relu,
    ));
    let narrow = Box::new(synthetic::model_params(14, 3, false));
    let mut slot: Box<Model> = Box::new(Model::PLACEHOLDER);
    slot.rebuild(&wide).expect("wide");
    assert!(equals_new(&slot, &wide));
    slot.rebuild(&narrow).expect("narrow");
    assert!(equals_new(&slot, &narrow));
    let mut bad = narrow.clone();
    bad.hmm.transmat[0][0] = -1.0;
    assert!(slot.rebuild(&bad).is_err());
    assert!(equals_new(&slot, &narrow));
}

/// The placeholder is a model `Model::new` would build: one state, default periods, a zero
/// 9 → 7 policy.
#[test]
fn the_placeholder_is_a_valid_model() {
    let mut p = Box::new(synthetic::model_params(15, 1, false));
    p.rl_mean = [0.0; 5];
    p.rl_std = [1.0; 5];
    p.costs.spread_points = 0.0;
    p.costs.slippage_points = 0.0;
    p.costs.commission_per_lot = 0.0;
    p.hmm.startprob[0] = 1.0;
    p.hmm.transmat[0][0] = 1.0;
    p.hmm.means[0] = [0.0; 3];
    p.hmm.covars = CovarianceParams::Diag([[1.0; 3]; oracle_core::MAX_STATES]);
    p.hmm.feature_mean = [0.0; 3];
    p.hmm.feature_std = [1.0; 3];
    p.n_layers = 1;
    p.layers[0] = oracle_core::LayerParams::ZERO;
    p.layers[0].in_dim = 9;
    p.layers[0].out_dim = 7;
    p.weights.fill(0.0);
    assert!(equals_new(&Model::PLACEHOLDER, &p));
}

#[test]
fn restore_and_prime_reproduce_the_uninterrupted_run() {
    let params = synthetic::model_params(11, 5, true);
    let model = Model::new(&params).unwrap();
    let bars: Vec<Bar> = Bars::new(13, 1_500_000_000).take(1400).collect();
    let mut full: Twin<'_> = Twin::new(&model).unwrap();
    let steps: Vec<(Step, TwinState)> = bars
        .iter()
        .map(|b| {
            let s = full.handle_bar(*b).unwrap();
            (s, full.state())
        })
        .collect();
    let mut checked_open = false;
    for cut in [349usize, 350, 700, 901, 1200] {
        let state = steps[cut].1;
        checked_open |= state.position_direction != 0;
        let mut twin: Twin<'_> = Twin::restore(&model, &state).unwrap();
        for b in &bars[cut + 1 - 350..=cut] {
            twin.prime(*b).unwrap();
        }
        assert_eq!(twin.state(), state);
        for (t, b) in bars.iter().enumerate().skip(cut + 1) {
            let s = twin.handle_bar(*b).unwrap();
            assert_eq!(s, steps[t].0, "cut {cut}, bar {t}");
            assert_eq!(twin.state(), steps[t].1);
        }
    }
    assert!(
        checked_open,
        "no restart with an open position was exercised"
    );
}

#[test]
fn priming_refuses_bars_after_the_state_and_fresh_twins() {
    let model = Model::new(&synthetic::model_params(1, 5, false)).unwrap();
    let bars: Vec<Bar> = Bars::new(2, 0).take(3).collect();
    let mut fresh: Twin<'_> = Twin::new(&model).unwrap();
    assert_eq!(
        fresh.prime(bars[0]),
        Err(oracle_core::PrimeError::NothingToPrime)
    );
    let state = TwinState {
        last_bar_time: Some(bars[1].time),
        bars_seen: 2,
        ..TwinState::FRESH
    };
    let mut t: Twin<'_> = Twin::restore(&model, &state).unwrap();
    t.prime(bars[0]).unwrap();
    assert!(matches!(
        t.prime(bars[0]),
        Err(oracle_core::PrimeError::Bar(BarError::Duplicate { .. }))
    ));
    assert!(matches!(
        t.prime(bars[2]),
        Err(oracle_core::PrimeError::AfterLastBar { .. })
    ));
    assert!(matches!(
        t.handle_bar(bars[1]),
        Err(BarError::Duplicate { .. })
    ));
    assert!(matches!(t.handle_bar(bars[2]), Ok(Step::WarmingUp(_))));
}

#[test]
fn restore_refuses_inconsistent_states() {
    let model = Model::new(&synthetic::model_params(1, 5, false)).unwrap();
    let ok = TwinState {
        last_bar_time: Some(10),
        bars_seen: 5,
        position_direction: 1,
        position_intensity: 2,
        entry_price: 1.1,
        realized_pnl: -3.0,
        trades: 4,
    };
    assert!(Twin::<'_, 350>::restore(&model, &ok).is_ok());
    let bad = [
        TwinState {
            position_direction: 2,
            ..ok
        },
        TwinState {
            position_intensity: 0,
            ..ok
        },
        TwinState {
            position_intensity: 4,
            ..ok
        },
        TwinState {
            entry_price: 0.0,
            ..ok
        },
        TwinState {
            entry_price: f64::NAN,
            ..ok
        },
        TwinState {
            realized_pnl: f64::INFINITY,
            ..ok
        },
        TwinState {
            last_bar_time: None,
            ..ok
        },
        TwinState {
            position_direction: 0,
            position_intensity: 0,
            entry_price: 1.0,
            ..ok
        },
    ];
    for s in bad {
        assert!(Twin::<'_, 350>::restore(&model, &s).is_err(), "{s:?}");
    }
}

#[test]
fn window_larger_than_capacity_is_refused() {
    let model = Model::new(&synthetic::model_params(1, 5, false)).unwrap();
    assert!(Twin::<'_, 300>::new(&model).is_err());
    assert!(Twin::<'_, 400>::new(&model).is_ok());
}

/// The refusal of a synthetic model after `edit` (each model in its own frame: a debug build
/// keeps every ~290 KB `ModelParams` and `Model` temporary of one function on the stack).
fn refusal(
    seed: u64,
    n_states: usize,
    full: bool,
    edit: impl FnOnce(&mut ModelParams),
) -> Option<oracle_core::ModelError> {
    let mut p = Box::new(synthetic::model_params(seed, n_states, full));
    edit(&mut p);
    Model::new(&p).err()
}

#[test]
fn model_validation_names_the_parameter() {
    assert!(matches!(
        refusal(1, 5, false, |p| p.window = 100),
        Some(oracle_core::ModelError::WindowTooShort {
            window: 100,
            needed: 200
        })
    ));
    let edit = |p: &mut ModelParams| {
        if let CovarianceParams::Full(c) = &mut p.hmm.covars {
            c[2] = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        }
    };
    assert!(matches!(
        refusal(1, 5, true, edit),
        Some(oracle_core::ModelError::CovarianceNotPositiveDefinite { state: 2 })
    ));
    assert!(matches!(
        refusal(1, 5, false, |p| p.layers[0].in_dim = 12),
        Some(oracle_core::ModelError::LayerInputMismatch { layer: 0, .. })
    ));
    assert!(matches!(
        refusal(1, 5, false, |p| p.hmm.transmat[1][1] = -0.5),
        Some(oracle_core::ModelError::NegativeProbability { .. })
    ));
}

/// A model whose window is small, so property tests reach decisions quickly.
fn small_model() -> oracle_core::InlineModel {
    let mut p = synthetic::model_params(21, 4, true);
    p.window = 40;
    p.market.ema = 20;
    Model::new(&p).unwrap()
}

fn any_price() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.5f64..2.0,
        1 => prop::num::f64::ANY,
        1 => Just(0.0),
        1 => 1e-300f64..1e300,
    ]
}

prop_compose! {
    fn any_bar()(dt in -2i64..5_000, o in any_price(), h in any_price(), l in any_price(),
                 c in any_price(), v in prop_oneof![8 => 0.0f64..5000.0, 1 => prop::num::f64::ANY])
                -> (i64, Bar) {
        (dt, Bar { time: 0, open: o, high: h.max(l), low: h.min(l), close: c, volume: v })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the bars, the twin never panics, and a rejected bar changes nothing.
    #[test]
    fn no_bar_sequence_panics(bars in prop::collection::vec(any_bar(), 1..160)) {
        let model = small_model();
        let mut twin: Twin<'_, 64> = Twin::new(&model).unwrap();
        let mut time = 1_000_000i64;
        for (dt, mut bar) in bars {
            time += dt;
            bar.time = time;
            let before = twin.state();
            let window_before: Vec<_> = twin.window().iter().copied().collect();
            match twin.handle_bar(bar) {
                Ok(_) => {}
                Err(_) => {
                    prop_assert_eq!(twin.state(), before);
                    let window_after: Vec<_> = twin.window().iter().copied().collect();
                    prop_assert!(window_before.len() == window_after.len());
                }
            }
        }
    }

    /// The position rule against a simple model: a list of (direction, intensity, entry) that
    /// closes and opens on every change.
    #[test]
    fn position_rule_matches_a_simple_model(
        steps in prop::collection::vec((0usize..7, 0.5f64..2.0), 1..200)
    ) {
        let costs = synthetic::EURUSD_COSTS;
        let mpp = 1.0;
        let mut pos = Position::FLAT;
        let mut realized = 0.0;
        let mut trades = 0;
        // The simple model: target pair; on change, close (if open) and re-open (if not WAIT).
        let mut m_dir = 0i8;
        let mut m_int = 0u8;
        let mut m_entry = 0.0f64;
        let mut m_realized = 0.0f64;
        let mut m_trades = 0;
        for (a, close) in steps {
            let action = Action::from_index(a).unwrap();
            let t = position::apply(&costs, mpp, pos, action, close);
            pos = t.position;
            if let Some(p) = t.closed_pnl { realized += p; }
            if t.opened { trades += 1; }

            let (td, ti) = [(0, 0), (1, 1), (1, 2), (1, 3), (-1, 1), (-1, 2), (-1, 3)][a];
            if (td, ti) != (m_dir, m_int) {
                if m_dir != 0 {
                    let exit = if m_dir > 0 { close - 2.0 * 0.00001 } else { close + 9.0 * 0.00001 };
                    let lots = costs.lot_sizes[m_int as usize];
                    m_realized += (exit - m_entry) * f64::from(m_dir) / 0.00001 * mpp * lots - 7.0 * lots;
                }
                m_dir = td;
                m_int = ti;
                m_entry = 0.0;
                if td != 0 {
                    m_entry = if td > 0 { close + 9.0 * 0.00001 } else { close - 2.0 * 0.00001 };
                    m_trades += 1;
                }
            }
            prop_assert_eq!((pos.direction, pos.intensity), (m_dir, m_int));
            prop_assert_eq!(pos.entry_price.to_bits(), m_entry.to_bits());
            prop_assert_eq!(realized.to_bits(), m_realized.to_bits());
            prop_assert_eq!(trades, m_trades);
        }
    }
}

/// DESIGN.md's scale budget: 1,000 twins in < 64 MB RSS, so a twin (its 350-bar ring with the
/// cached emissions) must stay well under 64 KB; the weights live once per model.
#[test]
fn twin_and_model_sizes_fit_the_budget() {
    let twin = std::mem::size_of::<Twin<'static>>();
    // A model with room for the largest policy (a loaded one holds only its policy's weights).
    let model = std::mem::size_of::<oracle_core::InlineModel>();
    println!("size_of Twin<350> = {twin} bytes, Model = {model} bytes");
    assert!(twin < 40_000, "{twin}");
    assert!(1000 * twin + 20 * model < 48 << 20);
}
