"""Market features (contract section 3) and HMM features (section 4), f64.

Two implementations of the same definitions:

* ``window_*``: the per-bar definition, computed from the ``W`` bars of one window with plain
  Python floats, exactly in the contract's order of operations (the reference).
* ``series_*``: all bars of a series at once, vectorised with numpy (a loop over window offsets,
  elementwise operations across every decision bar ``t``). Same operations in the same order, so
  the results are bit-identical to the per-window definition (``tests/test_features.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oracle_training.bars import Bars

MARKET_FEATURES = ("roc", "atr", "ema", "range", "volume")
HMM_FEATURES = ("momentum", "consistency", "range")


@dataclass(frozen=True)
class RLConfig:
    roc_period: int = 10
    atr_period: int = 14
    ema_period: int = 200
    range_period: int = 20
    volume_ma_period: int = 20

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def min_window(self) -> int:
        return max(
            self.roc_period + 1,
            self.atr_period + 1,
            self.ema_period,
            self.range_period,
            self.volume_ma_period,
        )


@dataclass(frozen=True)
class HMMConfig:
    n_states: int = 5
    momentum_period: int = 12
    consistency_period: int = 12
    range_period: int = 20

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @property
    def lookback(self) -> int:
        """``L = max(M, C, R - 1)``: the first valid window index."""
        return max(self.momentum_period, self.consistency_period, self.range_period - 1)


# ---------------------------------------------------------------------------------------------
# per-window reference (plain Python floats)


def window_market_features(c, h, lo, v, cfg: RLConfig) -> list[float]:
    """Raw market features at the last bar of a window (lists/arrays of length W)."""
    c = [float(x) for x in c]
    h = [float(x) for x in h]
    lo = [float(x) for x in lo]
    v = [float(x) for x in v]
    w = len(c)
    n = w - 1
    # roc
    p = cfg.roc_period
    roc = c[n] / c[n - p] - 1.0
    # atr (Wilder, seeded in the window)
    p = cfg.atr_period

    def tr(i):
        return max(max(h[i] - lo[i], abs(h[i] - c[i - 1])), abs(lo[i] - c[i - 1]))

    s = 0.0
    for i in range(1, p + 1):
        s = s + tr(i)
    atr = s / float(p)
    for i in range(p + 1, n + 1):
        atr = (atr * float(p - 1) + tr(i)) / float(p)
    f_atr = atr / c[n]
    # ema (seeded with the SMA of the window's first P closes)
    p = cfg.ema_period
    alpha = 2.0 / (float(p) + 1.0)
    s = 0.0
    for i in range(0, p):
        s = s + c[i]
    e = s / float(p)
    for i in range(p, n + 1):
        e = e + alpha * (c[i] - e)
    f_ema = c[n] / e - 1.0
    # range
    p = cfg.range_period
    hh = max(h[n - p + 1 : n + 1])
    ll = min(lo[n - p + 1 : n + 1])
    f_range = (hh - ll) / c[n]
    # volume
    p = cfg.volume_ma_period
    s = 0.0
    for i in range(n - p + 1, n + 1):
        s = s + v[i]
    s = s / float(p)
    f_vol = v[n] / s - 1.0 if s > 0.0 else 0.0
    return [roc, f_atr, f_ema, f_range, f_vol]


def window_hmm_features(c, h, lo, i: int, cfg: HMMConfig) -> list[float]:
    """Raw HMM features of window index ``i`` (needs ``i >= cfg.lookback``)."""
    m, cc, r = cfg.momentum_period, cfg.consistency_period, cfg.range_period
    mom = float(c[i]) / float(c[i - m]) - 1.0
    cnt = 0
    for k in range(i - cc + 1, i + 1):
        if float(c[k]) > float(c[k - 1]):
            cnt += 1
    cons = float(cnt) / float(cc)
    hh = max(float(x) for x in h[i - r + 1 : i + 1])
    ll = min(float(x) for x in lo[i - r + 1 : i + 1])
    rng = (hh - ll) / float(c[i])
    return [mom, cons, rng]


# ---------------------------------------------------------------------------------------------
# vectorised over a series


def true_range(bars: Bars) -> np.ndarray:
    """``TR[g]`` for every global index ``g >= 1`` (``TR[0]`` is NaN: never used)."""
    c, h, lo = bars.close, bars.high, bars.low
    tr = np.full(len(c), np.nan)
    pc = c[:-1]
    tr[1:] = np.maximum(np.maximum(h[1:] - lo[1:], np.abs(h[1:] - pc)), np.abs(lo[1:] - pc))
    return tr


def series_market_features(bars: Bars, window: int, cfg: RLConfig) -> np.ndarray:
    """Raw market features ``[N, 5]`` for every bar; rows ``t < window - 1`` are NaN."""
    n_bars = len(bars)
    out = np.full((n_bars, 5), np.nan)
    if n_bars < window:
        return out
    c, h, lo, v = bars.close, bars.high, bars.low, bars.volume
    t = np.arange(window - 1, n_bars)  # decision bars
    s0 = t - (window - 1)  # global index of window index 0
    n = window - 1
    # roc
    p = cfg.roc_period
    out[t, 0] = c[t] / c[t - p] - 1.0
    # atr
    p = cfg.atr_period
    tr = true_range(bars)
    acc = np.zeros(len(t))
    for i in range(1, p + 1):
        acc = acc + tr[s0 + i]
    atr = acc / float(p)
    for i in range(p + 1, n + 1):
        atr = (atr * float(p - 1) + tr[s0 + i]) / float(p)
    out[t, 1] = atr / c[t]
    # ema
    p = cfg.ema_period
    alpha = 2.0 / (float(p) + 1.0)
    acc = np.zeros(len(t))
    for i in range(0, p):
        acc = acc + c[s0 + i]
    e = acc / float(p)
    for i in range(p, n + 1):
        e = e + alpha * (c[s0 + i] - e)
    out[t, 2] = c[t] / e - 1.0
    # range
    p = cfg.range_period
    hh = h[t].copy()
    ll = lo[t].copy()
    for k in range(1, p):
        hh = np.maximum(hh, h[t - k])
        ll = np.minimum(ll, lo[t - k])
    out[t, 3] = (hh - ll) / c[t]
    # volume
    p = cfg.volume_ma_period
    acc = np.zeros(len(t))
    for k in range(p - 1, -1, -1):
        acc = acc + v[t - k]
    sma = acc / float(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        fv = v[t] / sma - 1.0
    out[t, 4] = np.where(sma > 0.0, fv, 0.0)
    return out


def series_hmm_features(bars: Bars, cfg: HMMConfig) -> np.ndarray:
    """Raw HMM features ``[N, 3]`` of every bar ``g >= L`` (rows before are NaN). They depend
    only on bars ``g - L .. g``, so they are the same whatever the window start."""
    n_bars = len(bars)
    lb = cfg.lookback
    out = np.full((n_bars, 3), np.nan)
    if n_bars <= lb:
        return out
    c, h, lo = bars.close, bars.high, bars.low
    g = np.arange(lb, n_bars)
    m, cc, r = cfg.momentum_period, cfg.consistency_period, cfg.range_period
    out[g, 0] = c[g] / c[g - m] - 1.0
    cnt = np.zeros(len(g))
    for k in range(cc - 1, -1, -1):
        cnt = cnt + (c[g - k] > c[g - k - 1])
    out[g, 1] = cnt / float(cc)
    hh = h[g].copy()
    ll = lo[g].copy()
    for k in range(1, r):
        hh = np.maximum(hh, h[g - k])
        ll = np.minimum(ll, lo[g - k])
    out[g, 2] = (hh - ll) / c[g]
    return out


def normalise_rl(raw: np.ndarray, mean, std, clip: float) -> np.ndarray:
    """``z = min(max((raw - mean) / std, -clip), clip)`` elementwise (f64)."""
    z = (raw - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    return np.minimum(np.maximum(z, -clip), clip)


def normalise_rl_scalar(raw: list[float], mean, std, clip: float) -> list[float]:
    out = []
    for k in range(len(raw)):
        z = (raw[k] - float(mean[k])) / float(std[k])
        out.append(min(max(z, -clip), clip))
    return out


# ---------------------------------------------------------------------------------------------
# the declared feature set (contract section 9) and the notebook entry point

FEATURE_SET = "oracle"
FEATURE_SET_VERSION = 1
POSITION_FEATURES = ("position_direction", "position_intensity", "upnl_norm")
# each feature's period field in rl_config / hmm_config
MARKET_PERIODS = dict(
    zip(MARKET_FEATURES, ("roc", "atr", "ema", "range", "volume_ma"), strict=True)
)


def declaration(rl: RLConfig | None = None, hc: HMMConfig | None = None) -> dict:
    """The metadata's ``features``: the set, its version, and each feature with its period, in
    observation (market) and HMM-input (hmm) order. What the Rust loader checks."""
    rl, hc = rl or RLConfig(), hc or HMMConfig()
    return {
        "set": FEATURE_SET,
        "version": FEATURE_SET_VERSION,
        "market": [
            {"name": n, "period": getattr(rl, f"{MARKET_PERIODS[n]}_period")}
            for n in MARKET_FEATURES
        ],
        "hmm": [{"name": n, "period": getattr(hc, f"{n}_period")} for n in HMM_FEATURES],
    }


def observation_layout(n_states: int) -> list[str]:
    """The names of the observation's elements (contract section 5), ``observation.layout``."""
    return [*MARKET_FEATURES, *(f"regime_{k}" for k in range(n_states)), *POSITION_FEATURES]


def _std(x: np.ndarray) -> list[float]:
    s = np.std(x, axis=0)
    return [float(v) if v > 0 else 1.0 for v in s]


def fit_normalisation(
    train: Bars, window: int = 350, rl: RLConfig | None = None, hc: HMMConfig | None = None
) -> dict:
    """Mean and std (0 read as 1.0) of the raw market features over the decision bars of the
    training bars, and of the raw HMM features over their valid bars: what ``train`` stores as
    ``observation.rl_norm`` and ``hmm.feature_norm``. Fit it on the training split only."""
    rl, hc = rl or RLConfig(), hc or HMMConfig()
    raw = series_market_features(train, window, rl)[window - 1 :]
    hraw = series_hmm_features(train, hc)[hc.lookback :]
    if len(raw) == 0 or len(hraw) == 0:
        raise ValueError(
            f"fit_normalisation: {len(train)} bars; at least the window ({window}) are needed"
        )
    return {
        "rl_norm": {"mean": [float(v) for v in raw.mean(axis=0)], "std": _std(raw)},
        "hmm_norm": {"mean": [float(v) for v in hraw.mean(axis=0)], "std": _std(hraw)},
    }


def hmm_inputs(bars: Bars, norm: dict, hc: HMMConfig | None = None) -> np.ndarray:
    """The normalised HMM features ``[N - L, 3]`` of every valid bar: what a GaussianHMM is
    fitted on (``GaussianHMM(n_components=K, covariance_type="diag" or "full").fit(x)``)."""
    hc = hc or HMMConfig()
    raw = series_hmm_features(bars, hc)[hc.lookback :]
    mean = np.asarray(norm["hmm_norm"]["mean"], dtype=np.float64)
    return (raw - mean) / np.asarray(norm["hmm_norm"]["std"], dtype=np.float64)


def observe(
    bars: Bars,
    hmm,
    norm: dict,
    *,
    rl: RLConfig | None = None,
    hc: HMMConfig | None = None,
    window: int = 350,
    clip: float = 10.0,
) -> np.ndarray:
    """The contract's observation (section 5) of every bar, float32 ``[N, 5 + K + 3]``, with the
    position FLAT (its three columns 0.0); rows before the window fills are NaN. ``hmm`` is a
    fitted hmmlearn ``GaussianHMM`` (or a ``PortableHMM``); ``norm`` is ``fit_normalisation`` of
    the training bars. An environment that holds a position writes its three columns with
    ``position_columns``. These are exactly the numbers the Rust twin feeds the policy."""
    from oracle_training.hmm import PortableHMM
    from oracle_training.spec import TwinSpec, precompute

    portable = hmm if isinstance(hmm, PortableHMM) else PortableHMM.from_hmmlearn(hmm)
    spec = TwinSpec(
        symbol="",
        timeframe="",
        training_config={},
        hmm=portable,
        hmm_norm_mean=norm["hmm_norm"]["mean"],
        hmm_norm_std=norm["hmm_norm"]["std"],
        rl_norm_mean=norm["rl_norm"]["mean"],
        rl_norm_std=norm["rl_norm"]["std"],
        window=window,
        clip=clip,
        rl_config=rl or RLConfig(),
        hmm_config=hc or HMMConfig(),
    )
    data = precompute(bars, spec)
    k = portable.n_states
    obs = np.full((len(bars), 5 + k + 3), np.nan)
    ready = data.regime >= 0
    obs[ready] = 0.0
    obs[ready, 0:5] = data.z[ready]
    obs[np.nonzero(ready)[0], 5 + data.regime[ready]] = 1.0
    return obs.astype(np.float32)


def position_columns(
    direction: int,
    intensity: int,
    entry_price: float,
    close: float,
    training_config: dict,
    clip=10.0,
) -> np.ndarray:
    """The observation's last three elements for a position (contract section 5): direction,
    intensity / 3, and the unrealised move marked at this bar's close price (float32)."""
    from oracle_training.twin import Costs, TwinState, upnl_norm

    st = TwinState()
    st.position_direction, st.position_intensity = int(direction), int(intensity)
    st.entry_price = float(entry_price)
    costs = Costs.from_config(training_config)
    upnl = upnl_norm(st, costs, float(close), float(clip))
    return np.array([float(direction), float(intensity) / 3.0, upnl], dtype=np.float64).astype(
        np.float32
    )
