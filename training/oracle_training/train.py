"""Train one model: data -> features -> HMM fit -> PPO -> export + self-check -> atomic zip."""

from __future__ import annotations

import io
import pickle
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from oracle_training.bars import Bars, format_time
from oracle_training.data import DATA_DIR, load_series, split
from oracle_training.features import HMMConfig, RLConfig, series_hmm_features
from oracle_training.features import series_market_features as smf
from oracle_training.hmm import PortableHMM, fit_hmm
from oracle_training.modelzip import FORMAT_VERSION, member_names, write_model_zip
from oracle_training.spec import CLIP, WINDOW, TwinSpec, precompute
from oracle_training.twin import TwinState, actions_metadata
from oracle_training.universe import BY_NAME, ModelDef

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "models"
NET_ARCH = [64, 64]
MIN_TRANSITIONS = 100
# smallest top-2 logit gap accepted on the golden stream: well above the ~1e-6 logit difference
# expected between torch and a sequential f32 implementation (docs/PARITY), so no near-tie flips
MIN_MARGIN = 2e-5


def _std(x: np.ndarray) -> list[float]:
    s = np.std(x, axis=0)
    return [float(v) if v > 0 else 1.0 for v in s]


def fit_normalisers(train: Bars, window: int, rl: RLConfig, hc: HMMConfig):
    raw = smf(train, window, rl)[window - 1 :]
    hraw = series_hmm_features(train, hc)[hc.lookback :]
    return (
        [float(v) for v in raw.mean(axis=0)],
        _std(raw),
        [float(v) for v in hraw.mean(axis=0)],
        _std(hraw),
    )


def reward_scale(train: Bars, spec: TwinSpec) -> float:
    costs = spec.costs
    moves = np.abs(np.diff(train.close)) / costs.point
    med = float(np.median(moves[moves > 0])) if np.any(moves > 0) else 1.0
    return med * costs.money_per_point * costs.lot_sizes[3]


def observations_for_check(spec, data, train_range, n: int, seed: int) -> np.ndarray:
    """Observations for the export self-check: every decision bar of the training split (then
    the golden range if needed) with random, consistent position features."""
    rng = np.random.default_rng(seed)
    costs = spec.costs
    lo = spec.window - 1
    idx = np.arange(lo, len(data.bars))
    if len(idx) > n:
        idx = np.sort(rng.choice(idx, n, replace=False))
    out = []
    from oracle_training.spec import build_obs

    for t in idx:
        st = TwinState()
        d = int(rng.integers(-1, 2))
        if d != 0:
            c = float(data.bars.close[t])
            st.position_direction = d
            st.position_intensity = int(rng.integers(1, 4))
            st.entry_price = c * (1.0 + rng.normal(0.0, 0.01))
        out.append(
            build_obs(
                data.z[t], int(data.regime[t]), spec.n_states, st, costs, data.bars.close[t], 10.0
            )
        )
    return np.stack(out)


def make_metadata(md: ModelDef, spec: TwinSpec, bars: Bars, train_range, golden_range, extra):
    tc = spec.training_config
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "symbol": {"name": md.symbol, "clean": md.symbol, "timeframe": md.timeframe},
        "training_config": tc,
        "hmm_config": spec.hmm_config.as_dict(),
        "rl_config": spec.rl_config.as_dict(),
        "actions": actions_metadata(),
        "window": spec.window,
        "observation": {
            "dim": spec.obs_dim,
            "layout": spec.obs_layout(),
            "rl_norm": {"mean": spec.rl_norm_mean, "std": spec.rl_norm_std},
            "clip": spec.clip,
            "regime_encoding": "one-hot",
        },
        "hmm": {
            "covariance_type": spec.hmm.covariance_type,
            "n_states": spec.hmm.n_states,
            "n_features": spec.hmm.n_features,
            "feature_norm": {"mean": spec.hmm_norm_mean, "std": spec.hmm_norm_std},
            "features": ["momentum", "consistency", "range"],
            "inference": "scaled forward filter restarted at the window's first valid bar",
        },
        "policy": {
            "obs_dim": spec.obs_dim,
            "n_actions": 7,
            "net_arch": NET_ARCH,
            "activation": "tanh",
            "algorithm": "PPO (stable-baselines3 MlpPolicy)",
            "action_rule": "first argmax of softmax(logits)",
        },
        "data": {
            "source": "real: backtesting 0.6.6 test/EURUSD.csv"
            if md.real
            else f"synthetic: oracle_training.data.generate seed {md.seed}"
            + (f", aggregated from {md.derived_from}" if md.derived_from else ""),
            "file": f"data/{md.name}.csv",
            "train": {
                "from": format_time(bars.time[train_range[0]]),
                "to": format_time(bars.time[train_range[1] - 1]),
                "bars": train_range[1] - train_range[0],
            },
            "golden": {
                "from": format_time(bars.time[golden_range[0]]),
                "to": format_time(bars.time[golden_range[1] - 1]),
                "bars": golden_range[1] - golden_range[0],
            },
        },
        "training": extra,
        "notice": "sample model for runtime tests; not trading advice",
    }


def train_model(
    name: str,
    timesteps: int = 50_000,
    data_dir: Path = DATA_DIR,
    models_dir: Path = MODELS_DIR,
    seed_offset: int = 0,
    ent_coef: float = 0.01,
    max_attempts: int = 6,
    verbose: bool = True,
) -> Path:
    import torch
    from stable_baselines3 import PPO

    from oracle_training.env import TradingEnv
    from oracle_training.policy import export_onnx, verify_onnx
    from oracle_training.stream import coverage, run_stream

    torch.set_num_threads(1)
    t0 = time.time()
    md = BY_NAME[name]
    bars = load_series(name, data_dir)
    train_range, golden_range = split(len(bars))
    train = bars.slice(*train_range)
    rl, hc = RLConfig(), HMMConfig()
    rl_mean, rl_std, h_mean, h_std = fit_normalisers(train, WINDOW, rl, hc)
    hraw = series_hmm_features(train, hc)[hc.lookback :]
    x = (hraw - np.asarray(h_mean)) / np.asarray(h_std)
    hmm_model = fit_hmm(x, md.covariance_type, seed=md.seed + seed_offset, n_states=hc.n_states)
    spec = TwinSpec(
        symbol=md.symbol,
        timeframe=md.timeframe,
        training_config=md.training_config,
        hmm=PortableHMM.from_hmmlearn(hmm_model),
        hmm_norm_mean=h_mean,
        hmm_norm_std=h_std,
        rl_norm_mean=rl_mean,
        rl_norm_std=rl_std,
        window=WINDOW,
        clip=CLIP,
    )
    data = precompute(bars, spec)
    golden_data = precompute(bars.slice(*golden_range), spec)
    scale = reward_scale(train, spec)
    t_hmm = time.time() - t0

    attempt = 0
    cov = None
    model = None
    while attempt < max_attempts:
        seed = md.seed * 10 + attempt + seed_offset
        env = TradingEnv(
            spec,
            data,
            start=WINDOW - 1,
            stop=train_range[1],
            episode_len=512,
            reward_scale=scale,
            seed=seed,
        )
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=1024,
            batch_size=128,
            n_epochs=5,
            learning_rate=3e-4,
            gamma=0.95,
            ent_coef=ent_coef * (1 + 2 * (attempt % 3)),
            policy_kwargs={"net_arch": {"pi": NET_ARCH, "vf": NET_ARCH}},
            seed=seed,
            device="cpu",
            verbose=0,
        )
        model.learn(total_timesteps=timesteps)
        steps = run_stream(spec, golden_data, model)
        cov = coverage(steps, spec.n_states)
        if verbose:
            print(f"{name}: attempt {attempt} coverage {cov}", flush=True)
        if (
            cov["transitions"] >= MIN_TRANSITIONS
            and len([a for a in cov["actions"] if a]) >= 3
            and cov["min_margin"] >= MIN_MARGIN
        ):
            break
        attempt += 1
    else:
        print(f"{name}: WARNING coverage below threshold after {max_attempts} attempts")
    t_ppo = time.time() - t0 - t_hmm

    onnx_bytes = export_onnx(model, spec.obs_dim)
    check_obs = observations_for_check(spec, data, train_range, 2500, md.seed)
    check = verify_onnx(model, onnx_bytes, check_obs, where=name)
    ppo_buf = io.BytesIO()
    model.save(ppo_buf)
    members = member_names(name)
    import json

    blobs = {
        members["hmm_pkl"]: pickle.dumps(hmm_model),
        members["ppo"]: ppo_buf.getvalue(),
        members["onnx"]: onnx_bytes,
        members["hmm_json"]: json.dumps(spec.hmm.to_dict()).encode(),
    }
    extra = {
        "timesteps": timesteps,
        "attempts": min(attempt + 1, max_attempts),
        "ent_coef": ent_coef * (1 + 2 * (min(attempt, max_attempts - 1) % 3)),
        "reward": "change of equity (realised + unrealised money) / reward_scale",
        "reward_scale": scale,
        "episode_len": 512,
        "export_check": check,
        "golden_coverage": {k: cov[k] for k in ("transitions", "actions", "regimes")},
        "seconds": round(time.time() - t0, 1),
    }
    meta = make_metadata(md, spec, bars, train_range, golden_range, extra)
    out = Path(models_dir) / f"{name}.zip"
    write_model_zip(out, meta, blobs)
    if verbose:
        print(
            f"{name}: wrote {out} (hmm {t_hmm:.1f}s, ppo {t_ppo:.1f}s, "
            f"total {time.time() - t0:.1f}s, check {check})",
            flush=True,
        )
    return out
