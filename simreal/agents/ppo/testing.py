"""Small Gymnasium envs that check what recurrent PPO must get right (used by the tests and the CLI).

``CueRecall``: a cue (+1 or -1) is shown at the first step only; after a few
blank steps the agent must answer with the cue. Reward +1 for the right
answer, -1 for the wrong one, at the last step only, so a memoryless policy
scores 0 on average and an LSTM that remembers scores 1. The privileged
``state`` key shows the cue at every step (and the time), so an asymmetric
critic can predict the return while the actor must remember.

With ``random_length`` the blank stretch varies per episode, so episode starts
fall anywhere inside a rollout; an actor whose LSTM state leaked from the
previous episode (whose cue is random and independent) would see it in its
answer.

Registered ids (``gymnasium.make`` imports this module first)::

    simreal.agents.ppo.testing:CueRecall-v0            Discrete(2) answer
    simreal.agents.ppo.testing:CueRecallContinuous-v0  Box answer: the sign of a[0]
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CueRecallEnv(gym.Env):
    """Remember a cue over ``delay`` blank steps (plus up to ``random_length`` more), then answer it."""

    metadata = {"render_modes": []}

    def __init__(self, delay: int = 3, random_length: int = 0, continuous: bool = False):
        if delay < 1 or random_length < 0:
            raise ValueError(f"CueRecall: delay must be >= 1 and random_length >= 0, got {delay}, {random_length}")
        self.delay, self.random_length, self.continuous = int(delay), int(random_length), bool(continuous)
        self.observation_space = gym.spaces.Dict({
            "observation": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),  # [cue at t=0 else 0, 1 at the query]
            "state": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),        # privileged: [cue, steps left / max]
        })
        self.action_space = (gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2))
        self._cue = 1.0
        self._t = 0
        self._length = self.delay + 1

    def _obs(self) -> dict[str, np.ndarray]:
        shown = self._cue if self._t == 0 else 0.0
        query = 1.0 if self._t == self._length - 1 else 0.0
        left = (self._length - 1 - self._t) / (self.delay + self.random_length)
        return {"observation": np.array([shown, query], np.float32), "state": np.array([self._cue, left], np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._cue = 1.0 if self.np_random.random() < 0.5 else -1.0
        extra = int(self.np_random.integers(0, self.random_length + 1)) if self.random_length else 0
        self._length = self.delay + extra + 1
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        if self._t < self._length - 1:
            self._t += 1
            return self._obs(), 0.0, False, False, {}
        answer = (1.0 if float(np.asarray(action).ravel()[0]) > 0 else -1.0) if self.continuous \
            else (1.0 if int(np.asarray(action).ravel()[0]) == 1 else -1.0)
        reward = 1.0 if answer == self._cue else -1.0
        return self._obs(), reward, True, False, {}


for _id, _kwargs in (("CueRecall-v0", {}), ("CueRecallContinuous-v0", {"continuous": True})):
    if _id not in gym.registry:
        gym.register(_id, entry_point=CueRecallEnv, kwargs=_kwargs)
