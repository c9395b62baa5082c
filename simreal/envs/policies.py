"""Scripted policies for demos, benchmarks and tests (no learning)."""

from __future__ import annotations

import numpy as np

from simreal.envs.hand_cube import STATE_KEY, HandCubeSim
from simreal.utils.seeding import make_rng


class HoldPolicy:
    """Drive the actuated joints toward a fixed pose, plus optional Gaussian action noise.

    Reads joint angles from the privileged ``state`` observation, so it works on
    single observations and on (n, ...) batches alike. With ``control="relative"``
    a zero action lets the hand sag under gravity; this policy instead commands
    ``pose - q`` (in units of half the control range), which holds the pose.

    Args:
        sim: the env's :class:`HandCubeSim` (``env.unwrapped.sim`` or ``venv.sim``).
        pose: target per actuator (rad); default: the hold pose of a fresh reset.
        noise: std of Gaussian noise added to actions in [-1, 1] units.
        seed: seed of the noise stream.
    """

    def __init__(self, sim: HandCubeSim, pose: np.ndarray | None = None, noise: float = 0.0,
                 seed: int | None = None):
        self.config = sim.config
        self.half = sim.ctrl_half
        self.mid = sim.ctrl_mid
        default = np.clip(sim.model.qpos0[sim.act_qadr], sim.ctrl_low, sim.ctrl_high)
        self.pose = np.asarray(default if pose is None else pose, dtype=np.float64)
        if self.pose.shape != (sim.nu,):
            raise ValueError(f"HoldPolicy: pose must have {sim.nu} entries; got shape {self.pose.shape}")
        self.joint_index = sim.state_layout["hand_qpos"].start + sim.act_in_hand
        self.noise = float(noise)
        self.rng = make_rng(seed, "hold_policy")

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        q = obs[STATE_KEY][..., self.joint_index]
        if self.config.control == "relative":
            a = (self.pose - q) / self.half
        else:
            a = np.broadcast_to((self.pose - self.mid) / self.half, q.shape).copy()
        if self.noise:
            a = a + self.noise * self.rng.standard_normal(a.shape)
        a = np.clip(a, -1.0, 1.0)
        if self.config.action == "discrete":
            return np.rint((a + 1.0) * 0.5 * (self.config.n_bins - 1)).astype(np.int64)
        return a.astype(np.float32)
