"""Package attributes imported on first use, so that importing a package (``simreal --help``) stays free of
torch, GL and the env stack until one of its names is asked for."""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``package``: ``table`` maps each exported name to the module that
    defines it, a submodule name relative to ``package`` or an absolute ``simreal.`` path::

        __getattr__ = lazy_exports(__name__, {"PPOTrainer": "ppo", "SimulatedRig": "simreal.rigs.sim"})
    """

    def __getattr__(name: str):
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = target if target.startswith("simreal.") else f"{package}.{target}"
        return getattr(importlib.import_module(module), name)

    return __getattr__
