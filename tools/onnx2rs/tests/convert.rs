//! convert on hand-made ONNX graphs, its layers run by the loader's forward pass (the core's,
//! the one implementation of the policy), and the errors for everything else.

mod common;

use common::*;
use onnx2rs::{Activation, Error, convert};

/// The loader's logits are compared with values computed by hand in f64.
const HAND_TOLERANCE: f64 = 1e-6;

const X: [f32; 2] = [0.5, -0.25];
/// W1 (3×2, out×in), b1, W2 (2×3), b2 of the reference 2 → 3 (tanh) → 2 network.
const W1: [f32; 6] = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
const B1: [f32; 3] = [0.0, 0.5, -1.0];
const W2: [f32; 6] = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
const B2: [f32; 2] = [0.25, 0.0];

/// By hand: z1 = W1·x + b1 = [0.5, 0.25, −0.75]; h = tanh(z1); y = W2·h + b2.
fn expected_tanh() -> [f64; 2] {
    let (t1, t2, t3) = (0.5f64.tanh(), 0.25f64.tanh(), (-0.75f64).tanh());
    [t1 + 2.0 * t2 + 3.0 * t3 + 0.25, -t1 + t3]
}

fn transpose(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for o in 0..out {
        for k in 0..inp {
            t[k * out + o] = w[o * inp + k];
        }
    }
    t
}

fn assert_close(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() <= HAND_TOLERANCE,
            "output {i}: got {g}, want {w}"
        );
    }
}

/// The reference network as Gemm(transB) → Tanh → Gemm(transB).
fn gemm_model(trans_b: i64) -> Vec<u8> {
    let (w1, w2) = if trans_b == 1 {
        (
            raw_tensor("w1", &[3, 2], &W1),
            raw_tensor("w2", &[2, 3], &W2),
        )
    } else {
        (
            raw_tensor("w1", &[2, 3], &transpose(&W1, 3, 2)),
            float_tensor("w2", &[3, 2], &transpose(&W2, 2, 3)),
        )
    };
    encode(&model(
        vec![
            gemm("g1", "x", "w1", Some("b1"), "z1", trans_b),
            node("t1", "Tanh", &["z1"], &["h1"], vec![]),
            gemm("g2", "h1", "w2", Some("b2"), "y", trans_b),
        ],
        vec![
            w1,
            raw_tensor("b1", &[3], &B1),
            w2,
            float_tensor("b2", &[2], &B2),
        ],
        vec![value("x", 2)],
        vec![value("y", 2)],
    ))
}

#[test]
fn gemm_tanh_chain_trans_b_1() {
    let mlp = convert(&gemm_model(1)).expect("converts");
    assert_eq!(mlp.layers.len(), 2);
    assert_eq!((mlp.input_dim(), mlp.output_dim()), (2, 2));
    let l0 = &mlp.layers[0];
    assert_eq!(
        (l0.in_dim, l0.out_dim, l0.activation),
        (2, 3, Activation::Tanh)
    );
    assert_eq!(l0.weights, W1);
    assert_eq!(l0.bias, B1);
    let l1 = &mlp.layers[1];
    assert_eq!(
        (l1.in_dim, l1.out_dim, l1.activation),
        (3, 2, Activation::Identity)
    );
    assert_eq!(l1.weights, W2);
    assert_eq!(l1.bias, B2);
    assert_close(&loader_logits(&mlp, &X), &expected_tanh());
}

#[test]
fn gemm_trans_b_0_is_normalised_to_out_by_in() {
    let a = convert(&gemm_model(0)).expect("converts");
    let b = convert(&gemm_model(1)).expect("converts");
    assert_eq!(a, b);
    assert_close(&loader_logits(&a, &X), &expected_tanh());
}

#[test]
fn matmul_add_relu() {
    // MatMul takes W as [in, out]; bias via Add with the constant first (Add is commutative).
    let bytes = encode(&model(
        vec![
            node("mm1", "MatMul", &["x", "w1"], &["m1"], vec![]),
            node("add1", "Add", &["b1", "m1"], &["z1"], vec![]),
            node("relu1", "Relu", &["z1"], &["h1"], vec![]),
            node("mm2", "MatMul", &["h1", "w2"], &["m2"], vec![]),
            node("add2", "Add", &["m2", "b2"], &["y"], vec![]),
        ],
        vec![
            raw_tensor("w1", &[2, 3], &transpose(&W1, 3, 2)),
            raw_tensor("b1", &[3], &B1),
            raw_tensor("w2", &[3, 2], &transpose(&W2, 2, 3)),
            raw_tensor("b2", &[1, 2], &B2),
        ],
        vec![value("x", 2)],
        vec![value("y", 2)],
    ));
    let mlp = convert(&bytes).expect("converts");
    assert_eq!(mlp.layers[0].activation, Activation::Relu);
    assert_eq!(mlp.layers[0].weights, W1);
    assert_eq!(mlp.layers[1].bias, B2);
    // z1 = [0.5, 0.25, −0.75] → relu [0.5, 0.25, 0]; y = [0.5 + 0.5 + 0 + 0.25, −0.5 + 0].
    assert_close(&loader_logits(&mlp, &X), &[1.25, -0.5]);
}

#[test]
fn matmul_without_add_has_zero_bias() {
    let bytes = encode(&model(
        vec![node("mm", "MatMul", &["x", "w"], &["y"], vec![])],
        vec![raw_tensor("w", &[2, 3], &transpose(&W1, 3, 2))],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let mlp = convert(&bytes).expect("converts");
    assert_eq!(mlp.layers[0].bias, vec![0.0; 3]);
    assert_close(&loader_logits(&mlp, &X), &[0.5, -0.25, 0.25]);
}

/// The exporter's trap: two identical all-zero biases become one initializer plus an Identity
/// node (listed first), whose output name is not an initializer.
#[test]
fn identity_deduplicated_bias_and_flatten() {
    let w2: Vec<f32> = (0..9).map(|i| i as f32 * 0.25 - 1.0).collect();
    let w3: Vec<f32> = (0..6).map(|i| 1.0 - i as f32 * 0.5).collect();
    let bytes = encode(&model(
        vec![
            node("Identity_0", "Identity", &["l0.bias"], &["l1.bias"], vec![]),
            node(
                "/flatten/Flatten",
                "Flatten",
                &["obs"],
                &["f"],
                vec![attr_i("axis", 1)],
            ),
            node("/id", "Identity", &["f"], &["f2"], vec![]),
            gemm("/l0/Gemm", "f2", "l0.weight", Some("l0.bias"), "z0", 1),
            node("/t0", "Tanh", &["z0"], &["h0"], vec![]),
            gemm("/l1/Gemm", "h0", "l1.weight", Some("l1.bias"), "z1", 1),
            node("/t1", "Tanh", &["z1"], &["h1"], vec![]),
            gemm(
                "/out/Gemm",
                "h1",
                "out.weight",
                Some("out.bias"),
                "logits",
                1,
            ),
        ],
        vec![
            // Deliberately not in layer order.
            raw_tensor("out.bias", &[2], &[0.5, -0.5]),
            raw_tensor("l1.weight", &[3, 3], &w2),
            raw_tensor("l0.bias", &[3], &[0.0; 3]),
            raw_tensor("out.weight", &[2, 3], &w3),
            raw_tensor("l0.weight", &[3, 2], &W1),
        ],
        vec![value("obs", 2)],
        vec![value("logits", 2)],
    ));
    let mlp = convert(&bytes).expect("converts");
    assert_eq!(mlp.layers.len(), 3);
    assert_eq!(mlp.layers[0].weights, W1);
    assert_eq!(mlp.layers[1].weights, w2);
    assert_eq!(mlp.layers[1].bias, vec![0.0; 3]);
    assert_eq!(mlp.layers[2].weights, w3);
    assert_eq!(mlp.layers[2].bias, vec![0.5, -0.5]);
    // By hand in f64.
    let h0: Vec<f64> = [0.5f64, -0.25, 0.25].iter().map(|v| v.tanh()).collect();
    let h1: Vec<f64> = (0..3)
        .map(|o| {
            (0..3)
                .map(|k| f64::from(w2[o * 3 + k]) * h0[k])
                .sum::<f64>()
                .tanh()
        })
        .collect();
    let y: Vec<f64> = (0..2)
        .map(|o| {
            (0..3)
                .map(|k| f64::from(w3[o * 3 + k]) * h1[k])
                .sum::<f64>()
                + [0.5, -0.5][o]
        })
        .collect();
    assert_close(&loader_logits(&mlp, &X), &y);
}

#[test]
fn constant_node_bias_and_scalar_broadcast() {
    let mut c = node("c", "Constant", &[], &["bc"], vec![]);
    c.attribute.push(onnx2rs::proto::AttributeProto {
        name: Some("value".into()),
        t: Some(raw_tensor("", &[], &[2.0])),
        ..Default::default()
    });
    let bytes = encode(&model(
        vec![c, gemm("g", "x", "w", Some("bc"), "y", 1)],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let mlp = convert(&bytes).expect("converts");
    assert_eq!(mlp.layers[0].bias, vec![2.0; 3]);
}

fn err_of(bytes: &[u8]) -> Error {
    match convert(bytes) {
        Ok(m) => panic!("expected an error, converted {m:?}"),
        Err(e) => e,
    }
}

/// The reference network followed by `extra` nodes that consume `y` and produce `out`.
fn with_tail(extra: Vec<onnx2rs::proto::NodeProto>, out: &str) -> Vec<u8> {
    let mut nodes = vec![
        gemm("g1", "x", "w1", Some("b1"), "z1", 1),
        node("t1", "Tanh", &["z1"], &["h1"], vec![]),
        gemm("g2", "h1", "w2", Some("b2"), "y", 1),
    ];
    nodes.extend(extra);
    encode(&model(
        nodes,
        vec![
            raw_tensor("w1", &[3, 2], &W1),
            raw_tensor("b1", &[3], &B1),
            raw_tensor("w2", &[2, 3], &W2),
            raw_tensor("b2", &[2], &B2),
        ],
        vec![value("x", 2)],
        vec![value(out, 2)],
    ))
}

#[test]
fn softmax_is_refused_naming_node_and_op() {
    let e = err_of(&with_tail(
        vec![node(
            "/probs/Softmax",
            "Softmax",
            &["y"],
            &["p"],
            vec![attr_i("axis", 1)],
        )],
        "p",
    ));
    let msg = e.to_string();
    assert!(
        matches!(e, Error::UnsupportedOp { ref node, .. } if node.index == 3 && node.op == "Softmax"),
        "{msg}"
    );
    assert!(
        msg.contains("node #3 '/probs/Softmax'") && msg.contains("Softmax"),
        "{msg}"
    );
}

#[test]
fn conv_is_refused_naming_node_and_op() {
    let bytes = encode(&model(
        vec![node("my_conv", "Conv", &["x", "w"], &["y"], vec![])],
        vec![raw_tensor("w", &[1, 1, 1], &[1.0])],
        vec![value("x", 2)],
        vec![value("y", 2)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("node #0 'my_conv'") && msg.contains("'Conv'"),
        "{msg}"
    );
}

#[test]
fn custom_domain_op_is_refused() {
    let mut n = node("fused", "Gemm", &["x", "w"], &["y"], vec![]);
    n.domain = Some("com.microsoft".into());
    let bytes = encode(&model(
        vec![n],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("com.microsoft::Gemm") && msg.contains("'fused'"),
        "{msg}"
    );
}

#[test]
fn garbage_bytes_are_a_clear_error() {
    let e = err_of(b"\xff\xff\xff\xff this is not protobuf");
    assert!(matches!(e, Error::Decode(_)), "{e}");
    assert!(e.to_string().contains("not a valid ONNX model"), "{e}");
    let e = err_of(b"");
    assert!(matches!(e, Error::NoGraph), "{e}");
    // Truncated real model.
    let full = gemm_model(1);
    let e = err_of(&full[..full.len() / 2]);
    assert!(matches!(e, Error::Decode(_)), "{e}");
}

#[test]
fn missing_initializer_names_node_and_input() {
    let bytes = encode(&model(
        vec![gemm("g", "x", "nowhere", None, "y", 1)],
        vec![],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let e = err_of(&bytes);
    let msg = e.to_string();
    assert!(matches!(e, Error::MissingInitializer { .. }), "{msg}");
    assert!(
        msg.contains("node #0 'g' (op Gemm)") && msg.contains("'nowhere'"),
        "{msg}"
    );
}

#[test]
fn computed_weights_are_refused() {
    // Weights produced by a data node (x·x^T style) are not constants.
    let bytes = encode(&model(
        vec![
            node("tr", "Transpose", &["w0"], &["w"], vec![]),
            gemm("g", "x", "w", None, "y", 1),
        ],
        vec![raw_tensor("w0", &[2, 3], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("'w'") && msg.contains("computed by node #0 'tr'"),
        "{msg}"
    );
}

#[test]
fn shape_mismatch_between_layers() {
    let bytes = encode(&model(
        vec![
            gemm("g1", "x", "w1", None, "h", 1),
            gemm("g2", "h", "w2", None, "y", 1),
        ],
        vec![
            raw_tensor("w1", &[3, 2], &W1),
            raw_tensor("w2", &[2, 2], &[1.0; 4]),
        ],
        vec![value("x", 2)],
        vec![value("y", 2)],
    ));
    let e = err_of(&bytes);
    assert!(
        matches!(e, Error::ShapeMismatch { ref node, .. } if node.name == "g2"),
        "{e}"
    );
}

#[test]
fn bias_shape_mismatch() {
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", Some("b"), "y", 1)],
        vec![
            raw_tensor("w", &[3, 2], &W1),
            raw_tensor("b", &[2], &[1.0, 2.0]),
        ],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    assert!(matches!(err_of(&bytes), Error::ShapeMismatch { .. }));
}

#[test]
fn declared_io_shapes_are_checked() {
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 5)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("graph input 'x'") && msg.contains("5 features"),
        "{msg}"
    );
}

#[test]
fn non_float_tensor_is_refused() {
    let mut w = raw_tensor("w", &[3, 2], &W1);
    w.data_type = Some(11); // DOUBLE
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![w],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("tensor 'w'") && msg.contains("DOUBLE"),
        "{msg}"
    );
}

#[test]
fn bad_raw_data_length_and_non_finite_weights() {
    let mut w = raw_tensor("w", &[3, 2], &W1);
    w.raw_data.as_mut().expect("raw").pop();
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![w],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("tensor 'w'") && msg.contains("23 bytes"),
        "{msg}"
    );

    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![raw_tensor(
            "w",
            &[3, 2],
            &[1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0],
        )],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(msg.contains("element 1 is NaN"), "{msg}");
}

#[test]
fn unsupported_gemm_attributes() {
    let mut g = gemm("g", "x", "w", None, "y", 1);
    g.attribute[0] = attr_f("alpha", 2.0);
    let bytes = encode(&model(
        vec![g],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("'alpha'") && msg.contains("alpha = 2"),
        "{msg}"
    );

    let mut g = gemm("g", "x", "w", None, "y", 1);
    g.attribute.push(attr_i("transA", 1));
    let bytes = encode(&model(
        vec![g],
        vec![raw_tensor("w", &[2, 3], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    assert!(err_of(&bytes).to_string().contains("transA = 1"));
}

#[test]
fn multiple_inputs_or_outputs_are_refused() {
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2), value("x2", 2)],
        vec![value("y", 3)],
    ));
    let e = err_of(&bytes);
    assert!(matches!(e, Error::Inputs { count: 2, .. }), "{e}");
    assert!(e.to_string().contains("x, x2"), "{e}");

    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3), value("y2", 3)],
    ));
    assert!(matches!(err_of(&bytes), Error::Outputs { count: 2, .. }));
}

#[test]
fn initializers_listed_as_inputs_are_not_graph_inputs() {
    // IR < 4 lists initializers among graph.input.
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "y", 1)],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2), value("w", 2)],
        vec![value("y", 3)],
    ));
    assert!(convert(&bytes).is_ok());
}

#[test]
fn cycle_is_refused() {
    let bytes = encode(&model(
        vec![
            gemm("g", "x", "w", None, "y", 1),
            node("loop_a", "Identity", &["b"], &["a"], vec![]),
            node("loop_b", "Identity", &["a"], &["b"], vec![]),
        ],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let e = err_of(&bytes);
    assert!(matches!(e, Error::Cycle { .. }), "{e}");
    assert!(
        e.to_string().contains("cycle through node #1 'loop_a'"),
        "{e}"
    );
}

#[test]
fn branching_and_unused_nodes_are_refused() {
    let bytes = encode(&model(
        vec![
            gemm("g", "x", "w", None, "y", 1),
            node("side", "Tanh", &["x"], &["s"], vec![]),
        ],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("feeds 2 nodes") && msg.contains("'side'"),
        "{msg}"
    );

    let bytes = encode(&model(
        vec![
            gemm("g", "x", "w", None, "y", 1),
            node("dead", "Tanh", &["w"], &["s"], vec![]),
        ],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("node #1 'dead' (op Tanh) is not on the path"),
        "{msg}"
    );
}

#[test]
fn misplaced_activation_or_bias_is_refused() {
    let e = err_of(&with_tail(
        vec![
            node("t_extra", "Tanh", &["y"], &["a"], vec![]),
            node("t_twice", "Tanh", &["a"], &["o"], vec![]),
        ],
        "o",
    ));
    assert!(
        e.to_string().contains("'t_twice'") && e.to_string().contains("after another activation"),
        "{e}"
    );

    let e = err_of(&with_tail(
        vec![node("add_extra", "Add", &["y", "b2"], &["o"], vec![])],
        "o",
    ));
    assert!(e.to_string().contains("second bias Add"), "{e}");

    let bytes = encode(&model(
        vec![node("t0", "Tanh", &["x"], &["y"], vec![])],
        vec![],
        vec![value("x", 2)],
        vec![value("y", 2)],
    ));
    assert!(
        err_of(&bytes)
            .to_string()
            .contains("before any dense layer")
    );
}

#[test]
fn graph_without_layers_is_refused() {
    let bytes = encode(&model(
        vec![node("id", "Identity", &["x"], &["y"], vec![])],
        vec![],
        vec![value("x", 2)],
        vec![value("y", 2)],
    ));
    assert!(matches!(err_of(&bytes), Error::NoLayers));
}

#[test]
fn dangling_chain_is_refused() {
    let bytes = encode(&model(
        vec![gemm("g", "x", "w", None, "h", 1)],
        vec![raw_tensor("w", &[3, 2], &W1)],
        vec![value("x", 2)],
        vec![value("y", 3)],
    ));
    let msg = err_of(&bytes).to_string();
    assert!(
        msg.contains("'h' is not consumed") && msg.contains("'y'"),
        "{msg}"
    );
}

#[test]
fn summary_lists_layers() {
    let mlp = convert(&gemm_model(1)).expect("converts");
    let s = mlp.summary();
    assert!(s.contains("layer 0: 2 -> 3, tanh"), "{s}");
    assert!(s.contains("layer 1: 3 -> 2, identity"), "{s}");
}
