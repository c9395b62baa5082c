"""The pose CNN's parts: sign-invariant orientation loss, spatial softmax, shapes."""

import math

import numpy as np
import pytest
import torch

from simreal.perception.evaluate import pose_errors, summarize
from simreal.perception.model import (
    PoseNet,
    PoseNetConfig,
    SpatialSoftmax,
    matrix_to_quat,
    orientation_loss,
    pose_loss,
    rotation_6d_to_matrix,
    rotation_error_deg,
)
from simreal.utils.rotations import quat_from_axis_angle, random_quat


def test_orientation_loss_ignores_the_quaternion_sign():
    q = torch.tensor(random_quat(np.random.default_rng(0), 64), dtype=torch.float32)
    p = torch.tensor(random_quat(np.random.default_rng(1), 64), dtype=torch.float32)
    torch.testing.assert_close(orientation_loss(p, q), orientation_loss(-p, q))
    torch.testing.assert_close(orientation_loss(p, q), orientation_loss(p, -q))
    assert orientation_loss(q, -q).abs().max() < 1e-6 and orientation_loss(q, q).abs().max() < 1e-6
    torch.testing.assert_close(rotation_error_deg(p, q), rotation_error_deg(-p, q))


@pytest.mark.parametrize("degrees", [1.0, 4.0, 30.0, 90.0, 180.0])
def test_orientation_loss_and_error_golden_values(degrees):
    a = quat_from_axis_angle(np.array([0.3, -0.2, 0.9]), np.array(0.7))
    b = np.asarray(quat_from_axis_angle(np.array([[1.0, 2.0, -0.5]]), np.array([math.radians(degrees)])))[0]
    from simreal.utils.rotations import quat_mul

    rotated = quat_mul(a, b)
    qa, qb = torch.tensor(a[None], dtype=torch.float64), torch.tensor(rotated[None], dtype=torch.float64)
    assert float(rotation_error_deg(qa, qb)) == pytest.approx(degrees, abs=1e-4)
    assert float(orientation_loss(qa, qb)) == pytest.approx(math.sin(math.radians(degrees) / 2) ** 2, abs=1e-9)
    _, deg = pose_errors(np.zeros((1, 3)), a[None], np.zeros((1, 3)), -rotated[None])
    assert deg[0] == pytest.approx(degrees, abs=1e-4)


def test_pose_loss_units_and_summary():
    position = torch.tensor([[0.0, 0.0, 0.0]])
    quat = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    loss, parts = pose_loss(position, quat, torch.tensor([[0.02, 0.0, 0.0]]), -quat, position_scale=0.02,
                            rotation_weight=10.0)
    assert float(parts["position"]) == pytest.approx(1.0) and float(parts["orientation"]) == pytest.approx(0.0)
    assert float(loss) == pytest.approx(1.0)
    mm, deg = pose_errors(np.array([[0.0, 0.0, 0.0], [0.003, 0.004, 0.0]]), np.tile([1.0, 0, 0, 0], (2, 1)),
                          np.zeros((2, 3)), np.tile([1.0, 0, 0, 0], (2, 1)))
    np.testing.assert_allclose(mm, [0.0, 5.0])
    report = summarize(mm, deg)
    assert report["n"] == 2 and report["position_mm"]["median"] == 2.5 and report["rotation_deg"]["p90"] == 0.0


def test_distance_loss_has_constant_size_gradients():
    true_position = torch.zeros(1, 3)
    true_quat = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    half = math.radians(10.0) / 2
    quat = torch.tensor([[math.cos(half), math.sin(half), 0.0, 0.0]])
    _, parts = pose_loss(torch.tensor([[0.0, 0.03, 0.04]]), quat, true_position, true_quat, position_scale=0.01,
                         rotation_weight=1.0, kind="distance")
    assert float(parts["position"]) == pytest.approx(5.0, abs=1e-3)  # 5 cm in units of 1 cm, not squared
    assert float(parts["orientation"]) == pytest.approx(math.sin(half), abs=1e-3)
    grads = []
    for offset in (1e-3, 1e-5):  # the gradient's size does not fade with the error (it does for "squared")
        position = torch.tensor([[offset, 0.0, 0.0]], requires_grad=True)
        loss, _ = pose_loss(position, true_quat, true_position, true_quat, 0.01, 1.0, kind="distance")
        loss.backward()
        grads.append(float(position.grad.norm()))
    assert grads[1] == pytest.approx(grads[0], rel=0.05)
    exact = torch.zeros(1, 3, requires_grad=True)
    pose_loss(exact, true_quat, true_position, true_quat, 0.01, 1.0, kind="distance")[0].backward()
    assert torch.isfinite(exact.grad).all()
    with pytest.raises(ValueError, match="kind must be one of"):
        pose_loss(exact, true_quat, true_position, true_quat, 0.01, 1.0, kind="huber")


def test_spatial_softmax_finds_the_peak():
    maps = torch.full((1, 2, 9, 11), -50.0)
    maps[0, 0, 0, 0] = 50.0  # top left
    maps[0, 1, 4, 10] = 50.0  # middle row, right edge
    out = SpatialSoftmax(9, 11)(maps)
    torch.testing.assert_close(out, torch.tensor([[-1.0, 1.0, -1.0, 0.0]]), atol=1e-4, rtol=0)


def test_posenet_shapes_and_unit_quaternions():
    torch.manual_seed(0)
    net = PoseNet(PoseNetConfig(cameras=3, height=24, width=32, channels=(8, 8), strides=(2, 2), kernels=(3, 3),
                                hidden=16))
    images = torch.randint(0, 255, (5, 3, 24, 32, 3), dtype=torch.uint8)
    position, quat = net(images)
    assert position.shape == (5, 3) and quat.shape == (5, 4)
    torch.testing.assert_close(quat.norm(dim=1), torch.ones(5))
    assert (position - torch.tensor(net.config.center)).abs().max() < 0.5
    again = PoseNetConfig.from_dict(net.config.to_dict())
    assert again == net.config
    with pytest.raises(ValueError, match="one entry per conv layer"):
        PoseNetConfig(channels=(8,), strides=(2, 2), kernels=(3,))


def _matrices(quats: np.ndarray) -> np.ndarray:
    import mujoco

    out = np.zeros((len(quats), 9))
    for q, m in zip(quats, out):
        mujoco.mju_quat2Mat(m, q)
    return out.reshape(-1, 3, 3)


def test_matrix_to_quat_inverts_mujoco_on_every_branch():
    """Random rotations plus half-turns about x, y, z and identity: each of Shepperd's four readings is used."""
    quats = np.concatenate([random_quat(np.random.default_rng(0), 64),
                            np.eye(4), quat_from_axis_angle(np.eye(3), np.full(3, math.radians(179.0)))])
    got = matrix_to_quat(torch.tensor(_matrices(quats))).double()
    dots = (got * torch.tensor(quats)).sum(dim=1).abs()
    torch.testing.assert_close(dots, torch.ones(len(quats), dtype=torch.float64), atol=1e-9, rtol=0)


def test_6d_output_gives_rotations_and_finite_gradients():
    torch.manual_seed(0)
    x = torch.randn(256, 6, dtype=torch.float64, requires_grad=True)
    r = rotation_6d_to_matrix(x)
    eye = torch.eye(3, dtype=torch.float64).expand(256, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(256, dtype=torch.float64))
    target = torch.tensor(random_quat(np.random.default_rng(1), 256))
    orientation_loss(matrix_to_quat(r), target).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_posenet_6d_head_returns_unit_quaternions_and_round_trips_its_config():
    config = PoseNetConfig(cameras=2, height=16, width=16, channels=(4,), strides=(2,), kernels=(3,), hidden=8,
                           rotation="6d")
    net = PoseNet(config)
    assert net.head[-1].out_features == 9
    _, quat = net(torch.randint(0, 255, (3, 2, 16, 16, 3), dtype=torch.uint8))
    torch.testing.assert_close(quat.norm(dim=1), torch.ones(3))
    assert PoseNetConfig.from_dict(config.to_dict()) == config
    legacy = {k: v for k, v in PoseNetConfig().to_dict().items() if k != "rotation"}   # exports before 6d
    assert PoseNetConfig.from_dict(legacy).rotation == "quat"
    with pytest.raises(ValueError, match="rotation must be one of"):
        PoseNetConfig(rotation="euler")
