"""A trained pose estimator as one file, and the object that runs it.

The export is a plain ``torch.save`` dict (loads with ``weights_only=True``)::

    {"format": "simreal-pose-estimator", "version": 1,
     "net": {...},                 # PoseNetConfig as plain data
     "weights": {name: tensor},
     "render": {"cameras": [...], "height": H, "width": W, "antialias": S,    # how images must be made
                "zoom": Z},                                                     # (exports before zoom: 1)
     "info": {...}}                # training step, randomization, held-out errors
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import numpy as np
import torch

from simreal.perception.model import PoseNet, PoseNetConfig
from simreal.utils.finite import NonFiniteError, non_finite_tensor
from simreal.training.run import RunDirError, load_weights_only

FORMAT = "simreal-pose-estimator"
VERSION = 1
EXPORT_NAME = "pose_estimator.pt"


def save_estimator(path: str | os.PathLike, net: PoseNet, render: Mapping[str, Any],
                   info: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Write an estimator export atomically; refuses (`NonFiniteError`) NaN or inf weights."""
    path = pathlib.Path(path)
    bad = non_finite_tensor(net.state_dict())
    if bad is not None:
        raise NonFiniteError(f"export {path}: weight {bad[0]!r} holds {bad[1]}; refusing to write non-finite "
                             "weights (the file was left as it was)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "net": net.config.to_dict(),
               "weights": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
               "render": dict(render), "info": dict(info or {})}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


class PoseEstimator:
    """Runs an exported pose CNN: ``predict(images) -> (position, quat)`` as numpy arrays."""

    def __init__(self, net: PoseNet, render: Mapping[str, Any], info: Mapping[str, Any] | None = None,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.render = {"zoom": 1.0, **render}  # exports from before zoom are unzoomed
        self.info = dict(info or {})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "PoseEstimator":
        """An estimator export (a file, or a run directory holding ``pose_estimator.pt``)."""
        path = pathlib.Path(path)
        if path.is_dir():
            path = path / EXPORT_NAME
        data = load_weights_only(path)
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise RunDirError(f"{path}: not a {FORMAT} v{VERSION} file (train one with `simreal pose train`)")
        bad = non_finite_tensor(data.get("weights") or {})
        if bad is not None:
            raise NonFiniteError(f"{path}: weight {bad[0]!r} holds {bad[1]}; refusing an estimator with "
                                 "non-finite weights (its training diverged)")
        net = PoseNet(PoseNetConfig.from_dict(data["net"]))
        net.load_state_dict(data["weights"])
        return cls(net, data["render"], data.get("info"), device)

    @property
    def image_shape(self) -> tuple[int, int, int, int]:
        """(cameras, height, width, 3) of the images ``predict`` takes."""
        r = self.render
        return (len(r["cameras"]), int(r["height"]), int(r["width"]), 3)

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """images uint8 (N, cameras, H, W, 3) -> position (N, 3) in metres, quat (N, 4) with w >= 0."""
        images = np.asarray(images)
        if images.ndim == 4:
            images = images[None]
        if images.shape[1:] != self.image_shape or images.dtype != np.uint8:
            raise ValueError(f"pose estimator: expected uint8 images of shape (N, {', '.join(map(str, self.image_shape))}),"
                             f" got {images.dtype} {images.shape}")
        positions, quats = [], []
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(self.device)
            position, quat = self.net(chunk)
            quat = torch.where(quat[:, :1] < 0, -quat, quat)
            positions.append(position.cpu().numpy())
            quats.append(quat.cpu().numpy())
        return np.concatenate(positions).astype(np.float64), np.concatenate(quats).astype(np.float64)
