"""Named, independent random streams derived from one seed.

Every consumer of randomness (the task's goal sampler, each randomizer, ...)
draws from its own generator, keyed by a stable name.  Adding a consumer never
shifts the numbers another consumer sees, which keeps "same seed, same
trajectory" true as stacks grow.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(name: str) -> int:
    """A stable 32-bit key for a stream name (crc32, not Python's salted hash)."""
    return zlib.crc32(name.encode("utf-8"))


def make_rng(seed: int | None, *names: str) -> np.random.Generator:
    """Generator for the stream ``names`` under ``seed``.

    ``seed=None`` draws fresh entropy from the OS, as ``np.random.default_rng``.
    """
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    seq = np.random.SeedSequence(
        entropy=None if seed is None else int(seed),
        spawn_key=tuple(stream_key(n) for n in names),
    )
    return np.random.Generator(np.random.PCG64(seq))
