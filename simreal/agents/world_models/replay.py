"""A sequence replay buffer: one ring of steps per env copy, sampled as (batch, length) sequences.

Each env copy writes its own stream, so a sampled sequence is always
consecutive steps of one copy. Capacity is counted in steps (split evenly
over the copies); when a ring is full the oldest steps are overwritten.

Episode starts: every step carries ``is_first``. By default a sequence may
run across an episode boundary (the RSSM resets its state where ``is_first``
is set, as DreamerV3 does); with ``cross_episodes=False`` only sequences that
lie inside one episode (``is_first`` nowhere but possibly at position 0) are
drawn (DreamerV1's episode chunks). A sequence never spans the seam where
the newest step meets the oldest.

Spill to disk: with ``spill_dir`` the arrays are memory-mapped ``.npy`` files
there (the OS keeps what fits in memory and pages the rest), so image
replays larger than RAM work; checkpoints then store only the positions and
the files stay in place. Without it, checkpoints store the arrays.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import numpy as np
import torch

from simreal.training.run import generator_state, restore_generator


class ReplayError(ValueError):
    """A replay that cannot serve the request (too little data, mismatched state)."""


class SequenceReplay:
    def __init__(self, fields: Mapping[str, tuple[tuple[int, ...], Any]], capacity: int, streams: int,
                 seed: int = 0, spill_dir: str | os.PathLike | None = None, cross_episodes: bool = True):
        if "is_first" not in fields:
            raise ValueError("replay fields must include 'is_first'")
        if capacity < streams:
            raise ValueError(f"replay capacity {capacity} is smaller than the number of env copies {streams}")
        self.fields = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in fields.items()}
        self.streams = int(streams)
        self.per_stream = int(capacity) // self.streams
        self.cross_episodes = cross_episodes
        self.spill_dir = pathlib.Path(spill_dir) if spill_dir is not None else None
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros(self.streams, np.int64)     # next write index per ring
        self.count = np.zeros(self.streams, np.int64)   # valid steps per ring
        self.added = 0
        self.data = {k: self._allocate(k, shape, dtype) for k, (shape, dtype) in self.fields.items()}

    def _allocate(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        full = (self.streams, self.per_stream, *shape)
        if self.spill_dir is None:
            return np.zeros(full, dtype)
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"{key}.npy"
        if path.exists():
            array = np.load(path, mmap_mode="r+")
            if array.shape == full and array.dtype == dtype:
                return array
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=full)

    def __len__(self) -> int:
        return int(self.count.sum())

    # ------------------------------------------------------------ writing
    def add(self, step: Mapping[str, np.ndarray], streams: np.ndarray | None = None) -> None:
        """Append one step to each of ``streams`` (all copies when None); arrays have a leading copy axis."""
        streams = np.arange(self.streams) if streams is None else np.asarray(streams, np.int64)
        if len(streams) == 0:
            return
        missing = set(self.fields) - set(step)
        if missing:
            raise ValueError(f"replay step is missing {sorted(missing)}")
        index = self.pos[streams]
        for key in self.fields:
            self.data[key][streams, index] = np.asarray(step[key])
        self.pos[streams] = (index + 1) % self.per_stream
        self.count[streams] = np.minimum(self.count[streams] + 1, self.per_stream)
        self.added += len(streams)

    # ------------------------------------------------------------ sampling
    def _valid_starts(self, length: int) -> np.ndarray:
        return np.maximum(self.count - length + 1, 0)

    def can_sample(self, length: int) -> bool:
        return int(self._valid_starts(length).sum()) > 0

    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """``batch`` sequences of ``length`` consecutive steps, uniform over valid start positions."""
        starts = self._valid_starts(length)
        total = int(starts.sum())
        if total == 0:
            raise ReplayError(f"replay holds no sequence of {length} steps yet ({len(self)} steps stored)")
        stream_idx = np.empty(batch, np.int64)
        offset = np.empty(batch, np.int64)
        todo = np.arange(batch)
        cumulative = np.cumsum(starts)
        for _ in range(1000):
            draw = self.rng.integers(0, total, len(todo))
            s = np.searchsorted(cumulative, draw, side="right")
            o = draw - (cumulative[s] - starts[s])
            stream_idx[todo], offset[todo] = s, o
            if self.cross_episodes:
                break
            firsts = self._gather("is_first", s, o, length)[:, 1:]
            todo = todo[firsts.any(1)]
            if len(todo) == 0:
                break
        else:
            raise ReplayError(f"replay: found no {length}-step sequence inside one episode in 1000 tries; "
                              "episodes are shorter than batch.length (use replay.cross_episodes=true)")
        return {key: self._gather(key, stream_idx, offset, length) for key in self.fields}

    def _gather(self, key: str, stream_idx: np.ndarray, offset: np.ndarray, length: int) -> np.ndarray:
        oldest = (self.pos[stream_idx] - self.count[stream_idx]) % self.per_stream
        index = (oldest[:, None] + offset[:, None] + np.arange(length)) % self.per_stream
        return np.asarray(self.data[key][stream_idx[:, None], index])

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Positions, RNG and (in memory) the stored steps, as tensors and plain data."""
        state: dict[str, Any] = {
            "per_stream": self.per_stream, "streams": self.streams, "added": int(self.added),
            "pos": torch.from_numpy(self.pos.copy()), "count": torch.from_numpy(self.count.copy()),
            "rng": generator_state(self.rng), "spilled": self.spill_dir is not None,
        }
        if self.spill_dir is None:
            filled = int(self.count.max())
            state["data"] = {k: torch.from_numpy(np.ascontiguousarray(v[:, :filled])) for k, v in self.data.items()}
        else:
            for array in self.data.values():
                array.flush()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["per_stream"]) != self.per_stream or int(state["streams"]) != self.streams:
            raise ReplayError(f"replay checkpoint has {state['streams']} rings of {state['per_stream']} steps, "
                              f"this replay {self.streams} of {self.per_stream}")
        self.pos = state["pos"].numpy().astype(np.int64).copy()
        self.count = state["count"].numpy().astype(np.int64).copy()
        self.added = int(state["added"])
        restore_generator(self.rng, state["rng"])
        if "data" in state:
            for key, tensor in state["data"].items():
                if key not in self.data:
                    raise ReplayError(f"replay checkpoint has field {key!r} this replay does not")
                array = tensor.numpy()
                self.data[key][:, :array.shape[1]] = array
        elif self.spill_dir is None:
            raise ReplayError("replay checkpoint was spilled to disk; resume with replay.spill=true")
