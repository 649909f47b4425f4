"""Run one twin (real SB3 policy + TradingEnv semantics) over a bar stream, bar by bar."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oracle_training.policy import actor_logits
from oracle_training.spec import SeriesData, TwinSpec, build_obs
from oracle_training.twin import ACTIONS, TwinState, apply_action, unrealised_money


@dataclass
class Step:
    idx: int
    decided: bool
    obs: np.ndarray | None = None
    logits: np.ndarray | None = None
    action: int | None = None
    kind: str | None = None
    state: TwinState | None = None  # after this bar
    unrealized: float | None = None


def softmax_action(logits: np.ndarray) -> int:
    """First index of the maximum softmax probability (SB3's ``Categorical.mode``)."""
    import torch

    lt = torch.as_tensor(np.asarray(logits, dtype=np.float32)[None, :])
    probs = torch.distributions.Categorical(logits=lt).probs
    return int(torch.argmax(probs, dim=1)[0])


def run_stream(
    spec: TwinSpec,
    data: SeriesData,
    model,
    state: TwinState | None = None,
    first_decision: int | None = None,
) -> list[Step]:
    """Feed every bar of ``data``; decide from ``first_decision`` on (default ``window - 1``,
    the warm-up). Bars before it are warm-up (no state) or priming (restored ``state``)."""
    w = spec.window
    first = w - 1 if first_decision is None else first_decision
    if first < w - 1:
        raise ValueError("first decision before the window fills")
    st = TwinState() if state is None else state.copy()
    costs = spec.costs
    k = spec.n_states
    steps: list[Step] = []
    for t in range(len(data.bars)):
        if t < first:
            if state is None:
                st.last_bar_time = int(data.bars.time[t])
                st.bars_seen += 1
            steps.append(Step(t, False, state=st.copy()))
            continue
        c = float(data.bars.close[t])
        obs = build_obs(data.z[t], int(data.regime[t]), k, st, costs, c, spec.clip)
        action, _ = model.predict(obs, deterministic=True)
        action = int(action)
        logits = actor_logits(model, obs)
        kind = apply_action(st, costs, action, c)
        st.last_bar_time = int(data.bars.time[t])
        st.bars_seen += 1
        steps.append(
            Step(t, True, obs, logits, action, kind, st.copy(), unrealised_money(st, costs, c))
        )
    return steps


def coverage(steps: list[Step], n_states: int) -> dict:
    actions = [0] * len(ACTIONS)
    regimes = [0] * n_states
    kinds = {"open": 0, "close": 0, "flip": 0, "resize": 0, "hold": 0}
    min_margin = None
    decisions = 0
    for s in steps:
        if not s.decided:
            continue
        decisions += 1
        actions[s.action] += 1
        regimes[int(np.argmax(s.obs[5 : 5 + n_states]))] += 1
        kinds[s.kind] += 1
        srt = np.sort(s.logits)
        m = float(srt[-1] - srt[-2])
        min_margin = m if min_margin is None else min(min_margin, m)
    return {
        "decisions": decisions,
        "transitions": decisions - kinds["hold"],
        "opens": kinds["open"],
        "closes": kinds["close"],
        "flips": kinds["flip"],
        "resizes": kinds["resize"],
        "actions": actions,
        "regimes": regimes,
        "min_margin": min_margin,
    }
