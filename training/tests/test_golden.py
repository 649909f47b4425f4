"""Golden files: reproducible from the committed models, coverage thresholds, restart scenario."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from paths import DATA, GOLDEN, MODELS, assert_golden_text_equal

from oracle_training.golden import coverage_problems, golden_for_model, header
from oracle_training.util import sha256_bytes, sha256_file

MANIFEST = GOLDEN / "manifest.json"
pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="tests/golden not generated")


def manifest():
    return json.loads(MANIFEST.read_text())


def read_gz(name) -> str:
    return gzip.decompress((GOLDEN / name).read_bytes()).decode()


def test_manifest_matches_files_and_models():
    m = manifest()
    for f in m["files"]:
        assert (MODELS / f"{f['model']}.zip").exists(), f["model"]
        assert sha256_file(MODELS / f"{f['model']}.zip") == f["zip_sha256"], f["model"]
        text = read_gz(f["file"])
        assert sha256_bytes(text.encode()) == f["csv_sha256"], f["file"]
        lines = text.splitlines()
        assert lines[0] == ",".join(header(f["n_states"], f["obs_dim"]))
        assert len(lines) - 1 == f["rows"] == f["warmup_rows"] + f["decision_rows"]


def test_coverage_thresholds():
    m = manifest()
    n = len(list(MODELS.glob("*.zip")))
    probs = coverage_problems(m, expect_models=20 if n == 20 else None)
    assert not probs, probs


@pytest.mark.parametrize("name", ["EURUSD_H1", "SYNSTK01_D1", "SYNFX02_M5"])
def test_golden_reproducible_from_committed_model(name):
    """Regenerate one golden file from the committed zip and data: every column equal, the HMM
    posteriors within a few ulps (numpy's kernels differ by CPU; see paths.POSTERIOR_ULPS)."""
    m = manifest()
    f = next(f for f in m["files"] if f["model"] == name)
    _, _, _, _, _, csv = golden_for_model(MODELS / f"{name}.zip", DATA)
    assert_golden_text_equal(csv.decode(), read_gz(f["file"]), name)


def test_restart_trace_equals_uninterrupted():
    r = manifest()["restart"]
    orig = read_gz(r["golden_file"]).splitlines()
    new = read_gz(r["file"]).splitlines()
    assert orig[0] == new[0]
    by_idx = {line.split(",", 1)[0]: line for line in orig[1:]}
    decided = 0
    for line in new[1:]:
        idx = int(line.split(",", 1)[0])
        if idx <= r["restart_after_idx"]:
            assert line.split(",")[7] == ""  # priming row: no decision
        else:
            assert line == by_idx[str(idx)]
            decided += 1
    assert decided == len(orig) - 1 - (r["restart_after_idx"] + 1)
    assert r["state"]["position_direction"] != 0  # the restored state matters
    assert len(new) - 1 == r["priming_bars"] + decided


def test_golden_rows_are_consistent():
    """Decision rows: obs == f(features, regime, previous position); action == softmax argmax."""
    m = manifest()
    f = m["files"][0]
    lines = read_gz(f["file"]).splitlines()
    cols = lines[0].split(",")
    k = f["n_states"]
    prev = None
    for line in lines[1 + f["warmup_rows"] :]:
        v = dict(zip(cols, line.split(","), strict=True))
        post = np.array([float(v[f"post_{i}"]) for i in range(k)])
        assert int(v["regime"]) == int(np.argmax(post))
        assert float(v[f"obs_{5 + int(v['regime'])}"]) == 1.0
        logits = np.array([np.float32(v[f"logit_{i}"]) for i in range(7)], dtype=np.float32)
        assert int(v["action"]) == int(np.argmax(logits))
        if prev is not None:
            assert float(v[f"obs_{5 + k}"]) == float(prev["direction"])
            assert float(v[f"obs_{6 + k}"]) == np.float32(int(prev["intensity"]) / 3.0)
        prev = v


def test_golden_comparison_allows_ulps_on_logits_but_not_on_the_action():
    """Logits and margin within LOGIT_ULPS f32 ulps of the row's largest logit (torch's kernels
    differ by CPU), the action exact."""
    head = "idx,logit_0,logit_1,margin,action"
    step = float(np.spacing(np.float32(2.5)))
    golden = f"{head}\n0,2.5,0.5,2.0,0"
    near = f"{head}\n0,{2.5 + 3 * step},{0.5 - 2 * step},{2.0 + 5 * step},0"
    assert_golden_text_equal(near, golden, "near")
    far = f"{head}\n0,2.5,{0.5 + 40 * step},2.0,0"
    with pytest.raises(AssertionError, match="logits"):
        assert_golden_text_equal(far, golden, "far")
    with pytest.raises(AssertionError, match="logits"):
        assert_golden_text_equal(f"{head}\n0,2.5,0.5,{2.0 - 40 * step},0", golden, "margin")
    with pytest.raises(AssertionError, match="action"):
        assert_golden_text_equal(f"{head}\n0,2.5,0.5,2.0,1", golden, "action")


def test_golden_comparison_allows_ulps_on_posteriors_not_on_the_regime():
    """The comparison the reproduction test uses: posteriors within POSTERIOR_ULPS ulps (logits
    within LOGIT_ULPS, above), every other column (regime, action, position, features…) exact."""
    head = "idx,regime,post_0,post_1"
    p = 0.25
    near = p + 3 * float(np.spacing(p))
    far = p + 1e-12
    assert_golden_text_equal(f"{head}\n0,1,{near},0.75", f"{head}\n0,1,{p},0.75", "near")
    with pytest.raises(AssertionError, match="posteriors"):
        assert_golden_text_equal(f"{head}\n0,1,{far},0.75", f"{head}\n0,1,{p},0.75", "far")
    with pytest.raises(AssertionError, match="regime"):
        assert_golden_text_equal(f"{head}\n0,0,{p},0.75", f"{head}\n0,1,{p},0.75", "regime")


WIDE = GOLDEN / "wide"


def test_the_wide_golden_is_a_256_256_relu_model_and_reproducible_from_its_zip():
    """tests/golden/wide: EURUSD_H1 trained with net_arch [256, 256] and relu (not one of the
    20 bundled models): its zip and golden file match the manifest, the golden regenerates from
    the zip, and the coverage thresholds hold."""
    from paths import REPO

    from oracle_training.modelzip import ModelZip

    m = json.loads((WIDE / "manifest.json").read_text())
    assert [f["model"] for f in m["files"]] == ["EURUSD_H1"]
    f = m["files"][0]
    zp = REPO / f["zip"]
    assert zp.parent == WIDE and sha256_file(zp) == f["zip_sha256"]
    policy = ModelZip(zp).meta["policy"]
    assert (policy["net_arch"], policy["activation"]) == ([256, 256], "relu")
    assert sha256_file(MODELS / "EURUSD_H1.zip") != f["zip_sha256"]  # the bundled one is apart
    text = gzip.decompress((WIDE / f["file"]).read_bytes()).decode()
    assert sha256_bytes(text.encode()) == f["csv_sha256"]
    _, _, _, _, _, csv = golden_for_model(zp, DATA)
    assert_golden_text_equal(csv.decode(), text, "wide EURUSD_H1")
    assert not coverage_problems(m), coverage_problems(m)
