"""``python -m oracle_training pack``: a policy and an HMM trained elsewhere (a notebook) into the
atomic runtime zip.

Inputs: an SB3 PPO save (``model.save(...)``), an hmmlearn ``GaussianHMM`` pickle, the symbol,
timeframe, costs (``training_config``) and periods (``rl_config``, ``hmm_config``), named as
``train --bars`` names them (options or its ``--config`` JSON) — or a seed-format zip holding
all of them (``--from``) — and the training bar file, on which the normalisation is fitted
(unless given, or kept from a runtime zip) and the ONNX export is checked. Before anything is
written, the policy (observation size, network, action space) and the HMM (states, covariance
type, features) are checked against the contract; a misfit is one line: the reason and the fix.
The zip holds the seed's two members unchanged, the runtime members (``SYM_TF_policy.onnx``,
``SYM_TF_hmm.json``) and the metadata of contract section 9, with the declared features.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from oracle_training.bars import Bars, format_time
from oracle_training.features import (
    HMM_FEATURES,
    HMMConfig,
    RLConfig,
    declaration,
    fit_normalisation,
    observation_layout,
)
from oracle_training.modelzip import (
    FORMAT_VERSION,
    SEED_FIELDS,
    TIMEFRAMES,
    member_names,
    write_model_zip,
)
from oracle_training.twin import N_ACTIONS, actions_metadata

# The Rust core's number of regimes (core/src/lib.rs MAX_STATES); the network's limits are
# oracle_training.policy's (net_arch_problem), shared with train and the ONNX check.
MAX_STATES = 8
COST_FIELDS = (
    "point",
    "pip_value",
    "spread_points",
    "slippage_points",
    "commission_per_lot",
    "digits",
    "lot_sizes",
)
CHECK_OBSERVATIONS = 2500


class PackError(ValueError):
    """Inputs that do not fit the contract: one line, the reason and the fix."""


@dataclass
class PolicyShape:
    obs_dim: int
    n_actions: int
    net_arch: list
    activation: str


@dataclass
class HMMShape:
    n_states: int
    covariance_type: str
    n_features: int


# ---------------------------------------------------------------------------------------------
# checks against the contract


def load_ppo(data: bytes, where: str):
    """The SB3 PPO model of a ``model.save(...)`` zip, or a PackError."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    try:
        return PPO.load(io.BytesIO(data), device="cpu")
    except Exception as e:  # noqa: BLE001 - any failure of SB3's loader is the same refusal
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PackError(
            f"{where}: not a stable-baselines3 PPO save ({reason}); save the trained model "
            "with model.save('SYM_TF_ppo.zip')"
        ) from e


def policy_shape(model, where: str) -> PolicyShape:
    """The policy's observation size, hidden layers, activation and action count, refused when
    the twin cannot run it (contract sections 5-6)."""
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import FlattenExtractor

    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy):
        raise PackError(
            f"{where}: the policy is {type(policy).__name__}, not an actor-critic MLP; train "
            'with PPO("MlpPolicy", env)'
        )
    obs_space, act_space = model.observation_space, model.action_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise PackError(
            f"{where}: the observation space is {obs_space}, not a flat Box; the twin's "
            "observation is one float32 vector (oracle_training.features.observe)"
        )
    if not isinstance(act_space, spaces.Discrete) or int(act_space.n) != N_ACTIONS:
        raise PackError(
            f"{where}: the action space is {act_space}, the contract's is Discrete({N_ACTIONS}) "
            "(WAIT, LONG_WEAK..SHORT_STRONG); train with gymnasium.spaces.Discrete(7)"
        )
    if not isinstance(policy.pi_features_extractor, FlattenExtractor):
        raise PackError(
            f"{where}: the features extractor is {type(policy.pi_features_extractor).__name__}; "
            "the twin runs FlattenExtractor + MLP only (MlpPolicy's default)"
        )
    from oracle_training.policy import ExportError, actor_shape, net_arch_problem

    try:
        widths, act = actor_shape(model)
    except ExportError as e:
        raise PackError(
            f"{where}: {e} (policy_kwargs activation_fn=torch.nn.Tanh or torch.nn.ReLU)"
        ) from e
    problem = net_arch_problem(int(obs_space.shape[0]), widths)
    if problem:
        raise PackError(
            f"{where}: the policy network: {problem}; retrain with a smaller net_arch, e.g. "
            "dict(pi=[64, 64], vf=[64, 64])"
        )
    return PolicyShape(int(obs_space.shape[0]), int(act_space.n), widths, act)


def load_hmm(data: bytes, where: str):
    try:
        return pickle.loads(data)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the same refusal
        raise PackError(
            f"{where}: not a pickle of an hmmlearn model ({type(e).__name__}: {e}); save it "
            "with pickle.dump(hmm, open('SYM_TF_hmm.pkl', 'wb'))"
        ) from e


def hmm_shape(hmm, where: str) -> HMMShape:
    """The HMM's states, covariance type and features, refused when the twin cannot run it
    (contract section 4)."""
    from hmmlearn.hmm import GaussianHMM

    if not isinstance(hmm, GaussianHMM):
        raise PackError(
            f"{where}: the pickle holds a {type(hmm).__module__}.{type(hmm).__name__}, not an "
            "hmmlearn GaussianHMM; the twin's regime is a GaussianHMM's forward filter"
        )
    if not hasattr(hmm, "means_"):
        raise PackError(f"{where}: the GaussianHMM is not fitted; call hmm.fit(x) before pickling")
    cov = hmm.covariance_type
    if cov not in ("diag", "full"):
        raise PackError(
            f"{where}: covariance_type {cov!r} is not in the contract (diag, full); refit with "
            "GaussianHMM(covariance_type='diag') or 'full'"
        )
    k, d = (int(x) for x in np.shape(hmm.means_))
    if not 1 <= k <= MAX_STATES:
        raise PackError(
            f"{where}: the HMM has {k} states; the twin runs 1..{MAX_STATES}; refit with "
            "n_components in that range"
        )
    if d != len(HMM_FEATURES):
        raise PackError(
            f"{where}: the HMM was fitted on {d} features; the contract's HMM input is "
            f"{len(HMM_FEATURES)} ({', '.join(HMM_FEATURES)}): fit it on "
            "oracle_training.features.hmm_inputs(bars, norm)"
        )
    return HMMShape(k, cov, d)


def check_fit(policy: PolicyShape, hmm: HMMShape, hc_states: int | None, where: str) -> None:
    """The policy observes what the twin builds for this HMM: 5 market + K regimes + 3."""
    if hc_states is not None and hc_states != hmm.n_states:
        raise PackError(
            f"{where}: hmm_config.n_states is {hc_states} but the HMM has {hmm.n_states} "
            f"states; set n_states to {hmm.n_states} (or pack the HMM the policy was trained with)"
        )
    want = 5 + hmm.n_states + 3
    if policy.obs_dim != want:
        raise PackError(
            f"{where}: the policy observes {policy.obs_dim} values; the contract's observation "
            f"for a {hmm.n_states}-state HMM is 5 + {hmm.n_states} + 3 = {want} "
            "(oracle_training.features.observe); retrain the policy on that observation or pack "
            "the HMM it was trained with"
        )


def check_costs(tc: dict, where: str) -> dict:
    """``training_config``: every field, with the types and signs the loader accepts."""
    if not isinstance(tc, dict):
        raise PackError(f"{where}: the costs must be a JSON object of {', '.join(COST_FIELDS)}")
    missing = [f for f in COST_FIELDS if f not in tc]
    if missing:
        raise PackError(
            f"{where}: the costs lack {', '.join(missing)}; give all of them: --point "
            "--pip-value --spread-points --slippage-points --commission-per-lot --digits "
            "--lot-sizes, or training_config in --config"
        )
    unknown = sorted(set(tc) - set(COST_FIELDS))
    if unknown:
        raise PackError(
            f"{where}: training_config.{unknown[0]} is not a cost field ({', '.join(COST_FIELDS)})"
        )
    out = {}
    for f in COST_FIELDS[:5]:
        v = tc[f]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise PackError(f"{where}: cost '{f}' must be a number, got {v!r}")
        if (v <= 0) if f in ("point", "pip_value") else (v < 0):
            sign = "positive" if f in ("point", "pip_value") else "0 or more"
            raise PackError(f"{where}: cost '{f}' is {v}; it must be {sign}")
        out[f] = v
    digits = tc["digits"]
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 12:
        raise PackError(f"{where}: cost 'digits' must be an integer in 0..12, got {digits!r}")
    out["digits"] = digits
    lots = tc["lot_sizes"]
    if (
        not isinstance(lots, list)
        or len(lots) != 4
        or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 for x in lots)
    ):
        raise PackError(
            f"{where}: cost 'lot_sizes' must be 4 non-negative lot sizes (none, WEAK, MODERATE, "
            f"STRONG), e.g. [0, 0.01, 0.03, 0.05]; got {lots!r}"
        )
    out["lot_sizes"] = lots
    return out


def configs(periods: dict, where: str) -> tuple[RLConfig, HMMConfig, int | None]:
    """``rl_config`` and ``hmm_config`` from ``{"rl_config": {...}, "hmm_config": {...}}``
    (missing periods take the v1 defaults); also the ``n_states`` given, if any."""
    unknown = set(periods) - {"rl_config", "hmm_config"}
    if unknown:
        raise PackError(
            f"{where}: unknown periods section {', '.join(sorted(unknown))}; the sections are "
            "rl_config and hmm_config (as in the seed's metadata)"
        )
    rl_d = dict(periods.get("rl_config") or {})
    hc_d = dict(periods.get("hmm_config") or {})
    n_states = hc_d.pop("n_states", None)
    for section, d, cls in (("rl_config", rl_d, RLConfig), ("hmm_config", hc_d, HMMConfig)):
        known = set(cls.__dataclass_fields__) - {"n_states"}
        for k, v in d.items():
            if k not in known:
                raise PackError(
                    f"{where}: {section}.{k} is not a period of the feature set "
                    f"({', '.join(sorted(known))}); the twin implements these features only "
                    "(docs/contract.md §3-4)"
                )
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PackError(f"{where}: {section}.{k} must be a positive integer, got {v!r}")
    if n_states is not None and (isinstance(n_states, bool) or not isinstance(n_states, int)):
        raise PackError(f"{where}: hmm_config.n_states must be an integer, got {n_states!r}")
    return RLConfig(**rl_d), HMMConfig(**hc_d), n_states


# ---------------------------------------------------------------------------------------------
# packing


def check_observations(spec, data, n: int, seed: int) -> np.ndarray:
    """``n`` observations for the export check: decision bars (drawn with replacement when there
    are fewer) with random, consistent position features."""
    from oracle_training.spec import build_obs
    from oracle_training.twin import TwinState

    rng = np.random.default_rng(seed)
    idx = np.arange(spec.window - 1, len(data.bars))
    pick = rng.choice(idx, n, replace=len(idx) < n)
    out = []
    for t in np.sort(pick):
        st = TwinState()
        d = int(rng.integers(-1, 2))
        c = float(data.bars.close[t])
        if d != 0:
            st.position_direction = d
            st.position_intensity = int(rng.integers(1, 4))
            st.entry_price = c * (1.0 + rng.normal(0.0, 0.01))
        z = data.z[t]
        out.append(build_obs(z, int(data.regime[t]), spec.n_states, st, spec.costs, c, spec.clip))
    return np.stack(out)


def pack(
    *,
    ppo: bytes,
    hmm_pkl: bytes,
    symbol: str,
    timeframe: str,
    costs: dict,
    periods: dict,
    bars: Bars,
    bars_label: str,
    out: Path,
    norm: dict | None = None,
    train_to: int | None = None,
    window: int = 350,
    clip: float = 10.0,
    clean: str | None = None,
    generated_at: str | None = None,
    source: str = "",
    actions: dict | None = None,
    norm_source: str | None = None,
    data_train: dict | None = None,
) -> dict:
    """Checks the inputs against the contract, exports and checks the ONNX policy, and writes the
    zip atomically to ``out`` (a file named ``SYM_TF.zip``). Returns the metadata written."""
    from oracle_training.hmm import PortableHMM
    from oracle_training.policy import export_onnx, verify_onnx
    from oracle_training.spec import TwinSpec, precompute

    name = f"{symbol}_{timeframe}"
    members = member_names(name)
    if not symbol or "/" in symbol or "\\" in symbol:
        raise PackError(f"symbol {symbol!r} cannot name a model (no '/', '\\', not empty)")
    if timeframe not in TIMEFRAMES:
        raise PackError(
            f"timeframe {timeframe!r} is not one the system streams ({', '.join(TIMEFRAMES)})"
        )
    if out.name != f"{name}.zip":
        raise PackError(
            f"{out}: the runtime zip must be named {name}.zip (symbol_timeframe); pass --out a "
            "folder or that file name"
        )
    if actions is not None and actions != actions_metadata():
        raise PackError(
            "metadata field 'actions' differs from the contract's 7 actions (WAIT, LONG_WEAK, "
            "LONG_MODERATE, LONG_STRONG, SHORT_WEAK, SHORT_MODERATE, SHORT_STRONG with their "
            "direction and intensity, seed section 2); the policy's action indices must mean those"
        )
    tc = check_costs(costs, "costs")
    rl, hc, hc_states = configs(periods, "periods")
    need = max(rl.min_window(), hc.lookback + 1)
    if window < need:
        raise PackError(
            f"window {window} is shorter than the periods need ({need}); pass a longer --window "
            "or shorter periods"
        )

    model = load_ppo(ppo, members["ppo"])
    pshape = policy_shape(model, members["ppo"])
    hmm = load_hmm(hmm_pkl, members["hmm_pkl"])
    hshape = hmm_shape(hmm, members["hmm_pkl"])
    check_fit(pshape, hshape, hc_states, f"{members['ppo']} + {members['hmm_pkl']}")
    hc = HMMConfig(hshape.n_states, hc.momentum_period, hc.consistency_period, hc.range_period)

    if len(bars) < window:
        raise PackError(
            f"{bars_label}: {len(bars)} bars; the check needs at least the window ({window}) "
            "of the bars the model was trained on"
        )
    train = (
        bars
        if train_to is None
        else bars.slice(0, int(np.searchsorted(bars.time, train_to, "right")))
    )
    if norm is None:
        if len(train) < window:
            raise PackError(
                f"{bars_label}: {len(train)} bars up to --train-to; the normalisation needs at "
                f"least the window ({window})"
            )
        norm = fit_normalisation(train, window, rl, hc)
        norm_source = "fitted by pack on data.train"
        data_train = {
            "from": format_time(int(train.time[0])),
            "to": format_time(int(train.time[-1])),
            "bars": len(train),
        }
    else:
        norm_source = norm_source or "given to pack (--norm)"
    norm = check_norm(norm)
    portable = PortableHMM.from_hmmlearn(hmm)
    spec = TwinSpec(
        symbol=symbol,
        timeframe=timeframe,
        training_config=tc,
        hmm=portable,
        hmm_norm_mean=norm["hmm_norm"]["mean"],
        hmm_norm_std=norm["hmm_norm"]["std"],
        rl_norm_mean=norm["rl_norm"]["mean"],
        rl_norm_std=norm["rl_norm"]["std"],
        window=window,
        clip=clip,
        rl_config=rl,
        hmm_config=hc,
    )
    data = precompute(bars, spec)
    obs = check_observations(spec, data, CHECK_OBSERVATIONS, 7)
    onnx_bytes = export_onnx(model, spec.obs_dim)
    check = verify_onnx(model, onnx_bytes, obs, where=name)

    meta = {
        "format_version": FORMAT_VERSION,
        "generated_at": generated_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "symbol": {"name": symbol, "clean": clean or symbol, "timeframe": timeframe},
        "training_config": tc,
        "hmm_config": hc.as_dict(),
        "rl_config": rl.as_dict(),
        "actions": actions_metadata(),
        "window": window,
        "observation": {
            "dim": spec.obs_dim,
            "layout": observation_layout(spec.n_states),
            "rl_norm": norm["rl_norm"],
            "clip": clip,
            "regime_encoding": "one-hot",
        },
        "hmm": {
            "covariance_type": hshape.covariance_type,
            "n_states": hshape.n_states,
            "n_features": hshape.n_features,
            "feature_norm": norm["hmm_norm"],
            "features": list(HMM_FEATURES),
            "inference": "scaled forward filter restarted at the window's first valid bar",
        },
        "policy": {
            "obs_dim": pshape.obs_dim,
            "n_actions": pshape.n_actions,
            "net_arch": pshape.net_arch,
            "activation": pshape.activation,
            "algorithm": "PPO (stable-baselines3 MlpPolicy)",
            "action_rule": "first argmax of softmax(logits)",
        },
        "features": declaration(rl, hc),
        "data": {
            "source": source or "packed by python -m oracle_training pack",
            "file": bars_label,
            **({"train": data_train} if data_train else {}),
            "normalisation": norm_source,
        },
        "training": {"packed": True, "export_check": check},
    }
    blobs = {
        members["hmm_pkl"]: hmm_pkl,
        members["ppo"]: ppo,
        members["onnx"]: onnx_bytes,
        members["hmm_json"]: json.dumps(portable.to_dict()).encode(),
    }
    return write_model_zip(out, meta, blobs)


def check_norm(norm: dict) -> dict:
    """``{"rl_norm": {"mean": [5], "std": [5]}, "hmm_norm": {"mean": [3], "std": [3]}}``, finite,
    std positive (what ``oracle_training.features.fit_normalisation`` returns)."""
    out = {}
    for key, n in (("rl_norm", 5), ("hmm_norm", len(HMM_FEATURES))):
        part = norm.get(key) if isinstance(norm, dict) else None
        if not isinstance(part, dict):
            raise PackError(
                f"--norm: '{key}' is missing (oracle_training.features.fit_normalisation)"
            )
        got = {}
        for stat in ("mean", "std"):
            v = part.get(stat)
            ok = isinstance(v, list) and len(v) == n
            ok = ok and all(not isinstance(x, bool) and isinstance(x, (int, float)) for x in v)
            ok = ok and all(np.isfinite(x) for x in v) and (stat == "mean" or all(x > 0 for x in v))
            if not ok:
                raise PackError(
                    f"--norm: '{key}.{stat}' must be {n} finite numbers"
                    + (" above 0" if stat == "std" else "")
                    + f", got {v!r}"
                )
            got[stat] = [float(x) for x in v]
        out[key] = got
    return out


def read_seed_zip(path: Path) -> tuple[dict, bytes, bytes]:
    """The seed fields of a seed-format (or runtime) zip's metadata and its two seed members."""
    where = path.name
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise PackError(f"{where}: not a readable zip ({e})") from e
    with zf:
        try:
            meta = json.loads(zf.comment.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PackError(
                f"{where}: the zip comment is not the seed's metadata JSON ({e}); pack from the "
                "two files instead: --ppo SYM_TF_ppo.zip --hmm SYM_TF_hmm.pkl --symbol --timeframe"
            ) from e
        if not isinstance(meta, dict):
            raise PackError(f"{where}: the zip comment is not a JSON object")
        for key in ("symbol", "training_config"):
            if not isinstance(meta.get(key), dict):
                raise PackError(f"{where}: metadata field '{key}' is missing (seed section 3)")
        sym = meta["symbol"]
        for key in ("name", "timeframe"):
            if not isinstance(sym.get(key), str):
                raise PackError(
                    f"{where}: metadata field 'symbol.{key}' is missing (seed section 3)"
                )
        names = member_names(f"{sym['name']}_{sym['timeframe']}")
        blobs = []
        for key in ("ppo", "hmm_pkl"):
            try:
                blobs.append(zf.read(names[key]))
            except KeyError as e:
                raise PackError(
                    f"{where}: member '{names[key]}' is missing (the seed's zip holds "
                    f"{names['hmm_pkl']} and {names['ppo']})"
                ) from e
    seed = {k: meta[k] for k in SEED_FIELDS if k in meta}
    # A runtime zip's own normalisation, window and training range: re-packing keeps them.
    obs, hmm_meta, data = (
        meta.get(k) if isinstance(meta.get(k), dict) else {} for k in ("observation", "hmm", "data")
    )
    kept = {}
    if isinstance(obs.get("rl_norm"), dict) and isinstance(hmm_meta.get("feature_norm"), dict):
        kept["norm"] = {"rl_norm": obs["rl_norm"], "hmm_norm": hmm_meta["feature_norm"]}
        kept["train"] = data.get("train") if isinstance(data.get("train"), dict) else None
        if isinstance(meta.get("window"), int):
            kept["window"] = meta["window"]
    return seed, blobs[0], blobs[1], kept


# ---------------------------------------------------------------------------------------------
# the command line


# The cost and period options, named as `train --bars` names them (oracle_training.train).
def _options():
    from oracle_training.train import _OPTIONS

    return [o for o in _OPTIONS if o[1] in ("training_config", "rl_config", "hmm_config")]


def add_arguments(s) -> None:
    """The options of ``python -m oracle_training pack``."""
    s.add_argument(
        "--from",
        dest="from_zip",
        default=None,
        help="a seed-format zip (SYM_TF_ppo.zip + SYM_TF_hmm.pkl, the seed's metadata in the "
        "zip comment) or a runtime zip to re-pack; its metadata gives symbol, timeframe, costs "
        "and periods (--config and the options below win over it)",
    )
    s.add_argument("--ppo", default=None, help="the SB3 PPO save (model.save)")
    s.add_argument("--hmm", default=None, help="the hmmlearn GaussianHMM pickle")
    s.add_argument("--symbol", default=None, help="the broker's symbol name, e.g. EURUSD")
    s.add_argument("--clean", default=None, help="the plain symbol name (None = --symbol)")
    s.add_argument("--timeframe", default=None, help=f"one of {', '.join(TIMEFRAMES)}")
    s.add_argument(
        "--config",
        default=None,
        help="train --bars's JSON file: symbol, timeframe, training_config, rl_config, "
        "hmm_config and window are read (the training-only keys are ignored)",
    )
    s.add_argument(
        "--bars",
        required=True,
        help="the bar CSV the model was trained on: the normalisation is fitted on it (up to "
        "--train-to) and the ONNX export is checked on it",
    )
    s.add_argument(
        "--train-to",
        default=None,
        help="last bar time (YYYY-MM-DDTHH:MM:SSZ) of the training split (None = the whole file)",
    )
    s.add_argument(
        "--norm",
        default=None,
        help="the normalisation the policy was trained with: a JSON file as "
        "oracle_training.features.fit_normalisation returns (None = a --from runtime zip's own "
        "unless --train-to is given, else fitted on --bars up to --train-to)",
    )
    s.add_argument("--window", type=int, default=None, help="bars per decision window (350)")
    s.add_argument(
        "--out",
        default=None,
        help="a folder or SYM_TF.zip (None = the --from zip itself, else --models-dir)",
    )
    g = s.add_argument_group(
        "costs and periods",
        "As train --bars names them; an option wins over --config, which wins over --from.",
    )
    for opt, section, name, typ in _options():
        g.add_argument(opt, type=typ, default=None, help=f"{section}.{name}")
    g.add_argument("--lot-sizes", help="training_config.lot_sizes: 0,WEAK,MODERATE,STRONG lots")


def _json_file(path: str | None, what: str):
    if path is None:
        return None
    try:
        obj = json.loads(Path(path).read_text())
    except OSError as e:
        raise PackError(f"{what} {path}: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PackError(f"{what} {path}: not JSON ({e})") from e
    if not isinstance(obj, dict):
        raise PackError(f"{what} {path}: must be a JSON object")
    return obj


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise PackError(f"{what} {path}: {e.strerror}") from e


def run(args) -> dict:
    """``pack`` from parsed arguments; prints one line and returns the metadata written."""
    from oracle_training.bars import parse_time, read_bars

    seed: dict = {}
    kept: dict = {}
    ppo = hmm = None
    if args.from_zip:
        seed, ppo, hmm, kept = read_seed_zip(Path(args.from_zip))
    if args.ppo:
        ppo = _read(args.ppo, "--ppo")
    if args.hmm:
        hmm = _read(args.hmm, "--hmm")
    # --from < --config < options
    cfg = _json_file(args.config, "--config") or {}
    d = {
        "training_config": dict(seed.get("training_config") or {}),
        "rl_config": dict(seed.get("rl_config") or {}),
        "hmm_config": dict(seed.get("hmm_config") or {}),
    }
    for key in d:
        part = cfg.get(key) or {}
        if not isinstance(part, dict):
            raise PackError(f"--config {args.config}: {key} must be a JSON object")
        d[key].update(part)
    for opt, section, name, _ in _options():
        v = getattr(args, opt[2:].replace("-", "_"))
        if v is not None:
            d[section][name] = v
    if args.lot_sizes is not None:
        try:
            d["training_config"]["lot_sizes"] = [float(v) for v in args.lot_sizes.split(",")]
        except ValueError:
            raise PackError(f"--lot-sizes {args.lot_sizes!r} must be numbers") from None
    sym = seed.get("symbol", {})
    symbol = args.symbol or cfg.get("symbol") or sym.get("name")
    timeframe = args.timeframe or cfg.get("timeframe") or sym.get("timeframe")
    window = args.window or cfg.get("window") or kept.get("window") or 350
    missing = [
        opt
        for opt, v in (
            ("--ppo", ppo),
            ("--hmm", hmm),
            ("--symbol", symbol),
            ("--timeframe", timeframe),
        )
        if v is None
    ]
    if missing:
        raise PackError(
            f"{', '.join(missing)} missing: give them, or --from a seed-format zip that holds them"
        )
    costs = d["training_config"]
    periods = {"rl_config": d["rl_config"], "hmm_config": d["hmm_config"]}
    norm = _json_file(args.norm, "--norm")
    norm_source = data_train = None
    if norm is None and args.train_to is None and "norm" in kept:
        # re-packing a runtime zip: its normalisation, not one refitted on the whole file
        norm, data_train = kept["norm"], kept["train"]
        norm_source = f"kept from {Path(args.from_zip).name}"
    train_to = None
    if args.train_to:
        try:
            train_to = parse_time(args.train_to)
        except ValueError as e:
            raise PackError(f"--train-to {args.train_to!r}: {e}") from e
    name = f"{symbol}_{timeframe}"
    if args.out:
        out = Path(args.out)
        if out.is_dir() or not out.suffix:
            out = out / f"{name}.zip"
    elif args.from_zip:
        out = Path(args.from_zip)
    else:
        out = Path(args.models_dir) / f"{name}.zip"
    bars = read_bars(args.bars)
    meta = pack(
        ppo=ppo,
        hmm_pkl=hmm,
        symbol=symbol,
        timeframe=timeframe,
        costs=costs,
        periods=periods,
        bars=bars,
        bars_label=Path(args.bars).name,
        out=out,
        norm=norm,
        train_to=train_to,
        window=int(window),
        clean=args.clean or sym.get("clean"),
        generated_at=seed.get("generated_at"),
        source=f"packed from {Path(args.from_zip).name}" if args.from_zip else "",
        actions=seed.get("actions"),
        norm_source=norm_source,
        data_train=data_train,
    )
    p, h = meta["policy"], meta["hmm"]
    print(
        f"packed {out}: policy {p['net_arch']} {p['activation']} on {p['obs_dim']} inputs, "
        f"HMM {h['n_states']} states {h['covariance_type']}, features "
        f"{meta['features']['set']} v{meta['features']['version']}, export check "
        f"{meta['training']['export_check']['n_obs']} observations"
    )
    return meta
