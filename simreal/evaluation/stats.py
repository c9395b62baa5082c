"""Bootstrap confidence intervals over seeds and episodes (the study report's statistics).

Episodes of one training seed are not independent draws of the agent: a seed's luck is shared by all
of its episodes. So a resample draws seeds with replacement first, then episodes with replacement
within each drawn seed (a two-level bootstrap), and the interval is the 2.5-97.5 percentile range.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


def _resample(groups: Sequence[np.ndarray], rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``n`` hierarchical resamples: seeds with replacement, then episodes within each seed.

    Returns (positions, valid): positions (n, seeds, longest) into the concatenated groups, and which
    of them count (a seed with fewer episodes fills only its first entries).
    """
    lengths = np.array([len(g) for g in groups])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    k, m = len(groups), int(lengths.max())
    seeds = rng.integers(0, k, size=(n, k))
    # episode positions drawn uniformly within each chosen seed's own episode count
    u = rng.random((n, k, m))
    within = np.minimum((u * lengths[seeds][..., None]).astype(int), lengths[seeds][..., None] - 1)
    valid = np.arange(m)[None, None, :] < lengths[seeds][..., None]
    return offsets[seeds][..., None] + within, valid


def bootstrap_mean(groups: Sequence[np.ndarray], seed: int = 0, samples: int = BOOTSTRAP_SAMPLES
                   ) -> tuple[float, float, float]:
    """Mean over all episodes and its bootstrap 95% interval (seeds, then episodes within seeds)."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    flat = np.concatenate(groups)
    idx, valid = _resample(groups, np.random.default_rng(seed), samples)
    means = (flat[idx] * valid).sum(axis=(1, 2)) / valid.sum(axis=(1, 2))
    lo, hi = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(flat.mean()), float(lo), float(hi)


def bootstrap_ratio(rig: Sequence[np.ndarray], sim: Sequence[np.ndarray], seed: int = 0,
                    samples: int = BOOTSTRAP_SAMPLES) -> tuple[float | None, float | None, float | None]:
    """rig mean / sim mean and its 95% interval; sim and rig episodes of one seed share their seeds, so
    a resample takes the same (seed, episode) pairs from both. None where the sim mean is not positive."""
    rig = [np.asarray(g, dtype=float) for g in rig]
    sim = [np.asarray(g, dtype=float) for g in sim]
    if [len(g) for g in rig] != [len(g) for g in sim]:
        raise ValueError("rig and sim need the same episodes per seed")
    flat_rig, flat_sim = np.concatenate(rig), np.concatenate(sim)
    if flat_sim.mean() <= 0:
        return None, None, None
    idx, valid = _resample(sim, np.random.default_rng(seed), samples)
    num = (flat_rig[idx] * valid).sum(axis=(1, 2))
    den = (flat_sim[idx] * valid).sum(axis=(1, 2))
    ratios = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = np.quantile(ratios, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2]) if len(ratios) else (np.nan,) * 2
    return float(flat_rig.mean() / flat_sim.mean()), float(lo), float(hi)
