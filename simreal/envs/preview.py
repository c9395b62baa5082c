"""A grid of randomized three-camera views: what a randomization file does, before training on it.

Cell k is the start of episode k of a hand-cube env seeded ``seed + k``
(physics and visual randomization drawn as in training, the cube settled on
the palm), every camera side by side; cells fill rows of ``columns``.
"""

from __future__ import annotations

import numpy as np


def preview_grid(randomization, n: int = 16, height: int = 128, width: int = 128, seed: int = 0,
                 columns: int = 4, n_envs: int = 8, show_goal: bool = False, progress: bool = False,
                 antialias: int | None = None, zoom: float = 1.0) -> np.ndarray:
    """(rows * (height + 2), columns * (cameras * width + 2), 3) uint8 grid of ``n`` randomized episode starts."""
    from tqdm import tqdm

    from simreal.envs import scene as scene_mod
    from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim
    from simreal.render.multicam import MultiCameraRenderer

    if n < 1 or columns < 1:
        raise ValueError(f"preview needs n >= 1 and columns >= 1; got n={n}, columns={columns}")
    config = HandCubeConfig()
    sim = HandCubeSim(min(n, n_envs), config, nthread=1)
    sim.set_randomization(None if randomization in (None, "", "none") else randomization)
    renderer = MultiCameraRenderer(sim, height, width, cameras=[c.name for c in config.scene.cameras],
                                   hidden_group=scene_mod.GOAL_GEOM_GROUP, antialias=antialias, zoom=zoom)
    cells = []
    try:
        with tqdm(total=n, desc="preview", unit="view", disable=not progress) as bar:
            for first in range(0, n, sim.n_envs):
                ids = np.arange(min(sim.n_envs, n - first))
                for i in ids:
                    sim.seed(int(i), seed + first + int(i))
                sim.reset(ids)
                for i in ids:
                    views = renderer.render(int(i), show_hidden=show_goal)
                    cells.append(np.concatenate(list(views), axis=1))
                    bar.update(1)
    finally:
        renderer.close()
    pad = 2
    h, w = cells[0].shape[:2]
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad), min(columns, n) * (w + pad), 3), 255, dtype=np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, columns)
        grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = cell
    return grid
