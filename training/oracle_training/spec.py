"""Everything a twin needs besides the policy, and the per-series precomputation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oracle_training.bars import Bars
from oracle_training.features import (
    HMMConfig,
    RLConfig,
    normalise_rl,
    series_hmm_features,
    series_market_features,
)
from oracle_training.hmm import PortableHMM, series_forward_filter
from oracle_training.twin import Costs, TwinState, upnl_norm

WINDOW = 350
CLIP = 10.0


@dataclass
class TwinSpec:
    symbol: str
    timeframe: str
    training_config: dict
    hmm: PortableHMM
    hmm_norm_mean: list
    hmm_norm_std: list
    rl_norm_mean: list
    rl_norm_std: list
    window: int = WINDOW
    clip: float = CLIP
    rl_config: RLConfig = field(default_factory=RLConfig)
    hmm_config: HMMConfig = field(default_factory=HMMConfig)

    @property
    def name(self) -> str:
        return f"{self.symbol}_{self.timeframe}"

    @property
    def costs(self) -> Costs:
        return Costs.from_config(self.training_config)

    @property
    def n_states(self) -> int:
        return self.hmm.n_states

    @property
    def obs_dim(self) -> int:
        return 5 + self.n_states + 3

    def obs_layout(self) -> list[str]:
        return (
            ["roc", "atr", "ema", "range", "volume"]
            + [f"regime_{k}" for k in range(self.n_states)]
            + ["position_direction", "position_intensity", "upnl_norm"]
        )

    @classmethod
    def from_metadata(cls, meta: dict, hmm_dict: dict) -> TwinSpec:
        return cls(
            symbol=meta["symbol"]["name"],
            timeframe=meta["symbol"]["timeframe"],
            training_config=meta["training_config"],
            hmm=PortableHMM.from_dict(hmm_dict),
            hmm_norm_mean=meta["hmm"]["feature_norm"]["mean"],
            hmm_norm_std=meta["hmm"]["feature_norm"]["std"],
            rl_norm_mean=meta["observation"]["rl_norm"]["mean"],
            rl_norm_std=meta["observation"]["rl_norm"]["std"],
            window=int(meta["window"]),
            clip=float(meta["observation"]["clip"]),
            rl_config=RLConfig(**meta["rl_config"]),
            hmm_config=HMMConfig(**meta["hmm_config"]),
        )


@dataclass
class SeriesData:
    """Window-pure quantities for every bar of a series (NaN / -1 before the window fills)."""

    bars: Bars
    market_raw: np.ndarray  # [N, 5]
    z: np.ndarray  # [N, 5]
    hmm_raw: np.ndarray  # [N, 3]
    hmm_x: np.ndarray  # [N, 3]
    posterior: np.ndarray  # [N, K]
    regime: np.ndarray  # [N] int, -1 while warming up


def normalise_hmm(raw: np.ndarray, mean, std) -> np.ndarray:
    return (raw - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)


def precompute(bars: Bars, spec: TwinSpec) -> SeriesData:
    w = spec.window
    market_raw = series_market_features(bars, w, spec.rl_config)
    z = normalise_rl(market_raw, spec.rl_norm_mean, spec.rl_norm_std, spec.clip)
    hmm_raw = series_hmm_features(bars, spec.hmm_config)
    hmm_x = normalise_hmm(hmm_raw, spec.hmm_norm_mean, spec.hmm_norm_std)
    lb = spec.hmm_config.lookback
    b = np.full((len(bars), spec.n_states), np.nan)
    if len(bars) > lb:
        b[lb:] = spec.hmm.scaled_emissions(hmm_x[lb:])
    post = series_forward_filter(b, w, lb, spec.hmm.startprob, spec.hmm.transmat)
    regime = np.full(len(bars), -1, dtype=np.int64)
    if len(bars) >= w:
        # first index of the maximum (np.argmax returns the first on ties)
        regime[w - 1 :] = np.argmax(post[w - 1 :], axis=1)
    return SeriesData(bars, market_raw, z, hmm_raw, hmm_x, post, regime)


def build_obs64(z_row, regime: int, k: int, state: TwinState, costs: Costs, c: float, clip):
    obs = np.zeros(5 + k + 3, dtype=np.float64)
    obs[0:5] = z_row
    obs[5 + regime] = 1.0
    obs[5 + k] = float(state.position_direction)
    obs[6 + k] = float(state.position_intensity) / 3.0
    obs[7 + k] = upnl_norm(state, costs, c, clip)
    return obs


def build_obs(z_row, regime: int, k: int, state: TwinState, costs: Costs, c: float, clip):
    return build_obs64(z_row, regime, k, state, costs, c, clip).astype(np.float32)
