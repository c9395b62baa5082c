"""What every training command shares: configs with presets and dotted overrides,
run directories with crash-safe checkpoints, metrics logging, environment
construction and policy export. Agents live in `simreal.agents`.

Submodules are imported on first use (``simreal --help`` must not pay for torch).
"""

import importlib

_EXPORTS = {
    "ConfigError": "config", "from_dict": "config", "resolve_config": "config",
    "make_training_env": "envs", "split_keys": "envs",
    "load_export": "export", "save_export": "export",
    "Logger": "logger", "read_metrics": "logger",
    "RunDir": "run", "RunDirError": "run", "pick_device": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"simreal.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'simreal.training' has no attribute {name!r}")
