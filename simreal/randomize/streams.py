"""Per-copy uniform streams, prefetched in blocks.

Each env copy has its own generator (so copy i of a vector env sees what a
single env seeded the same way sees). Drawing a few numbers per copy per step
from N generators is N small Python calls; `CopyStreams` instead fills a block
of numbers per copy at a time and hands them out in order. A PCG64 double
consumes exactly one 64-bit output, so number k handed to copy i is number k
of copy i's generator whatever the block size: prefetching changes speed,
never values.
"""

from __future__ import annotations

import numpy as np

from simreal.utils.seeding import make_rng


class CopyStreams:
    """``n`` uniform [0, 1) streams named ``names`` (see `simreal.utils.seeding.make_rng`)."""

    def __init__(self, n: int, *names: str, block: int = 256):
        self.names = names
        self.block = int(block)
        self.rngs = [make_rng(None, *names) for _ in range(n)]
        self._buf = np.empty((n, self.block))
        self._pos = np.full(n, self.block, dtype=np.int64)  # next unread column; == block: empty
        self._all = np.arange(n)

    def __len__(self) -> int:
        return len(self.rngs)

    def seed(self, i: int, seed: int | None) -> None:
        """Restart copy i's stream from seed (None: fresh entropy); drops what was prefetched."""
        self.rngs[i] = make_rng(seed, *self.names)
        self._pos[i] = self.block

    def _grow(self, size: int) -> None:
        block = max(self.block * 2, 4 * size)
        buf = np.empty((len(self.rngs), block))
        for i, pos in enumerate(self._pos):  # keep every copy's unread numbers, right-aligned
            left = self.block - pos
            buf[i, block - left:] = self._buf[i, pos:]
        self._pos += block - self.block
        self._buf, self.block = buf, block

    def _refill(self, ids: np.ndarray) -> None:
        buf, block = self._buf, self.block
        for i in ids:
            pos = self._pos[i]
            left = block - pos
            buf[i, :left] = buf[i, pos:]
            self.rngs[i].random(out=buf[i, left:])
            self._pos[i] = 0

    def take(self, ids: np.ndarray | None, size: int) -> np.ndarray:
        """The next ``size`` numbers of each copy in ``ids`` (None: all), as (len(ids), size).

        The result may be a view into the buffer: use it before the next call.
        """
        if size > self.block:
            self._grow(size)
        every = ids is None or ids is self._all
        if every:  # the usual case, without fancy indexing: every copy in step and enough left
            pos = self._pos
            first = pos[0]
            if first + size <= self.block and (pos == first).all():
                pos += size
                return self._buf[:, first:first + size]
        ids = self._all if every else np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.empty((0, size))
        pos = self._pos[ids]
        short = pos + size > self.block
        if short.any():
            self._refill(ids[short])
            pos = self._pos[ids]
        first = pos[0]
        if every and (pos == first).all():  # the usual case: every copy in step
            self._pos += size
            return self._buf[:, first:first + size]
        self._pos[ids] = pos + size
        return self._buf[ids[:, None], pos[:, None] + np.arange(size)]
