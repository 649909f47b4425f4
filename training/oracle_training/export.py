"""Write (or only verify) the portable members of an existing model zip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from oracle_training.modelzip import ModelZip, write_model_zip
from oracle_training.policy import ExportError, export_onnx, verify_onnx
from oracle_training.weights import pack_weights_command, weights_member


def export_zip(
    path: Path, rewrite: bool = True, data_dir: Path | None = None, bars: Path | None = None
) -> dict:
    """Rebuild ``SYM_TF_policy.onnx`` and ``SYM_TF_hmm.json`` from the SB3 and hmmlearn members,
    check ONNX argmax == SB3 predict on >= 2,000 observations (drawn from ``bars``, default
    ``data_dir/SYM_TF.csv``), and rewrite the zip atomically, the plain weights member with them
    (unless ``rewrite`` is False: then the existing members are verified, the weights member
    against its ONNX member bit for bit). Any actor the twin holds (tanh or relu, up to
    ``[256, 256]``) is accepted."""
    from oracle_training.bars import read_bars
    from oracle_training.data import DATA_DIR, data_path
    from oracle_training.hmm import PortableHMM
    from oracle_training.spec import precompute
    from oracle_training.train import observations_for_check

    mz = ModelZip(path)
    spec = mz.spec()
    model = mz.load_ppo()
    hmm_model = mz.load_hmm_pickle()
    hmm_json = json.dumps(PortableHMM.from_hmmlearn(hmm_model).to_dict()).encode()
    if bars is None:
        bars = data_path(mz.name, data_dir or DATA_DIR)
        if not bars.is_file():
            raise ExportError(
                f"{mz.name}: no bar file {bars} to draw the check's observations from; pass "
                "--bars FILE (the bars the model was trained on)"
            )
    data = precompute(read_bars(bars), spec)
    obs = observations_for_check(spec, data, None, 2500, 7)
    if rewrite:
        onnx_bytes = export_onnx(model, spec.obs_dim)
    else:
        onnx_bytes = mz.member("onnx")
        if mz.member("hmm_json") != hmm_json:
            same = json.loads(mz.member("hmm_json")) == json.loads(hmm_json)
            if not same:
                raise ExportError(f"{mz.name}: hmm.json differs from the pickled HMM")
    check = verify_onnx(model, onnx_bytes, obs, where=mz.name)
    if not rewrite and mz.member("weights") != weights_member(onnx_bytes, mz.name):
        raise ExportError(
            f"{mz.name}: {mz.names['weights']} is not the import of {mz.names['onnx']} (the "
            f"loader runs it): rewrite it with `{pack_weights_command(path.name)}`"
        )
    if rewrite:
        blobs = dict(mz.members)
        blobs[mz.names["onnx"]] = onnx_bytes
        blobs[mz.names["hmm_json"]] = hmm_json
        meta = dict(mz.meta)
        write_model_zip(path, meta, blobs)
    return {
        "model": mz.name,
        "rewritten": rewrite,
        **check,
        "obs_finite": bool(np.isfinite(obs).all()),
    }
