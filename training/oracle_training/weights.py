"""The plain policy weights member ``SYM_TF_policy.weights`` (docs/contract.md section 9, "The
policy weights member"): the actor's dense layers, read from the ONNX export once, when the model
is packed, so that the Rust loader reads plain floats and parses no protobuf (tract's "translate
once"). ``oracle_model::decode_weights`` reads it; ``onnx2rs weights ZIP`` checks it against its
own ONNX import, bit for bit.

Layout (every integer a little-endian u32): ``ORPOLW\\0\\0``, version 1, dtype 1 (f32
little-endian), the sha256 of the ONNX member (32 bytes), ``n_layers``, ``in_dim``, then per layer
``out_dim`` and ``activation`` (0 identity, 1 tanh, 2 relu), then per layer its ``out x in``
weights (row-major) and its ``out`` biases. Nothing follows the last bias.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"ORPOLW\0\0"
VERSION = 1
DTYPE_F32_LE = 1
ACTIVATION_CODES = {"identity": 0, "tanh": 1, "relu": 2}
CODE_ACTIVATIONS = {v: k for k, v in ACTIVATION_CODES.items()}
SUFFIX = "_policy.weights"
N_ACTIONS = 7


class WeightsError(ValueError):
    """A weights member or an ONNX policy that must be refused: one line naming it."""


def pack_weights_command(zip_name: str) -> str:
    """The command that adds the weights member (``oracle_model::pack_weights_command``)."""
    return f"python -m oracle_training pack-weights {zip_name}"


@dataclass
class Layer:
    weights: np.ndarray  # (out, in) float32, row-major
    bias: np.ndarray  # (out,) float32
    activation: str  # identity, tanh, relu


def _const_tensors(graph) -> dict[str, np.ndarray]:
    """Initializers, ``Constant`` nodes and ``Identity`` aliases of constants, by value name."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    changed = True
    while changed:
        changed = False
        for n in graph.node:
            if len(n.output) != 1 or n.output[0] in consts:
                continue
            if n.op_type == "Constant":
                t = next((a.t for a in n.attribute if a.name == "value"), None)
                if t is not None:
                    consts[n.output[0]] = numpy_helper.to_array(t)
                    changed = True
            elif n.op_type == "Identity" and len(n.input) == 1 and n.input[0] in consts:
                consts[n.output[0]] = consts[n.input[0]]
                changed = True
    return consts


def onnx_layers(onnx_bytes: bytes, where: str) -> list[Layer]:
    """The dense layers of the exported actor, following the graph's edges from its one input to
    its one output (``Gemm`` or ``MatMul`` + ``Add``, each optionally followed by ``Tanh`` or
    ``Relu``; ``Flatten`` and ``Identity`` pass through): the rules of tools/onnx2rs, whose
    import the weights are checked against. Anything else is refused, naming ``where`` and the
    node."""
    import onnx

    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as e:  # noqa: BLE001 (protobuf raises its own DecodeError types)
        raise WeightsError(f"{where}: not a loadable ONNX model ({e})") from None
    graph = model.graph
    consts = _const_tensors(graph)
    inputs = [v.name for v in graph.input if v.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise WeightsError(
            f"{where}: the actor graph must have one input and one output, found "
            f"{len(inputs)} and {len(graph.output)}"
        )
    data_nodes = [
        (i, n)
        for i, n in enumerate(graph.node)
        if not (n.op_type == "Constant" or (n.output and n.output[0] in consts))
    ]

    def fail(i, n, why):
        return WeightsError(f"{where}: node {i} ({n.name or 'unnamed'}, {n.op_type}): {why}")

    def const(i, n, name) -> np.ndarray:
        if name not in consts:
            raise fail(i, n, f"input '{name}' is not a constant tensor")
        a = consts[name]
        if a.dtype != np.float32:
            raise fail(i, n, f"tensor '{name}' is {a.dtype}, not float32")
        if not np.isfinite(a).all():
            raise fail(i, n, f"tensor '{name}' holds a value that is not finite")
        return a

    def attr(n, name, default):
        a = next((a for a in n.attribute if a.name == name), None)
        if a is None:
            return default
        return a.i if a.type == onnx.AttributeProto.INT else a.f

    layers: list[Layer] = []
    current, out_name = inputs[0], graph.output[0].name
    pending_matmul = None
    while current != out_name:
        users = [(i, n) for i, n in data_nodes if current in n.input]
        if len(users) != 1:
            raise WeightsError(
                f"{where}: value '{current}' feeds {len(users)} nodes; the actor is one chain"
            )
        i, n = users[0]
        op = n.op_type
        if op in ("Flatten", "Identity"):
            if op == "Flatten" and attr(n, "axis", 1) != 1:
                raise fail(i, n, "only axis 1 is supported")
        elif op == "Gemm":
            if attr(n, "alpha", 1.0) != 1.0 or attr(n, "beta", 1.0) != 1.0:
                raise fail(i, n, "only alpha = beta = 1 is supported")
            if attr(n, "transA", 0) != 0 or n.input[0] != current or len(n.input) < 2:
                raise fail(i, n, "only Gemm(x, W[, b]) with transA = 0 is supported")
            w = const(i, n, n.input[1])
            w = w if attr(n, "transB", 0) == 1 else w.T
            b = const(i, n, n.input[2]) if len(n.input) > 2 else np.zeros(w.shape[0], np.float32)
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise fail(i, n, f"weights {w.shape} and bias {b.shape} do not make a layer")
            layers.append(Layer(np.ascontiguousarray(w), b.copy(), "identity"))
        elif op == "MatMul":
            if n.input[0] != current:
                raise fail(i, n, "only MatMul(x, W) is supported")
            w = const(i, n, n.input[1])
            if w.ndim != 2:
                raise fail(i, n, f"weights {w.shape} are not a matrix")
            pending_matmul = np.ascontiguousarray(w.T)
            layers.append(Layer(pending_matmul, np.zeros(w.shape[1], np.float32), "identity"))
        elif op == "Add":
            if pending_matmul is None:
                raise fail(i, n, "an Add must follow a MatMul")
            other = n.input[1] if n.input[0] == current else n.input[0]
            b = const(i, n, other)
            if b.reshape(-1).shape != (pending_matmul.shape[0],):
                raise fail(i, n, f"bias {b.shape} does not fit the MatMul's outputs")
            layers[-1].bias = b.reshape(-1).copy()
            pending_matmul = None
            current = n.output[0]
            continue
        elif op in ("Tanh", "Relu"):
            if not layers or layers[-1].activation != "identity":
                raise fail(i, n, "an activation must follow a linear layer")
            layers[-1].activation = op.lower()
        else:
            raise fail(i, n, "not part of the actor MLP (Gemm, MatMul, Add, Tanh, Relu)")
        if op != "MatMul":
            pending_matmul = None
        if len(n.output) != 1:
            raise fail(i, n, "expected exactly one output")
        current = n.output[0]
    if not layers:
        raise WeightsError(f"{where}: the graph has no linear layer")
    for k in range(1, len(layers)):
        if layers[k].weights.shape[1] != layers[k - 1].weights.shape[0]:
            raise WeightsError(f"{where}: layer {k}'s input width does not chain")
    return layers


def encode(layers: list[Layer], onnx_sha256: bytes) -> bytes:
    out = bytearray(MAGIC)
    out += struct.pack("<II", VERSION, DTYPE_F32_LE)
    out += onnx_sha256
    out += struct.pack("<II", len(layers), layers[0].weights.shape[1])
    for layer in layers:
        out += struct.pack("<II", layer.weights.shape[0], ACTIVATION_CODES[layer.activation])
    for layer in layers:
        out += np.ascontiguousarray(layer.weights, dtype="<f4").tobytes()
        out += np.ascontiguousarray(layer.bias, dtype="<f4").tobytes()
    return bytes(out)


def weights_member(onnx_bytes: bytes, where: str) -> bytes:
    """The weights member for this ONNX policy (its floats are the ONNX tensors' bits)."""
    return encode(onnx_layers(onnx_bytes, where), hashlib.sha256(onnx_bytes).digest())


def decode(data: bytes, where: str) -> tuple[bytes, list[Layer]]:
    """``(onnx_sha256, layers)``; refused naming the header field at fault."""

    def bad(field, why):
        return WeightsError(f"{where}: field '{field}': {why}")

    def take(n, field):
        nonlocal at
        if at + n > len(data):
            raise bad(field, f"the member ends at byte {len(data)}, {n} more bytes are declared")
        s = data[at : at + n]
        at += n
        return s

    at = 0
    if take(8, "magic") != MAGIC:
        raise bad("magic", "not a policy weights member (it must start with ORPOLW)")
    (version,) = struct.unpack("<I", take(4, "version"))
    if version != VERSION:
        raise bad("version", f"{version} is not a version this loader reads ({VERSION})")
    (dtype,) = struct.unpack("<I", take(4, "dtype"))
    if dtype != DTYPE_F32_LE:
        raise bad("dtype", f"{dtype} is not supported ({DTYPE_F32_LE} = f32 little-endian)")
    sha = take(32, "onnx_sha256")
    n_layers, in_dim = struct.unpack("<II", take(8, "n_layers"))
    if not 1 <= n_layers <= 16:
        raise bad("n_layers", f"{n_layers} is not in 1..=16")
    shapes = []
    for i in range(n_layers):
        out_dim, code = struct.unpack("<II", take(8, f"layer {i} out_dim"))
        if code not in CODE_ACTIVATIONS:
            raise bad(f"layer {i} activation", f"{code} is not 0, 1 or 2")
        shapes.append((in_dim, out_dim, CODE_ACTIVATIONS[code]))
        in_dim = out_dim
    layers = []
    for i, (n_in, n_out, act) in enumerate(shapes):
        w = np.frombuffer(take(4 * n_in * n_out, f"layer {i} weights"), "<f4").reshape(n_out, n_in)
        b = np.frombuffer(take(4 * n_out, f"layer {i} bias"), "<f4")
        layers.append(Layer(w, b, act))
    if at != len(data):
        raise bad("length", f"{len(data) - at} bytes follow the last layer's bias")
    return sha, layers


def check_weights(meta: dict, data: bytes, onnx_sha256_hex: str, member: str, where: str):
    """The weights member against the metadata (``policy.obs_dim``, ``policy.net_arch``,
    ``policy.activation``, the 7 actions) and the ONNX member's sha256: the Rust loader's
    rules, each refusal naming the field."""
    sha, layers = decode(data, f"{where}: member '{member}'")
    if sha.hex() != onnx_sha256_hex:
        raise WeightsError(
            f"{where}: shape mismatch in '{member}: onnx_sha256': expected the ONNX member's "
            f"{onnx_sha256_hex}, found {sha.hex()}"
        )
    pol = meta["policy"]
    net_arch, act = list(pol["net_arch"]), pol["activation"]
    if len(layers) != len(net_arch) + 1:
        raise WeightsError(
            f"{where}: shape mismatch in '{member}: layers': expected {len(net_arch) + 1} "
            f"(policy.net_arch {net_arch} + the action layer), found {len(layers)}"
        )
    in_dim = int(pol["obs_dim"])
    for i, layer in enumerate(layers):
        last = i + 1 == len(layers)
        out_dim = N_ACTIONS if last else int(net_arch[i])
        found = tuple(layer.weights.shape)
        if found != (out_dim, in_dim):
            raise WeightsError(
                f"{where}: shape mismatch in '{member}: layer {i}': expected "
                f"{out_dim}x{in_dim}, found {found[0]}x{found[1]}"
            )
        want_act = "identity" if last else act
        if layer.activation != want_act:
            raise WeightsError(
                f"{where}: metadata field 'policy.activation' is invalid: layer {i} of {member} "
                f"applies {layer.activation}, the metadata implies {want_act}"
            )
        in_dim = out_dim


def with_weights(zip_bytes: bytes, meta: dict, member: str, data: bytes) -> bytes:
    """The zip with ``member`` set to ``data`` and ``meta`` (its ``members`` updated) as its
    comment. Absent, the member is appended: every other member's stored bytes stay as they
    were. Present (stale), the zip is rebuilt with each other member's bytes and settings."""
    import io

    from oracle_training.modelzip import dumps_json

    meta = dict(meta)
    meta["members"] = dict(meta["members"])
    meta["members"][member] = {"sha256": hashlib.sha256(data).hexdigest()}
    comment = dumps_json(meta).encode("utf-8")
    src = zipfile.ZipFile(io.BytesIO(zip_bytes))
    info = zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    if member not in src.namelist():
        buf = io.BytesIO(zip_bytes)
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr(info, data)
            zf.comment = comment
        return buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for old in src.infolist():
            if old.filename == member:
                zf.writestr(info, data)
            else:
                zf.writestr(old, src.read(old.filename))
        zf.comment = comment
    return buf.getvalue()


def pack_weights(zip_path: str | Path, golden_dirs: list[Path] | None = None) -> bool:
    """Write (or refresh) ``SYM_TF_policy.weights`` in ``zip_path`` from its ONNX member; only
    that member and the metadata's ``members`` change, and a zip that already holds the right
    member is left as it is (idempotent). Refuses a zip whose ONNX member does not load, naming
    it. The golden manifests' ``zip_sha256`` follow. Returns whether the file changed."""
    import json

    from oracle_training.annotate import update_manifests
    from oracle_training.modelzip import ModelZip, ModelZipError, member_names, seed_format_error
    from oracle_training.util import atomic_write_bytes, sha256_bytes

    zip_path = Path(zip_path)
    where = zip_path.name
    try:
        old_bytes = zip_path.read_bytes()
        with zipfile.ZipFile(zip_path) as zf:
            meta = json.loads(zf.comment.decode("utf-8"))
            names = set(zf.namelist())
            seed = seed_format_error(meta, names, where)
            if seed is not None:
                raise seed
            name = f"{meta['symbol']['name']}_{meta['symbol']['timeframe']}"
            onnx_name = member_names(name)["onnx"]
            if onnx_name not in names:
                raise WeightsError(f"{where}: no ONNX policy member '{onnx_name}' to read")
            onnx_bytes = zf.read(onnx_name)
            member = member_names(name)["weights"]
            have = zf.read(member) if member in names else None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{where}: not a readable model zip ({e})") from None
    except (KeyError, TypeError) as e:
        raise WeightsError(f"{where}: the metadata lacks {e}") from None
    listed = meta.get("members", {}).get(onnx_name, {}).get("sha256")
    if listed != sha256_bytes(onnx_bytes):
        raise WeightsError(f"{where}: member '{onnx_name}' does not match its metadata sha256")
    data = weights_member(onnx_bytes, f"{where}: member '{onnx_name}'")
    recorded = meta.get("members", {}).get(member, {}).get("sha256")
    if have == data and recorded == sha256_bytes(data):
        return False
    new_bytes = with_weights(old_bytes, meta, member, data)
    with tempfile.TemporaryDirectory() as d:
        check = Path(d) / zip_path.name
        check.write_bytes(new_bytes)
        try:
            ModelZip(check)  # refuses what the loader would, before the zip is replaced
        except ModelZipError as e:
            raise WeightsError(str(e)) from None
    atomic_write_bytes(zip_path, new_bytes)
    update_manifests(golden_dirs or [], zip_path, sha256_bytes(old_bytes), sha256_bytes(new_bytes))
    return True
