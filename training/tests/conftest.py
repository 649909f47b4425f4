from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oracle_training.data import generate
from oracle_training.features import HMMConfig, series_hmm_features
from oracle_training.hmm import PortableHMM, fit_hmm
from oracle_training.spec import TwinSpec
from oracle_training.train import fit_normalisers
from oracle_training.universe import FX5, ModelDef

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
GOLDEN = REPO / "tests" / "golden"


@pytest.fixture(scope="session")
def small_bars():
    md = ModelDef("SYNTEST", "H1", "fx5", "diag", 7, 1.1, 0.001)
    return generate(md, 700)


def make_spec(bars, covariance_type: str, seed: int = 3) -> TwinSpec:
    from oracle_training.features import RLConfig

    rl, hc = RLConfig(), HMMConfig()
    rl_mean, rl_std, h_mean, h_std = fit_normalisers(bars, 350, rl, hc)
    raw = series_hmm_features(bars, hc)[hc.lookback :]
    x = (raw - np.asarray(h_mean)) / np.asarray(h_std)
    model = fit_hmm(x, covariance_type, seed=seed, n_iter=20)
    spec = TwinSpec(
        "SYNTEST",
        "H1",
        dict(FX5),
        PortableHMM.from_hmmlearn(model),
        h_mean,
        h_std,
        rl_mean,
        rl_std,
    )
    spec._hmmlearn = model
    return spec


@pytest.fixture(scope="session", params=["diag", "full"])
def spec(request, small_bars):
    return make_spec(small_bars, request.param)


def model_zips():
    return sorted(MODELS.glob("*.zip"))
