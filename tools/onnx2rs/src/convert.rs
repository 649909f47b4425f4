//! Recognising the actor MLP by following the graph's edges.

use std::collections::{HashMap, HashSet, VecDeque};

use prost::Message;

use crate::error::NodeRef;
use crate::proto::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use crate::{Activation, Dense, Error, Mlp};

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

/// Decodes an ONNX model and converts its actor MLP into dense layers.
///
/// Accepted: a single graph input and output joined by a simple chain of `Gemm` (alpha = 1,
/// beta = 1, transA = 0, transB 0 or 1) or `MatMul` (+ an `Add` of a constant bias), each
/// optionally followed by `Tanh` or `Relu`, with `Flatten` (axis 1) and `Identity` passed
/// through. Weights and biases must be constant f32 tensors, reached by following each node's
/// input edges through any `Identity`/`Constant` nodes (the exporter's deduplication of identical
/// initializers). Everything else is refused with an [`Error`] naming the node and its op.
pub fn convert(onnx_bytes: &[u8]) -> Result<Mlp, Error> {
    let model = ModelProto::decode(onnx_bytes)?;
    convert_model(&model)
}

/// Like [`convert`], from an already decoded model.
pub fn convert_model(model: &ModelProto) -> Result<Mlp, Error> {
    let graph = model.graph.as_ref().ok_or(Error::NoGraph)?;
    Converter::new(graph)?.run()
}

fn node_ref(index: usize, node: &NodeProto) -> NodeRef {
    NodeRef {
        index,
        name: node.name().to_owned(),
        op: node.op_type().to_owned(),
    }
}

/// A decoded f32 tensor.
struct Tensor {
    dims: Vec<usize>,
    data: Vec<f32>,
}

fn data_type_name(code: i32) -> String {
    match proto::tensor_proto::DataType::try_from(code) {
        Ok(t) => format!("{} ({code})", t.as_str_name()),
        Err(_) => format!("unknown ({code})"),
    }
}

fn decode_tensor(t: &TensorProto, fallback_name: &str) -> Result<Tensor, Error> {
    let tensor = if t.name().is_empty() {
        fallback_name.to_owned()
    } else {
        t.name().to_owned()
    };
    let bad = |detail: String| Error::BadTensor {
        tensor: tensor.clone(),
        detail,
    };
    if t.data_type() != ONNX_FLOAT {
        return Err(Error::NonFloatTensor {
            tensor: tensor.clone(),
            data_type: data_type_name(t.data_type()),
        });
    }
    if t.data_location() == proto::tensor_proto::DataLocation::External
        || !t.external_data.is_empty()
    {
        return Err(bad(
            "stored as external data, which onnx2rs does not read".into()
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}")))?);
    }
    let numel = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let raw = t.raw_data();
    let data: Vec<f32> = if !raw.is_empty() {
        if !t.float_data.is_empty() {
            return Err(bad("has both raw_data and float_data".into()));
        }
        if raw.len() != numel.saturating_mul(4) {
            return Err(bad(format!(
                "raw_data has {} bytes, dims {dims:?} need {} ({} f32)",
                raw.len(),
                numel.saturating_mul(4),
                numel
            )));
        }
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        if t.float_data.len() != numel {
            return Err(bad(format!(
                "float_data has {} values, dims {dims:?} need {numel}",
                t.float_data.len()
            )));
        }
        t.float_data.clone()
    };
    if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(bad(format!("element {i} is {v}; weights must be finite")));
    }
    Ok(Tensor { dims, data })
}

/// Reads a scalar attribute, refusing any attribute name not in `known`.
struct Attrs<'a> {
    node: NodeRef,
    attrs: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    fn new(node: NodeRef, n: &'a NodeProto, known: &[&str]) -> Result<Self, Error> {
        for a in &n.attribute {
            if !known.contains(&a.name()) {
                return Err(Error::UnsupportedAttribute {
                    node: node.clone(),
                    attr: a.name().to_owned(),
                    detail: if known.is_empty() {
                        format!("{} takes no attributes here", node.op)
                    } else {
                        format!("only {} are supported", known.join(", "))
                    },
                });
            }
            if !a.ref_attr_name().is_empty() {
                return Err(Error::UnsupportedAttribute {
                    node: node.clone(),
                    attr: a.name().to_owned(),
                    detail: "attribute references (ref_attr_name) are not supported".into(),
                });
            }
        }
        Ok(Self {
            node,
            attrs: &n.attribute,
        })
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.attrs.iter().find(|a| a.name() == name)
    }

    fn int(&self, name: &str, default: i64) -> Result<i64, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(a) => a.i.ok_or_else(|| Error::UnsupportedAttribute {
                node: self.node.clone(),
                attr: name.to_owned(),
                detail: "expected an INT attribute".into(),
            }),
        }
    }

    fn float(&self, name: &str, default: f32) -> Result<f32, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(a) => a.f.ok_or_else(|| Error::UnsupportedAttribute {
                node: self.node.clone(),
                attr: name.to_owned(),
                detail: "expected a FLOAT attribute".into(),
            }),
        }
    }

    fn require(&self, name: &str, found: f64, want: f64) -> Result<(), Error> {
        if found == want {
            Ok(())
        } else {
            Err(Error::UnsupportedAttribute {
                node: self.node.clone(),
                attr: name.to_owned(),
                detail: format!("{name} = {found}, only {want} is supported"),
            })
        }
    }
}

/// Where a constant value comes from.
#[derive(Clone, Copy)]
enum ConstSrc<'a> {
    Initializer(&'a TensorProto),
    /// A `Constant` node's `value` attribute.
    ConstantNode(&'a TensorProto),
}

impl<'a> ConstSrc<'a> {
    fn tensor(self) -> &'a TensorProto {
        match self {
            ConstSrc::Initializer(t) | ConstSrc::ConstantNode(t) => t,
        }
    }
}

/// The state of the chain just before the current node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Nothing but pass-through ops yet.
    Start,
    /// A linear layer without a bias `Add` or activation yet; `has_bias` tells whether a bias
    /// (Gemm's C or an Add) was already applied.
    Linear { has_bias: bool },
    /// An activation was applied to the last layer.
    Activated,
}

struct Converter<'a> {
    graph: &'a GraphProto,
    consts: HashMap<&'a str, ConstSrc<'a>>,
    /// Nodes that only alias or define constants (`Identity` of a constant, `Constant`).
    const_nodes: HashSet<usize>,
    /// Data node indices consuming each value.
    consumers: HashMap<&'a str, Vec<usize>>,
    /// Data node producing each value.
    producers: HashMap<&'a str, usize>,
    input: &'a ValueInfoProto,
    output: &'a ValueInfoProto,
}

impl<'a> Converter<'a> {
    fn new(graph: &'a GraphProto) -> Result<Self, Error> {
        let mut consts: HashMap<&'a str, ConstSrc<'a>> = HashMap::new();
        for t in &graph.initializer {
            if consts.insert(t.name(), ConstSrc::Initializer(t)).is_some() {
                return Err(Error::Graph(format!(
                    "initializer '{}' is defined twice",
                    t.name()
                )));
            }
        }

        let inputs: Vec<&ValueInfoProto> = graph
            .input
            .iter()
            .filter(|v| !consts.contains_key(v.name()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(Error::Inputs {
                count: inputs.len(),
                names: inputs
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let [output] = graph.output.as_slice() else {
            return Err(Error::Outputs {
                count: graph.output.len(),
                names: graph
                    .output
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };

        // Constant nodes: `Constant`, and `Identity` of a constant (the exporter's deduplicated
        // initializers), transitively and in any node order.
        let mut const_nodes = HashSet::new();
        loop {
            let mut changed = false;
            for (i, n) in graph.node.iter().enumerate() {
                if const_nodes.contains(&i) || !is_default_domain(n) {
                    continue;
                }
                let src = match n.op_type() {
                    "Constant" => {
                        let node = node_ref(i, n);
                        let attrs = Attrs::new(node.clone(), n, &["value"])?;
                        let t = attrs
                            .get("value")
                            .and_then(|a| a.t.as_ref())
                            .ok_or_else(|| Error::UnsupportedAttribute {
                                node,
                                attr: "value".into(),
                                detail: "Constant needs a tensor 'value' attribute".into(),
                            })?;
                        Some(ConstSrc::ConstantNode(t))
                    }
                    "Identity" => match n.input.as_slice() {
                        [src] => consts.get(src.as_str()).copied(),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(src) = src {
                    let [out] = n.output.as_slice() else {
                        return Err(Error::Structure {
                            node: node_ref(i, n),
                            detail: format!(
                                "expected exactly one output, found {}",
                                n.output.len()
                            ),
                        });
                    };
                    if consts.insert(out.as_str(), src).is_some() {
                        return Err(Error::Graph(format!(
                            "value '{out}' is defined twice (by an initializer or another node and \
                             by {})",
                            node_ref(i, n)
                        )));
                    }
                    const_nodes.insert(i);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        let mut producers: HashMap<&'a str, usize> = HashMap::new();
        let mut consumers: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            if const_nodes.contains(&i) {
                continue;
            }
            for out in &n.output {
                if out.is_empty() {
                    continue;
                }
                if consts.contains_key(out.as_str())
                    || out == input.name()
                    || producers.insert(out.as_str(), i).is_some()
                {
                    return Err(Error::Graph(format!(
                        "value '{out}' is defined twice (last by {})",
                        node_ref(i, n)
                    )));
                }
            }
            let mut seen = HashSet::new();
            for inp in &n.input {
                if !inp.is_empty() && !consts.contains_key(inp.as_str()) && seen.insert(inp) {
                    consumers.entry(inp.as_str()).or_default().push(i);
                }
            }
        }

        let conv = Self {
            graph,
            consts,
            const_nodes,
            consumers,
            producers,
            input,
            output,
        };
        conv.check_acyclic()?;
        Ok(conv)
    }

    /// Kahn's algorithm over the data nodes; any node left over lies on (or after) a cycle.
    fn check_acyclic(&self) -> Result<(), Error> {
        let nodes = &self.graph.node;
        let mut indegree = vec![0usize; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            if self.const_nodes.contains(&i) {
                continue;
            }
            let mut seen = HashSet::new();
            for inp in &n.input {
                if self.producers.contains_key(inp.as_str()) && seen.insert(inp) {
                    indegree[i] += 1;
                }
            }
        }
        let mut queue: VecDeque<usize> = (0..nodes.len())
            .filter(|i| !self.const_nodes.contains(i) && indegree[*i] == 0)
            .collect();
        let mut done = 0usize;
        while let Some(i) = queue.pop_front() {
            done += 1;
            for out in &nodes[i].output {
                for &c in self.consumers.get(out.as_str()).into_iter().flatten() {
                    indegree[c] -= 1;
                    if indegree[c] == 0 {
                        queue.push_back(c);
                    }
                }
            }
        }
        if done + self.const_nodes.len() < nodes.len() {
            if let Some(i) =
                (0..nodes.len()).find(|i| !self.const_nodes.contains(i) && indegree[*i] > 0)
            {
                return Err(Error::Cycle {
                    node: node_ref(i, &nodes[i]),
                });
            }
        }
        Ok(())
    }

    /// A constant input of a node, decoded.
    fn constant(&self, node: &NodeRef, input: &str, role: &'static str) -> Result<Tensor, Error> {
        match self.consts.get(input) {
            Some(src) => decode_tensor(src.tensor(), input),
            None => {
                let found = if input.is_empty() {
                    "it is absent".to_owned()
                } else if let Some(&p) = self.producers.get(input) {
                    format!("it is computed by {}", node_ref(p, &self.graph.node[p]))
                } else if input == self.input.name() {
                    "it is the graph input".to_owned()
                } else {
                    "no initializer or node defines it".to_owned()
                };
                Err(Error::MissingInitializer {
                    node: node.clone(),
                    input: input.to_owned(),
                    role,
                    found,
                })
            }
        }
    }

    fn run(&self) -> Result<Mlp, Error> {
        let nodes = &self.graph.node;
        let out_name = self.output.name();
        let mut cur: &str = self.input.name();
        let mut visited = vec![false; nodes.len()];
        let mut layers: Vec<Dense> = Vec::new();
        let mut last = Last::Start;

        loop {
            let cons = self.consumers.get(cur).map_or(&[][..], Vec::as_slice);
            let idx = match cons {
                [] if cur == out_name => break,
                [] => {
                    return Err(Error::Graph(format!(
                        "value '{cur}' is not consumed by any node and is not the graph output \
                         '{out_name}'"
                    )));
                }
                [one] => *one,
                many => {
                    return Err(Error::Graph(format!(
                        "value '{cur}' feeds {} nodes ({}); the actor MLP is a simple chain",
                        many.len(),
                        many.iter()
                            .map(|&i| node_ref(i, &nodes[i]).to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            };
            let n = &nodes[idx];
            let node = node_ref(idx, n);
            if cur == out_name {
                return Err(Error::Structure {
                    node,
                    detail: format!("consumes the graph output '{out_name}'"),
                });
            }
            if visited[idx] {
                return Err(Error::Cycle { node });
            }
            visited[idx] = true;
            if !is_default_domain(n) {
                return Err(Error::UnsupportedOp {
                    domain_op: format!("{}::{}", n.domain(), n.op_type()),
                    node,
                });
            }
            let data_inputs = |want: usize| -> Result<(), Error> {
                let k = n.input.iter().filter(|s| s.as_str() == cur).count();
                if k != want {
                    return Err(Error::Structure {
                        node: node.clone(),
                        detail: format!("uses the data value '{cur}' {k} times, expected {want}"),
                    });
                }
                Ok(())
            };

            match n.op_type() {
                "Identity" => {
                    Attrs::new(node.clone(), n, &[])?;
                    expect_inputs(&node, n, 1)?;
                }
                "Flatten" => {
                    let attrs = Attrs::new(node.clone(), n, &["axis"])?;
                    expect_inputs(&node, n, 1)?;
                    let axis = attrs.int("axis", 1)?;
                    attrs.require("axis", axis as f64, 1.0)?;
                }
                "Gemm" => {
                    let attrs =
                        Attrs::new(node.clone(), n, &["alpha", "beta", "transA", "transB"])?;
                    if !(2..=3).contains(&n.input.len()) {
                        return Err(Error::Structure {
                            node,
                            detail: format!("expected 2 or 3 inputs, found {}", n.input.len()),
                        });
                    }
                    data_inputs(1)?;
                    if n.input[0] != cur {
                        return Err(Error::Structure {
                            node,
                            detail: format!(
                                "the data value '{cur}' must be input A (the first); weights \
                                 times data is not supported"
                            ),
                        });
                    }
                    let alpha = attrs.float("alpha", 1.0)?;
                    attrs.require("alpha", f64::from(alpha), 1.0)?;
                    let trans_a = attrs.int("transA", 0)?;
                    attrs.require("transA", trans_a as f64, 0.0)?;
                    let trans_b = attrs.int("transB", 0)?;
                    if trans_b != 0 && trans_b != 1 {
                        attrs.require("transB", trans_b as f64, 1.0)?;
                    }
                    let b = self.constant(&node, &n.input[1], "B (weights)")?;
                    let mut dense = dense_from_matrix(&node, &b, trans_b == 1, prev_out(&layers))?;
                    let c_name = n.input.get(2).map_or("", String::as_str);
                    let has_bias = !c_name.is_empty();
                    if has_bias {
                        let beta = attrs.float("beta", 1.0)?;
                        attrs.require("beta", f64::from(beta), 1.0)?;
                        let c = self.constant(&node, c_name, "C (bias)")?;
                        dense.bias = broadcast_bias(&node, &c, dense.out_dim)?;
                    }
                    layers.push(dense);
                    last = Last::Linear { has_bias };
                }
                "MatMul" => {
                    Attrs::new(node.clone(), n, &[])?;
                    expect_inputs(&node, n, 2)?;
                    data_inputs(1)?;
                    if n.input[0] != cur {
                        return Err(Error::Structure {
                            node,
                            detail: format!(
                                "the data value '{cur}' must be the first input (x·W); W·x is \
                                 not supported"
                            ),
                        });
                    }
                    let b = self.constant(&node, &n.input[1], "B (weights)")?;
                    layers.push(dense_from_matrix(&node, &b, false, prev_out(&layers))?);
                    last = Last::Linear { has_bias: false };
                }
                "Add" => {
                    Attrs::new(node.clone(), n, &[])?;
                    expect_inputs(&node, n, 2)?;
                    data_inputs(1)?;
                    let other = if n.input[0] == cur {
                        &n.input[1]
                    } else {
                        &n.input[0]
                    };
                    let c = self.constant(&node, other, "bias")?;
                    match (last, layers.last_mut()) {
                        (Last::Linear { has_bias: false }, Some(dense)) => {
                            let add = broadcast_bias(&node, &c, dense.out_dim)?;
                            for (b, a) in dense.bias.iter_mut().zip(add) {
                                *b += a;
                            }
                            last = Last::Linear { has_bias: true };
                        }
                        (Last::Linear { has_bias: true }, _) => {
                            return Err(Error::Structure {
                                node,
                                detail: "a second bias Add on the same layer is not supported"
                                    .into(),
                            });
                        }
                        _ => {
                            return Err(Error::Structure {
                                node,
                                detail: "Add must directly follow a Gemm or MatMul (bias)".into(),
                            });
                        }
                    }
                }
                op @ ("Tanh" | "Relu") => {
                    Attrs::new(node.clone(), n, &[])?;
                    expect_inputs(&node, n, 1)?;
                    match (last, layers.last_mut()) {
                        (Last::Linear { .. }, Some(dense)) => {
                            dense.activation = if op == "Tanh" {
                                Activation::Tanh
                            } else {
                                Activation::Relu
                            };
                            last = Last::Activated;
                        }
                        _ => {
                            return Err(Error::Structure {
                                node,
                                detail: format!(
                                    "{op} must directly follow a Gemm or MatMul(+Add); found it \
                                     {}",
                                    if last == Last::Start {
                                        "before any dense layer"
                                    } else {
                                        "after another activation"
                                    }
                                ),
                            });
                        }
                    }
                }
                op => {
                    return Err(Error::UnsupportedOp {
                        domain_op: op.to_owned(),
                        node,
                    });
                }
            }

            let [next] = n.output.as_slice() else {
                return Err(Error::Structure {
                    node,
                    detail: format!("expected exactly one output, found {}", n.output.len()),
                });
            };
            cur = next.as_str();
        }

        if let Some(i) = (0..nodes.len()).find(|&i| !visited[i] && !self.const_nodes.contains(&i)) {
            return Err(Error::UnusedNode {
                node: node_ref(i, &nodes[i]),
            });
        }
        if layers.is_empty() {
            return Err(Error::NoLayers);
        }
        let mlp = Mlp { layers };
        check_io(self.input, "input", mlp.input_dim())?;
        check_io(self.output, "output", mlp.output_dim())?;
        mlp.validate()?;
        Ok(mlp)
    }
}

fn is_default_domain(n: &NodeProto) -> bool {
    matches!(n.domain(), "" | "ai.onnx")
}

fn expect_inputs(node: &NodeRef, n: &NodeProto, want: usize) -> Result<(), Error> {
    if n.input.len() == want {
        Ok(())
    } else {
        Err(Error::Structure {
            node: node.clone(),
            detail: format!("expected {want} input(s), found {}", n.input.len()),
        })
    }
}

fn prev_out(layers: &[Dense]) -> Option<usize> {
    layers.last().map(|l| l.out_dim)
}

/// Builds a layer (bias zero) from a 2-D weight matrix: `[out, in]` when `transposed` (Gemm
/// transB = 1, the torch layout) or `[in, out]` otherwise (Gemm transB = 0, MatMul).
fn dense_from_matrix(
    node: &NodeRef,
    b: &Tensor,
    transposed: bool,
    prev_out: Option<usize>,
) -> Result<Dense, Error> {
    let &[d0, d1] = b.dims.as_slice() else {
        return Err(Error::ShapeMismatch {
            node: node.clone(),
            detail: format!("weight matrix must be 2-D, found dims {:?}", b.dims),
        });
    };
    let (out_dim, in_dim) = if transposed { (d0, d1) } else { (d1, d0) };
    if let Some(p) = prev_out {
        if p != in_dim {
            return Err(Error::ShapeMismatch {
                node: node.clone(),
                detail: format!(
                    "weights {:?} take {in_dim} inputs, the previous layer gives {p}",
                    b.dims
                ),
            });
        }
    }
    let weights = if transposed {
        b.data.clone()
    } else {
        let mut w = Vec::with_capacity(b.data.len());
        for o in 0..out_dim {
            for k in 0..in_dim {
                w.push(b.data[k * out_dim + o]);
            }
        }
        w
    };
    Ok(Dense {
        in_dim,
        out_dim,
        weights,
        bias: vec![0.0; out_dim],
        activation: Activation::Identity,
    })
}

/// A bias of shape `[]`, `[1]`, `[n]`, `[1, 1]` or `[1, n]`, broadcast to `n` values.
fn broadcast_bias(node: &NodeRef, c: &Tensor, n: usize) -> Result<Vec<f32>, Error> {
    let ok_shape = match c.dims.as_slice() {
        [] => true,
        [d] | [1, d] => *d == 1 || *d == n,
        _ => false,
    };
    if !ok_shape {
        return Err(Error::ShapeMismatch {
            node: node.clone(),
            detail: format!("bias dims {:?} do not broadcast to [{n}]", c.dims),
        });
    }
    Ok(match c.data.as_slice() {
        [v] => vec![*v; n],
        all => all.to_vec(),
    })
}

/// Checks a graph input/output declaration: f32 if typed, and a feature width matching `dim`
/// when the shape is fully known (all dimensions after the first, batch, one).
fn check_io(v: &ValueInfoProto, role: &'static str, dim: usize) -> Result<(), Error> {
    let err = |detail: String| Error::GraphIo {
        role,
        value: v.name().to_owned(),
        detail,
    };
    let Some(ty) = v.r#type.as_ref() else {
        return Ok(());
    };
    let Some(proto::type_proto::Value::TensorType(t)) = ty.value.as_ref() else {
        return Err(err("is not a tensor".into()));
    };
    if t.elem_type.is_some() && t.elem_type() != ONNX_FLOAT {
        return Err(err(format!(
            "has element type {}, expected FLOAT (f32)",
            data_type_name(t.elem_type())
        )));
    }
    let Some(shape) = t.shape.as_ref() else {
        return Ok(());
    };
    use proto::tensor_shape_proto::dimension::Value;
    let dims: Vec<Option<i64>> = shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Value::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect();
    let features = match dims.as_slice() {
        [] => return Err(err("is a scalar, expected [batch, features]".into())),
        [only] => *only,
        [_batch, rest @ ..] => rest
            .iter()
            .try_fold(1i64, |acc, d| d.and_then(|d| acc.checked_mul(d))),
    };
    match features {
        Some(f) if usize::try_from(f).ok() != Some(dim) => Err(err(format!(
            "declares {f} features, the layers {} {dim}",
            if role == "input" { "take" } else { "give" }
        ))),
        _ => Ok(()),
    }
}
