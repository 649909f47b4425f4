//! The plain policy weights member of a model zip, `SYM_TF_policy.weights` (docs/contract.md
//! §9, "The policy weights member"): the actor's dense layers as the ONNX export holds them,
//! written once when the model is packed (`python -m oracle_training pack-weights`), read here
//! with no protobuf (tract's "translate once, run small").
//!
//! Layout, every integer a little-endian `u32`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `magic`: the bytes `ORPOLW\0\0` |
//! | 8 | 4 | `version`: 1 |
//! | 12 | 4 | `dtype`: 1 = f32 little-endian |
//! | 16 | 32 | `onnx_sha256`: sha256 of the `SYM_TF_policy.onnx` member it was read from |
//! | 48 | 4 | `n_layers` (1..=16) |
//! | 52 | 4 | `in_dim`: the observation size |
//! | 56 | 8·n | per layer: `out_dim`, `activation` (0 identity, 1 tanh, 2 relu) |
//! | … | | per layer in order: `out_dim × in_dim` weights (row-major, the torch `Linear.weight` layout), then `out_dim` biases |
//!
//! The file ends exactly after the last bias. The floats are the ONNX initializers' bits.

use oracle_core::model::Activation;

/// The member's first eight bytes.
pub const WEIGHTS_MAGIC: [u8; 8] = *b"ORPOLW\0\0";
/// The only layout version this loader reads.
pub const WEIGHTS_VERSION: u32 = 1;
/// `dtype` 1: IEEE-754 binary32, little-endian.
pub const WEIGHTS_DTYPE_F32_LE: u32 = 1;
/// The suffix of the member in a model zip: `SYM_TF_policy.weights`.
pub const WEIGHTS_SUFFIX: &str = "_policy.weights";
/// The most layers a weights member may declare (the core holds fewer; the metadata decides).
const MAX_DECLARED_LAYERS: u32 = 16;
/// The widest layer a weights member may declare (the core holds narrower ones).
const MAX_DECLARED_WIDTH: u32 = 4096;

/// The command that writes the weights member into `zip` (the Python side's
/// `oracle_training.weights.pack_weights_command`, the same text).
pub fn pack_weights_command(zip: &str) -> String {
    format!("python -m oracle_training pack-weights {zip}")
}

/// One dense layer `y = act(W·x + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Inputs.
    pub in_dim: usize,
    /// Outputs.
    pub out_dim: usize,
    /// The activation after the affine map.
    pub activation: Activation,
    /// `W`, `out_dim × in_dim`, row-major.
    pub weights: Vec<f32>,
    /// `b`, `out_dim` values.
    pub bias: Vec<f32>,
}

/// A decoded weights member.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyWeights {
    /// sha256 of the ONNX member the weights were read from.
    pub onnx_sha256: [u8; 32],
    /// The layers, input side first.
    pub layers: Vec<DenseLayer>,
}

/// Why a weights member cannot be decoded: the field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsError {
    /// The header field (`magic`, `version`, `dtype`, `n_layers`, `in_dim`,
    /// `layer 1 out_dim`, `layer 0 activation`, `layer 2 weights`, `length`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for WeightsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field '{}': {}", self.field, self.reason)
    }
}

impl std::error::Error for WeightsError {}

fn err(field: impl Into<String>, reason: impl Into<String>) -> WeightsError {
    WeightsError {
        field: field.into(),
        reason: reason.into(),
    }
}

fn activation_code(a: Activation) -> u32 {
    match a {
        Activation::Identity => 0,
        Activation::Tanh => 1,
        Activation::Relu => 2,
    }
}

/// The member's bytes for these layers (the inverse of [`decode_weights`]).
pub fn encode_weights(w: &PolicyWeights) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&WEIGHTS_MAGIC);
    for v in [WEIGHTS_VERSION, WEIGHTS_DTYPE_F32_LE] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&w.onnx_sha256);
    let u = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&u(w.layers.len()));
    out.extend_from_slice(&u(w.layers.first().map_or(0, |l| l.in_dim)));
    for l in &w.layers {
        out.extend_from_slice(&u(l.out_dim));
        out.extend_from_slice(&activation_code(l.activation).to_le_bytes());
    }
    for l in &w.layers {
        for v in l.weights.iter().chain(&l.bias) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &str) -> Result<&[u8], WeightsError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(err(
                field,
                format!(
                    "the member ends at byte {}, the header declares {n} more bytes from byte {}",
                    self.bytes.len(),
                    self.at
                ),
            ));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, field: &str) -> Result<u32, WeightsError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32s(&mut self, n: usize, field: &str) -> Result<Vec<f32>, WeightsError> {
        let b = self.take(n * 4, field)?;
        let v: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(err(
                field,
                format!("value {i} is {x}; weights must be finite"),
            ));
        }
        Ok(v)
    }
}

/// Decodes a weights member, refusing it by the field at fault. Checks the layout only (sizes
/// chain, the file's length); the loader checks it against the metadata and the ONNX member.
pub fn decode_weights(bytes: &[u8]) -> Result<PolicyWeights, WeightsError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8, "magic")? != WEIGHTS_MAGIC {
        return Err(err(
            "magic",
            "not a policy weights member (it must start with ORPOLW)",
        ));
    }
    let version = r.u32("version")?;
    if version != WEIGHTS_VERSION {
        return Err(err(
            "version",
            format!("{version} is not a version this loader reads ({WEIGHTS_VERSION})"),
        ));
    }
    let dtype = r.u32("dtype")?;
    if dtype != WEIGHTS_DTYPE_F32_LE {
        return Err(err(
            "dtype",
            format!("{dtype} is not supported ({WEIGHTS_DTYPE_F32_LE} = f32 little-endian)"),
        ));
    }
    let mut onnx_sha256 = [0u8; 32];
    onnx_sha256.copy_from_slice(r.take(32, "onnx_sha256")?);
    let n_layers = r.u32("n_layers")?;
    if n_layers == 0 || n_layers > MAX_DECLARED_LAYERS {
        return Err(err(
            "n_layers",
            format!("{n_layers} is not in 1..={MAX_DECLARED_LAYERS}"),
        ));
    }
    let mut in_dim = r.u32("in_dim")?;
    if in_dim == 0 || in_dim > MAX_DECLARED_WIDTH {
        return Err(err(
            "in_dim",
            format!("{in_dim} is not in 1..={MAX_DECLARED_WIDTH}"),
        ));
    }
    let mut shapes = Vec::new();
    for i in 0..n_layers {
        let out_dim = r.u32(&format!("layer {i} out_dim"))?;
        if out_dim == 0 || out_dim > MAX_DECLARED_WIDTH {
            return Err(err(
                format!("layer {i} out_dim"),
                format!("{out_dim} is not in 1..={MAX_DECLARED_WIDTH}"),
            ));
        }
        let activation = match r.u32(&format!("layer {i} activation"))? {
            0 => Activation::Identity,
            1 => Activation::Tanh,
            2 => Activation::Relu,
            other => {
                return Err(err(
                    format!("layer {i} activation"),
                    format!("{other} is not 0 (identity), 1 (tanh) or 2 (relu)"),
                ));
            }
        };
        shapes.push((in_dim as usize, out_dim as usize, activation));
        in_dim = out_dim;
    }
    let mut layers = Vec::with_capacity(shapes.len());
    for (i, (in_dim, out_dim, activation)) in shapes.into_iter().enumerate() {
        let weights = r.f32s(in_dim * out_dim, &format!("layer {i} weights"))?;
        let bias = r.f32s(out_dim, &format!("layer {i} bias"))?;
        layers.push(DenseLayer {
            in_dim,
            out_dim,
            activation,
            weights,
            bias,
        });
    }
    if r.at != bytes.len() {
        return Err(err(
            "length",
            format!(
                "{} bytes follow the last layer's bias (the header declares {} bytes in all)",
                bytes.len() - r.at,
                r.at
            ),
        ));
    }
    Ok(PolicyWeights {
        onnx_sha256,
        layers,
    })
}
