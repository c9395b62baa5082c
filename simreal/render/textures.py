"""Procedural textures and color transforms, in numpy (no GL): what visual randomization writes into textures.

Every function works on float32 RGB in [0, 1], shape (height, width, 3). A
MuJoCo cube or skybox texture is six square faces stacked vertically
(height = 6 x width); ``faces`` tells the pattern functions to draw each face
on its own, so a checker board is a checker board on every face of a cube.
"""

from __future__ import annotations

import numpy as np

PATTERNS = ("noise", "checker", "gradient", "stripes")
# uniforms a pattern's parameters are made from (see pattern_params)
PARAMS_PER_TEXTURE = 10


def pattern_params(u: np.ndarray, allowed: tuple[int, ...]) -> dict:
    """Parameters of one procedural texture from 10 uniforms in [0, 1).

    ``allowed`` are indices into `PATTERNS`. Returns the pattern name, two RGB
    colors, a frequency (2-16 cells, stripes or noise cells per face), an angle
    (rad) and an integer seed for the noise.
    """
    return {
        "pattern": PATTERNS[allowed[min(int(u[0] * len(allowed)), len(allowed) - 1)]],
        "color1": np.asarray(u[1:4], np.float32),
        "color2": np.asarray(u[4:7], np.float32),
        "frequency": 2 + min(int(u[7] * 15), 14),
        "angle": float(2 * np.pi * u[8]),
        "seed": int(u[9] * 2**31),
    }


def _face_coords(height: int, width: int, faces: int) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) in [0, 1) per pixel, restarting on every face of a stacked texture."""
    face_h = height // faces
    v = (np.arange(height) % face_h + 0.5) / face_h
    u = (np.arange(width) + 0.5) / width
    return v[:, None].astype(np.float32), u[None, :].astype(np.float32)


def _value_noise(height: int, width: int, faces: int, cells: int, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid of cells x cells per face, bilinearly interpolated, two octaves."""
    rng = np.random.default_rng(seed)
    face_h = height // faces
    out = np.zeros((height, width), np.float32)
    weight = 0.0
    for octave, amplitude in ((1, 1.0), (2, 0.5)):
        n = cells * octave
        grid = rng.random((faces, n + 1, n + 1)).astype(np.float32)
        y = (np.arange(face_h) + 0.5) / face_h * n
        x = (np.arange(width) + 0.5) / width * n
        y0, x0 = np.minimum(y.astype(int), n - 1), np.minimum(x.astype(int), n - 1)
        fy, fx = (y - y0)[:, None], (x - x0)[None, :]
        fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no creases at cell edges
        g00 = grid[:, y0[:, None], x0[None, :]]
        g01 = grid[:, y0[:, None], x0[None, :] + 1]
        g10 = grid[:, y0[:, None] + 1, x0[None, :]]
        g11 = grid[:, y0[:, None] + 1, x0[None, :] + 1]
        layer = (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy
        out += amplitude * layer.reshape(height, width)
        weight += amplitude
    return out / weight


def procedural(pattern: str, height: int, width: int, color1, color2, frequency: int = 4, angle: float = 0.0,
               seed: int = 0, faces: int = 1) -> np.ndarray:
    """A (height, width, 3) float32 texture mixing two colors by a pattern.

    ``checker``: frequency x frequency squares per face; ``stripes``: frequency
    stripes across a face at ``angle``; ``gradient``: a linear ramp along
    ``angle``; ``noise``: smooth value noise with frequency cells per face.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown texture pattern {pattern!r} (known: {', '.join(PATTERNS)})")
    if faces < 1 or height % faces:
        raise ValueError(f"a texture of height {height} cannot hold {faces} equal faces")
    v, u = _face_coords(height, width, faces)
    if pattern == "checker":
        t = ((np.floor(u * frequency) + np.floor(v * frequency)) % 2).astype(np.float32)
    elif pattern == "stripes":
        s = (u * np.cos(angle) + v * np.sin(angle)) * frequency
        t = ((s % 1.0) < 0.5).astype(np.float32)
    elif pattern == "gradient":
        s = u * np.cos(angle) + v * np.sin(angle)
        low, high = s.min(), s.max()
        t = ((s - low) / max(high - low, 1e-6)).astype(np.float32)
    else:
        t = _value_noise(height, width, faces, frequency, seed)
    t = np.broadcast_to(t, (height, width))[..., None]
    c1, c2 = np.asarray(color1, np.float32), np.asarray(color2, np.float32)
    return c1 * (1 - t) + c2 * t


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (..., 3) to HSV, hue in turns [0, 1)."""
    rgb = np.asarray(rgb, np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = rgb.max(-1)
    low = rgb.min(-1)
    span = high - low
    safe = np.where(span > 0, span, 1.0)
    hue = np.where(high == r, (g - b) / safe, np.where(high == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(span > 0, (hue / 6.0) % 1.0, 0.0)
    sat = np.where(high > 0, span / np.where(high > 0, high, 1.0), 0.0)
    return np.stack([hue, sat, high], -1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV (hue in turns) to RGB in [0, 1]."""
    hsv = np.asarray(hsv, np.float32)
    h, s, v = hsv[..., 0] % 1.0, np.clip(hsv[..., 1], 0, 1), np.clip(hsv[..., 2], 0, 1)
    k = (np.array([5.0, 3.0, 1.0], np.float32) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
