"""Vectorized quaternion helpers in MuJoCo's (w, x, y, z) convention.

All functions take arrays of shape (..., 4) and broadcast over leading axes.
"""

from __future__ import annotations

import itertools

import numpy as np


def _hamilton_tensor() -> np.ndarray:
    """T with (a * b)_k = sum_ij a_i b_j T[i, j, k], stored as (4, 16) for a matmul."""
    t = np.zeros((4, 4, 4))
    signs = {  # (i, j) -> (k, sign) for the basis 1, i, j, k
        (0, 0): (0, 1), (0, 1): (1, 1), (0, 2): (2, 1), (0, 3): (3, 1),
        (1, 0): (1, 1), (1, 1): (0, -1), (1, 2): (3, 1), (1, 3): (2, -1),
        (2, 0): (2, 1), (2, 1): (3, -1), (2, 2): (0, -1), (2, 3): (1, 1),
        (3, 0): (3, 1), (3, 1): (2, 1), (3, 2): (1, -1), (3, 3): (0, -1),
    }
    for (i, j), (k, sign) in signs.items():
        t[i, j, k] = sign
    return t.reshape(4, 16)


_HAMILTON = _hamilton_tensor()


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b, then a).

    Two small matmuls rather than 16 elementwise products: several times
    faster for the few-row arrays of the env's hot path.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    left = (a @ _HAMILTON).reshape(*a.shape[:-1], 4, 4)
    return np.matmul(b[..., None, :], left)[..., 0, :]


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse for unit quaternions)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def norm(x: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (einsum: cheaper than linalg.norm on small arrays)."""
    return np.sqrt(np.einsum("...i,...i->...", x, x))


def quat_normalize(q: np.ndarray) -> np.ndarray:
    return q / norm(q)[..., None]


def quat_canonical(q: np.ndarray) -> np.ndarray:
    """The sign of q with w >= 0 (q and -q are the same rotation)."""
    return np.where(q[..., :1] < 0, -q, q)


def rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians, in [0, pi], of the rotation taking a to b.

    Computed as 2*atan2(|v|, |w|) of a^-1 b, which stays accurate near 0 and pi
    where 2*acos(|<a, b>|) loses precision.
    """
    d = quat_mul(quat_conj(a), b)
    v = norm(d[..., 1:])
    return 2.0 * np.arctan2(v, np.abs(d[..., 0]))


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * angle[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4); broadcasts."""
    q = np.asarray(q, dtype=np.float64)
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross for (..., 3) arrays without its axis bookkeeping (several times faster on small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def quat_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) of rotation vectors (..., 3) (axis times angle in radians)."""
    v = np.asarray(v, dtype=np.float64)
    angle = norm(v)
    half = 0.5 * angle
    # sin(a/2)/a -> 1/2 as a -> 0; the series keeps tiny rotations exact
    k = np.where(angle > 1e-8, np.sin(half) / np.where(angle > 1e-8, angle, 1.0), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half)[..., None], v * k[..., None]], axis=-1)


def random_quat(rng: np.random.Generator, n: int) -> np.ndarray:
    """n rotations uniform on SO(3) (normalized 4-D Gaussians), canonical sign."""
    q = rng.standard_normal((n, 4))
    return quat_canonical(quat_normalize(q))


def _axis_aligned_rotations() -> np.ndarray:
    """The 24 rotations mapping the cube onto itself, as quaternions."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs)):
                m[row, col] = s
            if np.linalg.det(m) > 0:
                mats.append(m)
    return np.stack([mat_to_quat(m) for m in mats])


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) to a canonical unit quaternion."""
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    return quat_canonical(quat_normalize(np.asarray(q)))


CUBE_SYMMETRIES = _axis_aligned_rotations()
"""(24, 4): the proper rotations of a cube; each puts some face on top."""
