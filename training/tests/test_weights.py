"""The plain policy weights member (SYM_TF_policy.weights): written from the ONNX policy when a
model is packed, added to an existing zip by ``pack-weights``, refused when missing or stale."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from paths import MODELS

from oracle_training.modelzip import ModelZip, ModelZipError, write_model_zip
from oracle_training.util import sha256_file
from oracle_training.weights import (
    WeightsError,
    check_weights,
    decode,
    onnx_layers,
    pack_weights,
    weights_member,
)

NAME = "EURUSD_H1"
WEIGHTS = f"{NAME}_policy.weights"
ONNX = f"{NAME}_policy.onnx"


def members_raw(path) -> dict:
    """Each member's CRC and stored bytes (local header and compressed data), as in the zip."""
    data = path.read_bytes()
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for i in zf.infolist():
            end = i.header_offset + 30 + len(i.filename.encode()) + i.compress_size
            out[i.filename] = (i.CRC, data[i.header_offset : end])
    return out


def rebuilt(src, out, drop=(), replace=None):
    """A copy of the zip ``src`` without the members in ``drop`` and with ``replace``'s bytes,
    its metadata's ``members`` following (as a zip packed before the member existed)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zf:
        meta = json.loads(zf.comment)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as w:
            for info in zf.infolist():
                if info.filename in drop:
                    continue
                data = replace.get(info.filename, zf.read(info.filename))
                w.writestr(info, data)
                meta["members"][info.filename] = {"sha256": hashlib.sha256(data).hexdigest()}
            for fn in drop:
                meta["members"].pop(fn, None)
            w.comment = json.dumps(meta, separators=(",", ":")).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    return out


def test_the_weights_are_the_trained_actors_floats_bit_for_bit():
    """Every float of the member is the SB3 actor's (torch) parameter, bit for bit: the ONNX
    export's initializers, unrounded and in the torch ``Linear.weight`` (out, in) layout."""
    import torch

    mz = ModelZip(MODELS / f"{NAME}.zip")
    sha, layers = decode(mz.member("weights"), NAME)
    assert sha == hashlib.sha256(mz.member("onnx")).digest()
    policy = mz.load_ppo().policy
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    linears.append(policy.action_net)
    assert len(layers) == len(linears) == 3
    for layer, lin in zip(layers, linears, strict=True):
        w = lin.weight.detach().numpy().astype(np.float32)
        b = lin.bias.detach().numpy().astype(np.float32)
        assert np.array_equal(layer.weights.view(np.uint32), w.view(np.uint32))
        assert np.array_equal(layer.bias.view(np.uint32), b.view(np.uint32))
    assert [la.activation for la in layers] == ["tanh", "tanh", "identity"]


def test_pack_weights_adds_the_member_and_changes_nothing_else(tmp_path):
    src = MODELS / f"{NAME}.zip"
    z = rebuilt(src, tmp_path / f"{NAME}.zip", drop=(WEIGHTS,))
    with pytest.raises(ModelZipError, match=f"pack-weights {NAME}.zip"):
        ModelZip(z)
    before = members_raw(z)
    old = sha256_file(z)
    golden = tmp_path / "golden"
    golden.mkdir()
    (golden / "manifest.json").write_text(
        json.dumps({"files": [{"model": NAME, "zip": f"models/{NAME}.zip", "zip_sha256": old}]})
    )

    assert pack_weights(z, [golden]) is True

    after = members_raw(z)
    assert {k: v for k, v in after.items() if k != WEIGHTS} == before
    mz = ModelZip(z)
    assert mz.member("weights") == ModelZip(src).member("weights")
    assert mz.meta == ModelZip(src).meta
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["files"][0]["zip_sha256"] == sha256_file(z) != old


def test_pack_weights_is_idempotent(tmp_path):
    z = tmp_path / f"{NAME}.zip"
    z.write_bytes((MODELS / f"{NAME}.zip").read_bytes())
    raw = z.read_bytes()
    assert pack_weights(z) is False
    assert z.read_bytes() == raw
    again = rebuilt(MODELS / f"{NAME}.zip", tmp_path / "x" / f"{NAME}.zip", drop=(WEIGHTS,))
    assert pack_weights(again) is True
    once = again.read_bytes()
    assert pack_weights(again) is False
    assert again.read_bytes() == once


def test_pack_weights_rewrites_a_stale_member(tmp_path):
    """A member written from another ONNX export (its recorded sha256 not the ONNX member's) is
    refused by the loader and rewritten by pack-weights."""
    src = MODELS / f"{NAME}.zip"
    stale = bytearray(ModelZip(src).member("weights"))
    stale[16] ^= 1  # the first byte of the ONNX sha256
    z = rebuilt(src, tmp_path / f"{NAME}.zip", replace={WEIGHTS: bytes(stale)})
    with pytest.raises(ModelZipError, match=f"'{WEIGHTS}: onnx_sha256'"):
        ModelZip(z)
    assert pack_weights(z) is True
    assert ModelZip(z).member("weights") == ModelZip(src).member("weights")


def test_pack_weights_refuses_a_zip_whose_onnx_does_not_load_naming_it(tmp_path):
    z = rebuilt(
        MODELS / f"{NAME}.zip",
        tmp_path / f"{NAME}.zip",
        drop=(WEIGHTS,),
        replace={ONNX: b"not an onnx graph"},
    )
    raw = z.read_bytes()
    with pytest.raises(WeightsError) as e:
        pack_weights(z)
    assert f"{NAME}.zip" in str(e.value) and ONNX in str(e.value)
    assert "not a loadable ONNX model" in str(e.value)
    assert z.read_bytes() == raw  # nothing written


def test_the_pack_weights_command_writes_each_zip_and_refuses_in_one_line(tmp_path, capsys):
    from oracle_training.cli import main

    good = rebuilt(MODELS / f"{NAME}.zip", tmp_path / f"{NAME}.zip", drop=(WEIGHTS,))
    main(["--golden-dir", str(tmp_path / "none"), "pack-weights", str(good)])
    assert capsys.readouterr().out == f"{NAME}.zip: weights written\n"
    main(["--golden-dir", str(tmp_path / "none"), "pack-weights", str(good)])
    assert capsys.readouterr().out == f"{NAME}.zip: weights already there\n"
    bad = rebuilt(
        MODELS / f"{NAME}.zip",
        tmp_path / "bad" / f"{NAME}.zip",
        drop=(WEIGHTS,),
        replace={ONNX: b"junk"},
    )
    with pytest.raises(SystemExit) as e:
        main(["--golden-dir", str(tmp_path / "none"), "pack-weights", str(bad)])
    msg = str(e.value.code)
    assert msg.startswith("python -m oracle_training pack-weights: ") and "\n" not in msg
    assert ONNX in msg


def test_write_model_zip_writes_the_weights_from_the_onnx_member(tmp_path):
    """Every writer (train, pack, export) goes through write_model_zip: the member is made from
    the ONNX member it is given, whatever weights member it was given."""
    src = ModelZip(MODELS / f"{NAME}.zip")
    members = {k: v for k, v in src.members.items() if k != WEIGHTS}
    write_model_zip(tmp_path / f"{NAME}.zip", src.meta, members)
    assert ModelZip(tmp_path / f"{NAME}.zip").member("weights") == src.member("weights")
    members[WEIGHTS] = b"stale"
    write_model_zip(tmp_path / f"{NAME}.zip", src.meta, members)
    assert ModelZip(tmp_path / f"{NAME}.zip").member("weights") == src.member("weights")


def test_a_weights_member_inconsistent_with_the_metadata_is_refused_naming_the_field():
    mz = ModelZip(MODELS / f"{NAME}.zip")
    data, sha = mz.member("weights"), mz.meta["members"][ONNX]["sha256"]
    meta = json.loads(json.dumps(mz.meta))
    meta["policy"]["net_arch"] = [64, 32]
    with pytest.raises(WeightsError, match=f"'{WEIGHTS}: layer 1'"):
        check_weights(meta, data, sha, WEIGHTS, f"{NAME}.zip")
    meta = json.loads(json.dumps(mz.meta))
    meta["policy"]["obs_dim"] += 1
    with pytest.raises(WeightsError, match=f"'{WEIGHTS}: layer 0'"):
        check_weights(meta, data, sha, WEIGHTS, f"{NAME}.zip")
    meta = json.loads(json.dumps(mz.meta))
    meta["policy"]["activation"] = "relu"
    with pytest.raises(WeightsError, match="policy.activation"):
        check_weights(meta, data, sha, WEIGHTS, f"{NAME}.zip")
    with pytest.raises(WeightsError, match="field 'length'"):
        check_weights(mz.meta, data + b"\0", sha, WEIGHTS, f"{NAME}.zip")
    with pytest.raises(WeightsError, match="field 'magic'"):
        check_weights(mz.meta, b"X" + data[1:], sha, WEIGHTS, f"{NAME}.zip")


def test_an_onnx_graph_that_is_not_the_actor_chain_is_refused_naming_the_node():
    import onnx
    from onnx import helper

    onnx_bytes = ModelZip(MODELS / f"{NAME}.zip").member("onnx")
    assert len(onnx_layers(onnx_bytes, "x")) == 3
    m = onnx.load_from_string(onnx_bytes)
    for n in m.graph.node:
        if n.op_type == "Tanh":
            n.op_type = "Sigmoid"
            break
    with pytest.raises(WeightsError, match=r"node \d+ \(.*, Sigmoid\): not part of the actor"):
        weights_member(m.SerializeToString(), "x")
    bad = helper.make_model(helper.make_graph([], "g", [], []))
    with pytest.raises(WeightsError, match="one input and one output"):
        weights_member(bad.SerializeToString(), "x")
