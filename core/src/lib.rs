//! The digital twin of one trading model: a pure, deterministic, allocation-free state machine.
//!
//! `oracle-core` reproduces, bar for bar, what the training `TradingEnv` computes
//! (`docs/contract.md`): the 350-bar window, the market features, the Gaussian-HMM regime by a
//! causal scaled forward filter, the observation, the PPO actor MLP, the action and the virtual
//! position with its prices and costs.
//!
//! It contains no I/O, reads no clock, allocates nothing and has no global state: a bar (with its
//! time as data) goes in through [`Twin::handle_bar`], a [`Step`] comes out. The same inputs give
//! the same bits on every platform (float functions come from `libm`).
//!
//! - **Architecture Invariant:** the core never reads a clock, a file or a socket; the shells own
//!   all I/O and hand the core plain values.
//! - **Architecture Invariant:** nothing here allocates; every buffer has its capacity in its type
//!   ([`Twin`]'s bar ring is `N` slots, the model's arrays are sized by the `MAX_*` constants).
//! - **Architecture Invariant:** a rejected bar leaves the twin exactly as it was.
//! - **Architecture Invariant:** weights live in a [`Model`] that twins borrow, so a thousand twins
//!   of twenty models share twenty copies of the weights; a model's weight storage is its
//!   owner's ([`ModelOf`]: inline for the largest policy, or sized to the policy by a loader).
//!
//! Layout: [`bar`] (input validation), [`ring`] (fixed-capacity FIFO), [`model`] (validated
//! parameters), [`features`] (§3 and the HMM features of §4), [`hmm`] (emissions and the forward
//! filter), [`policy`] (MLP and action choice), [`tanh`] (the policy's bit-exact fast `tanh`), [`position`] (actions and their [`Intensity`], prices, P&L), [`twin`]
//! (the state machine tying them together), [`stream`] (the shared vocabulary of which bars:
//! [`Timeframe`], [`Symbol`], [`StreamKey`]).
#![no_std]
#![deny(missing_docs)]

pub mod bar;
pub mod features;
pub mod hmm;
mod math;
pub mod model;
mod pass;
pub mod policy;
pub mod position;
pub mod ring;
pub mod stream;
pub mod synthetic;
pub mod tanh;
pub mod twin;

pub use bar::{Bar, BarError};
pub use model::{
    Activation, CostParams, CovarianceParams, HmmParams, HmmPeriods, InlineModel, LayerParams,
    MarketPeriods, Model, ModelError, ModelOf, ModelParams, Weights,
};
pub use position::{Action, Intensity, Position};
pub use stream::{MAX_SYMBOL, StreamKey, StreamKeyError, Symbol, Timeframe};
pub use twin::{
    Decision, PrimeError, RestoreError, Step, Twin, TwinError, TwinState, Warmup, observation,
};

/// Window length used by the models of this project (the metadata's `window`).
pub const DEFAULT_WINDOW: usize = 350;
/// Number of raw market features (§3).
pub const N_MARKET_FEATURES: usize = 5;
/// Number of HMM features per bar (§4), `D`.
pub const N_HMM_FEATURES: usize = 3;
/// Largest number of HMM states a [`Model`] can hold.
pub const MAX_STATES: usize = 8;
/// Largest observation dimension (`5 + K + 3`).
pub const MAX_OBS: usize = N_MARKET_FEATURES + MAX_STATES + 3;
/// Largest width of any policy layer (inputs and outputs): SB3's `net_arch` up to `[256, 256]`.
pub const MAX_WIDTH: usize = 256;
/// Largest number of dense layers in the policy (hidden layers plus the action layer).
pub const MAX_LAYERS: usize = 4;
/// Policy weights a [`Model`] holds (f32), counted as [`model::policy_weights`] counts them (each
/// layer's outputs padded to its SIMD block): exactly a `[256, 256]` actor on the largest
/// observation (`16·256 + 256·256 + 256·8`). Any `net_arch` of at most `MAX_LAYERS − 1` hidden
/// layers of `1..=MAX_WIDTH` units that fits is accepted (e.g. `[128, 128, 128]`), a larger one
/// is refused by name ([`ModelError::PolicyTooLarge`]).
pub const MAX_POLICY_WEIGHTS: usize = MAX_OBS * MAX_WIDTH + MAX_WIDTH * MAX_WIDTH + MAX_WIDTH * 8;
/// Number of discrete actions (§6).
pub const N_ACTIONS: usize = 7;
