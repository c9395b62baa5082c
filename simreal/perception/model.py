"""The pose CNN: one convolutional trunk shared by the cameras, spatial softmax, a fused head.

As Dactyl's estimator (OpenAI et al. 2018, Figure 6 and Table 12): each camera
image goes through the same trunk; a spatial softmax turns every feature map
into the expected (x, y) image position of its activation (a learned
keypoint), and with ``presence`` also its peak activation (whether the feature
is in view at all: a face of the cube hidden from a camera still has an
expected position); the keypoints of all cameras are concatenated (so the head knows
which camera saw what) and a fully connected head predicts the cube position
(3) and orientation. Smaller than Dactyl's, to train on CPUs.

The orientation output is either a quaternion (``rotation="quat"``: 4 numbers,
normalized) or the continuous 6D representation of Zhou et al. 2019
(``rotation="6d"``: two 3-vectors, Gram-Schmidt-orthonormalized into a rotation
matrix, then converted to a quaternion). A quaternion head must jump somewhere:
no continuous map covers every rotation with one sign choice, so some views sit
next to a discontinuity of the target. The 6D head has no such place.
Either way ``forward`` returns a unit quaternion (w, x, y, z) and the loss is
the same sign-invariant one.

Inputs are uint8 images (batch, cameras, H, W, 3); each image is standardized
to zero mean and unit variance first (as Dactyl does), which also undoes most
brightness and contrast changes. Positions are predicted relative to a center
point, in units of ``position_scale`` metres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


ROTATION_OUTPUTS = {"quat": 4, "6d": 6}


@dataclass(frozen=True)
class PoseNetConfig:
    """Architecture of the pose CNN (plain data, saved with checkpoints and exports)."""

    cameras: int = 3
    height: int = 64
    width: int = 64
    channels: tuple[int, ...] = (32, 32, 64, 64)
    strides: tuple[int, ...] = (2, 1, 2, 1)
    kernels: tuple[int, ...] = (5, 3, 3, 3)
    hidden: int = 256
    center: tuple[float, float, float] = (1.0, 0.87, 0.2)
    position_scale: float = 0.02
    presence: bool = True  # also feed each map's peak activation: is the feature seen at all?
    rotation: str = "quat"  # "quat" (4 outputs) or "6d" (6 outputs, Zhou et al. 2019); exports before 6d are quat

    def __post_init__(self):
        if not (len(self.channels) == len(self.strides) == len(self.kernels) >= 1):
            raise ValueError("PoseNetConfig: channels, strides and kernels need one entry per conv layer each")
        if self.rotation not in ROTATION_OUTPUTS:
            raise ValueError(f"PoseNetConfig: rotation must be one of {sorted(ROTATION_OUTPUTS)}, got {self.rotation!r}")
        if self.cameras < 1 or min(self.height, self.width) < 8 or self.hidden < 1 or self.position_scale <= 0:
            raise ValueError(f"PoseNetConfig: invalid sizes {self}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "PoseNetConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class SpatialSoftmax(nn.Module):
    """(N, C, H, W) feature maps -> (N, 2C) expected x and y of each map's softmax, in [-1, 1]."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.register_buffer("xs", torch.linspace(-1.0, 1.0, width), persistent=False)
        self.register_buffer("ys", torch.linspace(-1.0, 1.0, height), persistent=False)
        self.temperature = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = F.softmax(x.reshape(n, c, h * w) / self.temperature, dim=-1).reshape(n, c, h, w)
        ex = (p.sum(dim=2) * self.xs).sum(dim=-1)
        ey = (p.sum(dim=3) * self.ys).sum(dim=-1)
        return torch.cat([ex, ey], dim=1)


class PoseNet(nn.Module):
    """Cube pose from the cameras' images: ``forward(images) -> (position (N, 3) m, quat (N, 4))``."""

    def __init__(self, config: PoseNetConfig = PoseNetConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in, h, w = 3, config.height, config.width
        for c_out, k, s in zip(config.channels, config.kernels, config.strides):
            layers += [nn.Conv2d(c_in, c_out, k, s, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
            h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
        layers[-1] = nn.Identity()  # the softmax reads raw activations
        self.trunk = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax(h, w)
        features = config.cameras * (3 if config.presence else 2) * c_in
        self.head = nn.Sequential(nn.Linear(features, config.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(config.hidden, 3 + ROTATION_OUTPUTS[config.rotation]))
        self.register_buffer("center", torch.tensor(config.center, dtype=torch.float32), persistent=False)

    @staticmethod
    def standardize(images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, cams, H, W, 3) -> float (N * cams, 3, H, W), each image zero mean, unit variance."""
        x = images.flatten(0, 1).permute(0, 3, 1, 2).float()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
        return (x - mean) / std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        maps = self.trunk(self.standardize(images)).float()
        # under a bfloat16 autocast (PoseTrainer's run.precision) only the trunk runs in bfloat16: the
        # keypoints' expected positions and the regression head need float32's precision
        with torch.autocast(maps.device.type, enabled=False):
            features = self.keypoints(maps)
            if self.config.presence:
                features = torch.cat([features, maps.amax(dim=(2, 3))], dim=1)
            out = self.head(features.reshape(n, -1))
        position = self.center + self.config.position_scale * out[:, :3]
        if self.config.rotation == "6d":
            quat = matrix_to_quat(rotation_6d_to_matrix(out[:, 3:]))
        else:
            quat = F.normalize(out[:, 3:], dim=1)
        return position, quat


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(N, 6) -> (N, 3, 3) rotation matrices: the two 3-vectors, Gram-Schmidt, are the first two columns."""
    b1 = F.normalize(x[:, 0:3], dim=1)
    a2 = x[:, 3:6]
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=1, keepdim=True) * b1, dim=1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=2)


def matrix_to_quat(r: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z), differentiable.

    Shepperd's method: of the four ways to read the quaternion off the matrix, each sample uses the
    one whose square root is largest (never below 1/4, so values and gradients stay well-conditioned);
    the others are computed with a clamped root so that they stay finite.
    """
    r00, r01, r02 = r[:, 0, 0], r[:, 0, 1], r[:, 0, 2]
    r10, r11, r12 = r[:, 1, 0], r[:, 1, 1], r[:, 1, 2]
    r20, r21, r22 = r[:, 2, 0], r[:, 2, 1], r[:, 2, 2]
    roots = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], 1)
    s = 2.0 * roots.clamp_min(1e-6).sqrt()  # 4 |w|, 4 |x|, 4 |y|, 4 |z| in the four readings
    candidates = torch.stack([
        torch.stack([s[:, 0] / 4, (r21 - r12) / s[:, 0], (r02 - r20) / s[:, 0], (r10 - r01) / s[:, 0]], 1),
        torch.stack([(r21 - r12) / s[:, 1], s[:, 1] / 4, (r01 + r10) / s[:, 1], (r02 + r20) / s[:, 1]], 1),
        torch.stack([(r02 - r20) / s[:, 2], (r01 + r10) / s[:, 2], s[:, 2] / 4, (r12 + r21) / s[:, 2]], 1),
        torch.stack([(r10 - r01) / s[:, 3], (r02 + r20) / s[:, 3], (r12 + r21) / s[:, 3], s[:, 3] / 4], 1),
    ], 1)  # (N, reading, 4)
    best = roots.argmax(dim=1)
    quat = candidates[torch.arange(r.shape[0], device=r.device), best]
    return F.normalize(quat, dim=1)


def orientation_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - <q, q_hat>^2 = sin^2(angle / 2): zero for q_hat = +-q (a quaternion and its negative are one rotation)."""
    dot = (pred * target).sum(dim=-1)
    return 1.0 - dot * dot


def rotation_error_deg(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) of the rotation between two unit quaternions, sign-invariant."""
    dot = (pred * target).sum(dim=-1).abs().clamp(max=1.0)
    return torch.rad2deg(2.0 * torch.acos(dot))


LOSSES = ("squared", "distance")


def pose_loss(position: torch.Tensor, quat: torch.Tensor, true_position: torch.Tensor, true_quat: torch.Tensor,
              position_scale: float, rotation_weight: float, kind: str = "squared"
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Position error in units of position_scale plus rotation_weight x orientation error.

    ``kind="squared"``: squared distance plus ``orientation_loss`` (sin^2 of half the angle), whose
    gradients fade as errors shrink, and which minimize the mean squared error.
    ``kind="distance"``: distance plus sin of half the angle: gradients of constant size however
    small the error, which minimize the median error (what the benchmark reports) rather than the mean
    square, and give a few large errors (a hidden cube) less pull.
    """
    if kind not in LOSSES:
        raise ValueError(f"pose_loss: kind must be one of {', '.join(LOSSES)}, got {kind!r}")
    rot = orientation_loss(quat, true_quat)
    if kind == "distance":
        # smooth at zero: sqrt(x + eps) - sqrt(eps) keeps the gradient finite for a perfect prediction
        eps = 1e-8
        pos = (((position - true_position) / position_scale).pow(2).sum(dim=-1) + eps).sqrt() - eps ** 0.5
        rot = (rot.clamp_min(0.0) + eps).sqrt() - eps ** 0.5
    else:
        pos = ((position - true_position) / position_scale).pow(2).sum(dim=-1)
    pos, rot = pos.mean(), rot.mean()
    return pos + rotation_weight * rot, {"position": pos.detach(), "orientation": rot.detach()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["PoseNet", "PoseNetConfig", "SpatialSoftmax", "matrix_to_quat", "orientation_loss",
           "rotation_6d_to_matrix", "pose_loss", "LOSSES", "rotation_error_deg",
           "count_parameters"]
