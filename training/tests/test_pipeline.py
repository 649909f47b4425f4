"""Data regeneration and a (tiny) end-to-end training run."""

from __future__ import annotations

import pytest
from paths import DATA

from oracle_training.data import write_all
from oracle_training.modelzip import ModelZip


@pytest.mark.parametrize("name", ["EURUSD_H1", "SYNFX01_H1", "SYNSTK02_H1"])
def test_data_is_reproducible(tmp_path, name):
    write_all(tmp_path, names=[name])
    assert (tmp_path / f"{name}.csv").read_bytes() == (DATA / f"{name}.csv").read_bytes()


def test_shared_symbol_h1_is_aggregated_from_m15():
    from oracle_training.bars import read_bars
    from oracle_training.data import aggregate

    m15 = read_bars(DATA / "SYNFX01_M15.csv")
    h1 = read_bars(DATA / "SYNFX01_H1.csv")
    agg = aggregate(m15, "H1")
    n = len(h1)
    for col in ("time", "open", "high", "low", "close", "volume"):
        assert (getattr(agg, col)[:n] == getattr(h1, col)).all(), col


@pytest.mark.slow
def test_train_one_model_end_to_end(tmp_path):
    from oracle_training.train import train_model

    out = train_model(
        "SYNFX04_H4", timesteps=2048, models_dir=tmp_path, max_attempts=1, verbose=False
    )
    mz = ModelZip(out)
    assert mz.meta["symbol"] == {"name": "SYNFX04", "clean": "SYNFX04", "timeframe": "H4"}
    assert mz.meta["training"]["export_check"]["n_obs"] >= 2000
    assert mz.meta["hmm"]["covariance_type"] == "diag"
    # the test split: every bar after the training part, run once, its figures recorded
    from oracle_training.bars import parse_time

    data, figures = mz.meta["data"], mz.meta["training"]["test"]
    assert parse_time(data["test"]["from"]) > parse_time(data["train"]["to"])
    assert figures["decided_bars"] == data["test"]["bars"] > 0
    assert figures["first_decided"] == data["test"]["from"]
