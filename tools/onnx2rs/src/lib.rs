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
//! ```no_run
//! let bytes = std::fs::read("EURUSD_M15_policy.onnx").unwrap();
//! let mlp = onnx2rs::convert(&bytes).unwrap();
//! let logits = mlp.forward(&vec![0.0; mlp.input_dim()]);
//! assert_eq!(logits.len(), mlp.output_dim());
//! ```

mod convert;
mod emit;
mod error;
mod model_zip;

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

/// Activation applied after a dense layer's affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `tanh`, computed as `libm::tanh` in f64 and cast to f32 (effectively correctly rounded).
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// No activation (the output layer's logits).
    Identity,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Tanh => libm::tanh(f64::from(v)) as f32,
            // Keeps NaN as NaN (like torch), unlike `f32::max`.
            Activation::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            Activation::Identity => v,
        }
    }

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

impl Dense {
    /// Reference forward pass of this layer: each output is a sequential f32 dot product
    /// (`acc += w·x` in index order), then `+ b`, then the activation.
    ///
    /// # Panics
    /// If `x.len() != self.in_dim` or the layer's vectors do not have the sizes its dims claim.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.in_dim, "Dense::forward: input length");
        assert_eq!(
            self.weights.len(),
            self.in_dim * self.out_dim,
            "Dense::forward: weights"
        );
        assert_eq!(self.bias.len(), self.out_dim, "Dense::forward: bias");
        if self.in_dim == 0 {
            return self
                .bias
                .iter()
                .map(|&b| self.activation.apply(b))
                .collect();
        }
        self.weights
            .chunks_exact(self.in_dim)
            .zip(&self.bias)
            .map(|(row, &b)| {
                let mut acc = 0.0f32;
                for (&w, &xi) in row.iter().zip(x) {
                    acc += w * xi;
                }
                self.activation.apply(acc + b)
            })
            .collect()
    }
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

    /// Reference forward pass: sequential f32 dot products, `tanh` via `libm::tanh` f64 → f32.
    ///
    /// # Panics
    /// If `x.len() != self.input_dim()` (use [`Mlp::try_forward`] for a checked call) or the
    /// layers are inconsistent (never the case for an `Mlp` made by [`convert`]).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut v = x.to_vec();
        for layer in &self.layers {
            v = layer.forward(&v);
        }
        v
    }

    /// Like [`Mlp::forward`], but refuses an input of the wrong length instead of panicking.
    pub fn try_forward(&self, x: &[f32]) -> Result<Vec<f32>, Error> {
        if x.len() != self.input_dim() {
            return Err(Error::InputLength {
                expected: self.input_dim(),
                found: x.len(),
            });
        }
        self.validate()?;
        Ok(self.forward(x))
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
