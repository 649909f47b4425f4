//! Deterministic synthetic models and bar streams for tests, benches and demos.
//!
//! Nothing here is used by a live twin. The generator is a fixed xorshift, so the same seed gives
//! the same model and bars on every platform.

use crate::bar::Bar;
use crate::model::{
    Activation, CostParams, CovarianceParams, HmmParams, HmmPeriods, LayerParams, MarketPeriods,
    ModelParams,
};
use crate::{
    MAX_LAYERS, MAX_POLICY_WEIGHTS, MAX_STATES, N_ACTIONS, N_HMM_FEATURES, N_MARKET_FEATURES,
};

/// A small deterministic pseudo-random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
}

/// The seed's EURUSD M15 costs.
pub const EURUSD_COSTS: CostParams = CostParams {
    point: 0.00001,
    pip_value: 10.0,
    spread_points: 7.0,
    slippage_points: 2.0,
    commission_per_lot: 7.0,
    digits: 5,
    lot_sizes: [0.0, 0.01, 0.03, 0.05],
};

/// A model shaped like the project's (window 350, the seed's periods, `n_states` states, a
/// 64-64 tanh actor), with random but plausible parameters.
pub fn model_params(seed: u64, n_states: usize, full_covariance: bool) -> ModelParams {
    model_params_with(seed, n_states, full_covariance, &[64, 64], Activation::Tanh)
}

/// Like [`model_params`], with the actor's hidden layer widths (`net_arch`, at most
/// `MAX_LAYERS − 1` of them) and their activation; the same seed gives the same HMM.
pub fn model_params_with(
    seed: u64,
    n_states: usize,
    full_covariance: bool,
    hidden: &[usize],
    activation: Activation,
) -> ModelParams {
    let mut rng = Rng::new(seed);
    let k = n_states.clamp(1, MAX_STATES);
    let mut startprob = [0.0; MAX_STATES];
    for p in startprob.iter_mut().take(k) {
        *p = 1.0 / k as f64;
    }
    let mut transmat = [[0.0; MAX_STATES]; MAX_STATES];
    for (i, row) in transmat.iter_mut().enumerate().take(k) {
        let mut sum = 0.0;
        for (j, v) in row.iter_mut().enumerate().take(k) {
            *v = if i == j {
                rng.range(5.0, 20.0)
            } else {
                rng.uniform()
            };
            sum += *v;
        }
        for v in row.iter_mut().take(k) {
            *v /= sum;
        }
    }
    let mut means = [[0.0; N_HMM_FEATURES]; MAX_STATES];
    for m in means.iter_mut().take(k) {
        for v in m.iter_mut() {
            *v = rng.range(-1.5, 1.5);
        }
    }
    let covars = if full_covariance {
        let mut c = [[[0.0; N_HMM_FEATURES]; N_HMM_FEATURES]; MAX_STATES];
        for s in c.iter_mut().take(k) {
            // A·Aᵀ + 0.1·I is positive definite.
            let mut a = [[0.0; N_HMM_FEATURES]; N_HMM_FEATURES];
            for row in a.iter_mut() {
                for v in row.iter_mut() {
                    *v = rng.range(-0.8, 0.8);
                }
            }
            for i in 0..N_HMM_FEATURES {
                for j in 0..N_HMM_FEATURES {
                    let mut dot = 0.0;
                    for (x, y) in a[i].iter().zip(&a[j]) {
                        dot += x * y;
                    }
                    s[i][j] = dot + if i == j { 0.1 } else { 0.0 };
                }
            }
        }
        CovarianceParams::Full(c)
    } else {
        let mut c = [[0.0; N_HMM_FEATURES]; MAX_STATES];
        for s in c.iter_mut().take(k) {
            for v in s.iter_mut() {
                *v = rng.range(0.2, 2.0);
            }
        }
        CovarianceParams::Diag(c)
    };

    let obs_dim = N_MARKET_FEATURES + k + 3;
    let n_layers = (hidden.len() + 1).min(MAX_LAYERS);
    // Built once and filled in place (a debug build copies every ~290 KB move on the stack).
    let mut p = ModelParams {
        window: crate::DEFAULT_WINDOW,
        market: MarketPeriods {
            roc: 10,
            atr: 14,
            ema: 200,
            range: 20,
            volume_ma: 20,
        },
        hmm_periods: HmmPeriods {
            momentum: 12,
            consistency: 12,
            range: 20,
        },
        rl_mean: [0.0, 0.001, 0.0, 0.004, 0.0],
        rl_std: [0.002, 0.0005, 0.004, 0.002, 0.6],
        clip: 10.0,
        costs: EURUSD_COSTS,
        hmm: HmmParams {
            n_states: k,
            startprob,
            transmat,
            means,
            covars,
            feature_mean: [0.0, 0.5, 0.004],
            feature_std: [0.002, 0.15, 0.002],
        },
        layers: [LayerParams::ZERO; MAX_LAYERS],
        n_layers,
        weights: [0.0; MAX_POLICY_WEIGHTS],
    };
    let mut in_dim = obs_dim;
    let mut offset = 0;
    for (i, layer) in p.layers.iter_mut().take(n_layers).enumerate() {
        let last = i + 1 == n_layers;
        let out_dim = if last { N_ACTIONS } else { hidden[i] };
        layer.in_dim = in_dim;
        layer.out_dim = out_dim;
        let scale = 1.5 / libm::sqrt(in_dim as f64);
        let n = (in_dim * out_dim).min(MAX_POLICY_WEIGHTS.saturating_sub(offset));
        for w in &mut p.weights[offset..offset + n] {
            *w = rng.range(-scale, scale) as f32;
        }
        offset += n;
        for b in layer.bias.iter_mut().take(out_dim) {
            *b = rng.range(-0.1, 0.1) as f32;
        }
        layer.activation = if last {
            Activation::Identity
        } else {
            activation
        };
        in_dim = out_dim;
    }
    p
}

/// A random-walk bar stream around 1.1 (EURUSD-like, 5 digits), one bar every 15 minutes from
/// `start`, with the occasional weekend gap. Bar `i` of a seed is the same whatever `len`.
#[derive(Debug, Clone)]
pub struct Bars {
    rng: Rng,
    time: i64,
    close: f64,
    i: u64,
}

impl Bars {
    /// A stream starting at `start` (seconds since the epoch).
    pub fn new(seed: u64, start: i64) -> Bars {
        Bars {
            rng: Rng::new(seed ^ 0xB4B5),
            time: start,
            close: 1.1,
            i: 0,
        }
    }
}

impl Iterator for Bars {
    type Item = Bar;

    fn next(&mut self) -> Option<Bar> {
        let r = &mut self.rng;
        let open = self.close;
        // Regime-like drift changes every 500 bars.
        let drift = (((self.i / 500) % 3) as f64 - 1.0) * 0.00003;
        let step = drift + r.range(-0.0008, 0.0008);
        let close = round5((open * (1.0 + step)).max(0.01));
        let high = round5(open.max(close) + r.range(0.0, 0.0004));
        let low = round5((open.min(close) - r.range(0.0, 0.0004)).max(0.00001));
        let volume = libm::floor(r.range(0.0, 2000.0));
        let bar = Bar {
            time: self.time,
            open,
            high,
            low,
            close,
            volume,
        };
        self.close = close;
        self.i += 1;
        self.time += if self.i % 480 == 0 { 49 * 3600 } else { 900 };
        Some(bar)
    }
}

fn round5(x: f64) -> f64 {
    libm::round(x * 100_000.0) / 100_000.0
}
