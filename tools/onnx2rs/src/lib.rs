//! `onnx2rs`: translate the SB3 actor exported to ONNX into plain dense layers.
//!
//! In the spirit of tract ("translate once, ship a small runtime"), the ONNX protobuf is decoded
//! with `prost` from committed generated code (no `protoc` at build time), the graph is walked
//! along its edges from the single input to the single output, and only the actor MLP shape is
//! accepted: `Gemm` (or `MatMul` + `Add`), optionally followed by `Tanh`/`Relu`, with any
//! `Flatten`/`Identity` passed through. Anything else is refused with an [`Error`] that names the
//! node (index and name) and its op.
//!
//! Initializers are never matched by name or position: the exporter deduplicates identical
//! tensors (two all-zero biases become one initializer plus an `Identity` node), so each layer's
//! weights and bias are found by following the node's input edges, through `Identity` aliases.
//!
//! A development tool since the ONNX import moved to pack time (issue 15 item 4): the model zip
//! carries the plain weights member `SYM_TF_policy.weights` that `oracle_model` loads with no
//! protobuf; [`check_zip_weights`] (`onnx2rs weights ZIP…`) proves that member is this crate's
//! import of the zip's ONNX policy, bit for bit. There is no forward pass here: the policy runs
//! in one place, the core (`oracle_core::policy`), which the tests compare against.
//!
//! ```no_run
//! let bytes = std::fs::read("EURUSD_M15_policy.onnx").unwrap();
//! let mlp = onnx2rs::convert(&bytes).unwrap();
//! print!("{}", mlp.summary());
//! ```

mod convert;
mod emit;
mod error;
mod model_zip;
mod weights;

/// Prost types for the subset of `onnx.proto` that onnx2rs reads (generated, committed).
///
/// Public so that tests and tools can build ONNX models in memory.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/generated/onnx.rs"
    ));
}

pub use convert::{convert, convert_model};
pub use emit::{EMIT_HEADER, emit_rust, sha256_hex};
pub use error::{Error, NodeRef};
pub use model_zip::{POLICY_SUFFIX, policy_from_zip};
pub use weights::{check_zip_weights, policy_weights, weights_member};

/// Activation applied after a dense layer's affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `tanh` (the core computes it as `libm::tanh` in f64 cast to f32).
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// No activation (the output layer's logits).
    Identity,
}

impl Activation {
    /// Lower-case name, as printed by the CLI (`tanh`, `relu`, `identity`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Identity => "identity",
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One dense layer: `y = activation(W·x + b)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Input width (columns of `W`).
    pub in_dim: usize,
    /// Output width (rows of `W`, length of `b`).
    pub out_dim: usize,
    /// `W`, `out_dim × in_dim`, row-major (the torch `Linear.weight` layout).
    pub weights: Vec<f32>,
    /// `b`, `out_dim` values.
    pub bias: Vec<f32>,
    /// Activation applied after the affine map.
    pub activation: Activation,
}

/// The actor MLP: dense layers applied in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Layers, input side first.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Input width (the observation size); 0 for an MLP without layers.
    pub fn input_dim(&self) -> usize {
        self.layers.first().map_or(0, |l| l.in_dim)
    }

    /// Output width (7 logits for the trading actor); 0 for an MLP without layers.
    pub fn output_dim(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out_dim)
    }

    /// Checks that every layer's vectors match its dims and that consecutive dims chain.
    pub fn validate(&self) -> Result<(), Error> {
        if self.layers.is_empty() {
            return Err(Error::NoLayers);
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.weights.len() != l.in_dim * l.out_dim || l.bias.len() != l.out_dim {
                return Err(Error::InconsistentLayer {
                    layer: i,
                    detail: format!(
                        "{}x{} layer has {} weights and {} biases",
                        l.out_dim,
                        l.in_dim,
                        l.weights.len(),
                        l.bias.len()
                    ),
                });
            }
            if i > 0 && self.layers[i - 1].out_dim != l.in_dim {
                return Err(Error::InconsistentLayer {
                    layer: i,
                    detail: format!(
                        "input width {} does not match the previous layer's output width {}",
                        l.in_dim,
                        self.layers[i - 1].out_dim
                    ),
                });
            }
        }
        Ok(())
    }

    /// One line per layer, e.g. `layer 0: 3 -> 64, tanh`, as printed by the CLI.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "mlp: {} layers, input {}, output {}\n",
            self.layers.len(),
            self.input_dim(),
            self.output_dim()
        );
        for (i, l) in self.layers.iter().enumerate() {
            s.push_str(&format!(
                "layer {i}: {} -> {}, {}\n",
                l.in_dim, l.out_dim, l.activation
            ));
        }
        s
    }
}
