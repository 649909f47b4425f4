"""The reference predictor (the seed's original Python plan) and the replay trace.

* :class:`ReferenceTwin`: one model, a FIFO of ``window`` bars, and per bar a fresh computation
  from the window alone (per-window reference features, HMM emissions and forward filter), the SB3
  policy under ``torch.no_grad()``, and the virtual position. It prints seed-format ``SIGNAL``
  lines (``docs/ipc.md``).
* :func:`replay_trace`: contract section 8's replay trace of one zip over any bar CSV.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from oracle_training.bars import check_bar, format_time, iter_csv
from oracle_training.features import (
    normalise_rl_scalar,
    window_hmm_features,
    window_market_features,
)
from oracle_training.hmm import first_argmax, forward_filter_window
from oracle_training.modelzip import ModelZip
from oracle_training.spec import build_obs
from oracle_training.twin import ACTIONS, TwinState, apply_action, unrealised_money


class ReferenceTwin:
    def __init__(self, zip_path: str | Path, state: TwinState | None = None):
        import torch

        torch.set_num_threads(1)
        self.mz = ModelZip(zip_path)
        self.spec = self.mz.spec()
        self.model = self.mz.load_ppo()
        self.model.policy.eval()
        self.costs = self.spec.costs
        self.fifo: deque = deque(maxlen=self.spec.window)
        self.state = TwinState() if state is None else state.copy()
        self.restored = state is not None
        self.priming = self.spec.window if state is not None else 0

    def window_regime(self, c, h, lo):
        spec = self.spec
        lb = spec.hmm_config.lookback
        raw = [window_hmm_features(c, h, lo, i, spec.hmm_config) for i in range(lb, len(c))]
        x = (np.asarray(raw) - np.asarray(spec.hmm_norm_mean)) / np.asarray(spec.hmm_norm_std)
        b = spec.hmm.scaled_emissions(x)
        post = forward_filter_window(b, spec.hmm.startprob, spec.hmm.transmat)
        return post, first_argmax(post)

    def on_bar(self, bar: tuple):
        """Feed one closed bar ``(time, o, h, l, c, v)``. Returns ``None`` while warming up or
        priming, else ``(action, regime, unrealised money, posterior)``."""
        import torch

        prev = (
            self.fifo[-1][0] if self.fifo else (None if self.priming else self.state.last_bar_time)
        )
        err = check_bar(*bar, prev_time=prev)
        if err:
            raise ValueError(err)
        self.fifo.append(bar)
        if self.priming:
            self.priming -= 1
            return None
        if len(self.fifo) < self.spec.window:
            self.state.last_bar_time = int(bar[0])
            self.state.bars_seen += 1
            return None
        spec = self.spec
        _, _, h, lo, c, v = (list(col) for col in zip(*self.fifo, strict=True))
        raw = window_market_features(c, h, lo, v, spec.rl_config)
        z = normalise_rl_scalar(raw, spec.rl_norm_mean, spec.rl_norm_std, spec.clip)
        post, regime = self.window_regime(c, h, lo)
        close = float(bar[4])
        obs = build_obs(z, regime, spec.n_states, self.state, self.costs, close, spec.clip)
        with torch.no_grad():
            action, _ = self.model.predict(obs, deterministic=True)
        action = int(action)
        apply_action(self.state, self.costs, action, close)
        self.state.last_bar_time = int(bar[0])
        self.state.bars_seen += 1
        return action, regime, unrealised_money(self.state, self.costs, close), post


def signal_line(spec, action: int, regime: int, upnl: float, bar_time: int, seq: int, st) -> str:
    return (
        f"SIGNAL|{spec.symbol}|{ACTIONS[action][0]}|{regime}|{round(upnl, 2) + 0.0:.2f}"
        f"|TF:{spec.timeframe}|BT:{format_time(bar_time)}|SEQ:{seq}"
        f"|DIR:{st.position_direction}|INT:{st.position_intensity}"
    )


def read_ok_bars(path, err=sys.stderr):
    """Bars of a CSV, rejected lines reported on ``err`` with their line number and skipped."""
    prev = None
    out = []
    for lineno, bar, e in iter_csv(path):
        if e is None:
            e = check_bar(*bar, prev_time=prev)
        if e is not None:
            print(f"{path}:{lineno}: bar rejected: {e}", file=err)
            continue
        out.append(bar)
        prev = bar[0]
    return out


def run_reference(zips: list[Path], bar_files: dict[str, Path], tail: int | None, out=sys.stdout):
    """Feed each model its bar file (merged by time across models) and print SIGNAL lines."""
    twins = [ReferenceTwin(z) for z in zips]
    events = []
    for k, tw in enumerate(twins):
        bars = read_ok_bars(bar_files[tw.mz.name])
        if tail:
            bars = bars[-tail:]
        events += [(b[0], k, i, b) for i, b in enumerate(bars)]
    events.sort(key=lambda e: (e[0], e[1]))
    for _, k, i, bar in events:
        tw = twins[k]
        r = tw.on_bar(bar)
        if r is not None:
            a, regime, upnl, _ = r
            print(signal_line(tw.spec, a, regime, upnl, bar[0], i + 1, tw.state), file=out)


def bench(zips: list[Path], bar_files: dict[str, Path], n_bars: int) -> dict:
    """Per-bar latency (all models handle one bar each) and peak RSS, as JSON-able dict."""
    t_load = time.perf_counter()
    twins = [ReferenceTwin(z) for z in zips]
    t_load = time.perf_counter() - t_load
    streams = []
    for tw in twins:
        bars = read_ok_bars(bar_files[tw.mz.name])
        streams.append(bars[-(tw.spec.window - 1 + n_bars) :])
    w = min(tw.spec.window for tw in twins)
    for k, tw in enumerate(twins):  # warm-up, not timed
        for b in streams[k][: w - 1]:
            tw.on_bar(b)
    lat = []
    for j in range(w - 1, w - 1 + n_bars):
        t0 = time.perf_counter()
        for k, tw in enumerate(twins):
            tw.on_bar(streams[k][j])
        lat.append(time.perf_counter() - t0)
    lat_ms = np.asarray(lat) * 1000.0
    return {
        "implementation": "python reference predictor (SB3/torch, per-window recomputation)",
        "models": len(twins),
        "bars": n_bars,
        "load_seconds": round(t_load, 3),
        "latency_ms_per_bar_all_models": {
            "p50": round(float(np.percentile(lat_ms, 50)), 3),
            "p99": round(float(np.percentile(lat_ms, 99)), 3),
            "max": round(float(lat_ms.max()), 3),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }


# -- replay trace -----------------------------------------------------------------------------

TRACE_HEADER = "time,action,direction,intensity,entry_price,realized_pnl"


def trace_line(bar_time: int, action: str, st: TwinState) -> str:
    return (
        f"{format_time(bar_time)},{action},{st.position_direction},{st.position_intensity},"
        f"{st.entry_price + 0.0:.10f},{st.realized_pnl + 0.0:.6f}"
    )


def replay_trace(zip_path: Path, bar_csv: Path, err=sys.stderr) -> str:
    """Contract section 8: one line per accepted input bar."""
    from oracle_training.bars import Bars
    from oracle_training.spec import precompute
    from oracle_training.stream import run_stream

    mz = ModelZip(zip_path)
    spec = mz.spec()
    model = mz.load_ppo()
    bars = Bars.from_rows(read_ok_bars(bar_csv, err))
    lines = [TRACE_HEADER]
    if len(bars) == 0:
        return "\n".join(lines) + "\n"
    data = precompute(bars, spec)
    steps = run_stream(spec, data, model)
    for s in steps:
        name = ACTIONS[s.action][0] if s.decided else "WARMUP"
        lines.append(trace_line(int(bars.time[s.idx]), name, s.state))
    return "\n".join(lines) + "\n"


def bench_json(d: dict) -> str:
    return json.dumps(d)
