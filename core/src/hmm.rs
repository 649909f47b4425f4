//! Gaussian-HMM emissions and the scaled causal forward filter (§4), in f64.

use crate::features::BarSlot;
use crate::math::{argmax_f64, max_f64, seq_sum};
use crate::model::{Emission, Model};
use crate::ring::Window;
use crate::{MAX_STATES, N_HMM_FEATURES};

const D: usize = N_HMM_FEATURES;

/// Normalised HMM features `x_d = (raw_d − mean_d) / std_d`.
pub fn normalise(model: &Model, raw: &[f64; D]) -> [f64; D] {
    let h = &model.hmm;
    let mut x = [0.0; D];
    for d in 0..D {
        x[d] = (raw[d] - h.feature_mean[d]) / h.feature_std[d];
    }
    x
}

/// Emission log-densities `ll_k` of the normalised features `x` (zero past `K`).
pub fn log_likelihoods(model: &Model, x: &[f64; D]) -> [f64; MAX_STATES] {
    let h = &model.hmm;
    let mut ll = [0.0; MAX_STATES];
    match &h.emission {
        Emission::Diag { c } => {
            for k in 0..h.k {
                let mu = &h.means[k];
                let q = seq_sum((0..D).map(|d| (x[d] - mu[d]) * (x[d] - mu[d]) / c[k][d]));
                ll[k] = -0.5 * (h.ll_const[k] + q);
            }
        }
        Emission::Full { chol } => {
            for k in 0..h.k {
                let l = &chol[k];
                let mu = &h.means[k];
                let mut z = [0.0; D];
                for i in 0..D {
                    let y = x[i] - mu[i];
                    let t = seq_sum((0..i).map(|m| l[i][m] * z[m]));
                    z[i] = (y - t) / l[i][i];
                }
                let q = seq_sum(z.iter().map(|v| v * v));
                ll[k] = -0.5 * (h.ll_const[k] + q);
            }
        }
    }
    ll
}

/// The scaled emission `b_k = exp(ll_k − max ll)` of raw HMM features (zero past `K`).
pub fn emission(model: &Model, raw: &[f64; D]) -> [f64; MAX_STATES] {
    let k = model.hmm.k;
    let ll = log_likelihoods(model, &normalise(model, raw));
    let m = max_f64(&ll[..k]);
    let mut b = [0.0; MAX_STATES];
    for s in 0..k {
        b[s] = libm::exp(ll[s] - m);
    }
    b
}

/// The forward-filtered posterior at the last bar of `w`, started from `startprob` at its first
/// bar. `w` holds the window's bars `f ..= n` with their cached emissions.
pub fn forward(model: &Model, w: Window<'_, BarSlot>) -> [f64; MAX_STATES] {
    match model.hmm.k {
        1 => forward_k::<1>(model, w),
        2 => forward_k::<2>(model, w),
        3 => forward_k::<3>(model, w),
        4 => forward_k::<4>(model, w),
        5 => forward_k::<5>(model, w),
        6 => forward_k::<6>(model, w),
        7 => forward_k::<7>(model, w),
        _ => forward_k::<MAX_STATES>(model, w),
    }
}

/// The forward filter with `K` known at compile time (so its loops unroll).
///
/// Every sum starts from its first term instead of `0.0 +` it: the terms are products and
/// quotients of non-negative numbers (probabilities are validated `≥ 0` and stored without
/// `−0.0`), so `0.0 + x == x` bit for bit and the contract's `sequential_sum` is unchanged.
fn forward_k<const K: usize>(model: &Model, w: Window<'_, BarSlot>) -> [f64; MAX_STATES] {
    let h = &model.hmm;
    let mut t = [[0.0; K]; K];
    for (dst, src) in t.iter_mut().zip(&h.transmat) {
        dst.copy_from_slice(&src[..K]);
    }
    let mut start = [0.0; K];
    start.copy_from_slice(&h.startprob[..K]);
    let (first, second) = w.as_slices();
    let (s0, rest_a, rest_b) = match (first.split_first(), second.split_first()) {
        (Some((s0, ra)), _) => (s0, ra, second),
        (None, Some((s0, rb))) => (s0, rb, &[][..]),
        (None, None) => return [0.0; MAX_STATES],
    };
    let mut alpha = [0.0; K];
    update::<K>(&start, &s0.emission, &mut alpha);
    for part in [rest_a, rest_b] {
        for slot in part {
            let pred = predict::<K>(&alpha, &t);
            update::<K>(&pred, &slot.emission, &mut alpha);
        }
    }
    let mut out = [0.0; MAX_STATES];
    out[..K].copy_from_slice(&alpha);
    out
}

/// `pred_j = Σ_k α_k t_kj`, the sum sequential in `k` (from its first term, see [`forward_k`]).
#[inline(always)]
pub(crate) fn predict<const K: usize>(alpha: &[f64; K], t: &[[f64; K]; K]) -> [f64; K] {
    let mut pred = [0.0; K];
    for j in 0..K {
        pred[j] = alpha[0] * t[0][j];
    }
    for k in 1..K {
        let a = alpha[k];
        for j in 0..K {
            pred[j] += a * t[k][j];
        }
    }
    pred
}

/// `α = u / Σu` with `u = pred ⊙ b`, or `pred / Σpred` when `Σu` is not a positive finite number.
#[inline(always)]
pub(crate) fn update<const K: usize>(pred: &[f64; K], b: &[f64; MAX_STATES], alpha: &mut [f64; K]) {
    let mut u = [0.0; K];
    for j in 0..K {
        u[j] = pred[j] * b[j];
    }
    let mut s = u[0];
    for v in &u[1..] {
        s += *v;
    }
    if s > 0.0 && s.is_finite() {
        for j in 0..K {
            alpha[j] = u[j] / s;
        }
    } else {
        let mut sp = pred[0];
        for v in &pred[1..] {
            sp += *v;
        }
        for j in 0..K {
            alpha[j] = pred[j] / sp;
        }
    }
}

/// The regime: first index of the posterior's maximum over the `K` states.
pub fn regime(model: &Model, posterior: &[f64; MAX_STATES]) -> usize {
    argmax_f64(&posterior[..model.hmm.k])
}
