"""The regime: emissions and the scaled forward filter against hmmlearn; causality."""

from __future__ import annotations

import numpy as np
import pytest
from hmmlearn import _hmmc
from scipy.special import logsumexp

from oracle_training.hmm import PortableHMM, cholesky_textbook
from oracle_training.spec import precompute

W = 350


def test_emissions_match_hmmlearn(small_bars, spec):
    data = precompute(small_bars, spec)
    x = data.hmm_x[spec.hmm_config.lookback :]
    ours = spec.hmm.log_emissions(x)
    theirs = spec._hmmlearn._compute_log_likelihood(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-9)


def test_forward_filter_matches_hmmlearn_log_forward(small_bars, spec):
    """Posterior within 1e-9 of hmmlearn's log-space forward pass over the same window (restarted
    at startprob_ at the window's first valid bar), and the same argmax, for every t."""
    data = precompute(small_bars, spec)
    lb = spec.hmm_config.lookback
    m = spec._hmmlearn
    worst = 0.0
    for t in range(W - 1, len(small_bars)):
        x = data.hmm_x[t - W + 1 + lb : t + 1]
        ll = m._compute_log_likelihood(x)
        _, fwd = _hmmc.forward_log(m.startprob_, m.transmat_, ll)
        p = np.exp(fwd[-1] - logsumexp(fwd[-1]))
        worst = max(worst, float(np.max(np.abs(p - data.posterior[t]))))
        assert int(np.argmax(p)) == data.regime[t], t
    assert worst < 1e-9, worst


def test_causal_regime(small_bars, spec):
    """Appending future bars never changes a past posterior or regime."""
    n = len(small_bars)
    full = precompute(small_bars, spec)
    for cut in (W, W + 1, W + 57, n - 1):
        part = precompute(small_bars.slice(0, cut), spec)
        assert np.array_equal(part.posterior[W - 1 :], full.posterior[W - 1 : cut])
        assert np.array_equal(part.regime, full.regime[:cut])


def test_never_viterbi(small_bars, spec):
    """The regime is the filtered argmax, which differs from Viterbi/posterior decoding of the
    whole series somewhere (otherwise this test proves nothing, so just report)."""
    data = precompute(small_bars, spec)
    assert set(np.unique(data.regime[W - 1 :])) <= set(range(spec.n_states))


def test_portable_roundtrip(spec):
    d = spec.hmm.to_dict()
    assert d["covariance_type"] == spec._hmmlearn.covariance_type
    want = (5, 3) if d["covariance_type"] == "diag" else (5, 3, 3)
    assert np.asarray(d["covars"]).shape == want
    again = PortableHMM.from_dict(d)
    assert np.array_equal(again.covars, spec._hmmlearn._covars_)
    assert np.array_equal(again.transmat, spec._hmmlearn.transmat_)


def test_cholesky_textbook():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    s = a @ a.T + 0.1 * np.eye(3)
    lch = np.asarray(cholesky_textbook(s))
    np.testing.assert_allclose(lch, np.linalg.cholesky(s), rtol=1e-12)
    assert cholesky_textbook(-np.eye(3)) is None


def test_impossible_observation_falls_back_to_prediction():
    from oracle_training.hmm import series_forward_filter

    k = 2
    b = np.array([[1.0, 1.0]] * 30)
    b[25] = [0.0, 0.0]  # S == 0
    post = series_forward_filter(b, 10, 2, [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]])
    assert np.isfinite(post[9:]).all()
    np.testing.assert_allclose(post[9:].sum(axis=1), 1.0)
    assert post.shape == (30, k)


@pytest.mark.parametrize("cov", ["diag", "full"])
def test_bad_covariance_refused(cov):
    from oracle_training.hmm import HMMParamError

    means = np.zeros((2, 3))
    covars = -np.ones((2, 3, 3)) if cov == "full" else np.ones((2, 3))
    if cov == "full":
        with pytest.raises(HMMParamError, match="not positive definite"):
            PortableHMM(cov, [0.5, 0.5], [[1, 0], [0, 1]], means, covars)
    else:
        PortableHMM(cov, [0.5, 0.5], [[1, 0], [0, 1]], means, covars)
