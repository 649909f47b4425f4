//! Errors: every refusal says what is wrong and, for graph problems, names the node and its op.

use std::fmt;

/// A node of the ONNX graph, as named in error messages: `node #3 '/action_net/Gemm' (Gemm)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// Position of the node in `graph.node`.
    pub index: usize,
    /// The node's `name` (may be empty in hand-made graphs).
    pub name: String,
    /// The node's `op_type`.
    pub op: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        write!(f, "node #{} '{}' (op {})", self.index, name, self.op)
    }
}

/// Why a model could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not an ONNX `ModelProto`.
    #[error("not a valid ONNX model (protobuf decoding failed): {0}")]
    Decode(#[from] prost::DecodeError),

    /// The model has no graph (e.g. empty input bytes).
    #[error("the ONNX model has no graph (empty or not an ONNX file?)")]
    NoGraph,

    /// Not exactly one graph input (initializers listed as inputs are not counted).
    #[error(
        "the graph must have exactly one input (initializers not counted), found {count}: [{names}]"
    )]
    Inputs {
        /// How many inputs were found.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },

    /// Not exactly one graph output.
    #[error("the graph must have exactly one output, found {count}: [{names}]")]
    Outputs {
        /// How many outputs were found.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },

    /// The graph input or output is declared with a non-float type or an unexpected shape.
    #[error("graph {role} '{value}': {detail}")]
    GraphIo {
        /// `input` or `output`.
        role: &'static str,
        /// The value's name.
        value: String,
        /// What is wrong.
        detail: String,
    },

    /// An op outside the actor-MLP set.
    #[error(
        "{node}: unsupported op '{domain_op}'; onnx2rs accepts only Gemm, MatMul, Add, Tanh, Relu, \
         Flatten, Identity and Constant"
    )]
    UnsupportedOp {
        /// The node.
        node: NodeRef,
        /// `op_type`, prefixed by its domain when that is not the default ONNX domain.
        domain_op: String,
    },

    /// A supported op with an attribute value onnx2rs cannot honour (e.g. `Gemm` with `alpha != 1`).
    #[error("{node}: unsupported attribute '{attr}': {detail}")]
    UnsupportedAttribute {
        /// The node.
        node: NodeRef,
        /// The attribute's name.
        attr: String,
        /// What value was found and what is supported.
        detail: String,
    },

    /// A weight/bias input is not an initializer (nor an `Identity`/`Constant` of one).
    #[error(
        "{node}: input '{input}' ({role}) must be an initializer (directly or through Identity), \
         but {found}"
    )]
    MissingInitializer {
        /// The node.
        node: NodeRef,
        /// The input value's name.
        input: String,
        /// What the input is for (e.g. `B (weights)`).
        role: &'static str,
        /// What it is instead.
        found: String,
    },

    /// Tensor shapes do not fit together.
    #[error("{node}: shape mismatch: {detail}")]
    ShapeMismatch {
        /// The node.
        node: NodeRef,
        /// Which shapes disagree.
        detail: String,
    },

    /// A tensor that must hold f32 holds another type.
    #[error(
        "tensor '{tensor}' has data type {data_type}, but only FLOAT (f32) tensors are supported"
    )]
    NonFloatTensor {
        /// The tensor's name.
        tensor: String,
        /// The ONNX data type found.
        data_type: String,
    },

    /// A tensor whose contents are malformed (wrong byte length, external data, NaN…).
    #[error("tensor '{tensor}': {detail}")]
    BadTensor {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        detail: String,
    },

    /// The nodes form a cycle.
    #[error("the graph has a cycle through {node}")]
    Cycle {
        /// A node on the cycle.
        node: NodeRef,
    },

    /// The data path is not a simple chain the actor MLP would have.
    #[error("{node}: {detail}")]
    Structure {
        /// The node.
        node: NodeRef,
        /// What is wrong.
        detail: String,
    },

    /// A problem with a value rather than with one node (dangling value, branching, duplicates).
    #[error("graph structure: {0}")]
    Graph(String),

    /// A node that is not on the path from the graph input to its output.
    #[error("{node} is not on the path from the graph input to the graph output")]
    UnusedNode {
        /// The node.
        node: NodeRef,
    },

    /// The graph contains no dense layer.
    #[error("the graph contains no dense layer (Gemm or MatMul)")]
    NoLayers,

    /// A model zip has no plain weights member beside its ONNX policy.
    #[error(
        "no plain weights member '{member}' (add it with `python -m oracle_training \
         pack-weights ZIP`)"
    )]
    NoWeightsMember {
        /// The member's expected name.
        member: String,
    },

    /// A model zip's plain weights member is not this crate's import of its ONNX policy.
    #[error("member '{member}' is not the import of the ONNX policy: {detail}")]
    WeightsDiffer {
        /// The weights member.
        member: String,
        /// The first difference (field, layer, index).
        detail: String,
    },

    /// A hand-made `Mlp` whose vectors do not match its dims.
    #[error("layer {layer} is inconsistent: {detail}")]
    InconsistentLayer {
        /// The layer index.
        layer: usize,
        /// What is wrong.
        detail: String,
    },

    /// The model zip could not be read.
    #[error("not a readable zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),

    /// The model zip has no `*_policy.onnx` member.
    #[error("the zip has no member ending in '{suffix}' (members: [{members}])")]
    NoPolicyMember {
        /// The suffix looked for.
        suffix: &'static str,
        /// The members found, comma-separated.
        members: String,
    },

    /// The model zip has several `*_policy.onnx` members.
    #[error("the zip has several members ending in '{suffix}': [{members}]")]
    MultiplePolicyMembers {
        /// The suffix looked for.
        suffix: &'static str,
        /// The matching members, comma-separated.
        members: String,
    },

    /// Reading a zip member failed.
    #[error("cannot read zip member '{member}': {source}")]
    ReadMember {
        /// The member's name.
        member: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
