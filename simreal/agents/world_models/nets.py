"""Network pieces of the world-model agents: MLPs, a layer-norm GRU, image and vector
encoders and decoders that fuse several observation keys, and output heads.

Images enter as uint8 HxWx3 and are scaled to [-0.5, 0.5]; the image decoder
predicts in that space. Vector keys are concatenated (in the order given) and,
for DreamerV3, passed through `symlog` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from simreal.agents.world_models.distributions import TwoHot, UnitGaussian, symexp, symexp_bins, symlog
from simreal.utils.keys import STATE_KEY

Tensor = torch.Tensor

ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"model.act: expected one of {', '.join(ACTIVATIONS)}, got {name!r}") from None


def mlp(in_dim: int, units: int, layers: int, act: str, norm: bool) -> nn.Sequential:
    """``layers`` x (Linear -> [LayerNorm] -> act); output width ``units`` (``in_dim`` when layers == 0)."""
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        modules.append(nn.Linear(dim, units, bias=not norm))
        if norm:
            modules.append(nn.LayerNorm(units, eps=1e-3))
        modules.append(activation(act))
        dim = units
    return nn.Sequential(*modules)


class LayerNormGRUCell(nn.Module):
    """DreamerV2/V3's GRU: one linear over [input, state], layer norm, update gate biased by -1."""

    def __init__(self, in_dim: int, size: int, update_bias: float = -1.0):
        super().__init__()
        self.size = size
        self.update_bias = update_bias
        self.linear = nn.Linear(in_dim + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        parts = self.norm(self.linear(torch.cat([x, state], -1)))
        reset, cand, update = parts.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * state


class ChannelNorm(nn.Module):
    """Layer norm over the channels of an NCHW tensor."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _conv_stages(height: int, width: int) -> int:
    stages = 0
    while height > 4 and width > 4 and height % 2 == 0 and width % 2 == 0:
        height, width, stages = height // 2, width // 2, stages + 1
    if height != 4 or width != 4:
        raise ValueError(f"image size {height}x{width}: pixels must be 4 * 2^k on each side "
                         "(e.g. 64x64) for the CNN encoder/decoder")
    return stages


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions down to 4x4, channels depth * (1, 2, 4, 8, ...), flattened."""

    def __init__(self, shape: tuple[int, int, int], depth: int, act: str, norm: bool):
        super().__init__()
        height, width, channels = shape
        stages = _conv_stages(height, width)
        layers: list[nn.Module] = []
        in_ch = channels
        for i in range(stages):
            out_ch = depth * 2 ** i
            layers.append(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=not norm))
            if norm:
                layers.append(ChannelNorm(out_ch))
            layers.append(activation(act))
            in_ch = out_ch
        self.net = nn.Sequential(*layers)
        self.out_dim = in_ch * 16

    def forward(self, image: Tensor) -> Tensor:
        """``image`` (..., H, W, C) in [-0.5, 0.5] -> (..., out_dim)."""
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).permute(0, 3, 1, 2)
        return self.net(x).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """A linear layer to 4x4 feature maps, then stride-2 transposed convolutions up to HxWxC."""

    def __init__(self, in_dim: int, shape: tuple[int, int, int], depth: int, act: str, norm: bool):
        super().__init__()
        height, width, channels = shape
        stages = _conv_stages(height, width)
        self.shape = shape
        self.first_ch = depth * 2 ** (stages - 1)
        self.linear = nn.Linear(in_dim, self.first_ch * 16)
        layers: list[nn.Module] = []
        in_ch = self.first_ch
        for i in range(stages):
            last = i == stages - 1
            out_ch = channels if last else in_ch // 2
            layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=last or not norm))
            if not last:
                if norm:
                    layers.append(ChannelNorm(out_ch))
                layers.append(activation(act))
            in_ch = out_ch
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        x = self.linear(feat.reshape(-1, feat.shape[-1])).reshape(-1, self.first_ch, 4, 4)
        x = self.net(x).permute(0, 2, 3, 1)
        return x.reshape(*lead, *self.shape)


@dataclass(frozen=True)
class ObsLayout:
    """Which observation keys the model reads: vector keys (concatenated) and at most one image key."""

    vector_keys: tuple[str, ...]
    vector_sizes: tuple[int, ...]
    image_key: str | None
    image_shape: tuple[int, int, int] | None

    @property
    def vector_dim(self) -> int:
        return int(sum(self.vector_sizes))

    @classmethod
    def from_space(cls, space, keys: Sequence[str] | None) -> "ObsLayout":
        """Layout of a gymnasium Dict space; ``keys=None`` takes every key except the privileged ``state``."""
        available = list(space.spaces)
        chosen = list(keys) if keys else [k for k in available if k != STATE_KEY]
        vector, sizes, image, image_shape = [], [], None, None
        for key in chosen:
            if key not in space.spaces:
                raise ValueError(f"model.keys: observation key {key!r} not in the env's keys {available}")
            sub = space.spaces[key]
            if sub.dtype == np.uint8 and len(sub.shape) == 3:
                if image is not None:
                    raise ValueError(f"model.keys: one image key at most, got {image!r} and {key!r}")
                image, image_shape = key, tuple(int(s) for s in sub.shape)
            elif len(sub.shape) == 1:
                vector.append(key)
                sizes.append(int(sub.shape[0]))
            else:
                raise ValueError(f"model.keys: key {key!r} has shape {sub.shape}; expected a vector or an HxWx3 image")
        if not vector and image is None:
            raise ValueError(f"model.keys: no observation keys selected among {available}")
        return cls(tuple(vector), tuple(sizes), image, image_shape)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.vector_keys + ((self.image_key,) if self.image_key else ())


def preprocess(obs: Mapping[str, Tensor], layout: ObsLayout) -> dict[str, Tensor]:
    """``{"vector": concatenated float vectors, "image": float image in [-0.5, 0.5]}`` (present parts only)."""
    out = {}
    if layout.vector_keys:
        out["vector"] = torch.cat([obs[k].float() for k in layout.vector_keys], -1)
    if layout.image_key:
        out["image"] = obs[layout.image_key].float() / 255.0 - 0.5
    return out


class MultiEncoder(nn.Module):
    """Vector keys through an MLP (symlog first when asked), the image through a CNN; outputs concatenated."""

    def __init__(self, layout: ObsLayout, units: int, layers: int, cnn_depth: int, act: str, norm: bool,
                 symlog_inputs: bool):
        super().__init__()
        self.layout = layout
        self.symlog_inputs = symlog_inputs
        self.out_dim = 0
        if layout.vector_keys:
            self.vector = mlp(layout.vector_dim, units, max(layers, 1), act, norm)
            self.out_dim += units
        if layout.image_key:
            self.image = ConvEncoder(layout.image_shape, cnn_depth, act, norm)
            self.out_dim += self.image.out_dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        parts = []
        if self.layout.vector_keys:
            vector = inputs["vector"]
            parts.append(self.vector(symlog(vector) if self.symlog_inputs else vector))
        if self.layout.image_key:
            parts.append(self.image(inputs["image"]))
        return torch.cat(parts, -1)


class MultiDecoder(nn.Module):
    """Reconstructs the encoded keys from model features; ``loss`` is per (batch, time) element.

    Loss kinds: ``gaussian`` (unit-variance Gaussian NLL without its constant,
    ``0.5 * sum (pred - x)^2``; V1, V2), ``mse`` (``sum (pred - x)^2``; V3
    images) and ``symlog_mse`` (``sum (pred - symlog(x))^2``; V3 vectors).
    """

    LOSSES = ("gaussian", "mse", "symlog_mse")

    def __init__(self, in_dim: int, layout: ObsLayout, units: int, layers: int, cnn_depth: int, act: str,
                 norm: bool, vector_loss: str, image_loss: str):
        super().__init__()
        for name, value in (("model.vector_decoder", vector_loss), ("model.image_decoder", image_loss)):
            if value not in self.LOSSES:
                raise ValueError(f"{name}: expected one of {', '.join(self.LOSSES)}, got {value!r}")
        self.layout = layout
        self.vector_loss, self.image_loss = vector_loss, image_loss
        if layout.vector_keys:
            self.vector = nn.Sequential(mlp(in_dim, units, layers, act, norm),
                                        nn.Linear(units if layers else in_dim, layout.vector_dim))
        if layout.image_key:
            self.image = ConvDecoder(in_dim, layout.image_shape, cnn_depth, act, norm)

    def forward(self, feat: Tensor) -> dict[str, Tensor]:
        """Predictions in the decoder's space (symlog for ``symlog_mse`` vectors)."""
        out = {}
        if self.layout.vector_keys:
            out["vector"] = self.vector(feat)
        if self.layout.image_key:
            out["image"] = self.image(feat)
        return out

    def loss(self, feat: Tensor, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        pred = self(feat)
        losses = {}
        if self.layout.vector_keys:
            losses["vector"] = _recon_loss(pred["vector"], inputs["vector"], self.vector_loss).sum(-1)
        if self.layout.image_key:
            losses["image"] = _recon_loss(pred["image"], inputs["image"], self.image_loss).sum((-3, -2, -1))
        return losses

    def vector_prediction(self, pred: Tensor) -> Tensor:
        """Decoder vector output mapped back to observation units."""
        if self.vector_loss == "symlog_mse":
            return symexp(pred)
        return pred


def _recon_loss(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    if kind == "symlog_mse":
        return (pred - symlog(target)) ** 2
    error = (pred - target) ** 2
    return 0.5 * error if kind == "gaussian" else error


class Head(nn.Module):
    """An MLP with a linear output layer; ``zero_init`` zeroes that layer (DreamerV3's reward and critic)."""

    def __init__(self, in_dim: int, out_dim: int, units: int, layers: int, act: str, norm: bool,
                 zero_init: bool = False):
        super().__init__()
        self.body = mlp(in_dim, units, layers, act, norm)
        self.out = nn.Linear(units if layers else in_dim, out_dim)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


class ScalarHead(nn.Module):
    """A head predicting one real number: two-hot over symexp bins (V3) or a unit Gaussian (V1, V2).

    ``forward`` returns a distribution with ``mean`` and ``log_prob(target)``.
    """

    def __init__(self, in_dim: int, kind: str, bins: int, units: int, layers: int, act: str, norm: bool,
                 zero_init: bool):
        super().__init__()
        if kind not in ("twohot", "gaussian"):
            raise ValueError(f"scalar head: expected twohot or gaussian, got {kind!r}")
        self.kind = kind
        self.net = Head(in_dim, bins if kind == "twohot" else 1, units, layers, act, norm, zero_init)
        self.register_buffer("bins", symexp_bins(bins) if kind == "twohot" else torch.zeros(0), persistent=False)
        self.symmetric = kind == "twohot" and bins % 2 == 1   # symexp_bins mirrors odd counts exactly

    def forward(self, x: Tensor):
        out = self.net(x)
        if self.kind == "twohot":
            return TwoHot(out, self.bins, self.symmetric)
        return UnitGaussian(out.squeeze(-1))
