"""Atomic zip: round trip, metadata validation errors, portable members."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
from paths import MODELS

from oracle_training.modelzip import ModelZip, ModelZipError, member_names, write_model_zip
from oracle_training.policy import onnx_ops

ZIP = MODELS / "EURUSD_H1.zip"
pytestmark = pytest.mark.skipif(not ZIP.exists(), reason="models/EURUSD_H1.zip not built")


def rewrite_comment(src, dst, mutate):
    shutil.copy(src, dst)
    with zipfile.ZipFile(dst, "a") as zf:
        meta = json.loads(zf.comment)
        mutate(meta)
        zf.comment = json.dumps(meta).encode()


def test_round_trip(tmp_path):
    mz = ModelZip(ZIP)
    assert set(mz.members) == set(member_names("EURUSD_H1").values())
    out = tmp_path / "EURUSD_H1.zip"
    meta = write_model_zip(out, mz.meta, mz.members)
    again = ModelZip(out)
    assert again.meta == meta and again.members == mz.members
    # the seed's fields, verbatim names
    for k in ("format_version", "generated_at", "symbol", "training_config", "hmm_config"):
        assert k in again.meta
    assert again.meta["actions"]["3"] == {"name": "LONG_STRONG", "direction": 1, "intensity": 3}
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind


def test_portable_members():
    mz = ModelZip(ZIP)
    spec = mz.spec()
    hmm = mz.load_hmm_pickle()
    d = mz.hmm_dict()
    assert np.array_equal(np.asarray(d["covars"]), hmm._covars_)
    assert d["covariance_type"] == mz.meta["hmm"]["covariance_type"]
    assert [op for op in onnx_ops(mz.member("onnx")) if op != "Identity"] == [
        "Gemm",
        "Tanh",
        "Gemm",
        "Tanh",
        "Gemm",
    ]
    assert mz.meta["observation"]["dim"] == spec.obs_dim == 13
    assert mz.meta["observation"]["layout"][5 + 5 :] == [
        "position_direction",
        "position_intensity",
        "upnl_norm",
    ]


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda m: m.pop("training_config"), "'training_config' is missing"),
        (lambda m: m["training_config"].pop("pip_value"), "'training_config.pip_value'"),
        (lambda m: m.update(format_version="1.0"), "'format_version' is '1.0'"),
        (lambda m: m.pop("window"), "'window' is missing"),
        (lambda m: m["observation"]["rl_norm"].pop("std"), "'observation.rl_norm.std'"),
        (lambda m: m["members"].pop("EURUSD_H1_policy.onnx"), "EURUSD_H1_policy.onnx"),
        (
            lambda m: m["members"]["EURUSD_H1_hmm.json"].update(sha256="0" * 64),
            "member 'EURUSD_H1_hmm.json' sha256 mismatch",
        ),
    ],
)
def test_metadata_errors_name_the_field(tmp_path, mutate, msg):
    bad = tmp_path / "EURUSD_H1.zip"
    rewrite_comment(ZIP, bad, mutate)
    with pytest.raises(ModelZipError) as e:
        ModelZip(bad)
    assert msg in str(e.value) and "EURUSD_H1.zip" in str(e.value)


def test_not_json_comment(tmp_path):
    bad = tmp_path / "x.zip"
    shutil.copy(ZIP, bad)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.comment = b"hello"
    with pytest.raises(ModelZipError, match="not metadata JSON"):
        ModelZip(bad)


def test_export_self_check_passes_and_detects_mismatch():
    from oracle_training.policy import ExportError, verify_onnx

    mz = ModelZip(ZIP)
    model = mz.load_ppo()
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(2000, 13)).astype(np.float32)
    r = verify_onnx(model, mz.member("onnx"), obs, where="EURUSD_H1")
    assert r["n_obs"] == 2000 and r["max_abs_logit_diff_torch_onnx"] < 1e-4
    with pytest.raises(ExportError, match="2,000"):
        verify_onnx(model, mz.member("onnx"), obs[:10])
    other = sorted(p for p in MODELS.glob("*.zip") if p != ZIP)
    if other:
        with pytest.raises(ExportError, match="ONNX argmax != SB3 predict"):
            verify_onnx(model, ModelZip(other[0]).member("onnx"), obs)


def test_export_rewrites_portable_members(tmp_path):
    """`export` on a copy: the rebuilt members verify and the zip stays valid."""
    from paths import DATA

    from oracle_training.export import export_zip

    dst = tmp_path / "EURUSD_H1.zip"
    shutil.copy(ZIP, dst)
    r = export_zip(dst, rewrite=True, data_dir=DATA)
    assert r["rewritten"] and r["n_obs"] >= 2000
    a, b = ModelZip(ZIP), ModelZip(dst)
    assert a.member("hmm_json") == b.member("hmm_json")
    assert a.member("ppo") == b.member("ppo")
    assert export_zip(dst, rewrite=False, data_dir=DATA)["rewritten"] is False
