"""What every training command shares: configs with presets and dotted overrides,
run directories with crash-safe checkpoints, metrics logging, environment
construction and policy export. Agents live in `simreal.agents`.

Submodules are imported on first use (``simreal --help`` must not pay for torch).
"""

from simreal.utils.lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "config", "from_dict": "config", "resolve_config": "config",
    "make_training_env": "envs", "split_keys": "envs",
    "load_export": "export", "save_export": "export",
    "Logger": "logger", "read_metrics": "logger",
    "RunDir": "run", "RunDirError": "run", "pick_device": "run",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
