"""Run configurations: one YAML of defaults plus named presets, and dotted overrides.

A config file has two top-level keys::

    defaults:            # every key an agent understands, with its default
      env: {id: simreal/HandCube-v0, n_envs: 16}
      ppo: {lr: 3.0e-4, epochs: 4}
    presets:             # named partial configs, merged over the defaults in order
      tiny: {ppo: {epochs: 1}}
      cartpole: {env: {id: dm_control/cartpole-swingup-v0}}

``resolve_config(path, ["cartpole", "tiny"], ["ppo.lr=1e-3"])`` merges the
presets left to right, then the overrides, and returns a plain nested dict.
Every preset and override may only name keys that exist in ``defaults`` and
must keep their type (an int is accepted where a float is expected; a key
whose default is ``null`` takes anything). A problem raises `ConfigError`
with one line naming the file, the preset or override, and the key path.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from typing import Any, Iterable, Mapping

import yaml


class ConfigError(ValueError):
    """A bad config file, preset name or override: one line naming the key."""


def check_config_env_id(env_id: Any, where: str, hint: str = "pass it on the command line with --env") -> str:
    """``env_id`` as read from a file (a run's config.yaml, a config preset), refused when it would import code.

    Gymnasium's ``module:name`` form imports ``module`` before looking ``name`` up, so a config file
    naming ``os:x`` or ``mypkg.evil:Env-v0`` would run any installed module. From a file only plain
    ids are taken (registered ones, or ones gymnasium refuses as unknown without importing
    anything); an entry point must come from the command line. A one-line `ConfigError` otherwise.
    """
    import gymnasium as gym

    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"{where}: expected an env id (a string), got {env_id!r}")
    if ":" in env_id and env_id not in gym.registry:
        module = env_id.split(":", 1)[0]
        raise ConfigError(f"{where}: {env_id!r} is a module:name entry point, which would import module "
                          f"{module!r}; a config may only name registered gymnasium ids, entry points are taken "
                          f"from the command line only ({hint})")
    return env_id


def yaml_problem(path: str | pathlib.Path, exc: yaml.YAMLError) -> str:
    """``PATH:LINE:COLUMN: not valid YAML (problem)``: a YAML error in one line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context}: {problem}" if context else problem
    return f"{path}{where}: not valid YAML ({' '.join(str(text).split())})"


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _coerce(default: Any, value: Any, where: str) -> Any:
    """Value checked (and widened int -> float) against the type of its default."""
    if default is None or value is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected {_type_name(default)}, got {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, (int, float)) and isinstance(value, str):
        try:  # YAML 1.1 reads '1e-3' as a string; accept plain numbers written that way
            number = float(value)
        except ValueError:
            pass
        else:
            if isinstance(default, float):
                return number
            if number.is_integer():
                return int(number)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if type(default) is not type(value):
        raise ConfigError(f"{where}: expected {_type_name(default)}, got {value!r}")
    return value


def merge(base: dict, update: Mapping, where: str, path: str = "") -> dict:
    """Deep-merge ``update`` into a copy of ``base``; keys must exist in ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in out:
            known = ", ".join(sorted(map(str, out))) or "none"
            raise ConfigError(f"{where}: unknown key '{key_path}' (known here: {known})")
        if isinstance(out[key], dict) and out[key] and isinstance(value, Mapping):
            out[key] = merge(out[key], value, where, key_path)
        else:
            out[key] = _coerce(out[key], value, f"{where}: key '{key_path}'")
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'ppo.lr=1e-3'`` -> (['ppo', 'lr'], 0.001). Values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override '{text}': empty part in key path '{key}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc.problem})") from None
    return parts, value


def load_config_file(path: str | pathlib.Path) -> tuple[dict, dict]:
    """(defaults, presets) of a config file."""
    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(path, exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("defaults"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'defaults' mapping at the top")
    unknown = set(data) - {"defaults", "presets"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key '{sorted(unknown)[0]}' (expected defaults, presets)")
    presets = data.get("presets") or {}
    if not isinstance(presets, dict):
        raise ConfigError(f"{path}: 'presets' must be a mapping of name -> partial config")
    return data["defaults"], presets


def apply_presets(cfg: dict, known: Mapping[str, Any], presets: Iterable[str], where: str) -> dict:
    """``cfg`` with each named preset of ``known`` merged in order (``where`` names the config in errors)."""
    cfg = copy.deepcopy(cfg)
    for name in presets:
        if name not in known:
            raise ConfigError(f"{where}: unknown preset '{name}' (known: {', '.join(sorted(known)) or 'none'})")
        if not isinstance(known[name], dict):
            raise ConfigError(f"{where}: preset '{name}' must be a mapping")
        cfg = merge(cfg, known[name], f"{where}: preset '{name}'")
    return cfg


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """``cfg`` with each dotted ``key.path=value`` override (YAML value) merged in order."""
    for text in overrides:
        parts, value = parse_override(text)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        cfg = merge(cfg, nested, f"override '{text}'")
    return cfg


def resolve_config(path: str | pathlib.Path, presets: Iterable[str] = (),
                   overrides: Iterable[str] = ()) -> dict:
    """Defaults, then each named preset in order, then each dotted override."""
    defaults, known = load_config_file(path)
    return apply_overrides(apply_presets(defaults, known, presets, str(path)), overrides)


def from_dict(cls, values: Mapping[str, Any], where: str):
    """Build dataclass ``cls`` from ``values``; unknown or missing fields are a `ConfigError`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(names))})")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def dump_config(cfg: Mapping) -> str:
    """YAML text of a resolved config (keys in insertion order)."""
    return yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=False)
