"""Goal specs: where a task's goals sit in its observations, for TDM's goal-conditioned Q-function.

A TDM (Pong et al. 2018) learns Q(s, a, s_g, tau) for goals s_g in a goal space: its reward is the
vectorized distance -|f(s')_j - g_j|, one entry per goal dimension j, where f(s) is the goal that
state s achieves. An env is trainable with TDM once a `GoalSpec` in `SPECS` (keyed by env id)
says, for the flattened observation vector x the networks read (the spec's ``keys`` in order):

- ``achieved(x)``: f(s), the goal this state achieves (Reacher: the fingertip's xy);
- ``desired(x)``: the goal the env asks for (Reacher: the target's xy);
- ``substitute(x, g)``: x as it would read were the desired goal ``g`` (the relabelled goal), with
  every goal-derived entry recomputed, so that relabelled transitions look like real ones.

Every function works on (n, .) float32 batches. The L1 distance per dimension must mean something,
so each spec picks a goal representation where it does (see the hand's below).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from simreal.envs.hand_cube import POLICY_KEYS
from simreal.training.config import ConfigError
from simreal.utils.rotations import quat_canonical, quat_conj, quat_mul, quat_rotate

Layout = Mapping[str, slice]

# Gymnasium's Reacher-v5 observation (gymnasium/envs/mujoco/reacher_v5.py, ``_get_obs``): cos(q) (2),
# sin(q) (2), the target's xy = qpos[2:4] (2), the arm's joint velocities (2), fingertip - target (xy).
REACHER_TARGET = slice(4, 6)
REACHER_TIP_MINUS_TARGET = slice(8, 10)



@dataclasses.dataclass(frozen=True)
class GoalSpec:
    """One env's goals (see the module docstring); the functions read x through a key -> slice layout."""

    keys: tuple[str, ...]
    dim: int
    achieved: Callable[[np.ndarray, Layout], np.ndarray]
    desired: Callable[[np.ndarray, Layout], np.ndarray]
    substitute: Callable[[np.ndarray, np.ndarray, Layout], np.ndarray]
    description: str


class Goals:
    """A `GoalSpec` bound to an observation space: the layout of x and the three functions on batches."""

    def __init__(self, env_id: str, spec: GoalSpec, observation_space):
        spaces = observation_space.spaces
        missing = [k for k in spec.keys if k not in spaces]
        if missing:
            raise ConfigError(f"env.id: {env_id}'s goal spec reads observation key {missing[0]!r}, which the env "
                              f"does not have (keys: {', '.join(spaces)})")
        self.env_id, self.spec, self.keys, self.dim = env_id, spec, list(spec.keys), spec.dim
        self.layout, start = {}, 0
        for key in spec.keys:
            size = int(np.prod(spaces[key].shape, dtype=np.int64))
            self.layout[key] = slice(start, start + size)
            start += size
        self.obs_dim = start

    def achieved(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.spec.achieved(np.asarray(x), self.layout), np.float32)

    def desired(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.spec.desired(np.asarray(x), self.layout), np.float32)

    def substitute(self, x: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return np.array(self.spec.substitute(np.asarray(x), np.asarray(goal), self.layout), np.float32)


# ------------------------------------------------------------------ Reacher-v5
def _reacher_view(x: np.ndarray, at: Layout) -> np.ndarray:
    return x[:, at["observation"]]


def _reacher_achieved(x: np.ndarray, at: Layout) -> np.ndarray:
    o = _reacher_view(x, at)
    return o[:, REACHER_TIP_MINUS_TARGET] + o[:, REACHER_TARGET]


def _reacher_desired(x: np.ndarray, at: Layout) -> np.ndarray:
    return _reacher_view(x, at)[:, REACHER_TARGET]


def _reacher_substitute(x: np.ndarray, goal: np.ndarray, at: Layout) -> np.ndarray:
    out = np.array(x, np.float32)
    view = out[:, at["observation"]]  # a view: writes land in out
    tip = _reacher_achieved(x, at)
    view[:, REACHER_TARGET] = goal
    view[:, REACHER_TIP_MINUS_TARGET] = tip - goal
    return out


# ------------------------------------------------------------------ the hand cube
def quat_to_columns(q: np.ndarray) -> np.ndarray:
    """(n, 4) unit quaternions -> (n, 6): the first two columns of their rotation matrices (the body's x and y
    axes in the world frame), the continuous 6-D rotation representation of Zhou et al. 2019."""
    q = np.asarray(q, np.float64)
    ex = np.broadcast_to(np.array([1.0, 0.0, 0.0]), (*q.shape[:-1], 3))
    ey = np.broadcast_to(np.array([0.0, 1.0, 0.0]), (*q.shape[:-1], 3))
    return np.concatenate([quat_rotate(q, ex), quat_rotate(q, ey)], axis=-1)


def columns_to_quat(c: np.ndarray) -> np.ndarray:
    """(n, 6) -> (n, 4) canonical unit quaternions: Gram-Schmidt on the two columns, their cross product the third,
    then the matrix's quaternion (the largest of 4w^2, 4x^2, 4y^2, 4z^2 picks the well-conditioned formula)."""
    c = np.asarray(c, np.float64)
    a, b = c[:, :3], c[:, 3:]
    x = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b - (x * b).sum(1, keepdims=True) * x
    y = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    z = np.cross(x, y)
    (m00, m10, m20), (m01, m11, m21), (m02, m12, m22) = x.T, y.T, z.T
    cases = np.stack([  # row k: 4 q_k q for the case where q_k is the largest component
        np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1)], 1)
    pick = np.argmax(np.stack([cases[:, k, k] for k in range(4)], 1), axis=1)
    q = cases[np.arange(len(c)), pick]
    return quat_canonical(q / np.linalg.norm(q, axis=1, keepdims=True))


def _hand_achieved(x: np.ndarray, at: Layout) -> np.ndarray:
    return quat_to_columns(x[:, at["object_quat"]])


def _hand_desired(x: np.ndarray, at: Layout) -> np.ndarray:
    return quat_to_columns(x[:, at["goal_quat"]])


def _hand_substitute(x: np.ndarray, goal: np.ndarray, at: Layout) -> np.ndarray:
    out = np.array(x, np.float32)
    quat = columns_to_quat(goal)
    out[:, at["goal_quat"]] = quat
    # as the env derives it (hand_cube.HandCubeSim.observe): goal * conj(object), canonical
    out[:, at["relative_quat"]] = quat_canonical(quat_mul(quat, quat_conj(x[:, at["object_quat"]].astype(np.float64))))
    return out


SPECS: dict[str, GoalSpec] = {
    "Reacher-v5": GoalSpec(
        keys=("observation",), dim=2, achieved=_reacher_achieved, desired=_reacher_desired,
        substitute=_reacher_substitute,
        description="fingertip xy (observation[8:10] + observation[4:6]) -> target xy (observation[4:6])"),
    # The cube's orientation as the first two columns of its rotation matrix, not as a quaternion: a quaternion
    # canonicalized to w >= 0 jumps (by up to 2 per entry) where w crosses 0, i.e. at half-turns, which the
    # vertical goals (yaws uniform in [-pi, pi]) visit all the time; the matrix columns are continuous and unique,
    # each entry in [-1, 1], and their distance is zero only for the same rotation.
    # The networks read the keys a policy measures (POLICY_KEYS; the privileged ``state`` is left out).
    "simreal/HandCube-v0": GoalSpec(
        keys=POLICY_KEYS, dim=6, achieved=_hand_achieved, desired=_hand_desired, substitute=_hand_substitute,
        description="cube orientation (object_quat) -> goal orientation (goal_quat), as rotation-matrix columns x, y"),
}


def goal_spec(env_id: str) -> GoalSpec:
    """The registered spec of ``env_id``; a one-line `ConfigError` naming ``env.id`` for an env without one."""
    spec = SPECS.get(str(env_id))
    if spec is None:
        raise ConfigError(f"env.id: {env_id!r} has no TDM goal spec (known: {', '.join(sorted(SPECS))}); "
                          "add one to simreal.agents.tdm.goals.SPECS")
    return spec


def bind_goals(env_id: str, observation_space) -> Goals:
    return Goals(str(env_id), goal_spec(env_id), observation_space)
