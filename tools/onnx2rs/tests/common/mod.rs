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

/// The loader's forward pass (the one implementation of the policy, `oracle_core::policy`) on
/// `mlp`: its layers, written as the plain weights member of a copy of `models/EURUSD_H1.zip`
/// (the metadata's `policy.net_arch` and `policy.activation` following), loaded by
/// `oracle_model` and run by the core. The core's observation is wider than a hand-made net's
/// input and its actions are 7: the first layer gets zero columns and the last zero rows, which
/// add exact zeros to every sum, so the first `output_dim` logits are the net's.
pub fn loader_logits(mlp: &onnx2rs::Mlp, x: &[f32]) -> Vec<f32> {
    use std::io::{Cursor, Read, Write};

    use oracle_core::model::Activation as Core;
    use sha2::Digest;

    assert_eq!(x.len(), mlp.input_dim(), "loader_logits: input length");
    let zip =
        std::fs::read(workspace_root().join("models/EURUSD_H1.zip")).expect("models/EURUSD_H1.zip");
    let mut a = zip::ZipArchive::new(Cursor::new(&zip)).expect("zip");
    let mut meta: serde_json::Value = serde_json::from_slice(a.comment()).expect("metadata");
    let mut members = std::collections::BTreeMap::new();
    for i in 0..a.len() {
        let mut f = a.by_index(i).expect("member");
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read");
        members.insert(f.name().to_owned(), data);
    }
    let obs_dim = meta["observation"]["dim"].as_u64().expect("dim") as usize;
    let onnx_sha = meta["members"]["EURUSD_H1_policy.onnx"]["sha256"]
        .as_str()
        .expect("onnx sha");
    let n = mlp.layers.len();
    assert!(mlp.input_dim() <= obs_dim && mlp.output_dim() <= oracle_core::N_ACTIONS);
    // A net without hidden layers has no hidden activation; the metadata still names one.
    let hidden = match mlp.layers.as_slice() {
        [first, _, ..] => first.activation,
        _ => onnx2rs::Activation::Tanh,
    };
    let mut layers = Vec::new();
    for (i, l) in mlp.layers.iter().enumerate() {
        let (in_dim, out_dim) = (
            if i == 0 { obs_dim } else { l.in_dim },
            if i + 1 == n {
                oracle_core::N_ACTIONS
            } else {
                l.out_dim
            },
        );
        let mut weights = vec![0.0f32; in_dim * out_dim];
        for (o, row) in l.weights.chunks_exact(l.in_dim).enumerate() {
            weights[o * in_dim..o * in_dim + l.in_dim].copy_from_slice(row);
        }
        let mut bias = vec![0.0f32; out_dim];
        bias[..l.out_dim].copy_from_slice(&l.bias);
        let activation = match l.activation {
            onnx2rs::Activation::Tanh => Core::Tanh,
            onnx2rs::Activation::Relu => Core::Relu,
            onnx2rs::Activation::Identity => Core::Identity,
        };
        assert!(
            (i + 1 == n) == (activation == Core::Identity)
                && (i + 1 == n || l.activation == hidden),
            "loader_logits: the core runs one hidden activation and identity logits"
        );
        layers.push(oracle_model::DenseLayer {
            in_dim,
            out_dim,
            activation,
            weights,
            bias,
        });
    }
    let w = oracle_model::PolicyWeights {
        onnx_sha256: hex::decode(onnx_sha)
            .expect("hex")
            .try_into()
            .expect("32 bytes"),
        layers,
    };
    members.insert(
        "EURUSD_H1_policy.weights".to_owned(),
        oracle_model::encode_weights(&w),
    );
    meta["policy"]["net_arch"] = mlp.layers[..n - 1].iter().map(|l| l.out_dim).collect();
    meta["policy"]["activation"] = hidden.name().into();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in &members {
        meta["members"][name]["sha256"] = hex::encode(sha2::Sha256::digest(data)).into();
        out.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .expect("start");
        out.write_all(data).expect("write");
    }
    out.set_comment(meta.to_string());
    let bytes = out.finish().expect("finish").into_inner();
    let loaded = oracle_model::load_model_bytes("EURUSD_H1.zip", &bytes)
        .unwrap_or_else(|e| panic!("the loader refused the net: {e}"));
    let mut obs = [0.0f32; oracle_core::MAX_OBS];
    obs[..x.len()].copy_from_slice(x);
    oracle_core::policy::logits(&loaded.model, &obs)[..mlp.output_dim()].to_vec()
}
