"""The SB3 actor: logits, ONNX export (actor only) and the export self-check."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

# The Rust core's fixed sizes (core/src/lib.rs): at most MAX_HIDDEN hidden layers of 1..MAX_WIDTH
# units, and at most MAX_POLICY_WEIGHTS weights counted as `policy_weights` counts them (exactly
# a [256, 256] actor on the largest observation, 5 + 8 states + 3 = 16 inputs).
MAX_WIDTH = 256
MAX_HIDDEN = 3
MAX_OBS = 16
MAX_POLICY_WEIGHTS = MAX_OBS * MAX_WIDTH + MAX_WIDTH * MAX_WIDTH + MAX_WIDTH * 8
ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu"}
ONNX_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}


def block_width(out_dim: int) -> int:
    """The SIMD block (8 .. 256 lanes) the core runs a layer of ``out_dim`` outputs in."""
    blocks = max(1, -(-out_dim // 8))
    for limit, width in ((1, 8), (2, 16), (4, 32), (8, 64), (16, 128)):
        if blocks <= limit:
            return width
    return MAX_WIDTH


def policy_weights(obs_dim: int, net_arch: list[int]) -> int:
    """Weights the core stores for this actor (``oracle_core::model::policy_weights``)."""
    total, in_dim = 0, obs_dim
    for out_dim in [*net_arch, 7]:
        total += in_dim * block_width(out_dim)
        in_dim = out_dim
    return total


def net_arch_problem(obs_dim: int, net_arch: list[int]) -> str | None:
    """Why the Rust twin cannot hold an actor with these hidden layers (None when it can)."""
    if len(net_arch) > MAX_HIDDEN or any(w < 1 or w > MAX_WIDTH for w in net_arch):
        return (
            f"net_arch {net_arch} is not at most {MAX_HIDDEN} hidden layers of 1..{MAX_WIDTH} units"
        )
    if policy_weights(obs_dim, net_arch) > MAX_POLICY_WEIGHTS:
        return (
            f"net_arch {net_arch} needs {policy_weights(obs_dim, net_arch)} weights, the twin "
            f"holds {MAX_POLICY_WEIGHTS} (a [{MAX_WIDTH}, {MAX_WIDTH}] actor)"
        )
    return None


def actor_shape(model) -> tuple[list[int], str]:
    """``(net_arch, activation)`` of an SB3 actor: its hidden widths and their one activation
    (``tanh`` or ``relu``); ExportError for anything else."""
    widths, acts = [], set()
    for i, layer in enumerate(model.policy.mlp_extractor.policy_net):
        if isinstance(layer, torch.nn.Linear):
            widths.append(int(layer.out_features))
        elif type(layer).__name__ in ACTIVATIONS:
            acts.add(ACTIVATIONS[type(layer).__name__])
        else:
            raise ExportError(
                f"actor layer {i} is {type(layer).__name__}; the twin runs Linear layers with "
                "tanh or relu"
            )
    if len(acts) > 1:
        raise ExportError(f"the actor mixes activations {sorted(acts)}; use one")
    return widths, (acts.pop() if acts else "tanh")


class Actor(torch.nn.Module):
    """``Linear -> act -> ... -> Linear`` (act tanh or relu): SB3's actor path (no value
    head)."""

    def __init__(self, policy):
        super().__init__()
        self.policy_net = policy.mlp_extractor.policy_net
        self.action_net = policy.action_net

    def forward(self, obs):
        return self.action_net(self.policy_net(obs))


def actor_logits(model, obs: np.ndarray) -> np.ndarray:
    """Logits (f32) of the real SB3 policy for ``obs[N, dim]`` (or one obs)."""
    policy = model.policy
    x = np.asarray(obs, dtype=np.float32)
    single = x.ndim == 1
    if single:
        x = x[None, :]
    with torch.no_grad():
        t = torch.as_tensor(x)
        feats = policy.extract_features(t, policy.pi_features_extractor)
        latent = policy.mlp_extractor.forward_actor(feats)
        logits = policy.action_net(latent).numpy()
    return logits[0] if single else logits


def export_onnx(model, obs_dim: int) -> bytes:
    actor = Actor(model.policy).eval()
    dummy = torch.zeros(1, obs_dim, dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the classic (TorchScript) exporter is chosen on purpose: dynamo=False, opset 17
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(actor, dummy, buf)
    return buf.getvalue()


def _export(actor, dummy, buf):
    torch.onnx.export(
        actor,
        dummy,
        buf,
        input_names=["obs"],
        output_names=["logits"],
        dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


class ExportError(RuntimeError):
    pass


def onnx_ops(onnx_bytes: bytes) -> list[str]:
    import onnx

    m = onnx.load_from_string(onnx_bytes)
    return [n.op_type for n in m.graph.node]


def verify_onnx(model, onnx_bytes: bytes, obs: np.ndarray, where: str = "model") -> dict:
    """onnxruntime argmax must equal SB3 ``predict(deterministic=True)`` on every observation."""
    import onnxruntime as ort

    obs = np.asarray(obs, dtype=np.float32)
    if len(obs) < 2000:
        raise ExportError(f"{where}: export check needs >= 2,000 observations, got {len(obs)}")
    net_arch, activation = actor_shape(model)
    problem = net_arch_problem(int(obs.shape[1]), net_arch)
    if problem:
        raise ExportError(f"{where}: {problem}")
    # Gemm, then per hidden layer its activation and the next Gemm (Rust's onnx2rs accepts the
    # same chain, tools/onnx2rs); Identity/Flatten nodes are pass-throughs.
    want = ["Gemm"] + [ONNX_ACTIVATIONS[activation], "Gemm"] * len(net_arch)
    ops = [op for op in onnx_ops(onnx_bytes) if op not in ("Identity", "Flatten")]
    if ops != want:
        raise ExportError(
            f"{where}: unexpected ONNX graph {ops}, expected {want} "
            f"(net_arch {net_arch}, {activation})"
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["logits"], {"obs": obs})[0]
    ort_action = np.argmax(ort_logits, axis=1)
    sb3_action, _ = model.predict(obs, deterministic=True)
    sb3_action = np.asarray(sb3_action).reshape(-1)
    bad = np.nonzero(ort_action != sb3_action)[0]
    torch_logits = actor_logits(model, obs)
    max_diff = float(np.max(np.abs(torch_logits - ort_logits)))
    if len(bad):
        i = int(bad[0])
        raise ExportError(
            f"{where}: ONNX argmax != SB3 predict on {len(bad)} of {len(obs)} observations "
            f"(first at {i}: onnx {int(ort_action[i])}, sb3 {int(sb3_action[i])})"
        )
    return {"n_obs": int(len(obs)), "max_abs_logit_diff_torch_onnx": max_diff}
