"""What every training command shares: configs with presets and dotted overrides,
run directories with crash-safe checkpoints, metrics logging, environment
construction and policy export. Agents live in `simreal.agents`."""

from simreal.training.config import ConfigError, from_dict, resolve_config
from simreal.training.envs import make_training_env, split_keys
from simreal.training.export import load_export, save_export
from simreal.training.logger import Logger, read_metrics
from simreal.training.run import RunDir, RunDirError, pick_device

__all__ = ["ConfigError", "Logger", "RunDir", "RunDirError", "from_dict", "load_export", "make_training_env",
           "pick_device", "read_metrics", "resolve_config", "save_export", "split_keys"]
