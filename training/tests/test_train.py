"""``train --bars``: any bar file, costs / periods / PPO from options or JSON, a split by time
fixed before training, the run recorded in the metadata; wide actors (up to [256, 256], tanh or
relu) through the ONNX check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paths import DATA, REPO

from oracle_training.bars import read_bars
from oracle_training.cli import build_parser
from oracle_training.features import HMMConfig, RLConfig
from oracle_training.modelzip import ModelZip
from oracle_training.train import (
    TrainConfig,
    TrainError,
    config_from_args,
    config_from_dict,
    fit_normalisers,
    split_by_time,
    train_on_bars,
)
from oracle_training.util import sha256_file

COSTS = {
    "point": 0.00001,
    "pip_value": 10.0,
    "spread_points": 7,
    "slippage_points": 2,
    "commission_per_lot": 7.0,
    "digits": 5,
    "lot_sizes": [0, 0.01, 0.03, 0.05],
}
COST_ARGS = [
    "--point",
    "0.00001",
    "--pip-value",
    "10",
    "--spread-points",
    "7",
    "--slippage-points",
    "2",
    "--commission-per-lot",
    "7",
    "--digits",
    "5",
    "--lot-sizes",
    "0,0.01,0.03,0.05",
]
# seconds, not minutes: a few hundred timesteps
FAST_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 1}


@pytest.fixture(scope="module")
def small_bars(tmp_path_factory) -> Path:
    """The first 700 EURUSD H1 bars as a user's own bar file."""
    p = tmp_path_factory.mktemp("bars") / "my.csv"
    lines = (DATA / "EURUSD_H1.csv").read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:701]))
    return p


@pytest.fixture(scope="module")
def wide_zip(small_bars, tmp_path_factory) -> Path:
    """A [256, 256] relu actor trained for a few hundred timesteps on the small file."""
    cfg = config_from_dict(
        {
            "symbol": "EURUSD",
            "timeframe": "H1",
            "training_config": COSTS,
            "ppo": {**FAST_PPO, "net_arch": [256, 256], "activation": "relu"},
            "timesteps": 128,
            "seed": 5,
        }
    )
    return train_on_bars(small_bars, cfg, tmp_path_factory.mktemp("models"), verbose=False)


def _args(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_a_wide_relu_actor_trains_exports_and_passes_the_onnx_check(wide_zip):
    mz = ModelZip(wide_zip)
    p = mz.meta["policy"]
    assert (p["net_arch"], p["activation"]) == ([256, 256], "relu")
    assert mz.meta["training"]["export_check"]["n_obs"] >= 2000
    from oracle_training.policy import onnx_ops

    ops = [op for op in onnx_ops(mz.member("onnx")) if op not in ("Identity", "Flatten")]
    assert ops == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]


def test_the_split_is_by_time_and_nothing_is_fitted_past_the_train_part(small_bars, wide_zip):
    meta = ModelZip(wide_zip).meta
    d = meta["data"]
    bars = read_bars(small_bars)
    n = len(bars)
    assert d["bars"] == n == 700
    parts = [d["train"], d["validation"], d["test"]]
    assert [x["bars"] for x in parts] == [490, 105, 105]
    assert sum(x["bars"] for x in parts) == n
    # consecutive, oldest first, no overlap
    assert d["train"]["to"] < d["validation"]["from"] <= d["validation"]["to"]
    assert d["validation"]["to"] < d["test"]["from"] <= d["test"]["to"]
    # the normalisers are the train part's, not the whole file's
    a = d["train"]["bars"]
    rl_mean, *_ = fit_normalisers(bars.slice(0, a), 350, RLConfig(), HMMConfig())
    assert meta["observation"]["rl_norm"]["mean"] == rl_mean
    whole, *_ = fit_normalisers(bars, 350, RLConfig(), HMMConfig())
    assert whole != rl_mean
    # validation and test were run, the test once, with backtest figures
    t = meta["training"]
    assert t["test"]["decided_bars"] == 105 and t["validation"]["decided_bars"] == 105
    assert len(t["attempts"]) == 1


def test_the_run_records_its_seed_library_versions_and_the_data_hash(small_bars, wide_zip):
    meta = ModelZip(wide_zip).meta
    assert meta["data"]["sha256"] == sha256_file(small_bars)
    assert meta["data"]["file"] == "my.csv"
    t = meta["training"]
    assert t["seed"] == 5 and t["hmm_seed"] == 5
    import stable_baselines3
    import torch

    assert t["versions"]["torch"] == torch.__version__
    assert t["versions"]["stable_baselines3"] == stable_baselines3.__version__
    assert {"python", "numpy", "hmmlearn", "gymnasium", "onnx", "onnxruntime"} <= set(t["versions"])
    assert t["ppo"]["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    assert meta["training_config"] == COSTS


def test_the_split_by_dates_is_fixed_from_the_config_alone(small_bars):
    bars = read_bars(small_bars)
    from oracle_training.bars import format_time

    cfg = config_from_dict(
        {
            "symbol": "EURUSD",
            "timeframe": "H1",
            "training_config": COSTS,
            "split": {
                "validation_from": format_time(int(bars.time[500])),
                "test_from": format_time(int(bars.time[600])),
            },
        }
    )
    assert split_by_time(bars, cfg) == (500, 600)
    cfg.split.validation_from = format_time(int(bars.time[100]))
    with pytest.raises(TrainError, match="the train part has 100 bars, at least 351"):
        split_by_time(bars, cfg)


def test_options_override_the_json_config_which_overrides_the_defaults(tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(
        json.dumps(
            {
                "symbol": "GER40",
                "timeframe": "M15",
                "training_config": dict(COSTS, spread_points=1),
                "rl_config": {"ema_period": 100},
                "hmm_config": {"n_states": 4},
                "ppo": {"gamma": 0.9, "net_arch": {"pi": [128, 128], "vf": [64]}},
                "split": {"validation": 0.2, "test": 0.1},
                "timesteps": 999,
            }
        )
    )
    cfg = config_from_args(
        _args(
            "--bars", "x.csv", "--config", str(cfg_file), "--spread-points", "3", "--gamma", "0.5"
        )
    )
    assert isinstance(cfg, TrainConfig)
    assert (cfg.symbol, cfg.timeframe, cfg.timesteps) == ("GER40", "M15", 999)
    assert cfg.training_config["spread_points"] == 3.0  # the option wins
    assert cfg.training_config["pip_value"] == 10.0  # from the file
    assert cfg.rl_config.ema_period == 100 and cfg.rl_config.roc_period == 10  # default
    assert cfg.hmm_config.n_states == 4
    assert cfg.ppo.gamma == 0.5 and cfg.ppo.pi == [128, 128] and cfg.ppo.vf == [64]
    assert (cfg.split.validation, cfg.split.test) == (0.2, 0.1)
    cfg = config_from_args(
        _args(
            "--bars",
            "x.csv",
            "--symbol",
            "EURUSD",
            "--timeframe",
            "H1",
            *COST_ARGS,
            "--net-arch",
            "pi=256,256/vf=64,64",
            "--activation",
            "relu",
            "--timesteps",
            "77",
        )
    )
    assert cfg.training_config == dict(COSTS, lot_sizes=[0.0, 0.01, 0.03, 0.05])
    assert (cfg.ppo.pi, cfg.ppo.vf, cfg.ppo.activation) == ([256, 256], [64, 64], "relu")
    assert cfg.timesteps == 77


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"ppo": {"net_arch": [512]}}, "not at most 3 hidden layers of 1..256 units"),
        ({"ppo": {"net_arch": [256, 256, 256]}}, "needs 136448 weights, the twin holds 71680"),
        ({"ppo": {"activation": "sigmoid"}}, "ppo.activation 'sigmoid' is not tanh or relu"),
        ({"ppo": {"learnin_rate": 1}}, "ppo: unknown field 'learnin_rate'"),
        ({"training_config": {"point": 0.1}}, "training_config.pip_value is missing"),
        ({"timeframe": "H2"}, "timeframe 'H2' is not one the system streams"),
        ({"symbol": "EUR_USD"}, "symbol 'EUR_USD' must be a broker symbol name without '_'"),
        ({"hmm_config": {"n_states": 9}}, "hmm_config.n_states 9 is not in 1..8"),
        ({"split": {"test": 0.9}}, "must be fractions > 0 that leave bars to train on"),
    ],
)
def test_a_config_that_cannot_be_trained_is_refused_naming_the_field(edit, message):
    base = {"symbol": "EURUSD", "timeframe": "H1", "training_config": COSTS}
    with pytest.raises(TrainError, match=message.replace("(", r"\(").replace("[", r"\[")):
        config_from_dict({**base, **edit})


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oracle_training", *args],
        cwd=REPO / "training",
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_bad_bar_file_gets_one_line_naming_the_line(tmp_path, small_bars):
    bad = tmp_path / "bad.csv"
    lines = small_bars.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(",", ";", 1)
    bad.write_text("".join(lines))
    r = _run(
        "train", "--bars", str(bad), "--symbol", "EURUSD", "--timeframe", "H1", *COST_ARGS,
        "--out-dir", str(tmp_path),
    )  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert err[0].startswith(f"python -m oracle_training train: {bad}:4: bar rejected"), err[0]
    assert not list(tmp_path.glob("*.zip"))


def test_train_needs_a_name_or_bars_and_the_costs(tmp_path, small_bars):
    r = _run("train")
    assert r.returncode == 2 and "give a sample model NAME or --bars FILE" in r.stderr
    r = _run("train", "--bars", str(small_bars), "--symbol", "EURUSD", "--timeframe", "H1")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "python -m oracle_training train: train --bars: training_config is missing (the "
        "costs: --point --pip-value --spread-points --slippage-points --commission-per-lot "
        "--digits --lot-sizes, or training_config in --config)"
    ]


def test_the_check_observations_cover_a_short_file(small_bars):
    """A file with fewer decision bars than the 2,000 the ONNX check needs still gets them."""
    from oracle_training.spec import precompute
    from oracle_training.train import observations_for_check

    zips = sorted((REPO / "models").glob("EURUSD_H1.zip"))
    if not zips:
        pytest.skip("no models/EURUSD_H1.zip")
    spec = ModelZip(zips[0]).spec()
    data = precompute(read_bars(small_bars), spec)
    obs = observations_for_check(spec, data, None, 2500, 1)
    assert obs.shape == (2500, spec.obs_dim) and np.isfinite(obs).all()


def test_the_sample_models_train_wide_with_net_arch_and_activation():
    """``train NAME`` / ``train-all`` stay one call; --net-arch/--activation widen them (how the
    wide golden and a wide fleet for the bench are made), refused beyond the twin's limit."""
    from oracle_training.train import ppo_with

    assert ppo_with(None, None) is None  # the bundled [64, 64] tanh
    ppo = ppo_with("256,256", "relu")
    assert (ppo.pi, ppo.vf, ppo.activation) == ([256, 256], [256, 256], "relu")
    assert ppo.policy_kwargs()["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    with pytest.raises(TrainError, match="not at most 3 hidden layers of 1..256 units"):
        ppo_with("512", None)
    args = build_parser().parse_args(
        ["train-all", "--net-arch", "256,256", "--activation", "relu", "--timesteps", "4096"]
    )
    assert (args.net_arch, args.activation, args.timesteps) == ("256,256", "relu", 4096)


def test_export_rechecks_a_wide_zip_from_its_own_bar_file(wide_zip, small_bars, tmp_path):
    """`export` of a zip trained on a user's file: without the bars a one-line refusal naming
    --bars (was a FileNotFoundError traceback); with them the [256, 256] relu actor re-exports
    and passes the check."""
    import shutil

    from oracle_training.export import export_zip
    from oracle_training.policy import ExportError

    z = tmp_path / "EURUSD_H1.zip"
    shutil.copy(wide_zip, z)
    empty = tmp_path / "no-data"
    empty.mkdir()
    with pytest.raises(ExportError, match="no bar file .* pass --bars FILE"):
        export_zip(z, rewrite=False, data_dir=empty)
    r = export_zip(z, rewrite=True, data_dir=empty, bars=small_bars)
    assert r["rewritten"] and r["n_obs"] >= 2000 and r["obs_finite"]
    assert ModelZip(z).meta["policy"]["net_arch"] == [256, 256]
    r = _run("export", str(z), "--bars", str(small_bars), "--verify-only")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rewritten"] is False
