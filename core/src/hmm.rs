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

/// Number of [`CHECKPOINTS`].
const N_CHECKPOINTS: usize = 4;

/// Steps after the filter's first bar at which a window's filter is compared with the previous
/// window's (see [`FilterMemo`]). On the bundled models the two agree bit for bit after 13 to 27
/// steps for half the bars and after at most 48 steps on most models.
const CHECKPOINTS: [usize; N_CHECKPOINTS] = [16, 32, 64, 128];

/// What one window's forward filter leaves for the next window's, one bar later.
///
/// The filter restarts from `startprob` at every window's first valid bar (§4), so the window
/// ending at bar `n` and the one ending at `n − 1` run two filters one bar apart. Both apply the
/// same operations to the same emissions from their second common bar on, and each step is a
/// function of `α` and the bar only: once the two `α` are equal bit for bit on one bar, they are
/// equal on every later bar. A fitted HMM forgets its start within a few dozen bars, so the new
/// filter usually meets the old one early; from there on its values are the old ones, and its
/// last bar is one step from the old filter's last `α`. The memo keeps what that needs: the old
/// filter's `α` at [`CHECKPOINTS`] (one bar on, where the new filter compares) and at its last
/// bar. Nothing else is assumed, so the posterior is the full pass's, bit for bit, whether the
/// filters meet or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FilterMemo {
    /// The caller's tag of the window this was computed on (its count of bars pushed), and
    /// the filter's length; `None` when empty.
    tag: Option<(u64, usize)>,
    /// `α` at the filter's bar `CHECKPOINTS[j] + 1` (zero past `K`, and for a checkpoint the
    /// filter does not reach).
    checkpoints: [[f64; MAX_STATES]; N_CHECKPOINTS],
    /// `α` at the filter's last bar.
    end: [f64; MAX_STATES],
}

impl FilterMemo {
    /// No previous window.
    pub(crate) const EMPTY: FilterMemo = FilterMemo {
        tag: None,
        checkpoints: [[0.0; MAX_STATES]; N_CHECKPOINTS],
        end: [0.0; MAX_STATES],
    };
}

/// [`forward`] over `w`, using and then replacing `memo`: `tag` identifies the window (it must
/// differ by exactly one from the tag of the window before it, one bar earlier, and by more from
/// any other). Returns the posterior — [`forward`]'s, bit for bit — and the number of filter
/// steps it took.
pub(crate) fn forward_memo(
    model: &Model,
    w: Window<'_, BarSlot>,
    memo: &mut FilterMemo,
    tag: u64,
) -> ([f64; MAX_STATES], usize) {
    match model.hmm.k {
        1 => forward_memo_k::<1>(model, w, memo, tag),
        2 => forward_memo_k::<2>(model, w, memo, tag),
        3 => forward_memo_k::<3>(model, w, memo, tag),
        4 => forward_memo_k::<4>(model, w, memo, tag),
        5 => forward_memo_k::<5>(model, w, memo, tag),
        6 => forward_memo_k::<6>(model, w, memo, tag),
        7 => forward_memo_k::<7>(model, w, memo, tag),
        _ => forward_memo_k::<MAX_STATES>(model, w, memo, tag),
    }
}

fn first_k<const K: usize>(v: &[f64; MAX_STATES]) -> [f64; K] {
    let mut out = [0.0; K];
    out.copy_from_slice(&v[..K]);
    out
}

fn same_bits<const K: usize>(a: &[f64; K], b: &[f64; MAX_STATES]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

// The checkpoint loops index the lags, the memo's and the new memo's arrays with one index.
#[allow(clippy::needless_range_loop)]
fn forward_memo_k<const K: usize>(
    model: &Model,
    w: Window<'_, BarSlot>,
    memo: &mut FilterMemo,
    tag: u64,
) -> ([f64; MAX_STATES], usize) {
    let h = &model.hmm;
    let len = w.len();
    if len == 0 {
        *memo = FilterMemo::EMPTY;
        return ([0.0; MAX_STATES], 0);
    }
    let mut t = [[0.0; K]; K];
    for (dst, src) in t.iter_mut().zip(&h.transmat) {
        dst.copy_from_slice(&src[..K]);
    }
    let start: [f64; K] = first_k(&h.startprob);
    // A checkpoint is usable when the filter reaches the bar after it (so the previous window's
    // filter, one bar longer at the front, reached it too) and that bar is not the last.
    let usable = |j: usize| CHECKPOINTS[j] + 1 < len;
    let previous = memo.tag == Some((tag.wrapping_sub(1), len));
    let mut next = FilterMemo {
        tag: Some((tag, len)),
        ..FilterMemo::EMPTY
    };
    let mut alpha = [0.0; K];
    let mut steps = 0;
    let mut met = None;
    let (a, b) = w.as_slices();
    for (i, slot) in a.iter().chain(b).enumerate() {
        if i == 0 {
            update::<K>(&start, &slot.emission, &mut alpha);
        } else {
            let pred = predict::<K>(&alpha, &t);
            update::<K>(&pred, &slot.emission, &mut alpha);
        }
        steps += 1;
        for j in 0..N_CHECKPOINTS {
            if i == CHECKPOINTS[j] + 1 {
                next.checkpoints[j][..K].copy_from_slice(&alpha);
            }
            // The previous filter's checkpoint `j` is its bar `CHECKPOINTS[j] + 1`: this
            // filter's bar `CHECKPOINTS[j]`.
            if previous
                && i == CHECKPOINTS[j]
                && usable(j)
                && same_bits(&alpha, &memo.checkpoints[j])
            {
                met = Some(j);
            }
        }
        if met.is_some() {
            break;
        }
    }
    if let Some(m) = met {
        // From bar `CHECKPOINTS[m]` on this filter is the previous one: each later checkpoint
        // and the last bar are one step past the previous filter's value there.
        for j in m..N_CHECKPOINTS {
            if usable(j) {
                let mut v: [f64; K] = first_k(&memo.checkpoints[j]);
                let pred = predict::<K>(&v, &t);
                update::<K>(&pred, &w.at(CHECKPOINTS[j] + 1).emission, &mut v);
                next.checkpoints[j][..K].copy_from_slice(&v);
                steps += 1;
            }
        }
        let last: [f64; K] = first_k(&memo.end);
        let pred = predict::<K>(&last, &t);
        update::<K>(&pred, &w.at(len - 1).emission, &mut alpha);
        steps += 1;
    }
    next.end[..K].copy_from_slice(&alpha);
    *memo = next;
    let mut out = [0.0; MAX_STATES];
    out[..K].copy_from_slice(&alpha);
    (out, steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, Rng};

    /// A stream of bar slots whose emissions are random scaled densities (the largest is 1, the
    /// others mostly far below, as a fitted HMM's are), with every `zero_every`-th bar's all zero (the filter's `pred / Σpred` branch).
    fn slots(
        seed: u64,
        n: usize,
        k: usize,
        zero_every: usize,
    ) -> ([crate::features::BarSlot; 1200], usize) {
        let mut rng = Rng::new(seed);
        let mut out = [crate::features::BarSlot::ZERO; 1200];
        for (i, s) in out.iter_mut().enumerate().take(n) {
            if i % zero_every != zero_every - 1 {
                let top = (rng.next_u64() % k as u64) as usize;
                for (j, b) in s.emission.iter_mut().enumerate().take(k) {
                    *b = if j == top {
                        1.0
                    } else {
                        libm::pow(rng.uniform(), 6.0)
                    };
                }
            }
        }
        (out, n)
    }

    fn model(seed: u64, k: usize) -> crate::InlineModel {
        crate::Model::new(&synthetic::model_params(seed, k, seed % 2 == 0)).expect("model")
    }

    /// Runs the memo over every window of `len` bars of the stream, each one bar after the
    /// last (tags `step` apart), asserting the full filter's bits; returns the steps taken after
    /// the first window and the number of those windows.
    fn run(m: &Model, seed: u64, len: usize, tag_step: u64, zero_every: usize) -> (usize, usize) {
        let (s, n) = slots(seed, 1200, m.hmm.k, zero_every);
        let mut memo = FilterMemo::EMPTY;
        let (mut steps, mut windows) = (0, 0);
        for end in len..=n {
            let w = Window::from_slice(&s[end - len..end]);
            let tag = end as u64 * tag_step;
            let (got, taken) = forward_memo(m, w, &mut memo, tag);
            let want = forward(m, w);
            for j in 0..MAX_STATES {
                assert_eq!(
                    got[j].to_bits(),
                    want[j].to_bits(),
                    "window ending {end}, state {j}"
                );
            }
            if end > len {
                steps += taken;
                windows += 1;
            }
        }
        (steps, windows)
    }

    #[test]
    fn the_memo_gives_the_full_filters_bits_and_meets_the_last_window_early() {
        for (seed, k) in [(1, 5), (2, 5), (3, 1), (4, 2), (5, 8), (6, 3)] {
            let m = model(seed, k);
            let (steps, windows) = run(&m, seed, 331, 1, 1_000_000);
            // The full filter is 331 steps a window; the synthetic HMMs forget their start
            // within a few dozen bars.
            assert!(
                steps < windows * 331 / 4,
                "k={k}: {steps} steps for {windows} windows"
            );
        }
    }

    #[test]
    fn bars_where_the_filter_falls_back_to_the_prediction_keep_the_full_filters_bits() {
        for (seed, k) in [(7, 5), (8, 4), (9, 8)] {
            run(&model(seed, k), seed, 200, 1, 7);
        }
    }

    #[test]
    fn a_memo_of_a_window_that_is_not_the_one_bar_before_is_not_used() {
        let m = model(10, 5);
        // Tags two apart: no window follows the memo's, so every window runs the whole filter.
        let (steps, windows) = run(&m, 10, 150, 2, 1_000_000);
        assert_eq!(steps, windows * 150);
        // A memo of another length is not used either.
        let (s, _) = slots(10, 1200, 5, 1_000_000);
        let mut memo = FilterMemo::EMPTY;
        let _ = forward_memo(&m, Window::from_slice(&s[0..300]), &mut memo, 1);
        let w = Window::from_slice(&s[1..302]);
        let (got, taken) = forward_memo(&m, w, &mut memo, 2);
        assert_eq!(taken, 301);
        assert_eq!(got.map(f64::to_bits), forward(&m, w).map(f64::to_bits));
    }

    #[test]
    fn a_filter_that_never_forgets_its_start_runs_whole_and_keeps_its_bits() {
        // The identity transition: the posterior is the product of every emission since the
        // window's first bar, so two windows one bar apart never agree.
        let mut p = synthetic::model_params(11, 4, false);
        for (i, row) in p.hmm.transmat.iter_mut().enumerate().take(4) {
            for (j, v) in row.iter_mut().enumerate().take(4) {
                *v = if i == j { 1.0 } else { 0.0 };
            }
        }
        let m = crate::Model::new(&p).expect("model");
        let (steps, windows) = run(&m, 11, 250, 1, 1_000_000);
        assert!(
            steps >= windows * 250,
            "{steps} steps for {windows} windows"
        );
    }
}
