"""The SB3 actor: logits, ONNX export (actor only) and the export self-check."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch


class Actor(torch.nn.Module):
    """``Linear -> Tanh -> Linear -> Tanh -> Linear``: SB3's actor path (no value head)."""

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
    ops = [op for op in onnx_ops(onnx_bytes) if op != "Identity"]
    if ops != ["Gemm", "Tanh", "Gemm", "Tanh", "Gemm"]:
        raise ExportError(f"{where}: unexpected ONNX graph {ops}")
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
