//! The actor MLP (f32, as trained) and the action choice (§6).

use crate::model::{Activation, Dense, Model};
use crate::tanh::tanh_f32_in_place;
use crate::{MAX_OBS, MAX_WIDTH, N_ACTIONS};

/// Applies one dense layer (weights in `wt`, see [`Dense`]) to `x` (entries past `in_dim` are
/// ignored).
///
/// Each output is `act(s + b)` with `s = 0.0; for i: s = s + w[o][i] * x[i]`: the sum for one
/// output runs in input order; the outputs advance side by side, which lets the compiler use
/// SIMD lanes without reordering any output's terms (Rust never fuses `*` and `+`).
#[inline]
fn dense(wt: &[f32], layer: &Dense, x: &[f32; MAX_WIDTH]) -> [f32; MAX_WIDTH] {
    let mut acc = [0.0f32; MAX_WIDTH];
    // Only the first `out_dim` outputs are used: the lanes run in the layer's block (the action
    // layer's 7 outputs need one block of 8, a 64-wide layer 64, not 256).
    let wt = &wt[layer.offset..layer.offset + layer.in_dim * layer.stride];
    match layer.stride {
        8 => accumulate::<8>(wt, x, &mut acc),
        16 => accumulate::<16>(wt, x, &mut acc),
        32 => accumulate::<32>(wt, x, &mut acc),
        64 => accumulate::<64>(wt, x, &mut acc),
        128 => accumulate::<128>(wt, x, &mut acc),
        _ => accumulate::<MAX_WIDTH>(wt, x, &mut acc),
    }
    let mut y = [0.0f32; MAX_WIDTH];
    let n = layer.out_dim;
    for o in 0..n {
        y[o] = acc[o] + layer.bias[o];
    }
    match layer.activation {
        Activation::Identity => {}
        // `tanh_f32` is `libm::tanh(f64::from(v)) as f32` bit for bit (the contract's form).
        Activation::Tanh => tanh_f32_in_place(&mut y[..n]),
        // Like torch and onnx2rs: NaN stays NaN.
        Activation::Relu => {
            for v in &mut y[..n] {
                if *v < 0.0 {
                    *v = 0.0;
                }
            }
        }
    }
    y
}

/// `acc[o] += wt[i·W + o] * x[i]` for every row `i` of `wt` (in order) and `o < W`.
#[inline(always)]
fn accumulate<const W: usize>(wt: &[f32], x: &[f32; MAX_WIDTH], acc: &mut [f32; MAX_WIDTH]) {
    let mut a = [0.0f32; W];
    for (row, xi) in wt.chunks_exact(W).zip(x.iter()) {
        for (a, w) in a.iter_mut().zip(row.iter()) {
            *a += *w * *xi;
        }
    }
    acc[..W].copy_from_slice(&a);
}

/// The policy's logits for an observation (the first `obs_dim` entries of `obs`).
pub fn logits(model: &Model, obs: &[f32; MAX_OBS]) -> [f32; N_ACTIONS] {
    let mut x = [0.0f32; MAX_WIDTH];
    x[..MAX_OBS].copy_from_slice(obs);
    let wt = model.wt.weights();
    for layer in model.layers.iter().take(model.n_layers) {
        x = dense(wt, layer, &x);
    }
    let mut out = [0.0f32; N_ACTIONS];
    out.copy_from_slice(&x[..N_ACTIONS]);
    out
}

/// The action: first index of the maximum of the softmax probabilities
/// `p_i = exp(l_i − max l) / Σ_j exp(l_j − max l)` (f32, sequential sum), which is SB3's
/// `predict(deterministic=True)`. It can differ from the argmax of the raw logits only when two
/// logits are within a few ulp.
pub fn choose(logits: &[f32; N_ACTIONS]) -> usize {
    let mut m = logits[0];
    for l in &logits[1..] {
        if *l > m {
            m = *l;
        }
    }
    let mut e = [0.0f32; N_ACTIONS];
    let mut s = 0.0f32;
    for (ei, l) in e.iter_mut().zip(logits) {
        *ei = libm::expf(*l - m);
        s += *ei;
    }
    let mut best = 0;
    let mut best_p = e[0] / s;
    for (i, ei) in e.iter().enumerate().skip(1) {
        let p = *ei / s;
        if p > best_p {
            best = i;
            best_p = p;
        }
    }
    best
}

/// The top-2 logit gap `l(1) − l(2)` (largest minus second largest), the distance to a flip.
pub fn margin(logits: &[f32; N_ACTIONS]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for l in logits {
        if *l > a {
            b = a;
            a = *l;
        } else if *l > b {
            b = *l;
        }
    }
    a - b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_is_argmax_on_clear_cases() {
        assert_eq!(choose(&[0.0, 1.0, 0.5, -1.0, 0.0, 0.0, 0.9]), 1);
        assert_eq!(choose(&[2.0, 1.0, 0.5, -1.0, 0.0, 0.0, 0.9]), 0);
        assert_eq!(choose(&[0.0; 7]), 0);
        assert_eq!(choose(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]), 6);
    }

    #[test]
    fn choose_takes_first_on_probability_ties() {
        // Two logits one ulp apart near 0.01: their exp(l - max) round to the same f32, so the
        // probabilities tie and the first index wins although logit 3 is larger.
        let a = 0.01f32;
        let b = f32::from_bits(a.to_bits() + 1);
        assert!(b > a);
        let l = [-1.0, -1.0, a, b, -1.0, -1.0, -1.0];
        assert_eq!(choose(&l), 2);
    }

    #[test]
    fn margin_is_top_two_gap() {
        assert_eq!(margin(&[0.0, 1.0, 0.5, -1.0, 0.0, 0.0, 0.75]), 0.25);
        assert_eq!(margin(&[1.0, 1.0, 0.5, -1.0, 0.0, 0.0, 0.75]), 0.0);
    }
}
