"""Unmodeled effects: what the simulator leaves out and a real rig does anyway, one module each.

An effect's *parameters* are what YAML randomizers target, with
``{effect: NAME, param: NAME, names: [GLOB...]}``. A parameter starts from its
nominal value (the effect is off there) and every randomizer on it is applied in
YAML order (set, scale, add), so ``action_delay.delay`` can be "30 ms, 10 %
per episode" plus "0 or 1 extra control step per actuator". Effects keep their
own state (command history, held marker values, forces) and their own RNG
stream per env copy, ``make_rng(seed, "effect", NAME)``. Robot commands stay
inside the actuator control range whatever the effects do.

Shipped: `backlash`, `action_delay`, `marker_freeze`, `object_force` (each
module's docstring gives its parameters and units). Adding one is a module
with an `Effect` subclass (`simreal.randomize.effects.base` gives the hooks it
may implement) plus its line in ``MODULES``; a test or a user's package can
also call `register` with the class.
"""

from __future__ import annotations

import importlib

from simreal.randomize.effects.base import Effect, EffectParam, EffectUnavailable, actuator_names

__all__ = ["Effect", "EffectParam", "EffectUnavailable", "actuator_names", "effect_class", "effect_names",
           "effect_params", "register"]

# the shipped effects, one line each: module:class
MODULES = (
    "backlash:Backlash",
    "action_delay:ActionDelay",
    "marker_freeze:MarkerFreeze",
    "object_force:ObjectForce",
)

_REGISTRY: dict[str, type[Effect]] = {}
_loaded = False


def register(cls: type[Effect]) -> type[Effect]:
    """Add an effect class (usable as a decorator); its ``name`` becomes a YAML ``effect`` value."""
    if not (isinstance(cls, type) and issubclass(cls, Effect)) or not cls.name:
        raise TypeError(f"register: expected an Effect subclass with a name; got {cls!r}")
    if not cls.params or not all(isinstance(v, (int, float)) for v in cls.params.values()):
        raise TypeError(f"register: {cls.__name__}.params must map each parameter to its nominal number")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove an effect added with `register` (tests)."""
    _REGISTRY.pop(name, None)


def _load() -> dict[str, type[Effect]]:
    global _loaded
    if not _loaded:
        _loaded = True
        for entry in MODULES:
            module, _, attribute = entry.partition(":")
            register(getattr(importlib.import_module(f"{__name__}.{module}"), attribute))
    return _REGISTRY


def effect_names() -> list[str]:
    return list(_load())


def effect_class(name: str) -> type[Effect]:
    return _load()[name]


def effect_params(name: str) -> dict[str, float]:
    """The effect's parameters and their nominal values."""
    return dict(_load()[name].params)
