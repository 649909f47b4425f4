"""``TradingEnv``: the gymnasium twin of the live predictor (contract sections 2-7).

All window-pure quantities (market features, regime) are precomputed for every bar of the series
once (:func:`oracle_training.spec.precompute`); only the position is dynamic in ``step``.

Timing: the observation at decision bar ``t`` uses bars up to and including ``t``'s close and
the position *before* the action; the action fills at ``t``'s close; the episode then moves to
``t + 1``.

Reward (training only, not part of the twin): the change of equity (realised + unrealised money,
marked per contract section 6) from before the action at ``t`` to the mark at ``t + 1``, divided by
``reward_scale`` (set by the trainer to the money a STRONG position makes on a median absolute
close-to-close move of the training split, so one typical bar of a strong position is about 1).
Costs (spread, slippage, commission) are therefore in the reward.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from oracle_training.spec import SeriesData, TwinSpec, build_obs
from oracle_training.twin import N_ACTIONS, TwinState, apply_action, unrealised_money


class TradingEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        spec: TwinSpec,
        data: SeriesData,
        start: int | None = None,
        stop: int | None = None,
        episode_len: int | None = None,
        reward_scale: float = 1.0,
        seed: int | None = None,
    ):
        """Decisions are taken on bars ``start .. stop-1`` (default: every bar once the window
        has filled). With ``episode_len``, each episode is a random segment of that length
        inside the range; without, one episode runs the whole range."""
        super().__init__()
        self.spec = spec
        self.data = data
        self.costs = spec.costs
        self.k = spec.n_states
        self.start = spec.window - 1 if start is None else max(start, spec.window - 1)
        self.stop = len(data.bars) if stop is None else stop
        if self.stop - self.start < 2:
            raise ValueError("TradingEnv needs at least two decision bars")
        self.episode_len = episode_len
        self.reward_scale = float(reward_scale)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self._np_random_seed = seed
        self.rng = np.random.default_rng(seed)
        self.close = data.bars.close
        self.t = self.start
        self.end = self.stop
        self.state = TwinState()

    def obs_at(self, t: int) -> np.ndarray:
        return build_obs(
            self.data.z[t],
            int(self.data.regime[t]),
            self.k,
            self.state,
            self.costs,
            float(self.close[t]),
            self.spec.clip,
        )

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = TwinState()
        if self.episode_len is not None and self.stop - self.start > self.episode_len + 1:
            self.t = int(self.rng.integers(self.start, self.stop - self.episode_len))
            self.end = self.t + self.episode_len + 1
        else:
            self.t = self.start
            self.end = self.stop
        return self.obs_at(self.t), {}

    def equity(self, c: float) -> float:
        return self.state.realized_pnl + unrealised_money(self.state, self.costs, c)

    def step(self, action):
        t = self.t
        c = float(self.close[t])
        before = self.equity(c)
        kind = apply_action(self.state, self.costs, int(action), c)
        self.t = t + 1
        after = self.equity(float(self.close[self.t]))
        reward = (after - before) / self.reward_scale
        truncated = self.t >= self.end - 1
        return self.obs_at(self.t), float(reward), False, truncated, {"transition": kind}
