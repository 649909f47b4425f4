"""Atomic zip: round trip, metadata validation errors, portable members."""

from __future__ import annotations

import hashlib
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


def test_export_verify_only_refuses_weights_that_are_not_the_onnx_import(tmp_path):
    """A weights member whose floats are not the ONNX member's (one bit flipped, hashes
    updated) passes every hash and shape check; `export --verify-only` refuses it naming
    pack-weights, and `export` rewrites it."""
    from paths import DATA

    from oracle_training.export import export_zip
    from oracle_training.policy import ExportError

    name = "EURUSD_H1_policy.weights"
    with zipfile.ZipFile(ZIP) as zf:
        meta = json.loads(zf.comment)
        members = {fn: zf.read(fn) for fn in zf.namelist()}
    good = members[name]
    bad = bytearray(good)
    bad[-1] ^= 0x01  # the last bias's lowest mantissa byte
    members[name] = bytes(bad)
    dst = tmp_path / "EURUSD_H1.zip"
    write_model_zip_raw(dst, meta, members)
    assert ModelZip(dst).member("weights") == bytes(bad)
    with pytest.raises(ExportError, match=f"{name} is not the import.*pack-weights"):
        export_zip(dst, rewrite=False, data_dir=DATA)
    export_zip(dst, rewrite=True, data_dir=DATA)
    assert ModelZip(dst).member("weights") == good


def write_model_zip_raw(path, meta, members):
    """A zip of exactly these members (no member recomputed), the metadata's hashes following."""
    meta = dict(meta)
    meta["members"] = {fn: {"sha256": hashlib.sha256(d).hexdigest()} for fn, d in members.items()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for fn, d in members.items():
            zf.writestr(fn, d)
        zf.comment = json.dumps(meta).encode()


def zip_with_big_member(dst, size):
    """The sample zip with its ``_hmm.pkl`` replaced by ``size`` zero bytes (hash updated);
    zeros deflate to almost nothing, so the test zip stays small."""
    big = "EURUSD_H1_hmm.pkl"
    with zipfile.ZipFile(ZIP) as zf:
        meta = json.loads(zf.comment)
        members = {fn: zf.read(fn) for fn in zf.namelist()}
    members[big] = bytes(size)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for fn, data in members.items():
            zf.writestr(fn, data)
        meta["members"][big] = {"sha256": __import__("hashlib").sha256(members[big]).hexdigest()}
        zf.comment = json.dumps(meta).encode()
    return big


def test_a_member_over_the_cap_is_refused_by_its_declared_size_without_being_read(tmp_path):
    dst = tmp_path / "EURUSD_H1.zip"
    big = zip_with_big_member(dst, 4 << 20)
    assert dst.stat().st_size < 200_000
    ModelZip(dst)  # under the default cap it loads
    # Corrupt the member's compressed data: reading it would fail, so a refusal for its size
    # proves it was not read.
    raw = bytearray(dst.read_bytes())
    with zipfile.ZipFile(dst) as zf:
        info = zf.getinfo(big)
    start = info.header_offset + 30 + len(big.encode()) + len(info.extra)
    raw[start + 4 : start + info.compress_size - 4] = b"\xa5" * (info.compress_size - 8)
    dst.write_bytes(bytes(raw))
    with pytest.raises(ModelZipError) as e:
        ModelZip(dst, max_member_bytes=1 << 20)
    msg = str(e.value)
    assert msg.startswith("EURUSD_H1.zip: ") and big in msg and "1048576-byte cap" in msg, msg


def test_a_member_over_the_default_cap_is_refused(tmp_path):
    from oracle_training.modelzip import MAX_MEMBER_BYTES

    dst = tmp_path / "EURUSD_H1.zip"
    big = zip_with_big_member(dst, MAX_MEMBER_BYTES + 1)
    with pytest.raises(ModelZipError, match=f"member '{big}' is larger than the"):
        ModelZip(dst)


def test_a_zip_file_over_the_cap_is_refused(tmp_path):
    with pytest.raises(ModelZipError, match="more than the 1000-byte cap on a model zip"):
        ModelZip(ZIP, max_zip_bytes=1000)


@pytest.mark.parametrize("tf", ["H2", "MN1", "m15"])
def test_a_timeframe_the_system_cannot_stream_is_refused_with_the_supported_list(tmp_path, tf):
    from oracle_training.modelzip import TIMEFRAMES

    bad = tmp_path / "EURUSD_H1.zip"
    rewrite_comment(ZIP, bad, lambda m: m["symbol"].update(timeframe=tf))
    with pytest.raises(ModelZipError) as e:
        ModelZip(bad)
    msg = str(e.value)
    assert "'symbol.timeframe'" in msg and ", ".join(TIMEFRAMES) in msg, msg
    assert "MN1" not in TIMEFRAMES


@pytest.mark.parametrize("name", ["EUR USD", "EURUSD!", "EUR/USD", "", "E" * 33])
def test_a_symbol_no_stream_can_carry_is_refused_naming_symbol_name(tmp_path, name):
    # The same rule as oracle_model's loader (core's Symbol): 1-32 bytes of A-Z a-z 0-9 . _ - #.
    bad = tmp_path / "EURUSD_H1.zip"
    rewrite_comment(ZIP, bad, lambda m: m["symbol"].update(name=name))
    with pytest.raises(ModelZipError) as e:
        ModelZip(bad)
    msg = str(e.value)
    assert "metadata field 'symbol.name' is invalid" in msg and repr(name) in msg, msg


@pytest.mark.parametrize(
    "wrong", ["SYNFX02_M5.zip", "EURUSD_M15.zip", "SYNFX99_H1.zip", "eurusd_H1.zip"]
)
def test_a_zip_named_for_another_symbol_or_timeframe_is_refused(tmp_path, wrong):
    bad = tmp_path / wrong
    shutil.copy(ZIP, bad)
    with pytest.raises(ModelZipError) as e:
        ModelZip(bad)
    assert str(e.value).startswith(f"{wrong}: the file name must be 'EURUSD_H1.zip'"), e.value


def test_a_member_whose_header_understates_its_size_is_refused(tmp_path):
    dst = tmp_path / "EURUSD_H1.zip"
    big = zip_with_big_member(dst, 4 << 20)
    raw = bytearray(dst.read_bytes())
    with zipfile.ZipFile(dst) as zf:
        info = zf.getinfo(big)
    local = info.header_offset
    raw[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    central = raw.index(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(big)] != big.encode():
        central = raw.index(b"PK\x01\x02", central + 4)
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    dst.write_bytes(bytes(raw))
    with pytest.raises(ModelZipError, match=f"member '{big}'"):
        ModelZip(dst, max_member_bytes=1 << 20)
