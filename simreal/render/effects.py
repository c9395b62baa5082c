"""Image-level effects on rendered uint8 images: blur, brightness, contrast, per-pixel Gaussian noise.

Applied per image in that order (optics, then exposure, then sensor noise):

* ``blur``: Gaussian blur with sigma in pixels (0: none);
* ``brightness``: an offset in units of full scale (0.1 adds 25.5 levels);
* ``contrast``: each pixel's distance from the image's mean scaled by a factor (1: none);
* ``noise``: Gaussian noise per pixel and channel, its std in units of the rendered
  image's own standard deviation (Dactyl normalizes images to unit variance before
  adding noise, so its "10 %" is 0.1 here).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def apply_effects(images: np.ndarray, blur: np.ndarray, brightness: np.ndarray, contrast: np.ndarray,
                  noise: list[tuple[np.ndarray, np.random.Generator]]) -> None:
    """Apply the effects to images (n, H, W, 3) uint8 in place.

    ``blur``, ``brightness`` and ``contrast`` hold one value per image;
    ``noise`` is a list of (std per image, generator): each adds its own
    independent noise field, drawn from its generator (a fresh draw every call).
    """
    n = images.shape[0]
    stds = [np.asarray(s, np.float32) for s, _ in noise]
    active = (np.abs(blur) > 1e-3) | (brightness != 0) | (contrast != 1)
    for s in stds:
        active |= s != 0
    if not active.any():
        return
    x = images.astype(np.float32)
    own_std = x.reshape(n, -1).std(axis=1) if noise else None
    for k in np.flatnonzero(active):
        img = x[k]
        if blur[k] > 1e-3:
            img = ndimage.gaussian_filter(img, sigma=(float(blur[k]), float(blur[k]), 0.0), mode="nearest")
        if brightness[k] != 0:
            img = img + 255.0 * float(brightness[k])
        if contrast[k] != 1:
            mean = img.mean()
            img = mean + float(contrast[k]) * (img - mean)
        x[k] = img
    for s, (_, rng) in zip(stds, noise):
        rows = np.flatnonzero(s != 0)
        if len(rows):
            field = rng.standard_normal((len(rows),) + images.shape[1:], dtype=np.float32)
            x[rows] += field * (s[rows] * own_std[rows])[:, None, None, None]
    np.clip(x, 0.0, 255.0, out=x)
    images[...] = np.rint(x).astype(np.uint8)
