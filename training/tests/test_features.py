"""Window purity: every feature and the regime at t is a pure function of the last W bars, and
the vectorised series computation is bit-identical to the per-window definition, for every t."""

from __future__ import annotations

import numpy as np

from oracle_training.features import (
    RLConfig,
    normalise_rl_scalar,
    series_market_features,
    window_hmm_features,
    window_market_features,
)
from oracle_training.hmm import first_argmax, forward_filter_window
from oracle_training.spec import normalise_hmm, precompute

W = 350


def same_bits(a, b) -> bool:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(a.view(np.int64) == b.view(np.int64)))


def test_window_requirement():
    assert W >= RLConfig().min_window()


def test_vectorised_equals_per_window_definition_every_t(small_bars, spec):
    """Series (vectorised) == per-window reference, bit for bit, for every decision bar."""
    b = small_bars
    data = precompute(b, spec)
    lb = spec.hmm_config.lookback
    for t in range(W - 1, len(b)):
        s = t - W + 1
        c, h, lo, v = (x[s : t + 1] for x in (b.close, b.high, b.low, b.volume))
        raw = window_market_features(c, h, lo, v, spec.rl_config)
        assert same_bits(raw, data.market_raw[t]), t
        z = normalise_rl_scalar(raw, spec.rl_norm_mean, spec.rl_norm_std, spec.clip)
        assert same_bits(z, data.z[t]), t
        hraw = [window_hmm_features(c, h, lo, i, spec.hmm_config) for i in range(lb, W)]
        assert same_bits(hraw[-1], data.hmm_raw[t]), t
        x = normalise_hmm(np.asarray(hraw), spec.hmm_norm_mean, spec.hmm_norm_std)
        bb = spec.hmm.scaled_emissions(x)
        post = forward_filter_window(bb, spec.hmm.startprob, spec.hmm.transmat)
        assert same_bits(post, data.posterior[t]), t
        assert first_argmax(post) == data.regime[t]


def test_full_history_equals_last_window_only(small_bars, spec):
    """Computed from the full history or from the last W bars only: the same bits."""
    full = precompute(small_bars, spec)
    for t in range(W - 1, len(small_bars)):
        part = precompute(small_bars.slice(t - W + 1, t + 1), spec)
        assert same_bits(part.market_raw[-1], full.market_raw[t]), t
        assert same_bits(part.posterior[-1], full.posterior[t]), t
        assert part.regime[-1] == full.regime[t]


def test_warmup_rows_are_empty(small_bars, spec):
    data = precompute(small_bars, spec)
    assert np.isnan(data.market_raw[: W - 1]).all()
    assert (data.regime[: W - 1] == -1).all()
    assert np.isfinite(data.market_raw[W - 1 :]).all()
    assert not np.isnan(series_market_features(small_bars.slice(0, W), W, RLConfig())[-1]).any()


def test_volume_feature_zero_when_average_is_zero(small_bars):
    b = small_bars.slice(0, W)
    b.volume[:] = 0.0
    raw = window_market_features(b.close, b.high, b.low, b.volume, RLConfig())
    assert raw[4] == 0.0
    assert series_market_features(b, W, RLConfig())[-1, 4] == 0.0
