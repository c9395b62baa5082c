import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from simreal.utils.rotations import (
    CUBE_SYMMETRIES,
    quat_canonical,
    quat_conj,
    quat_from_axis_angle,
    quat_mul,
    random_quat,
    rotation_angle,
)
from simreal.utils.seeding import make_rng

quats = arrays(np.float64, (4,), elements=st.floats(-1, 1)).filter(lambda q: np.linalg.norm(q) > 0.1)


def _scipy(q):
    return Rotation.from_quat(q / np.linalg.norm(q), scalar_first=True)


@settings(max_examples=200, deadline=None)
@given(quats, quats)
def test_quat_mul_matches_scipy(a, b):
    ours = quat_mul(a / np.linalg.norm(a), b / np.linalg.norm(b))
    theirs = (_scipy(a) * _scipy(b)).as_quat(scalar_first=True)
    assert abs(abs(np.dot(ours, theirs)) - 1.0) < 1e-9


@settings(max_examples=300, deadline=None)
@given(quats, quats)
def test_rotation_angle_matches_scipy(a, b):
    expected = (_scipy(a).inv() * _scipy(b)).magnitude()
    assert np.isclose(rotation_angle(a / np.linalg.norm(a), b / np.linalg.norm(b)), expected, atol=1e-7)


def test_rotation_angle_is_sign_invariant_and_vectorized(rng):
    a, b = random_quat(rng, 50), random_quat(rng, 50)
    np.testing.assert_allclose(rotation_angle(a, b), rotation_angle(-a, b), atol=1e-12)
    np.testing.assert_allclose(rotation_angle(a, b), [rotation_angle(x, y) for x, y in zip(a, b)])
    assert np.all(rotation_angle(a, a) < 1e-7)


def test_axis_angle_and_conjugate():
    q = quat_from_axis_angle((0, 0, 1), np.pi / 2)
    np.testing.assert_allclose(_scipy(q).as_rotvec(), [0, 0, np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(quat_mul(q, quat_conj(q)), [1, 0, 0, 0], atol=1e-12)
    assert np.isclose(rotation_angle(np.array([1.0, 0, 0, 0]), q), np.pi / 2)


def test_cube_symmetries_are_the_24_axis_aligned_rotations():
    assert CUBE_SYMMETRIES.shape == (24, 4)
    mats = _scipy_batch(CUBE_SYMMETRIES).as_matrix()
    assert np.allclose(np.abs(mats).sum(axis=1), 1.0)  # permutation matrices with signs
    dists = rotation_angle(CUBE_SYMMETRIES[:, None], CUBE_SYMMETRIES[None])
    assert np.all(dists[~np.eye(24, dtype=bool)] > 1.5)  # all distinct (>= 90 degrees apart)


def _scipy_batch(q):
    return Rotation.from_quat(q, scalar_first=True)


def test_random_quat_is_uniform_on_so3(rng):
    q = random_quat(rng, 20000)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
    assert np.all(q[:, 0] >= 0)
    # the angle of a uniform rotation has density (1 - cos t) / pi on [0, pi]: mean pi/2 + 2/pi
    angles = rotation_angle(np.array([1.0, 0, 0, 0]), q)
    assert abs(angles.mean() - (np.pi / 2 + 2 / np.pi)) < 0.02
    np.testing.assert_allclose(quat_canonical(-q), q)


def test_named_streams_are_deterministic_and_independent():
    a1, a2 = make_rng(7, "task").random(5), make_rng(7, "task").random(5)
    np.testing.assert_array_equal(a1, a2)
    assert not np.allclose(make_rng(7, "task").random(5), make_rng(7, "noise").random(5))
    assert not np.allclose(make_rng(7, "task").random(5), make_rng(8, "task").random(5))
