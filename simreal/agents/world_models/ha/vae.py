"""V, the vision model of World Models: a convolutional VAE from 64x64 RGB frames to z.

Architecture of Ha & Schmidhuber (2018), appendix: four 4x4 stride-2 convolutions
(32, 64, 128, 256 channels at ``depth`` 32, ReLU, no padding: 64 -> 31 -> 14 -> 6 -> 2),
flattened (2 x 2 x 256 = 1024) into the mean and log-variance of a diagonal
Gaussian over z (32 dims for CarRacing); the decoder maps z to a 1 x 1 x 1024
feature map and four transposed convolutions (5x5, 5x5, 6x6, 6x6, stride 2:
1 -> 5 -> 13 -> 30 -> 64) back to the frame, with a sigmoid output.

Frames enter as uint8 HxWx3 and are scaled to [0, 1]. The loss is the authors':
the squared error summed over pixels plus the KL to N(0, I) summed over z and
clipped from below at ``kl_tolerance * z_size`` (free bits), both averaged over
the batch.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor

IMAGE_SHAPE = (64, 64, 3)


def check_image_shape(shape: tuple[int, ...]) -> None:
    if tuple(shape) != IMAGE_SHAPE:
        raise ValueError(f"worldmodels: the VAE reads 64x64 RGB frames (the paper's size); got image shape "
                         f"{tuple(shape)} (set env.pixels: [64, 64])")


def to_float_image(image: Tensor) -> Tensor:
    """uint8 (..., 64, 64, 3) -> float (N, 3, 64, 64) in [0, 1], leading dims flattened."""
    x = image.reshape(-1, *IMAGE_SHAPE).float() / 255.0
    return x.permute(0, 3, 1, 2)


class VAEEncoder(nn.Module):
    """Frames -> (mu, logvar) of q(z | frame)."""

    def __init__(self, z_size: int = 32, depth: int = 32):
        super().__init__()
        self.z_size = z_size
        channels = [3, depth, 2 * depth, 4 * depth, 8 * depth]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        flat = 8 * depth * 2 * 2
        self.mu = nn.Linear(flat, z_size)
        self.logvar = nn.Linear(flat, z_size)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 frames (..., 64, 64, 3) -> mu, logvar of shape (..., z_size)."""
        lead = image.shape[:-3]
        h = self.conv(to_float_image(image)).flatten(1)
        return self.mu(h).reshape(*lead, -1), self.logvar(h).reshape(*lead, -1)


class VAEDecoder(nn.Module):
    """z -> frame probabilities (N, 3, 64, 64) in [0, 1]."""

    def __init__(self, z_size: int = 32, depth: int = 32):
        super().__init__()
        self.width = 32 * depth                       # 1024 at the paper's depth
        self.linear = nn.Linear(z_size, self.width)
        channels = [self.width, 4 * depth, 2 * depth, depth, 3]
        kernels = [5, 5, 6, 6]
        layers: list[nn.Module] = []
        for i, (c_in, c_out, k) in enumerate(zip(channels[:-1], channels[1:], kernels)):
            layers.append(nn.ConvTranspose2d(c_in, c_out, k, 2))
            layers.append(nn.ReLU() if i < len(kernels) - 1 else nn.Sigmoid())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.linear(z.reshape(-1, z.shape[-1])).reshape(-1, self.width, 1, 1))


class ConvVAE(nn.Module):
    def __init__(self, z_size: int = 32, depth: int = 32):
        super().__init__()
        self.encoder = VAEEncoder(z_size, depth)
        self.decoder = VAEDecoder(z_size, depth)

    def forward(self, image: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction (N, 3, 64, 64), mu and logvar, with z drawn by the reparameterization trick."""
        mu, logvar = self.encoder(image)
        mu, logvar = mu.reshape(-1, mu.shape[-1]), logvar.reshape(-1, logvar.shape[-1])
        noise = torch.randn(mu.shape, generator=generator).to(mu.device)   # CPU generator: same draws on any device
        z = mu + torch.exp(0.5 * logvar) * noise
        return self.decoder(z), mu, logvar


def vae_loss(recon: Tensor, image: Tensor, mu: Tensor, logvar: Tensor,
             kl_tolerance: float) -> tuple[Tensor, dict[str, Tensor]]:
    """(loss, metrics): summed squared error plus KL clipped at ``kl_tolerance * z_size``, batch means."""
    target = to_float_image(image)
    recon_loss = (recon - target).pow(2).sum((1, 2, 3)).mean()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)
    kl_loss = kl.clamp(min=kl_tolerance * mu.shape[-1]).mean()
    return recon_loss + kl_loss, {"recon_loss": recon_loss.detach(), "kl": kl.mean().detach()}
