//! Builders for hand-made ONNX models (prost types), shared by the integration tests.
#![allow(dead_code)]

use onnx2rs::proto::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

pub const FLOAT: i32 = 1;

/// An f32 initializer stored as little-endian `raw_data` (what torch writes).
pub fn raw_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(FLOAT),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An f32 initializer stored in `float_data`.
pub fn float_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(FLOAT),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(proto::attribute_proto::AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(proto::attribute_proto::AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

pub fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| (*s).into()).collect(),
        output: outputs.iter().map(|s| (*s).into()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// `Gemm(x, w, b)` with torch's attributes (alpha = beta = 1, transB as given).
pub fn gemm(name: &str, x: &str, w: &str, b: Option<&str>, y: &str, trans_b: i64) -> NodeProto {
    let mut inputs = vec![x, w];
    if let Some(b) = b {
        inputs.push(b);
    }
    node(
        name,
        "Gemm",
        &inputs,
        &[y],
        vec![
            attr_f("alpha", 1.0),
            attr_f("beta", 1.0),
            attr_i("transB", trans_b),
        ],
    )
}

/// A float tensor value with shape `[batch, dim]` (symbolic batch).
pub fn value(name: &str, dim: i64) -> ValueInfoProto {
    use proto::tensor_shape_proto::{Dimension, dimension::Value};
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(FLOAT),
                    shape: Some(TensorShapeProto {
                        dim: vec![
                            Dimension {
                                value: Some(Value::DimParam("batch".into())),
                                ..Default::default()
                            },
                            Dimension {
                                value: Some(Value::DimValue(dim)),
                                ..Default::default()
                            },
                        ],
                    }),
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("onnx2rs-tests".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            name: Some("test".into()),
            node: nodes,
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

/// How closely a computed f32 must match a reference value. Named, so every comparison says
/// which rule it uses instead of carrying a bare epsilon.
#[derive(Clone, Copy, Debug)]
pub enum Tolerance {
    /// Bit-identical (up to `0.0 == -0.0`).
    Exact,
    /// `|got − want| ≤ eps`.
    Abs(f64),
    /// At most `n` units in the last place apart (same sign).
    Ulp(u32),
}

impl Tolerance {
    pub fn accepts(self, got: f32, want: f32) -> bool {
        match self {
            Tolerance::Exact => got == want,
            Tolerance::Abs(eps) => (f64::from(got) - f64::from(want)).abs() <= eps,
            Tolerance::Ulp(n) => {
                got == want
                    || (got.is_sign_negative() == want.is_sign_negative()
                        && got.to_bits().abs_diff(want.to_bits()) <= n)
            }
        }
    }
}

/// Workspace root (two levels above this package).
pub fn workspace_root() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// Writes a note to the real stderr, bypassing libtest's output capture, so that a skipped
/// check is visible in every `cargo test` run.
pub fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}
