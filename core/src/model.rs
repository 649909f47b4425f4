//! A validated, fixed-size model: everything a twin needs, shared read-only between twins.
//!
//! The loader (`oracle-model`) fills a [`ModelParams`] from the model zip; [`Model::new`] checks
//! it against the contract and precomputes what does not change from bar to bar (the Cholesky
//! factors, the emission constants, the transposed policy weights). Precomputation performs the
//! very operations the contract states, in its order, so it changes no bit.

use core::fmt;

use crate::math::seq_sum;
use crate::{
    MAX_LAYERS, MAX_POLICY_WEIGHTS, MAX_STATES, MAX_WIDTH, N_ACTIONS, N_HMM_FEATURES,
    N_MARKET_FEATURES,
};

/// `D`, the number of HMM features.
const D: usize = N_HMM_FEATURES;

/// The f64 nearest `ln(2π)` (contract §4).
pub const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// Jitter added to a full covariance's diagonal when its Cholesky factorisation fails
/// (hmmlearn's retry rule).
pub const CHOLESKY_JITTER: f64 = 1e-7;

/// The market-feature periods (`rl_config`, §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketPeriods {
    /// `roc_period`.
    pub roc: usize,
    /// `atr_period`.
    pub atr: usize,
    /// `ema_period`.
    pub ema: usize,
    /// `range_period`.
    pub range: usize,
    /// `volume_ma_period`.
    pub volume_ma: usize,
}

/// The HMM-feature periods (`hmm_config`, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HmmPeriods {
    /// `momentum_period` (M).
    pub momentum: usize,
    /// `consistency_period` (C).
    pub consistency: usize,
    /// `range_period` (R).
    pub range: usize,
}

impl HmmPeriods {
    /// `L = max(M, C, R − 1)`: bars needed before a bar for its HMM features, and the first valid
    /// window index `f`.
    pub fn lookback(&self) -> usize {
        self.momentum
            .max(self.consistency)
            .max(self.range.saturating_sub(1))
    }
}

/// Prices and costs (`training_config`, §6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostParams {
    /// `point`: the price of one point.
    pub point: f64,
    /// `pip_value`: money per pip per 1.0 lot.
    pub pip_value: f64,
    /// `spread_points`.
    pub spread_points: f64,
    /// `slippage_points`.
    pub slippage_points: f64,
    /// `commission_per_lot`, per round turn.
    pub commission_per_lot: f64,
    /// `digits` of the symbol's price.
    pub digits: u32,
    /// `lot_sizes[intensity]` for intensity 0..=3.
    pub lot_sizes: [f64; 4],
}

/// The HMM's covariances as stored by hmmlearn (`_covars_`).
// Both variants are small fixed arrays; boxing is not an option without a heap.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CovarianceParams {
    /// `diag`: `[K][D]` variances.
    Diag([[f64; D]; MAX_STATES]),
    /// `full`: `[K][D][D]` covariance matrices.
    Full([[[f64; D]; D]; MAX_STATES]),
}

/// Gaussian-HMM parameters (the portable `SYM_TF_hmm.json` plus `hmm.feature_norm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HmmParams {
    /// `K`, the number of states (1..=[`MAX_STATES`]).
    pub n_states: usize,
    /// `startprob[K]` (entries past `K` are ignored).
    pub startprob: [f64; MAX_STATES],
    /// `transmat[K][K]`.
    pub transmat: [[f64; MAX_STATES]; MAX_STATES],
    /// `means[K][D]`.
    pub means: [[f64; D]; MAX_STATES],
    /// `covars`.
    pub covars: CovarianceParams,
    /// `hmm.feature_norm.mean[D]`.
    pub feature_mean: [f64; D],
    /// `hmm.feature_norm.std[D]`.
    pub feature_std: [f64; D],
}

/// A layer's activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `y = x`.
    Identity,
    /// `y = tanh(x)`, computed as `libm::tanh` in f64 cast to f32.
    Tanh,
    /// `y = max(x, 0)`.
    Relu,
}

/// One dense layer `y = act(W·x + b)` as exported; its weights `W` are in
/// [`ModelParams::weights`] ([`ModelParams::layer_weights`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerParams {
    /// Number of inputs.
    pub in_dim: usize,
    /// Number of outputs.
    pub out_dim: usize,
    /// `bias[o]` for `o < out_dim`.
    pub bias: [f32; MAX_WIDTH],
    /// Applied after the bias.
    pub activation: Activation,
}

impl LayerParams {
    /// An all-zero `0 × 0` identity layer, a starting point to fill in.
    pub const ZERO: LayerParams = LayerParams {
        in_dim: 0,
        out_dim: 0,
        bias: [0.0; MAX_WIDTH],
        activation: Activation::Identity,
    };
}

/// The SIMD block a layer of `out_dim` outputs runs in (8, 16, 32, 64, 128 or 256 lanes): its
/// transposed weights are stored with this stride.
pub const fn block_width(out_dim: usize) -> usize {
    match out_dim.div_ceil(8) {
        0 | 1 => 8,
        2 => 16,
        3 | 4 => 32,
        5..=8 => 64,
        9..=16 => 128,
        _ => MAX_WIDTH,
    }
}

/// Weights a policy with these hidden layer widths takes in a [`Model`] (each layer's `in_dim`
/// times its outputs padded to [`block_width`]); a policy is accepted when this is at most
/// [`MAX_POLICY_WEIGHTS`].
pub fn policy_weights(obs_dim: usize, hidden: &[usize]) -> usize {
    let mut in_dim = obs_dim;
    let mut total = 0usize;
    for out_dim in hidden.iter().copied().chain([N_ACTIONS]) {
        total = total.saturating_add(in_dim.saturating_mul(block_width(out_dim)));
        in_dim = out_dim;
    }
    total
}

/// Everything a model is made of, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    /// `window` (W).
    pub window: usize,
    /// `rl_config`.
    pub market: MarketPeriods,
    /// `hmm_config` periods.
    pub hmm_periods: HmmPeriods,
    /// `observation.rl_norm.mean[5]`.
    pub rl_mean: [f64; N_MARKET_FEATURES],
    /// `observation.rl_norm.std[5]`.
    pub rl_std: [f64; N_MARKET_FEATURES],
    /// `observation.clip`.
    pub clip: f64,
    /// `training_config`.
    pub costs: CostParams,
    /// The HMM.
    pub hmm: HmmParams,
    /// The policy's dense layers, input first; the last one gives the 7 logits.
    pub layers: [LayerParams; MAX_LAYERS],
    /// How many of `layers` are used.
    pub n_layers: usize,
    /// Every used layer's `W` (`out_dim × in_dim`, row-major: `W[o][i]` at `o·in_dim + i`), one
    /// layer after the other, input layer first; the rest is ignored.
    pub weights: [f32; MAX_POLICY_WEIGHTS],
}

impl ModelParams {
    /// Where layer `layer`'s weights start in [`ModelParams::weights`] (the `in·out` of the
    /// layers before it).
    fn weights_offset(&self, layer: usize) -> usize {
        self.layers[..layer].iter().fold(0usize, |acc, l| {
            acc.saturating_add(l.in_dim.saturating_mul(l.out_dim))
        })
    }

    /// Layer `layer`'s weights (`out_dim × in_dim`, row-major), after its and the earlier layers'
    /// `in_dim`/`out_dim` are set; `None` past [`MAX_LAYERS`] or [`MAX_POLICY_WEIGHTS`].
    pub fn layer_weights(&self, layer: usize) -> Option<&[f32]> {
        let l = self.layers.get(layer)?;
        let start = self.weights_offset(layer);
        self.weights
            .get(start..start.checked_add(l.in_dim.checked_mul(l.out_dim)?)?)
    }

    /// The transposed, padded weights this policy takes in a model ([`policy_weights`] of its
    /// first `n_layers` layers; saturating): the least storage [`ModelOf::with_weights`] takes.
    pub fn policy_weights(&self) -> usize {
        self.layers
            .iter()
            .take(self.n_layers)
            .fold(0usize, |acc, l| {
                acc.saturating_add(l.in_dim.saturating_mul(block_width(l.out_dim)))
            })
    }

    /// Mutable [`ModelParams::layer_weights`], to fill a layer in.
    pub fn layer_weights_mut(&mut self, layer: usize) -> Option<&mut [f32]> {
        let l = *self.layers.get(layer)?;
        let start = self.weights_offset(layer);
        self.weights
            .get_mut(start..start.checked_add(l.in_dim.checked_mul(l.out_dim)?)?)
    }
}

/// Why a [`ModelParams`] was refused. Each names the offending parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelError {
    /// A period is zero.
    ZeroPeriod {
        /// The period's metadata name.
        name: &'static str,
    },
    /// The window is too short for a period (§3: `W ≥ max(roc+1, atr+1, ema, range,
    /// volume_ma)`; §4: `W > L`).
    WindowTooShort {
        /// The window.
        window: usize,
        /// The smallest acceptable window.
        needed: usize,
    },
    /// `n_states` is 0 or above [`MAX_STATES`].
    BadStateCount {
        /// The value given.
        n_states: usize,
    },
    /// A parameter is NaN or infinite.
    NonFinite {
        /// The parameter's name.
        name: &'static str,
    },
    /// A probability (`startprob`, `transmat`) is negative.
    NegativeProbability {
        /// The parameter's name.
        name: &'static str,
    },
    /// A normalisation std, `clip`, `point` or `pip_value` is not positive.
    NotPositive {
        /// The parameter's name.
        name: &'static str,
    },
    /// A full covariance is not positive definite even with the jitter (§4).
    CovarianceNotPositiveDefinite {
        /// The state whose covariance failed.
        state: usize,
    },
    /// The policy has no layers or more than [`MAX_LAYERS`].
    BadLayerCount {
        /// The value given.
        n_layers: usize,
    },
    /// A layer is empty or wider than [`MAX_WIDTH`].
    BadLayerShape {
        /// Layer index.
        layer: usize,
        /// Its inputs.
        in_dim: usize,
        /// Its outputs.
        out_dim: usize,
    },
    /// A layer's inputs do not match what feeds it (the observation or the previous layer).
    LayerInputMismatch {
        /// Layer index.
        layer: usize,
        /// Inputs expected (`5 + K + 3` for layer 0).
        expected: usize,
        /// Inputs the layer has.
        found: usize,
    },
    /// The last layer does not output the 7 action logits.
    BadActionCount {
        /// Outputs the last layer has.
        found: usize,
    },
    /// The policy's layers need more weights than a [`Model`] holds ([`policy_weights`]).
    PolicyTooLarge {
        /// Weights the layers need.
        weights: usize,
    },
    /// The policy's layers need more weights than the storage given to this model holds
    /// ([`ModelOf::with_weights`], [`ModelOf::rebuild`]).
    WeightsDoNotFit {
        /// Weights the layers need ([`policy_weights`]).
        weights: usize,
        /// Weights the storage holds.
        capacity: usize,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::ZeroPeriod { name } => write!(f, "{name} must be at least 1"),
            ModelError::WindowTooShort { window, needed } => {
                write!(
                    f,
                    "window {window} is shorter than the {needed} bars the periods need"
                )
            }
            ModelError::BadStateCount { n_states } => {
                write!(f, "n_states {n_states} is not in 1..={MAX_STATES}")
            }
            ModelError::NonFinite { name } => write!(f, "{name} holds a NaN or infinite value"),
            ModelError::NegativeProbability { name } => {
                write!(f, "{name} holds a negative probability")
            }
            ModelError::NotPositive { name } => write!(f, "{name} must be positive"),
            ModelError::CovarianceNotPositiveDefinite { state } => write!(
                f,
                "covariance of state {state} is not positive definite, even with {CHOLESKY_JITTER} jitter"
            ),
            ModelError::BadLayerCount { n_layers } => {
                write!(f, "policy has {n_layers} layers, expected 1..={MAX_LAYERS}")
            }
            ModelError::BadLayerShape {
                layer,
                in_dim,
                out_dim,
            } => write!(
                f,
                "policy layer {layer} is {out_dim}x{in_dim}, each side must be in 1..={MAX_WIDTH}"
            ),
            ModelError::LayerInputMismatch {
                layer,
                expected,
                found,
            } => write!(
                f,
                "policy layer {layer} takes {found} inputs, expected {expected}"
            ),
            ModelError::BadActionCount { found } => {
                write!(f, "policy outputs {found} logits, expected {N_ACTIONS}")
            }
            ModelError::PolicyTooLarge { weights } => write!(
                f,
                "policy needs {weights} weights, at most {MAX_POLICY_WEIGHTS} fit \
                 (a [{MAX_WIDTH}, {MAX_WIDTH}] actor)"
            ),
            ModelError::WeightsDoNotFit { weights, capacity } => write!(
                f,
                "policy needs {weights} weights, the model's weight storage holds {capacity}"
            ),
        }
    }
}

impl core::error::Error for ModelError {}

/// Precomputed emission parameters of one HMM.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Emission {
    /// `c[k][d] = max(covars[k][d], f64::MIN_POSITIVE)`.
    Diag { c: [[f64; D]; MAX_STATES] },
    /// Lower Cholesky factors `chol[k][i][j]`, `j ≤ i`.
    Full { chol: [[[f64; D]; D]; MAX_STATES] },
}

/// The validated HMM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hmm {
    pub(crate) k: usize,
    pub(crate) startprob: [f64; MAX_STATES],
    pub(crate) transmat: [[f64; MAX_STATES]; MAX_STATES],
    pub(crate) means: [[f64; D]; MAX_STATES],
    pub(crate) emission: Emission,
    /// `D * LOG_2PI + slog` (diag) or `D * LOG_2PI + logdet` (full), per state.
    pub(crate) ll_const: [f64; MAX_STATES],
    pub(crate) feature_mean: [f64; D],
    pub(crate) feature_std: [f64; D],
}

/// A validated dense layer. Its weights are transposed in [`ModelOf::wt`] (`W[o][i]` at
/// `wt[offset + i·stride + o]`, `stride` = [`block_width`]`(out_dim)`, padding zero) so that
/// every output's sequential dot product can run in SIMD lanes beside the others without
/// reordering its terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dense {
    pub(crate) in_dim: usize,
    pub(crate) out_dim: usize,
    pub(crate) stride: usize,
    pub(crate) offset: usize,
    pub(crate) bias: [f32; MAX_WIDTH],
    pub(crate) activation: Activation,
}

impl Dense {
    const ZERO: Dense = Dense {
        in_dim: 0,
        out_dim: 0,
        stride: 8,
        offset: 0,
        bias: [0.0; MAX_WIDTH],
        activation: Activation::Identity,
    };
}

/// What [`Model::validate`] hands [`Model::build`].
struct Checked {
    lookback: usize,
    money_per_point: f64,
    hmm: Hmm,
    /// The policy's transposed, padded weights ([`policy_weights`]).
    weights: usize,
}

/// Where a model's policy weights are kept: a slice of f32 the model owns. A model's
/// [`ModelOf::weight_capacity`] is its storage's length, which must hold the policy's
/// [`policy_weights`]; the core fills the storage and only reads it afterwards.
///
/// Implemented for every owner of a `[f32]` (`[f32; N]`, and in `std` a `Box<[f32]>` or a
/// `Vec<f32>`): the core allocates nothing, the owner's allocation is the caller's.
pub trait Weights: fmt::Debug + Send + Sync {
    /// The stored weights.
    fn weights(&self) -> &[f32];
    /// The stored weights, to fill.
    fn weights_mut(&mut self) -> &mut [f32];
}

impl<T> Weights for T
where
    T: AsRef<[f32]> + AsMut<[f32]> + fmt::Debug + Send + Sync + ?Sized,
{
    fn weights(&self) -> &[f32] {
        self.as_ref()
    }

    fn weights_mut(&mut self) -> &mut [f32] {
        self.as_mut()
    }
}

/// A validated model, borrowed read-only by every [`crate::Twin`] that runs it: [`ModelOf`]
/// with its weights behind [`Weights`], whatever their storage. A `&Model` is taken from a
/// `&ModelOf<W>` (and a `Box<Model>` from a `Box<ModelOf<W>>`) by the usual unsizing coercion.
pub type Model = ModelOf<dyn Weights>;

/// A model with room for the largest policy inline ([`MAX_POLICY_WEIGHTS`] f32, about 280 KB):
/// what [`Model::new`] and [`Model::PLACEHOLDER`] give, for a caller without a heap. A loader
/// with one sizes the storage to the policy instead ([`ModelOf::with_weights`]), so a model
/// holds (and keeps resident) only the weights it uses.
pub type InlineModel = ModelOf<[f32; MAX_POLICY_WEIGHTS]>;

/// A validated model whose policy weights are kept in `W` (see [`Model`], [`InlineModel`]).
/// Two models are equal when every field and every stored weight are, whatever their storage
/// types and lengths: past the shorter storage, the longer one must hold only `+0.0`.
#[derive(Debug, Clone)]
pub struct ModelOf<W: ?Sized> {
    pub(crate) window: usize,
    pub(crate) market: MarketPeriods,
    pub(crate) hmm_periods: HmmPeriods,
    pub(crate) lookback: usize,
    pub(crate) rl_mean: [f64; N_MARKET_FEATURES],
    pub(crate) rl_std: [f64; N_MARKET_FEATURES],
    pub(crate) clip: f64,
    pub(crate) costs: CostParams,
    pub(crate) money_per_point: f64,
    pub(crate) hmm: Hmm,
    pub(crate) layers: [Dense; MAX_LAYERS],
    pub(crate) n_layers: usize,
    /// Every layer's transposed, padded weights (see [`Dense`]); past the policy's
    /// [`policy_weights`] the storage is zero.
    pub(crate) wt: W,
}

impl<A: Weights + ?Sized, B: Weights + ?Sized> PartialEq<ModelOf<B>> for ModelOf<A> {
    fn eq(&self, other: &ModelOf<B>) -> bool {
        // Every field by name: a field added to `ModelOf` must be added here.
        let ModelOf {
            window,
            market,
            hmm_periods,
            lookback,
            rl_mean,
            rl_std,
            clip,
            costs,
            money_per_point,
            hmm,
            layers,
            n_layers,
            wt,
        } = self;
        *window == other.window
            && *market == other.market
            && *hmm_periods == other.hmm_periods
            && *lookback == other.lookback
            && rl_mean == &other.rl_mean
            && rl_std == &other.rl_std
            && *clip == other.clip
            && *costs == other.costs
            && *money_per_point == other.money_per_point
            && *hmm == other.hmm
            && layers == &other.layers
            && *n_layers == other.n_layers
            && same_weights(wt.weights(), other.wt.weights())
    }
}

/// `a` and `b` equal over the shorter one's length, the rest of the longer one `+0.0`.
fn same_weights(a: &[f32], b: &[f32]) -> bool {
    let n = a.len().min(b.len());
    let zero = |rest: &[f32]| rest.iter().all(|w| w.to_bits() == 0);
    a[..n] == b[..n] && zero(&a[n..]) && zero(&b[n..])
}

fn finite(values: &[f64], name: &'static str) -> Result<(), ModelError> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(ModelError::NonFinite { name })
    }
}

fn positive(values: &[f64], name: &'static str) -> Result<(), ModelError> {
    finite(values, name)?;
    if values.iter().all(|v| *v > 0.0) {
        Ok(())
    } else {
        Err(ModelError::NotPositive { name })
    }
}

fn nonzero(value: usize, name: &'static str) -> Result<(), ModelError> {
    if value == 0 {
        Err(ModelError::ZeroPeriod { name })
    } else {
        Ok(())
    }
}

/// Textbook column Cholesky of `sigma + jitter·I` (`D × D`, lower triangle read), as §4 states it:
/// every `Σ_{m<j}` is a sequential sum computed first and then subtracted.
/// `None` when a pivot `s ≤ 0` (or NaN) appears.
pub(crate) fn cholesky(sigma: &[[f64; D]; D], jitter: f64) -> Option<[[f64; D]; D]> {
    let mut l = [[0.0f64; D]; D];
    for j in 0..D {
        let diag = sigma[j][j] + jitter;
        let s = diag - seq_sum((0..j).map(|m| l[j][m] * l[j][m]));
        if s <= 0.0 || s.is_nan() {
            return None;
        }
        let ljj = libm::sqrt(s);
        l[j][j] = ljj;
        for i in (j + 1)..D {
            let t = seq_sum((0..j).map(|m| l[i][m] * l[j][m]));
            l[i][j] = (sigma[i][j] - t) / ljj;
        }
    }
    Some(l)
}

impl<W: Weights> ModelOf<W> {
    /// A valid stand-in model (one HMM state, the default periods, an all-zero one-layer policy:
    /// always action 0) over the storage `wt`, which must be all zero (the placeholder's
    /// policy reads its first `9 × 8` weights).
    pub const fn placeholder_with(wt: W) -> Self {
        ModelOf {
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
            lookback: 19,
            rl_mean: [0.0; N_MARKET_FEATURES],
            rl_std: [1.0; N_MARKET_FEATURES],
            clip: 10.0,
            costs: CostParams {
                point: 0.00001,
                pip_value: 10.0,
                spread_points: 0.0,
                slippage_points: 0.0,
                commission_per_lot: 0.0,
                digits: 5,
                lot_sizes: [0.0, 0.01, 0.03, 0.05],
            },
            money_per_point: 1.0,
            hmm: Hmm {
                k: 1,
                startprob: {
                    let mut p = [0.0; MAX_STATES];
                    p[0] = 1.0;
                    p
                },
                transmat: {
                    let mut t = [[0.0; MAX_STATES]; MAX_STATES];
                    t[0][0] = 1.0;
                    t
                },
                means: [[0.0; D]; MAX_STATES],
                emission: Emission::Diag {
                    c: [[1.0; D]; MAX_STATES],
                },
                // `D·ln(2π) + Σ ln 1`, as `validate_hmm` computes it.
                ll_const: {
                    let mut c = [0.0; MAX_STATES];
                    c[0] = D as f64 * LOG_2PI + 0.0;
                    c
                },
                feature_mean: [0.0; D],
                feature_std: [1.0; D],
            },
            layers: {
                let mut l = [Dense::ZERO; MAX_LAYERS];
                l[0].in_dim = N_MARKET_FEATURES + 1 + 3;
                l[0].out_dim = N_ACTIONS;
                l[0].stride = block_width(N_ACTIONS);
                l
            },
            n_layers: 1,
            wt,
        }
    }

    /// Validates `params` and builds the model over the storage `wt`, whose length must be at
    /// least the policy's [`policy_weights`] (e.g. exactly that:
    /// `vec![0.0; p.policy_weights()].into_boxed_slice()`); every stored weight is written.
    /// The result is as large as the model's other fields (a few KB) and `W`.
    pub fn with_weights(params: &ModelParams, wt: W) -> Result<Self, ModelError> {
        let checked = Model::validate(params)?;
        let capacity = wt.weights().len();
        if checked.weights > capacity {
            return Err(ModelError::WeightsDoNotFit {
                weights: checked.weights,
                capacity,
            });
        }
        let mut model = Self::placeholder_with(wt);
        model.install(params, checked);
        Ok(model)
    }
}

impl Model {
    /// [`ModelOf::placeholder_with`] zero inline weights: the slot to [`ModelOf::rebuild`] a
    /// real model into in place, e.g.
    /// `let mut m = Box::new(Model::PLACEHOLDER); m.rebuild(&params)?;`. An [`InlineModel`] is
    /// about 290 KB (the weights of a `[256, 256]` actor): a debug build copies every by-value
    /// move of it on the stack, which [`Model::new`] makes several of.
    pub const PLACEHOLDER: InlineModel = ModelOf::placeholder_with([0.0; MAX_POLICY_WEIGHTS]);

    /// Validates `params` and precomputes the per-model constants, into an [`InlineModel`]
    /// (room for the largest policy; [`ModelOf::with_weights`] sizes the storage instead).
    pub fn new(params: &ModelParams) -> Result<InlineModel, ModelError> {
        // Checks run in small stack frames first; the 290 KB model is then built by a function
        // with no early exit. A large frame whose prologue LLVM shrink-wraps past a fallible
        // early exit gets its inline stack probe placed there, and LLVM 22's x86-64 probe
        // clobbers a live R11 (seen with rustc 1.95: a garbage `needed` in this function).
        match Self::validate(params) {
            Ok(checked) => Self::build(params, checked),
            Err(e) => Err(e),
        }
    }

    /// Every check, and the small precomputed values (`lookback`, money, the HMM).
    #[inline(never)]
    fn validate(params: &ModelParams) -> Result<Checked, ModelError> {
        let mk = &params.market;
        nonzero(mk.roc, "rl_config.roc_period")?;
        nonzero(mk.atr, "rl_config.atr_period")?;
        nonzero(mk.ema, "rl_config.ema_period")?;
        nonzero(mk.range, "rl_config.range_period")?;
        nonzero(mk.volume_ma, "rl_config.volume_ma_period")?;
        let hp = &params.hmm_periods;
        nonzero(hp.momentum, "hmm_config.momentum_period")?;
        nonzero(hp.consistency, "hmm_config.consistency_period")?;
        nonzero(hp.range, "hmm_config.range_period")?;
        let lookback = hp.lookback();
        let needed = (mk.roc + 1)
            .max(mk.atr + 1)
            .max(mk.ema)
            .max(mk.range)
            .max(mk.volume_ma)
            .max(lookback + 1);
        if params.window < needed {
            return Err(ModelError::WindowTooShort {
                window: params.window,
                needed,
            });
        }
        finite(&params.rl_mean, "observation.rl_norm.mean")?;
        positive(&params.rl_std, "observation.rl_norm.std")?;
        positive(&[params.clip], "observation.clip")?;

        let c = &params.costs;
        positive(&[c.point], "training_config.point")?;
        positive(&[c.pip_value], "training_config.pip_value")?;
        finite(
            &[c.spread_points, c.slippage_points, c.commission_per_lot],
            "training_config",
        )?;
        finite(&c.lot_sizes, "training_config.lot_sizes")?;
        let points_per_pip = if c.digits == 3 || c.digits == 5 {
            10.0
        } else {
            1.0
        };
        let money_per_point = c.pip_value / points_per_pip;

        let hmm = Self::validate_hmm(&params.hmm)?;
        let weights = Self::validate_policy(params, hmm.k)?;
        Ok(Checked {
            lookback,
            money_per_point,
            hmm,
            weights,
        })
    }

    /// Builds the validated model (never fails: the inline storage holds every policy
    /// `validate` accepts; see [`Model::new`] for why it is separate).
    #[inline(never)]
    fn build(params: &ModelParams, checked: Checked) -> Result<InlineModel, ModelError> {
        let mut out = Ok(Model::PLACEHOLDER);
        if let Ok(model) = &mut out {
            model.install(params, checked);
        }
        out
    }
}

impl<W: Weights + ?Sized> ModelOf<W> {
    /// Validates `params` and replaces this model with it in place (nothing large moves through
    /// the stack); on an error (also [`ModelError::WeightsDoNotFit`] when this model's storage
    /// is too short for the policy) the model is unchanged.
    pub fn rebuild(&mut self, params: &ModelParams) -> Result<(), ModelError> {
        let checked = Model::validate(params)?;
        let capacity = self.weight_capacity();
        if checked.weights > capacity {
            return Err(ModelError::WeightsDoNotFit {
                weights: checked.weights,
                capacity,
            });
        }
        self.install(params, checked);
        Ok(())
    }

    /// Writes the validated `params` over every field, in place (the storage holds the
    /// policy's weights: checked by the caller).
    #[inline(never)]
    fn install(&mut self, params: &ModelParams, checked: Checked) {
        self.window = params.window;
        self.market = params.market;
        self.hmm_periods = params.hmm_periods;
        self.lookback = checked.lookback;
        self.rl_mean = params.rl_mean;
        self.rl_std = params.rl_std;
        self.clip = params.clip;
        self.costs = params.costs;
        self.money_per_point = checked.money_per_point;
        self.hmm = checked.hmm;
        self.n_layers = params.n_layers;
        for dense in &mut self.layers {
            *dense = Dense::ZERO;
        }
        // The padding lanes must be zero (and, for equality, the unused tail).
        self.wt.weights_mut().fill(0.0);
        self.fill_policy(params);
    }

    /// Copies the validated policy into `layers` and the transposed, padded `wt`.
    #[inline(never)]
    fn fill_policy(&mut self, params: &ModelParams) {
        let wt = self.wt.weights_mut();
        let mut src = 0;
        let mut offset = 0;
        for (p, dense) in params
            .layers
            .iter()
            .zip(self.layers.iter_mut())
            .take(params.n_layers)
        {
            let stride = block_width(p.out_dim);
            for o in 0..p.out_dim {
                for i_in in 0..p.in_dim {
                    wt[offset + i_in * stride + o] = params.weights[src + o * p.in_dim + i_in];
                }
                dense.bias[o] = p.bias[o];
            }
            dense.in_dim = p.in_dim;
            dense.out_dim = p.out_dim;
            dense.stride = stride;
            dense.offset = offset;
            dense.activation = p.activation;
            src += p.in_dim * p.out_dim;
            offset += p.in_dim * stride;
        }
    }

    /// How many f32 this model's weight storage holds (at least its policy's
    /// [`policy_weights`]; [`MAX_POLICY_WEIGHTS`] for an [`InlineModel`]).
    pub fn weight_capacity(&self) -> usize {
        self.wt.weights().len()
    }

    /// The policy's transposed, padded weights ([`policy_weights`]): the part of the storage
    /// the policy reads.
    pub fn policy_weights(&self) -> usize {
        self.layers
            .iter()
            .take(self.n_layers)
            .map(|l| l.in_dim * l.stride)
            .sum()
    }
}

impl Model {
    fn validate_hmm(p: &HmmParams) -> Result<Hmm, ModelError> {
        let k = p.n_states;
        if k == 0 || k > MAX_STATES {
            return Err(ModelError::BadStateCount { n_states: k });
        }
        finite(&p.startprob[..k], "hmm.startprob")?;
        if p.startprob[..k].iter().any(|v| *v < 0.0) {
            return Err(ModelError::NegativeProbability {
                name: "hmm.startprob",
            });
        }
        for row in &p.transmat[..k] {
            finite(&row[..k], "hmm.transmat")?;
            if row[..k].iter().any(|v| *v < 0.0) {
                return Err(ModelError::NegativeProbability {
                    name: "hmm.transmat",
                });
            }
        }
        for mean in &p.means[..k] {
            finite(mean, "hmm.means")?;
        }
        finite(&p.feature_mean, "hmm.feature_norm.mean")?;
        positive(&p.feature_std, "hmm.feature_norm.std")?;

        // Zero everything past K so the padded lanes of the forward filter stay exactly zero.
        // `+ 0.0` turns a `−0.0` into `+0.0` (the filter's sums skip their leading `0.0 +`).
        let mut startprob = [0.0; MAX_STATES];
        for (dst, src) in startprob.iter_mut().zip(&p.startprob).take(k) {
            *dst = *src + 0.0;
        }
        let mut transmat = [[0.0; MAX_STATES]; MAX_STATES];
        for (dst, src) in transmat.iter_mut().zip(&p.transmat).take(k) {
            for (d, s) in dst.iter_mut().zip(src).take(k) {
                *d = *s + 0.0;
            }
        }
        let mut means = [[0.0; D]; MAX_STATES];
        means[..k].copy_from_slice(&p.means[..k]);

        let d_log_2pi = D as f64 * LOG_2PI;
        let mut ll_const = [0.0; MAX_STATES];
        let emission = match &p.covars {
            CovarianceParams::Diag(covars) => {
                let mut c = [[1.0; D]; MAX_STATES];
                for s in 0..k {
                    finite(&covars[s], "hmm.covars")?;
                    for d in 0..D {
                        c[s][d] = covars[s][d].max(f64::MIN_POSITIVE);
                    }
                    let slog = seq_sum(c[s].iter().map(|v| libm::log(*v)));
                    ll_const[s] = d_log_2pi + slog;
                }
                Emission::Diag { c }
            }
            CovarianceParams::Full(covars) => {
                let mut chol = [[[0.0; D]; D]; MAX_STATES];
                for s in 0..k {
                    for row in &covars[s] {
                        finite(row, "hmm.covars")?;
                    }
                    let l = cholesky(&covars[s], 0.0)
                        .or_else(|| cholesky(&covars[s], CHOLESKY_JITTER))
                        .ok_or(ModelError::CovarianceNotPositiveDefinite { state: s })?;
                    let logdet = 2.0 * seq_sum((0..D).map(|j| libm::log(l[j][j])));
                    ll_const[s] = d_log_2pi + logdet;
                    chol[s] = l;
                }
                Emission::Full { chol }
            }
        };
        Ok(Hmm {
            k,
            startprob,
            transmat,
            means,
            emission,
            ll_const,
            feature_mean: p.feature_mean,
            feature_std: p.feature_std,
        })
    }

    /// Checks the policy; returns its [`policy_weights`].
    fn validate_policy(params: &ModelParams, k: usize) -> Result<usize, ModelError> {
        let n = params.n_layers;
        if n == 0 || n > MAX_LAYERS {
            return Err(ModelError::BadLayerCount { n_layers: n });
        }
        let mut expected_in = N_MARKET_FEATURES + k + 3;
        let mut needed = 0usize;
        for (i, p) in params.layers.iter().take(n).enumerate() {
            if p.in_dim == 0 || p.out_dim == 0 || p.in_dim > MAX_WIDTH || p.out_dim > MAX_WIDTH {
                return Err(ModelError::BadLayerShape {
                    layer: i,
                    in_dim: p.in_dim,
                    out_dim: p.out_dim,
                });
            }
            if p.in_dim != expected_in {
                return Err(ModelError::LayerInputMismatch {
                    layer: i,
                    expected: expected_in,
                    found: p.in_dim,
                });
            }
            needed += p.in_dim * block_width(p.out_dim);
            if !p.bias[..p.out_dim].iter().all(|b| b.is_finite()) {
                return Err(ModelError::NonFinite {
                    name: "policy bias",
                });
            }
            expected_in = p.out_dim;
        }
        if expected_in != N_ACTIONS {
            return Err(ModelError::BadActionCount { found: expected_in });
        }
        // `in·out ≤ in·block_width(out)`: the unpadded weights fit whenever the padded ones do.
        if needed > MAX_POLICY_WEIGHTS {
            return Err(ModelError::PolicyTooLarge { weights: needed });
        }
        let used: usize = params.layers[..n]
            .iter()
            .map(|p| p.in_dim * p.out_dim)
            .sum();
        if !params.weights[..used].iter().all(|w| w.is_finite()) {
            return Err(ModelError::NonFinite {
                name: "policy weights",
            });
        }
        Ok(needed)
    }
}

impl<W: Weights + ?Sized> ModelOf<W> {
    /// The window `W`.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The number of HMM states `K`.
    pub fn n_states(&self) -> usize {
        self.hmm.k
    }

    /// The observation dimension `5 + K + 3`.
    pub fn obs_dim(&self) -> usize {
        N_MARKET_FEATURES + self.hmm.k + 3
    }

    /// `L = max(M, C, R − 1)`, the first valid window index of the HMM features.
    pub fn hmm_lookback(&self) -> usize {
        self.lookback
    }

    /// The market-feature periods.
    pub fn market_periods(&self) -> &MarketPeriods {
        &self.market
    }

    /// The HMM-feature periods.
    pub fn hmm_periods(&self) -> &HmmPeriods {
        &self.hmm_periods
    }

    /// Prices and costs.
    pub fn costs(&self) -> &CostParams {
        &self.costs
    }

    /// `pip_value / points_per_pip` (§6).
    pub fn money_per_point(&self) -> f64 {
        self.money_per_point
    }

    /// `observation.clip`.
    pub fn clip(&self) -> f64 {
        self.clip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_different_lengths_are_the_same_only_with_a_positive_zero_tail() {
        assert!(same_weights(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(same_weights(&[1.0, 2.0], &[1.0, 2.0, 0.0, 0.0]));
        assert!(same_weights(&[1.0, 2.0, 0.0], &[1.0, 2.0]));
        assert!(!same_weights(&[1.0, 2.0], &[1.0, 3.0, 0.0]));
        assert!(!same_weights(&[1.0, 2.0], &[1.0, 2.0, 0.0, 5.0]));
        assert!(!same_weights(&[1.0, 2.0, 5.0], &[1.0, 2.0]));
        assert!(!same_weights(&[1.0, 2.0, -0.0], &[1.0, 2.0]));
    }

    #[test]
    fn cholesky_of_a_known_matrix() {
        // [[4, 2, 0.4], [2, 2, 0.5], [0.4, 0.5, 3]]: L = [[2], [1, 1], [0.2, 0.3, sqrt(2.87)]]
        let s = [[4.0, 2.0, 0.4], [2.0, 2.0, 0.5], [0.4, 0.5, 3.0]];
        let l = cholesky(&s, 0.0).unwrap();
        assert_eq!(l[0][0], 2.0);
        assert_eq!(l[1][0], 1.0);
        assert_eq!(l[1][1], 1.0);
        assert_eq!(l[2][0], 0.2);
        assert!((l[2][1] - 0.3).abs() < 1e-15);
        assert!((l[2][2] - libm::sqrt(3.0 - 0.04 - 0.09)).abs() < 1e-15);
    }

    #[test]
    fn cholesky_retry_rule() {
        // Singular but positive semi-definite: fails plainly, passes with the jitter.
        let s = [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(cholesky(&s, 0.0).is_none());
        let l = cholesky(&s, CHOLESKY_JITTER).unwrap();
        assert!(l[1][1] > 0.0);
        // Indefinite: fails both ways.
        let bad = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(cholesky(&bad, 0.0).is_none());
        assert!(cholesky(&bad, CHOLESKY_JITTER).is_none());
    }
}
