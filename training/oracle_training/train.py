"""Train one model: data -> features -> HMM fit -> PPO -> export + self-check -> atomic zip.

Two entry points share the pipeline: :func:`train_model` trains one of the 20 bundled sample
models (``train NAME``), :func:`train_on_bars` trains on any bar file (``train --bars FILE
--symbol S --timeframe TF``) with costs, periods, PPO hyperparameters and an explicit train /
validation / test split by time from a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from oracle_training.bars import Bars, format_time, parse_time, read_bars
from oracle_training.data import DATA_DIR, load_series, split
from oracle_training.features import HMMConfig, RLConfig, series_hmm_features
from oracle_training.features import series_market_features as smf
from oracle_training.hmm import PortableHMM, fit_hmm
from oracle_training.modelzip import FORMAT_VERSION, TIMEFRAMES, member_names, write_model_zip
from oracle_training.spec import CLIP, WINDOW, TwinSpec, precompute
from oracle_training.twin import TwinState, actions_metadata
from oracle_training.universe import BY_NAME
from oracle_training.util import sha256_bytes

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "models"
NET_ARCH = [64, 64]
MIN_TRANSITIONS = 100
# smallest top-2 logit gap accepted on the golden stream: well above the ~1e-6 logit difference
# expected between torch and a sequential f32 implementation (docs/PARITY), so no near-tie flips
MIN_MARGIN = 2e-5
# observations the export self-check compares ONNX and SB3 on (verify_onnx needs >= 2,000)
CHECK_OBSERVATIONS = 2500
COST_FIELDS = (
    "point",
    "pip_value",
    "spread_points",
    "slippage_points",
    "commission_per_lot",
    "digits",
    "lot_sizes",
)
ACTIVATION_FNS = ("tanh", "relu")
# data.split of a bundled model (``train NAME``; ``annotate-test`` writes it into older zips)
SPLIT_NOTE = (
    "by time: normalisers, HMM and PPO fitted on data.train; test = every bar after it, never "
    "trained on, run once by the model as shipped; the attempt kept was chosen by its trade and "
    "action counts on those bars (the golden coverage gate), not by their profit"
)


class TrainError(ValueError):
    """A training input that cannot be used: one line naming the option, file or field."""


@dataclass
class PPOConfig:
    """SB3 PPO hyperparameters (``MlpPolicy``); the defaults are the bundled models'."""

    n_steps: int = 1024
    batch_size: int = 128
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.95
    ent_coef: float = 0.01
    episode_len: int = 512
    # hidden layers: a list (the same for the actor ``pi`` and the critic ``vf``) or
    # {"pi": [...], "vf": [...]}; the twin runs the actor ``pi``: at most 3 layers, no larger
    # than [256, 256] in all (oracle_training.policy.net_arch_problem)
    net_arch: list | dict = field(default_factory=lambda: list(NET_ARCH))
    activation: str = "tanh"

    @property
    def pi(self) -> list[int]:
        return list(self.net_arch["pi"] if isinstance(self.net_arch, dict) else self.net_arch)

    @property
    def vf(self) -> list[int]:
        return list(self.net_arch["vf"] if isinstance(self.net_arch, dict) else self.net_arch)

    def policy_kwargs(self) -> dict:
        import torch

        act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[self.activation]
        return {"net_arch": {"pi": self.pi, "vf": self.vf}, "activation_fn": act}

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["net_arch"] = {"pi": self.pi, "vf": self.vf}
        return d


@dataclass
class SplitConfig:
    """The train / validation / test split by time, fixed before anything is fitted. Either
    fractions of the bars (``validation``, ``test``; the rest, oldest first, is train) or the
    open times of the first validation and first test bars (``validation_from``, ``test_from``,
    ``YYYY-MM-DDTHH:MM:SSZ``), which win when given."""

    validation: float = 0.15
    test: float = 0.15
    validation_from: str | None = None
    test_from: str | None = None


@dataclass
class TrainConfig:
    """Everything one ``train --bars`` run is made of (a JSON file holds the same keys)."""

    symbol: str
    timeframe: str
    training_config: dict
    rl_config: RLConfig = field(default_factory=RLConfig)
    hmm_config: HMMConfig = field(default_factory=HMMConfig)
    covariance_type: str = "full"
    ppo: PPOConfig = field(default_factory=PPOConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    timesteps: int = 50_000
    seed: int = 1
    max_attempts: int = 1
    window: int = WINDOW

    @property
    def name(self) -> str:
        return f"{self.symbol}_{self.timeframe}"


def _fields(cls, d: dict, where: str) -> dict:
    if not isinstance(d, dict):
        raise TrainError(f"{where} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise TrainError(
            f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    return d


def config_from_dict(d: dict, where: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from the JSON form (sections ``training_config``, ``rl_config``,
    ``hmm_config``, ``ppo``, ``split``), checked: one line naming the bad field."""
    d = dict(_fields(TrainConfig, d, where))
    for key in ("symbol", "timeframe", "training_config"):
        if d.get(key) is None:
            raise TrainError(f"{where}: {key} is missing" + _HINTS.get(key, ""))
    tc = d["training_config"]
    if not isinstance(tc, dict):
        raise TrainError(f"{where}: training_config must be a JSON object")
    missing = [k for k in COST_FIELDS if k not in tc]
    if missing:
        raise TrainError(
            f"{where}: training_config.{missing[0]} is missing" + _HINTS["training_config"]
        )
    unknown = sorted(set(tc) - set(COST_FIELDS))
    if unknown:
        raise TrainError(f"{where}: training_config.{unknown[0]} is not a cost field")
    d["rl_config"] = RLConfig(**_fields(RLConfig, d.get("rl_config") or {}, f"{where}: rl_config"))
    d["hmm_config"] = HMMConfig(
        **_fields(HMMConfig, d.get("hmm_config") or {}, f"{where}: hmm_config")
    )
    d["ppo"] = PPOConfig(**_fields(PPOConfig, d.get("ppo") or {}, f"{where}: ppo"))
    d["split"] = SplitConfig(**_fields(SplitConfig, d.get("split") or {}, f"{where}: split"))
    cfg = TrainConfig(**d)
    check_config(cfg, where)
    return cfg


_HINTS = {
    "symbol": " (--symbol NAME)",
    "timeframe": " (--timeframe TF)",
    "training_config": (
        " (the costs: --point --pip-value --spread-points --slippage-points "
        "--commission-per-lot --digits --lot-sizes, or training_config in --config)"
    ),
}


def check_config(cfg: TrainConfig, where: str = "config") -> None:
    """One line naming the first value that cannot be trained with."""
    from oracle_training.policy import net_arch_problem

    if not cfg.symbol or any(c in cfg.symbol for c in '/\\ _,"') or not cfg.symbol.isprintable():
        raise TrainError(
            f"{where}: symbol {cfg.symbol!r} must be a broker symbol name without '_', '/', "
            "spaces, quotes or commas (the zip is SYMBOL_TF.zip)"
        )
    if cfg.timeframe not in TIMEFRAMES:
        raise TrainError(
            f"{where}: timeframe {cfg.timeframe!r} is not one the system streams "
            f"({', '.join(TIMEFRAMES)})"
        )
    tc = cfg.training_config
    for k in ("point", "pip_value"):
        if not _number(tc[k]) or tc[k] <= 0:
            raise TrainError(f"{where}: training_config.{k} {tc[k]!r} must be a positive number")
    for k in ("spread_points", "slippage_points", "commission_per_lot"):
        if not _number(tc[k]) or tc[k] < 0:
            raise TrainError(f"{where}: training_config.{k} {tc[k]!r} must not be negative")
    if (
        not isinstance(tc["digits"], int)
        or isinstance(tc["digits"], bool)
        or not 0 <= tc["digits"] <= 12
    ):
        raise TrainError(f"{where}: training_config.digits {tc['digits']!r} is not in 0..12")
    lots = tc["lot_sizes"]
    if (
        not isinstance(lots, list)
        or len(lots) != 4
        or not all(_number(v) and v >= 0 for v in lots)
        or lots[0] != 0
    ):
        raise TrainError(
            f"{where}: training_config.lot_sizes {lots!r} must be 4 lot sizes "
            "[0, weak, medium, strong] (e.g. [0, 0.01, 0.03, 0.05])"
        )
    for name, obj in (("rl_config", cfg.rl_config), ("hmm_config", cfg.hmm_config)):
        for k, v in obj.as_dict().items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TrainError(f"{where}: {name}.{k} {v!r} must be a whole number >= 1")
    if not 1 <= cfg.hmm_config.n_states <= 8:
        raise TrainError(f"{where}: hmm_config.n_states {cfg.hmm_config.n_states} is not in 1..8")
    need = max(cfg.rl_config.min_window(), cfg.hmm_config.lookback + 1)
    if cfg.window < need:
        raise TrainError(
            f"{where}: window {cfg.window} is shorter than the {need} bars the periods need"
        )
    if cfg.covariance_type not in ("diag", "full"):
        raise TrainError(f"{where}: covariance_type {cfg.covariance_type!r} is not diag or full")
    p = cfg.ppo
    if p.activation not in ACTIVATION_FNS:
        raise TrainError(f"{where}: ppo.activation {p.activation!r} is not tanh or relu")
    if isinstance(p.net_arch, dict) and set(p.net_arch) != {"pi", "vf"}:
        raise TrainError(f"{where}: ppo.net_arch as an object has exactly the keys pi and vf")
    for part in ("pi", "vf"):
        arch = getattr(p, part)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in arch):
            raise TrainError(f"{where}: ppo.net_arch {part} {arch!r} must be whole numbers >= 1")
    problem = net_arch_problem(5 + cfg.hmm_config.n_states + 3, p.pi)
    if problem:
        raise TrainError(f"{where}: ppo.net_arch (actor pi): {problem}")
    for k in ("n_steps", "batch_size", "n_epochs", "episode_len"):
        v = getattr(p, k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise TrainError(f"{where}: ppo.{k} {v!r} must be a whole number >= 1")
    for k in ("learning_rate", "gamma", "ent_coef"):
        if not _number(getattr(p, k)) or getattr(p, k) < 0:
            raise TrainError(f"{where}: ppo.{k} {getattr(p, k)!r} must be a number >= 0")
    if cfg.timesteps < 1 or cfg.max_attempts < 1:
        raise TrainError(f"{where}: timesteps and max_attempts must be >= 1")
    sp = cfg.split
    if (sp.validation_from is None) != (sp.test_from is None):
        raise TrainError(f"{where}: split.validation_from and split.test_from go together")
    if sp.validation_from is None:
        ok = _number(sp.validation) and _number(sp.test)
        if not ok or sp.validation <= 0 or sp.test <= 0 or sp.validation + sp.test >= 1:
            raise TrainError(
                f"{where}: split validation {sp.validation!r} and test {sp.test!r} must be "
                "fractions > 0 that leave bars to train on"
            )


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def split_by_time(bars: Bars, cfg: TrainConfig) -> tuple[int, int]:
    """``(a, b)``: train is bars ``[0, a)``, validation ``[a, b)``, test ``[b, n)`` (decisions;
    the validation and test streams are preceded by the ``window - 1`` bars before them for
    their features, which are window-pure). Chosen from the config alone, before fitting."""
    n, w, sp = len(bars), cfg.window, cfg.split
    if sp.validation_from is not None:
        try:
            tv, tt = parse_time(str(sp.validation_from)), parse_time(str(sp.test_from))
        except ValueError as e:
            raise TrainError(f"split: {e}") from None
        if tt <= tv:
            raise TrainError(f"split: test_from {sp.test_from} is not after validation_from")
        a = int(np.searchsorted(bars.time, tv))
        b = int(np.searchsorted(bars.time, tt))
    else:
        b = n - int(round(n * sp.test))
        a = b - int(round(n * sp.validation))
    # training needs the window plus two episodes' worth of decisions to be worth anything
    min_train = w - 1 + 2
    if a < min_train:
        raise TrainError(
            f"split: the train part has {a} bars, at least {min_train} are needed (the window "
            f"{w} and a few decisions); give more bars or a smaller validation/test part"
        )
    if b - a < 1 or n - b < 1:
        raise TrainError(
            f"split: validation has {b - a} bars and test {n - b}; each needs at least one"
        )
    return a, b


def library_versions() -> dict:
    """Versions of the libraries a model's numbers depend on."""
    import gymnasium
    import hmmlearn
    import onnx
    import onnxruntime
    import stable_baselines3
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "hmmlearn": hmmlearn.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


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
    elif 0 < len(idx) < n:
        # a short bar file: every decision bar, each with several random positions
        idx = np.sort(np.resize(idx, n))
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


def _range(bars: Bars, r) -> dict:
    return {
        "from": format_time(bars.time[r[0]]),
        "to": format_time(bars.time[r[1] - 1]),
        "bars": r[1] - r[0],
    }


def make_metadata(
    symbol: str,
    timeframe: str,
    spec: TwinSpec,
    data: dict,
    extra: dict,
    ppo: PPOConfig | None = None,
    notice: str = "sample model for runtime tests; not trading advice",
):
    ppo = ppo or PPOConfig()
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "symbol": {"name": symbol, "clean": symbol, "timeframe": timeframe},
        "training_config": spec.training_config,
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
            # the actor (pi): what the twin runs
            "net_arch": ppo.pi,
            "value_net_arch": ppo.vf,
            "activation": ppo.activation,
            "algorithm": "PPO (stable-baselines3 MlpPolicy)",
            "action_rule": "first argmax of softmax(logits)",
        },
        "data": data,
        "training": extra,
        "notice": notice,
    }


def _fit_spec(symbol, timeframe, training_config, train: Bars, rl, hc, window, cov, seed):
    """Normalisers and the HMM fitted on the training bars only, as a :class:`TwinSpec`."""
    rl_mean, rl_std, h_mean, h_std = fit_normalisers(train, window, rl, hc)
    hraw = series_hmm_features(train, hc)[hc.lookback :]
    x = (hraw - np.asarray(h_mean)) / np.asarray(h_std)
    hmm_model = fit_hmm(x, cov, seed=seed, n_states=hc.n_states)
    spec = TwinSpec(
        symbol=symbol,
        timeframe=timeframe,
        training_config=training_config,
        hmm=PortableHMM.from_hmmlearn(hmm_model),
        hmm_norm_mean=h_mean,
        hmm_norm_std=h_std,
        rl_norm_mean=rl_mean,
        rl_norm_std=rl_std,
        window=window,
        clip=CLIP,
        rl_config=rl,
        hmm_config=hc,
    )
    return spec, hmm_model


def _ppo(spec, data, stop: int, scale: float, ppo: PPOConfig, seed: int, ent_coef: float):
    """An SB3 PPO on TradingEnv over decision bars ``[window - 1, stop)`` of ``data``."""
    from stable_baselines3 import PPO

    from oracle_training.env import TradingEnv

    decisions = stop - (spec.window - 1)
    env = TradingEnv(
        spec,
        data,
        start=spec.window - 1,
        stop=stop,
        episode_len=min(ppo.episode_len, max(decisions - 1, 2)),
        reward_scale=scale,
        seed=seed,
    )
    return PPO(
        "MlpPolicy",
        env,
        n_steps=ppo.n_steps,
        batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs,
        learning_rate=ppo.learning_rate,
        gamma=ppo.gamma,
        ent_coef=ent_coef,
        policy_kwargs=ppo.policy_kwargs(),
        seed=seed,
        device="cpu",
        verbose=0,
    )


def _members(name: str, hmm_model, model, onnx_bytes: bytes, spec: TwinSpec) -> dict:
    ppo_buf = io.BytesIO()
    model.save(ppo_buf)
    members = member_names(name)
    return {
        members["hmm_pkl"]: pickle.dumps(hmm_model),
        members["ppo"]: ppo_buf.getvalue(),
        members["onnx"]: onnx_bytes,
        members["hmm_json"]: json.dumps(spec.hmm.to_dict()).encode(),
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
    ppo: PPOConfig | None = None,
    capital: float = 10_000.0,
) -> Path:
    """One of the 20 bundled sample models (``train NAME``): trained on every bar before its
    golden stream, attempts until the golden stream's coverage is reached. ``ppo`` changes the
    hyperparameters (e.g. a wider ``net_arch``; the bundled models use the defaults). The bars
    after the training part (the golden stream's decisions, never trained on) are the test
    split: its figures (:func:`test_split`, for ``capital``) go into the metadata."""
    import torch

    from oracle_training.policy import export_onnx, verify_onnx
    from oracle_training.stream import coverage, run_stream

    torch.set_num_threads(1)
    ppo = ppo or PPOConfig(ent_coef=ent_coef)
    t0 = time.time()
    md = BY_NAME[name]
    path = Path(data_dir) / f"{name}.csv"
    bars = load_series(name, data_dir)
    train_range, golden_range = split(len(bars))
    train = bars.slice(*train_range)
    spec, hmm_model = _fit_spec(
        md.symbol,
        md.timeframe,
        md.training_config,
        train,
        RLConfig(),
        HMMConfig(),
        WINDOW,
        md.covariance_type,
        md.seed + seed_offset,
    )
    data = precompute(bars, spec)
    golden_data = precompute(bars.slice(*golden_range), spec)
    scale = reward_scale(train, spec)
    t_hmm = time.time() - t0

    attempt = 0
    cov = None
    model = None
    seed = None
    while attempt < max_attempts:
        seed = md.seed * 10 + attempt + seed_offset
        model = _ppo(
            spec, data, train_range[1], scale, ppo, seed, ppo.ent_coef * (1 + 2 * (attempt % 3))
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
    check_obs = observations_for_check(spec, data, train_range, CHECK_OBSERVATIONS, md.seed)
    check = verify_onnx(model, onnx_bytes, check_obs, where=name)
    blobs = _members(name, hmm_model, model, onnx_bytes, spec)
    data_test, test = test_split(spec, bars, train_range[1], len(bars), model, capital)
    extra = {
        "timesteps": timesteps,
        "attempts": min(attempt + 1, max_attempts),
        "seed": seed,
        "ent_coef": ppo.ent_coef * (1 + 2 * (min(attempt, max_attempts - 1) % 3)),
        "ppo": ppo.as_dict(),
        "reward": "change of equity (realised + unrealised money) / reward_scale",
        "reward_scale": scale,
        "episode_len": ppo.episode_len,
        "export_check": check,
        "golden_coverage": {k: cov[k] for k in ("transitions", "actions", "regimes")},
        "versions": library_versions(),
        "seconds": round(time.time() - t0, 1),
        "capital": capital,
        "test": test,
    }
    data_meta = {
        "source": "real: backtesting 0.6.6 test/EURUSD.csv"
        if md.real
        else f"synthetic: oracle_training.data.generate seed {md.seed}"
        + (f", aggregated from {md.derived_from}" if md.derived_from else ""),
        "file": f"data/{md.name}.csv",
        "sha256": sha256_bytes(path.read_bytes()),
        "train": _range(bars, train_range),
        "golden": _range(bars, golden_range),
        "split": SPLIT_NOTE,
        "test": data_test,
    }
    meta = make_metadata(md.symbol, md.timeframe, spec, data_meta, extra, ppo)
    out = Path(models_dir) / f"{name}.zip"
    write_model_zip(out, meta, blobs)
    if verbose:
        print(
            f"{name}: wrote {out} (hmm {t_hmm:.1f}s, ppo {t_ppo:.1f}s, "
            f"total {time.time() - t0:.1f}s, check {check})",
            flush=True,
        )
    return out


def _evaluate(spec, bars: Bars, lo: int, hi: int, model, capital: float) -> dict:
    """Backtest figures (docs/backtest.md) of the twin deciding on bars ``[lo, hi)``, its
    features warmed up on the ``window - 1`` bars before ``lo``."""
    from oracle_training.backtest import Backtest, bars_per_year, ledger_of_stream
    from oracle_training.stream import coverage, run_stream

    seg = bars.slice(lo - (spec.window - 1), hi)
    steps = run_stream(spec, precompute(seg, spec), model)
    ledger = ledger_of_stream(steps, seg, spec.costs)
    per_year = bars_per_year(spec.timeframe)
    stats = ledger.statistics(capital, per_year)
    out = Backtest(spec.name, len(seg), ledger, stats).to_json()
    out.pop("model", None)
    out["coverage"] = {
        k: v for k, v in coverage(steps, spec.n_states).items() if k in ("actions", "transitions")
    }
    return out


def test_split(spec, bars: Bars, lo: int, hi: int, model, capital: float) -> tuple[dict, dict]:
    """``(data.test, training.test)`` of the test split, decisions on bars ``[lo, hi)`` the model
    was never trained on: the range and its backtest figures (:func:`_evaluate`). The one
    function ``train``, ``train --bars`` and ``annotate-test`` record the split with."""
    return _range(bars, (lo, hi)), _evaluate(spec, bars, lo, hi, model, capital)


def train_on_bars(
    bars_path: Path,
    cfg: TrainConfig,
    models_dir: Path = MODELS_DIR,
    capital: float = 10_000.0,
    verbose: bool = True,
) -> Path:
    """Train ``cfg.name`` on a bar file (contract section 1): the split by time is fixed first
    (:func:`split_by_time`); the normalisers, the HMM and PPO see the train part only; with
    several attempts the validation part picks the one kept (highest validation net profit);
    the test part is run once, by the kept model, and its figures go into the metadata."""
    import torch

    from oracle_training.policy import export_onnx, verify_onnx

    torch.set_num_threads(1)
    check_config(cfg)
    t0 = time.time()
    raw = Path(bars_path).read_bytes()
    bars = read_bars(bars_path)
    if len(bars) == 0:
        raise TrainError(f"{bars_path}: no bars")
    a, b = split_by_time(bars, cfg)
    n = len(bars)
    train = bars.slice(0, a)
    spec, hmm_model = _fit_spec(
        cfg.symbol,
        cfg.timeframe,
        dict(cfg.training_config, lot_sizes=list(cfg.training_config["lot_sizes"])),
        train,
        cfg.rl_config,
        cfg.hmm_config,
        cfg.window,
        cfg.covariance_type,
        cfg.seed,
    )
    # the environment sees the train bars only (not even the next bar's close)
    train_data = precompute(train, spec)
    scale = reward_scale(train, spec)

    best = None
    attempts = []
    for attempt in range(cfg.max_attempts):
        seed = cfg.seed + attempt
        model = _ppo(spec, train_data, a, scale, cfg.ppo, seed, cfg.ppo.ent_coef)
        model.learn(total_timesteps=cfg.timesteps)
        val = _evaluate(spec, bars, a, b, model, capital)
        attempts.append({"seed": seed, "validation_net_profit": val["net_profit"]})
        if verbose:
            print(f"{cfg.name}: attempt {attempt} validation {val['net_profit']:.2f}", flush=True)
        if best is None or val["net_profit"] > best[2]["net_profit"]:
            best = (model, seed, val)
    model, seed, val = best
    data_test, test = test_split(spec, bars, b, n, model, capital)

    onnx_bytes = export_onnx(model, spec.obs_dim)
    check_obs = observations_for_check(spec, train_data, None, CHECK_OBSERVATIONS, cfg.seed)
    check = verify_onnx(model, onnx_bytes, check_obs, where=cfg.name)
    blobs = _members(cfg.name, hmm_model, model, onnx_bytes, spec)
    extra = {
        "timesteps": cfg.timesteps,
        "attempts": attempts,
        "seed": seed,
        "hmm_seed": cfg.seed,
        "covariance_type": cfg.covariance_type,
        "ppo": cfg.ppo.as_dict(),
        "reward": "change of equity (realised + unrealised money) / reward_scale",
        "reward_scale": scale,
        "episode_len": cfg.ppo.episode_len,
        "export_check": check,
        "capital": capital,
        "validation": val,
        "test": test,
        "versions": library_versions(),
        "seconds": round(time.time() - t0, 1),
    }
    data_meta = {
        "source": "bar file",
        "file": Path(bars_path).name,
        "sha256": sha256_bytes(raw),
        "bars": n,
        "split": "by time, fixed before training: normalisers, HMM and PPO fitted on train "
        "only; validation picks among attempts; test run once by the kept model",
        "train": _range(bars, (0, a)),
        "validation": _range(bars, (a, b)),
        "test": data_test,
    }
    meta = make_metadata(
        cfg.symbol,
        cfg.timeframe,
        spec,
        data_meta,
        extra,
        cfg.ppo,
        notice="trained by python -m oracle_training train --bars; not trading advice",
    )
    out = Path(models_dir) / f"{cfg.name}.zip"
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    write_model_zip(out, meta, blobs)
    if verbose:
        print(
            f"{cfg.name}: wrote {out} ({time.time() - t0:.1f}s; split {a}/{b - a}/{n - b} bars; "
            f"test net profit {test['net_profit']:.2f}, {test['trades']} trades)",
            flush=True,
        )
    return out


# ---------------------------------------------------------------------------------------------
# the command line: `train --bars FILE --symbol S --timeframe TF [options | --config JSON]`

# (option, section, field, type) for every value an option can set; the option wins over
# --config, which wins over the defaults
_OPTIONS = [
    *(
        (f"--{f.replace('_', '-')}", "training_config", f, t)
        for f, t in (
            ("point", float),
            ("pip_value", float),
            ("spread_points", float),
            ("slippage_points", float),
            ("commission_per_lot", float),
            ("digits", int),
        )
    ),
    *(
        (f"--{f.replace('_', '-')}", "rl_config", f, int)
        for f in ("roc_period", "atr_period", "ema_period", "range_period", "volume_ma_period")
    ),
    ("--n-states", "hmm_config", "n_states", int),
    ("--momentum-period", "hmm_config", "momentum_period", int),
    ("--consistency-period", "hmm_config", "consistency_period", int),
    ("--hmm-range-period", "hmm_config", "range_period", int),
    *(
        (f"--{f.replace('_', '-')}", "ppo", f, t)
        for f, t in (
            ("n_steps", int),
            ("batch_size", int),
            ("n_epochs", int),
            ("learning_rate", float),
            ("gamma", float),
            ("ent_coef", float),
            ("episode_len", int),
        )
    ),
    ("--validation", "split", "validation", float),
    ("--test", "split", "test", float),
    ("--validation-from", "split", "validation_from", str),
    ("--test-from", "split", "test_from", str),
]


def add_bars_arguments(s) -> None:
    """The ``train --bars`` options (defaults None: unset options leave --config's values)."""
    g = s.add_argument_group(
        "training on a bar file (--bars)",
        "Costs, periods, PPO hyperparameters and the split, from these options or --config "
        "(a JSON object with symbol, timeframe, training_config, rl_config, hmm_config, "
        "covariance_type, ppo, split, timesteps, seed, max_attempts, window); an option wins "
        "over --config. Costs are required; everything else has the bundled models' default.",
    )
    g.add_argument("--bars", help="the bar CSV to train on (contract section 1)")
    g.add_argument("--symbol", help="the broker's symbol name (the zip is SYMBOL_TF.zip)")
    g.add_argument("--timeframe", help="the bars' timeframe (M1 .. W1)")
    g.add_argument("--config", help="a JSON file with the training configuration")
    g.add_argument("--out-dir", help="write the zip here (default: --models-dir)")
    for opt, section, name, typ in _OPTIONS:
        g.add_argument(opt, type=typ, default=None, help=f"{section}.{name}")
    g.add_argument("--lot-sizes", help="training_config.lot_sizes: 0,WEAK,MEDIUM,STRONG lots")
    g.add_argument("--covariance-type", choices=["diag", "full"], help="the HMM's covariances")
    g.add_argument("--window", type=int, default=None, help="bars per twin window (350)")
    g.add_argument(
        "--net-arch",
        help="the policy's hidden layers: 256,256 (actor and critic) or pi=256,256/vf=64,64",
    )
    g.add_argument("--activation", choices=list(ACTIVATION_FNS), help="hidden activation")
    g.add_argument("--seed", type=int, default=None, help="seed of the HMM fit and PPO (1)")
    g.add_argument(
        "--attempts", type=int, default=None, help="PPO runs; validation keeps the best (1)"
    )
    g.add_argument(
        "--capital", type=float, default=10_000.0, help="capital of the validation/test figures"
    )


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise TrainError(f"{what} {text!r} must be whole numbers separated by commas") from None


def parse_net_arch(text: str) -> list | dict:
    """``256,256`` or ``pi=256,256/vf=64,64``."""
    if "=" not in text:
        return _ints(text, "--net-arch")
    parts = {}
    for part in text.split("/"):
        key, _, value = part.partition("=")
        if key not in ("pi", "vf"):
            raise TrainError(f"--net-arch {text!r}: parts are pi=... and vf=...")
        parts[key] = _ints(value, f"--net-arch {key}")
    if set(parts) != {"pi", "vf"}:
        raise TrainError(f"--net-arch {text!r}: give both pi=... and vf=...")
    return parts


def config_from_args(args) -> TrainConfig:
    """Defaults < ``--config`` < options; checked (one line naming the bad value)."""
    d: dict = {}
    if args.config:
        try:
            d = json.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise TrainError(f"--config {args.config}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TrainError(f"--config {args.config}: not JSON ({e})") from None
        if not isinstance(d, dict):
            raise TrainError(f"--config {args.config}: not a JSON object")
    for key in ("training_config", "rl_config", "hmm_config", "ppo", "split"):
        if key in d and not isinstance(d[key], dict):
            raise TrainError(f"--config {args.config}: {key} must be a JSON object")
        d[key] = dict(d.get(key) or {})
    for opt, section, name, _ in _OPTIONS:
        v = getattr(args, opt[2:].replace("-", "_"))
        if v is not None:
            d[section][name] = v
    if args.lot_sizes is not None:
        try:
            d["training_config"]["lot_sizes"] = [float(v) for v in args.lot_sizes.split(",")]
        except ValueError:
            raise TrainError(f"--lot-sizes {args.lot_sizes!r} must be numbers") from None
    if args.net_arch is not None:
        d["ppo"]["net_arch"] = parse_net_arch(args.net_arch)
    if args.activation is not None:
        d["ppo"]["activation"] = args.activation
    for key, v in (
        ("symbol", args.symbol),
        ("timeframe", args.timeframe),
        ("covariance_type", args.covariance_type),
        ("window", args.window),
        ("seed", args.seed),
        ("max_attempts", args.attempts),
        ("timesteps", args.timesteps),
    ):
        if v is not None:
            d[key] = v
    if not d["training_config"]:
        d["training_config"] = None
    return config_from_dict(d, where="train --bars")


def ppo_with(net_arch: str | None, activation: str | None) -> PPOConfig | None:
    """The bundled models' PPO with ``--net-arch`` / ``--activation`` (None when neither)."""
    if net_arch is None and activation is None:
        return None
    ppo = PPOConfig()
    if net_arch is not None:
        ppo.net_arch = parse_net_arch(net_arch)
    if activation is not None:
        ppo.activation = activation
    from oracle_training.policy import net_arch_problem

    problem = net_arch_problem(5 + HMMConfig().n_states + 3, ppo.pi)
    if problem or ppo.activation not in ACTIVATION_FNS:
        raise TrainError(f"--net-arch/--activation: {problem or ppo.activation}")
    return ppo
