"""The regime: Gaussian HMM emissions and the causal scaled forward filter (contract section 4).

hmmlearn is used only to *fit* the model; inference is this module's own code, written in the
contract's order of operations, so the Rust core can reproduce it.
"""

from __future__ import annotations

import math
import sys

import numpy as np

LOG_2PI = 1.8378770664093453
TINY = sys.float_info.min  # f64::MIN_POSITIVE
assert LOG_2PI == math.log(2.0 * math.pi)


class HMMParamError(ValueError):
    pass


class PortableHMM:
    """Plain f64 parameters of a fitted GaussianHMM (the ``SYM_TF_hmm.json`` member)."""

    def __init__(self, covariance_type, startprob, transmat, means, covars):
        if covariance_type not in ("diag", "full"):
            raise HMMParamError(f"covariance_type {covariance_type!r} not supported (diag, full)")
        self.covariance_type = covariance_type
        self.startprob = np.asarray(startprob, dtype=np.float64)
        self.transmat = np.asarray(transmat, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.covars = np.asarray(covars, dtype=np.float64)
        k, d = self.means.shape
        self.n_states, self.n_features = k, d
        want = (k, d) if covariance_type == "diag" else (k, d, d)
        if self.covars.shape != want:
            raise HMMParamError(f"covars shape {self.covars.shape} != {want}")
        if self.startprob.shape != (k,) or self.transmat.shape != (k, k):
            raise HMMParamError("startprob/transmat shapes do not match n_states")
        self._prepare()

    @classmethod
    def from_hmmlearn(cls, model) -> PortableHMM:
        return cls(
            model.covariance_type,
            model.startprob_,
            model.transmat_,
            model.means_,
            model._covars_,  # compact form; never the covars_ property (always full)
        )

    @classmethod
    def from_dict(cls, d: dict) -> PortableHMM:
        obj = cls(d["covariance_type"], d["startprob"], d["transmat"], d["means"], d["covars"])
        if obj.n_states != d["n_states"] or obj.n_features != d["n_features"]:
            raise HMMParamError("n_states/n_features do not match the arrays")
        return obj

    def to_dict(self) -> dict:
        return {
            "covariance_type": self.covariance_type,
            "n_states": int(self.n_states),
            "n_features": int(self.n_features),
            "startprob": [float(x) for x in self.startprob],
            "transmat": [[float(x) for x in r] for r in self.transmat],
            "means": [[float(x) for x in r] for r in self.means],
            "covars": self.covars.tolist(),
        }

    # -- emissions ---------------------------------------------------------------------------

    def _prepare(self):
        k, d = self.n_states, self.n_features
        if self.covariance_type == "diag":
            self._c = np.maximum(self.covars, TINY)
            self._slog = []
            for s in range(k):
                lg = np.log(self._c[s])
                acc = 0.0
                for j in range(d):
                    acc = acc + float(lg[j])
                self._slog.append(acc)
        else:
            self._chol = []
            self._logdet = []
            for s in range(k):
                lch = cholesky_textbook(self.covars[s])
                if lch is None:
                    lch = cholesky_textbook(self.covars[s] + 1e-7 * np.eye(d))
                if lch is None:
                    raise HMMParamError(f"covariance of state {s} is not positive definite")
                self._chol.append(lch)
                lg = np.log(np.array([lch[j][j] for j in range(d)]))
                acc = 0.0
                for j in range(d):
                    acc = acc + float(lg[j])
                self._logdet.append(2.0 * acc)

    def log_emissions(self, x: np.ndarray) -> np.ndarray:
        """``ll[N, K]`` for normalised HMM features ``x[N, D]`` (contract order)."""
        x = np.asarray(x, dtype=np.float64)
        n, d = x.shape
        k = self.n_states
        ll = np.empty((n, k))
        dl = float(d) * LOG_2PI
        for s in range(k):
            q = np.zeros(n)
            if self.covariance_type == "diag":
                for j in range(d):
                    diff = x[:, j] - self.means[s, j]
                    q = q + diff * diff / self._c[s, j]
                ll[:, s] = -0.5 * (dl + self._slog[s] + q)
            else:
                lch = self._chol[s]
                zs = []
                for i in range(d):
                    y = x[:, i] - self.means[s, i]
                    acc = np.zeros(n)
                    for m in range(i):
                        acc = acc + lch[i][m] * zs[m]
                    zs.append((y - acc) / lch[i][i])
                for i in range(d):
                    q = q + zs[i] * zs[i]
                ll[:, s] = -0.5 * (dl + self._logdet[s] + q)
        return ll

    def scaled_emissions(self, x: np.ndarray) -> np.ndarray:
        """``b[N, K] = exp(ll - max_k ll)``. Rows with NaN input stay NaN."""
        ll = self.log_emissions(x)
        m = ll[:, 0].copy()
        for s in range(1, self.n_states):
            m = np.maximum(m, ll[:, s])
        return np.exp(ll - m[:, None])


def cholesky_textbook(a) -> list[list[float]] | None:
    """Lower Cholesky factor by the column algorithm (contract section 4), or None on failure."""
    d = len(a)
    lch = [[0.0] * d for _ in range(d)]
    for j in range(d):
        acc = 0.0
        for m in range(j):
            acc = acc + lch[j][m] * lch[j][m]
        s = float(a[j][j]) - acc
        if not s > 0.0:
            return None
        lch[j][j] = math.sqrt(s)
        for i in range(j + 1, d):
            acc = 0.0
            for m in range(j):
                acc = acc + lch[i][m] * lch[j][m]
            lch[i][j] = (float(a[i][j]) - acc) / lch[j][j]
    return lch


# ---------------------------------------------------------------------------------------------
# forward filter


def forward_filter_window(b_rows, startprob, transmat) -> list[float]:
    """Reference: scaled forward filter over the emission rows ``b_rows`` (window indices
    ``f..n``), plain Python floats. Returns the posterior at the last row."""
    k = len(startprob)
    sp = [float(x) for x in startprob]
    a = [[float(x) for x in r] for r in transmat]
    alpha = None
    for b in b_rows:
        if alpha is None:
            pred = list(sp)
        else:
            pred = []
            for j in range(k):
                acc = 0.0
                for i in range(k):
                    acc = acc + alpha[i] * a[i][j]
                pred.append(acc)
        u = [pred[j] * float(b[j]) for j in range(k)]
        s = 0.0
        for j in range(k):
            s = s + u[j]
        if s > 0.0 and math.isfinite(s):
            alpha = [u[j] / s for j in range(k)]
        else:
            sp_ = 0.0
            for j in range(k):
                sp_ = sp_ + pred[j]
            alpha = [pred[j] / sp_ for j in range(k)]
    return alpha


def series_forward_filter(b: np.ndarray, window: int, lookback: int, startprob, transmat):
    """Posterior ``[N, K]`` at every decision bar ``t >= window - 1`` (rows before are NaN),
    each restarted at its own window's first valid bar. Vectorised over ``t``; the loop runs over
    window offsets in the reference's order, so results are bit-identical."""
    n_bars, k = b.shape
    post = np.full((n_bars, k), np.nan)
    if n_bars < window:
        return post
    sp = np.asarray(startprob, dtype=np.float64)
    a = np.asarray(transmat, dtype=np.float64)
    t = np.arange(window - 1, n_bars)
    first = t - (window - 1) + lookback
    nt = len(t)
    alpha = None
    for o in range(window - lookback):
        bi = b[first + o]  # [nt, K]
        if alpha is None:
            pred = [np.full(nt, sp[j]) for j in range(k)]
        else:
            pred = []
            for j in range(k):
                acc = np.zeros(nt)
                for i in range(k):
                    acc = acc + alpha[i] * a[i, j]
                pred.append(acc)
        u = [pred[j] * bi[:, j] for j in range(k)]
        s = np.zeros(nt)
        for j in range(k):
            s = s + u[j]
        ok = (s > 0.0) & np.isfinite(s)
        if ok.all():
            alpha = [u[j] / s for j in range(k)]
        else:
            sp_ = np.zeros(nt)
            for j in range(k):
                sp_ = sp_ + pred[j]
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = [np.where(ok, u[j] / s, pred[j] / sp_) for j in range(k)]
    post[t] = np.stack(alpha, axis=1)
    return post


def first_argmax(p) -> int:
    best = 0
    for i in range(1, len(p)):
        if p[i] > p[best]:
            best = i
    return best


def fit_hmm(x: np.ndarray, covariance_type: str, seed: int, n_states: int = 5, n_iter: int = 60):
    """Fit hmmlearn's GaussianHMM on normalised features ``x[N, D]`` (one sequence)."""
    from hmmlearn.hmm import GaussianHMM

    model = GaussianHMM(
        n_components=n_states,
        covariance_type=covariance_type,
        n_iter=n_iter,
        tol=1e-4,
        random_state=seed,
        min_covar=1e-3,
    )
    model.fit(x)
    return model
