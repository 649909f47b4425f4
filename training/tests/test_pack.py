"""``python -m oracle_training pack`` (a notebook's SB3 PPO and hmmlearn HMM into the runtime zip),
the declared features, and the notebook's feature functions."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from paths import DATA, MODELS

from oracle_training.bars import format_time, read_bars, write_bars
from oracle_training.cli import main
from oracle_training.data import generate
from oracle_training.features import (
    HMMConfig,
    RLConfig,
    declaration,
    fit_normalisation,
    hmm_inputs,
    observe,
    position_columns,
)
from oracle_training.modelzip import ModelZip, ModelZipError, pack_command, write_model_zip
from oracle_training.universe import FX5, ModelDef

SYM, TF = "SYNPACK", "H1"
NAME = f"{SYM}_{TF}"
N_BARS, N_TRAIN = 900, 700
SEED_FIELDS = (
    "format_version",
    "generated_at",
    "symbol",
    "training_config",
    "hmm_config",
    "rl_config",
    "actions",
)


def _ppo_bytes(model) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def _untrained_ppo(obs_dim: int, n_actions: int = 7, net_arch=(32, 32), activation=None) -> bytes:
    """An SB3 PPO save with the given spaces and network (not trained: shape checks only)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO

    class Env(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Discrete(n_actions)

        def reset(self, *, seed=None, options=None):
            return np.zeros(obs_dim, np.float32), {}

        def step(self, action):
            return np.zeros(obs_dim, np.float32), 0.0, True, False, {}

    kwargs = {"net_arch": {"pi": list(net_arch), "vf": [16]}}
    kwargs["activation_fn"] = activation or torch.nn.Tanh
    return _ppo_bytes(PPO("MlpPolicy", Env(), n_steps=64, batch_size=64, policy_kwargs=kwargs))


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """What a user's notebook leaves behind: a bar file, a GaussianHMM fitted on the HMM inputs
    of its training part, and a PPO trained (briefly) on the contract's observation."""
    import torch
    from hmmlearn.hmm import GaussianHMM
    from stable_baselines3 import PPO

    from oracle_training.env import TradingEnv
    from oracle_training.hmm import PortableHMM
    from oracle_training.spec import TwinSpec, precompute

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("notebook")
    csv = d / "bars.csv"
    write_bars(csv, generate(ModelDef(SYM, TF, "fx5", "diag", 11, 1.1, 0.001), N_BARS), 5)
    bars = read_bars(csv)
    train = bars.slice(0, N_TRAIN)
    norm = fit_normalisation(train)
    hmm = GaussianHMM(n_components=4, covariance_type="diag", n_iter=20, random_state=1)
    hmm.fit(hmm_inputs(train, norm))
    spec = TwinSpec(
        SYM,
        TF,
        dict(FX5),
        PortableHMM.from_hmmlearn(hmm),
        norm["hmm_norm"]["mean"],
        norm["hmm_norm"]["std"],
        norm["rl_norm"]["mean"],
        norm["rl_norm"]["std"],
    )
    env = TradingEnv(spec, precompute(bars, spec), stop=N_TRAIN, episode_len=64, seed=1)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=128,
        batch_size=64,
        n_epochs=1,
        policy_kwargs={"net_arch": {"pi": [32, 32], "vf": [32, 32]}},
        seed=1,
        device="cpu",
    )
    model.learn(total_timesteps=128)
    files = {
        "dir": d,
        "csv": csv,
        "ppo": d / f"{NAME}_ppo.zip",
        "hmm": d / f"{NAME}_hmm.pkl",
        "train_to": format_time(int(train.time[-1])),
        "norm": norm,
        "bars": bars,
    }
    files["config"] = d / "config.json"
    files["config"].write_text(json.dumps({"symbol": SYM, "timeframe": TF, "training_config": FX5}))
    files["ppo"].write_bytes(_ppo_bytes(model))
    files["hmm"].write_bytes(pickle.dumps(hmm))
    return files


def _pack_args(nb, out, **over) -> list[str]:
    opts = {
        "--ppo": str(nb["ppo"]),
        "--hmm": str(nb["hmm"]),
        "--config": str(nb["config"]),
        "--bars": str(nb["csv"]),
        "--train-to": nb["train_to"],
        "--out": str(out),
    }
    opts.update(over)
    args = ["pack"]
    for k, v in opts.items():
        if v is not None:
            args += [k, v]
    return args


def _seed_zip(path, members: dict[str, bytes], meta: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
        zf.comment = json.dumps({k: meta[k] for k in SEED_FIELDS}).encode()


def test_a_freshly_trained_model_packs_into_a_zip_that_loads_and_declares_its_features(
    notebook, tmp_path, capsys
):
    main(_pack_args(notebook, tmp_path))
    assert f"packed {tmp_path / (NAME + '.zip')}" in capsys.readouterr().out
    mz = ModelZip(tmp_path / f"{NAME}.zip")
    meta = mz.meta
    assert meta["features"] == declaration(RLConfig(), HMMConfig(n_states=4))
    assert meta["policy"]["net_arch"] == [32, 32] and meta["policy"]["activation"] == "tanh"
    assert meta["hmm"]["n_states"] == 4 and meta["observation"]["dim"] == 12
    assert meta["observation"]["rl_norm"] == notebook["norm"]["rl_norm"]
    assert meta["hmm"]["feature_norm"] == notebook["norm"]["hmm_norm"]
    assert meta["data"]["train"]["bars"] == N_TRAIN
    # the notebook's two files travel unchanged
    assert mz.member("ppo") == notebook["ppo"].read_bytes()
    assert mz.member("hmm_pkl") == notebook["hmm"].read_bytes()
    # the twin it builds feeds the policy what observe() computes, and the policy decides as SB3
    from oracle_training.reference import replay_trace

    trace = replay_trace(tmp_path / f"{NAME}.zip", notebook["csv"]).splitlines()
    assert len(trace) == N_BARS + 1
    obs = observe(notebook["bars"], mz.load_hmm_pickle(), notebook["norm"])
    first = 349  # the first decision bar: FLAT before it, so observe()'s row is the observation
    action, _ = mz.load_ppo().predict(obs[first], deterministic=True)
    from oracle_training.twin import ACTIONS

    assert trace[1 + first].split(",")[1] == ACTIONS[int(action)][0]


def test_a_seed_format_zip_is_refused_with_the_pack_command_and_packed_in_place_it_loads(
    notebook, tmp_path
):
    seed = tmp_path / f"{NAME}.zip"
    meta = {
        "format_version": "2.0",
        "generated_at": "2026-02-03T10:30:00Z",
        "symbol": {"name": SYM, "clean": SYM, "timeframe": TF},
        "training_config": dict(FX5),
        "hmm_config": {
            "n_states": 4,
            **{k: v for k, v in HMMConfig().as_dict().items() if k != "n_states"},
        },
        "rl_config": RLConfig().as_dict(),
        "actions": __import__("oracle_training.twin").twin.actions_metadata(),
    }
    members = {
        f"{NAME}_hmm.pkl": notebook["hmm"].read_bytes(),
        f"{NAME}_ppo.zip": notebook["ppo"].read_bytes(),
    }
    _seed_zip(seed, members, meta)
    with pytest.raises(ModelZipError) as e:
        ModelZip(seed)
    assert f"`{pack_command(seed.name)}`" in str(e.value)
    assert "'window' is missing" not in str(e.value)
    main(["pack", "--from", str(seed), "--bars", str(notebook["csv"])])
    mz = ModelZip(seed)
    assert mz.meta["generated_at"] == "2026-02-03T10:30:00Z"
    assert mz.member("ppo") == members[f"{NAME}_ppo.zip"]
    assert mz.meta["data"]["source"] == f"packed from {seed.name}"


@pytest.mark.skipif(not (MODELS / "EURUSD_H1.zip").exists(), reason="models not built")
def test_a_bundled_zip_packed_from_its_seed_members_decides_exactly_as_the_bundled_zip(tmp_path):
    from oracle_training.reference import replay_trace

    src = ModelZip(MODELS / "EURUSD_H1.zip")
    seed = tmp_path / "EURUSD_H1.zip"
    _seed_zip(
        seed,
        {src.names["hmm_pkl"]: src.member("hmm_pkl"), src.names["ppo"]: src.member("ppo")},
        src.meta,
    )
    bars = DATA / "EURUSD_H1.csv"
    main(
        [
            "pack",
            "--from",
            str(seed),
            "--bars",
            str(bars),
            "--train-to",
            src.meta["data"]["train"]["to"],
        ]
    )
    packed = ModelZip(seed)
    for key in ("observation", "hmm"):
        for norm in ("rl_norm", "feature_norm"):
            if norm in src.meta[key]:
                assert packed.meta[key][norm] == src.meta[key][norm]
    assert replay_trace(seed, bars) == replay_trace(MODELS / "EURUSD_H1.zip", bars)


def _hmm_pickle(notebook, n_states=4, cov="diag", n_features=3, fit=True) -> bytes:
    from hmmlearn.hmm import GaussianHMM

    hmm = GaussianHMM(n_components=n_states, covariance_type=cov, n_iter=5, random_state=1)
    if fit:
        x = hmm_inputs(notebook["bars"].slice(0, N_TRAIN), notebook["norm"])
        hmm.fit(x[:, :n_features])
    return pickle.dumps(hmm)


def _config(**sections) -> bytes:
    """train --bars's config JSON for the notebook's model, with sections changed (None drops
    a field)."""
    cfg = {"symbol": SYM, "timeframe": TF, "training_config": dict(FX5)}
    for key, fields in sections.items():
        part = dict(cfg.get(key) or {})
        for k, v in fields.items():
            if v is None:
                part.pop(k, None)
            else:
                part[k] = v
        cfg[key] = part
    return json.dumps(cfg).encode()


MISFITS = {
    # name: (what to write over the notebook's files / options, words the one line must hold)
    "policy observes another size": (
        {"hmm": lambda nb: _hmm_pickle(nb, n_states=5)},
        ["observes 12 values", "5 + 5 + 3 = 13", "oracle_training.features.observe"],
    ),
    "action space": (
        {"ppo": lambda nb: _untrained_ppo(12, n_actions=3)},
        ["Discrete(3)", "Discrete(7)"],
    ),
    "network too wide": (
        {"ppo": lambda nb: _untrained_ppo(12, net_arch=(512,))},
        ["net_arch [512] is not at most 3 hidden layers of 1..256 units", "retrain with"],
    ),
    "network too deep": (
        {"ppo": lambda nb: _untrained_ppo(12, net_arch=(16, 16, 16, 16))},
        ["net_arch [16, 16, 16, 16] is not at most 3 hidden layers"],
    ),
    "network over the twin's weights": (
        {"ppo": lambda nb: _untrained_ppo(12, net_arch=(256, 256, 256))},
        ["net_arch [256, 256, 256] needs", "a [256, 256] actor"],
    ),
    "activation": (
        {"ppo": lambda nb: _untrained_ppo(12, activation=__import__("torch").nn.ELU)},
        ["ELU", "tanh or relu"],
    ),
    "covariance type": (
        {"hmm": lambda nb: _hmm_pickle(nb, cov="spherical")},
        ["covariance_type 'spherical'", "diag, full", "refit with"],
    ),
    "HMM features": (
        {"hmm": lambda nb: _hmm_pickle(nb, n_features=2)},
        ["fitted on 2 features", "momentum, consistency, range", "hmm_inputs"],
    ),
    "HMM not fitted": (
        {"hmm": lambda nb: _hmm_pickle(nb, fit=False)},
        ["not fitted", "hmm.fit"],
    ),
    "not a pickle": ({"hmm": lambda nb: b"not a pickle"}, ["not a pickle", "pickle.dump"]),
    "not a PPO save": ({"ppo": lambda nb: b"PK not a zip"}, ["not a stable-baselines3 PPO save"]),
    "costs lack a field": (
        {"config": lambda nb: _config(training_config={"pip_value": None})},
        ["costs lack pip_value", "--pip-value", "training_config in --config"],
    ),
    "a cost field the twin does not have": (
        {"config": lambda nb: _config(training_config={"swap_long": -1.2})},
        ["training_config.swap_long is not a cost field"],
    ),
    "states differ from hmm_config": (
        {"--n-states": "5"},
        ["hmm_config.n_states is 5", "HMM has 4 states"],
    ),
    "a period the set does not have": (
        {"config": lambda nb: _config(rl_config={"rsi_period": 14})},
        ["rl_config.rsi_period is not a period of the feature set"],
    ),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_inputs_that_do_not_fit_the_contract_are_refused_in_one_line_with_the_fix(
    notebook, tmp_path, case
):
    over, words = MISFITS[case]
    opts = {}
    for key, value in over.items():
        if key.startswith("--"):
            opts[key] = value
        else:
            f = tmp_path / f"{NAME}_{key}"
            f.write_bytes(value(notebook))
            opts[f"--{key}"] = str(f)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(_pack_args(notebook, out, **opts))
    msg = str(e.value.code)
    assert msg.startswith("python -m oracle_training pack: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    assert not (out / f"{NAME}.zip").exists()


# ---------------------------------------------------------------------------------------------
# declared features


@pytest.mark.skipif(not (MODELS / "EURUSD_H1.zip").exists(), reason="models not built")
def test_a_written_zip_declares_its_feature_set_and_a_bundled_one_without_is_the_v1_set(tmp_path):
    src = ModelZip(MODELS / "EURUSD_H1.zip")
    assert "features" not in src.meta  # the bundled zips predate the declaration and load
    meta = {k: v for k, v in src.meta.items() if k != "members"}
    out = write_model_zip(tmp_path / "EURUSD_H1.zip", meta, dict(src.members))
    assert out["features"] == declaration(RLConfig(), HMMConfig())
    assert ModelZip(tmp_path / "EURUSD_H1.zip").meta["features"]["market"][2] == {
        "name": "ema",
        "period": 200,
    }


def _declared(tmp_path, edit):
    src = ModelZip(MODELS / "EURUSD_H1.zip")
    meta = {k: v for k, v in json.loads(json.dumps(src.meta)).items() if k != "members"}
    meta["features"] = declaration(RLConfig(), HMMConfig())
    edit(meta)
    with pytest.raises(ModelZipError) as e:
        write_model_zip(tmp_path / "EURUSD_H1.zip", meta, dict(src.members))
    return str(e.value)


@pytest.mark.skipif(not (MODELS / "EURUSD_H1.zip").exists(), reason="models not built")
def test_a_zip_declaring_features_the_twin_does_not_implement_is_refused_naming_them(tmp_path):
    def rsi(meta):
        meta["features"]["market"][1] = {"name": "rsi", "period": 14}
        meta["features"]["hmm"][0] = {"name": "macd_signal", "period": 9}

    msg = _declared(tmp_path, rsi)
    assert "does not implement: market rsi(14), hmm macd_signal(9)" in msg, msg
    assert "market roc, atr, ema, range, volume" in msg, msg
    msg = _declared(tmp_path, lambda m: m["observation"]["layout"].__setitem__(2, "sma_50"))
    assert 'observation.layout[2] "sma_50"' in msg, msg
    msg = _declared(tmp_path, lambda m: m["features"]["market"][1].__setitem__("period", 21))
    assert "'features.market.1 (atr) period'" in msg and "rl_config.atr_period = 14" in msg, msg
    msg = _declared(tmp_path, lambda m: m["features"].__setitem__("version", 2))
    assert "'features.version'" in msg, msg


# ---------------------------------------------------------------------------------------------
# the notebook's functions


def test_observe_is_the_twins_observation_of_a_flat_position_and_position_columns_the_rest(
    small_bars, spec
):
    from oracle_training.spec import build_obs, precompute
    from oracle_training.twin import Costs, TwinState

    norm = {
        "rl_norm": {"mean": spec.rl_norm_mean, "std": spec.rl_norm_std},
        "hmm_norm": {"mean": spec.hmm_norm_mean, "std": spec.hmm_norm_std},
    }
    obs = observe(small_bars, spec._hmmlearn, norm)
    data = precompute(small_bars, spec)
    costs = Costs.from_config(spec.training_config)
    assert np.isnan(obs[: spec.window - 1]).all()
    for t in range(spec.window - 1, len(small_bars)):
        c = small_bars.close[t]
        want = build_obs(data.z[t], int(data.regime[t]), spec.n_states, TwinState(), costs, c, 10.0)
        assert obs[t].tobytes() == want.tobytes(), t
    st = TwinState()
    st.position_direction, st.position_intensity, st.entry_price = -1, 2, 1.1
    t = len(small_bars) - 1
    c = small_bars.close[t]
    want = build_obs(data.z[t], int(data.regime[t]), spec.n_states, st, costs, c, 10.0)
    got = position_columns(-1, 2, 1.1, c, spec.training_config)
    assert got.tobytes() == want[-3:].tobytes()


def test_fit_normalisation_is_what_training_stores(small_bars):
    from oracle_training.train import fit_normalisers

    rl_mean, rl_std, h_mean, h_std = fit_normalisers(small_bars, 350, RLConfig(), HMMConfig())
    norm = fit_normalisation(small_bars)
    assert norm == {
        "rl_norm": {"mean": rl_mean, "std": rl_std},
        "hmm_norm": {"mean": h_mean, "std": h_std},
    }


def test_export_of_a_seed_format_zip_is_one_line_naming_pack_not_a_traceback(notebook, tmp_path):
    seed = tmp_path / f"{NAME}.zip"
    members = {
        n: (notebook["dir"] / n).read_bytes() for n in (f"{NAME}_hmm.pkl", f"{NAME}_ppo.zip")
    }
    meta = {
        "format_version": "2.0",
        "generated_at": "2026-02-03T10:30:00Z",
        "symbol": {"name": SYM, "clean": SYM, "timeframe": TF},
        "training_config": dict(FX5),
        "hmm_config": {**HMMConfig().as_dict(), "n_states": 4},
        "rl_config": RLConfig().as_dict(),
        "actions": {},
    }
    _seed_zip(seed, members, meta)
    with pytest.raises(SystemExit) as e:
        main(["export", str(seed)])
    msg = str(e.value.code)
    assert msg.startswith("python -m oracle_training export: ") and "\n" not in msg, msg
    assert f"`{pack_command(seed.name)}`" in msg, msg


@pytest.mark.skipif(not (MODELS / "EURUSD_H1.zip").exists(), reason="models not built")
def test_re_packing_a_runtime_zip_keeps_its_normalisation_window_and_training_range(tmp_path):
    src = ModelZip(MODELS / "EURUSD_H1.zip")
    copy = tmp_path / "EURUSD_H1.zip"
    copy.write_bytes((MODELS / "EURUSD_H1.zip").read_bytes())
    # no --train-to: the zip's own normalisation, not one refitted on the whole bar file
    main(["pack", "--from", str(copy), "--bars", str(DATA / "EURUSD_H1.csv")])
    packed = ModelZip(copy)
    assert packed.meta["observation"]["rl_norm"] == src.meta["observation"]["rl_norm"]
    assert packed.meta["hmm"]["feature_norm"] == src.meta["hmm"]["feature_norm"]
    assert packed.meta["window"] == src.meta["window"]
    assert packed.meta["data"]["train"] == src.meta["data"]["train"]
    assert packed.meta["data"]["normalisation"] == "kept from EURUSD_H1.zip"
    assert packed.meta["features"] == declaration(RLConfig(), HMMConfig())
    for key in ("ppo", "hmm_pkl", "hmm_json"):
        assert packed.member(key) == src.member(key), key
