"""Randomizers composed in one documented order, inspectable and editable.

Order (robogym documents the same rules: parameters before reset, noise on
what the policy sees, freezing after noise):

1. reset: ADR picks boundary values; physics randomizers edit the model (from
   nominal values); every other randomizer draws its per-episode values; the
   effects clear their state. Then the env settles the new episode.
2. action: action noise on the normalized action (YAML order), clipped;
3. joint targets: backlash, then action delay (the step is cut into pieces
   where delays end), each clipped to the control range;
4. random forces on the object, then the physics substeps;
5. per-step and every-N-steps randomizers draw again;
6. observation: observation noise (YAML order) on the measured keys, then
   marker freeze; keys computed from measured ones (the goal relative to the
   observed cube) come after, with their own noise. The privileged ``state``
   stays clean.
7. images (the file's ``visual`` list): drawn with the others at reset and per
   step; applied only when a camera renders a copy (`VisualStack`: scene,
   then textures, then image effects), never to the simulation, and left out
   of the privileged state.

Each randomizer draws from its own stream, ``make_rng(env_seed, "randomizer",
name)``, so adding or removing one never changes another's numbers.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from simreal.randomize import effects as effect_registry
from simreal.randomize.base import BoundRandomizer
from simreal.randomize.effects import Effect, EffectParam, EffectUnavailable
from simreal.randomize.spec import FAMILIES, RandomizationError, RandomizationSpec, Randomizer, load_spec
from simreal.randomize.visual import VisualStack


class RandomizationStack:
    """The bound randomizers of one spec on one N-copy simulation."""

    def __init__(self, spec: RandomizationSpec | str, sim, obs_space):
        self.spec = load_spec(spec) if not isinstance(spec, RandomizationSpec) else spec
        self.sim = sim
        self.obs_space = obs_space
        self.items: list[BoundRandomizer] = []
        self.effects: dict[str, Effect] = {}
        self._seeds: list[int | None] = [None] * sim.n_envs
        self._refresh()
        for r in self.spec.enabled() + self.spec.enabled_visual():
            self.insert(len(self.items), r)
        self.adr = None
        if self.spec.adr_randomizers():
            from simreal.randomize.adr import ADR

            self.adr = ADR(self)

    # ------------------------------------------------------------- editing
    def _bind(self, r: Randomizer) -> BoundRandomizer:
        module, _, name = FAMILIES[r.family].bind.partition(":")
        return getattr(importlib.import_module(module), name)(self, r)

    def insert(self, index: int, randomizer: Randomizer) -> BoundRandomizer:
        """Bind and insert a randomizer; its stream follows the env seeds already given."""
        if any(b.name == randomizer.name for b in self.items):
            raise RandomizationError(f"{self.spec.source}: randomizer {randomizer.name!r} is already in the stack")
        bound = self._bind(randomizer)
        for i, seed in enumerate(self._seeds):
            bound.seed(i, seed)
        self.items.insert(index, bound)
        if isinstance(bound, EffectParam):
            self._set_effect_inputs(bound.effect)
        self._refresh()
        return bound

    def _refresh(self) -> None:
        """Per-hook lists, so a step touches only the randomizers that act in it."""
        self._action = [b for b in self.items if "on_action" in b.hooks]
        self._noise = [b for b in self.items if "on_observation" in b.hooks]
        self._periodic = [b for b in self.items if b.spec.period > 0]
        self._visual: VisualStack | None = None  # rebuilt on first use (see `visual`)
        ordered = sorted(self.effects.values(), key=lambda e: (e.order, e.name))
        self._hooks = {h: [e for e in ordered if h in e.hooks()] for h in effect_registry.base.HOOKS}

    @property
    def visual(self) -> VisualStack:
        """The visual randomizers as renderers apply them (built on first use after each edit)."""
        if self._visual is None:
            self._visual = VisualStack([b for b in self.items if FAMILIES[b.family].rendered], self.sim.model)
        return self._visual

    def _set_effect_inputs(self, effect: Effect) -> None:
        """Hand an effect its randomizers in stack order; an effect left without any leaves the stack."""
        inputs = [b for b in self.items if isinstance(b, EffectParam) and b.effect is effect]
        effect.set_inputs(inputs)
        if not inputs:
            del self.effects[effect.name]

    @property
    def acts_on_action(self) -> bool:
        """Anything between the policy's action and the actuators (noise, backlash, delay)."""
        return bool(self._action) or any(e.acts_on_action for e in self.effects.values())

    @property
    def acts_on_observation(self) -> bool:
        """Anything between the measurements and the policy's observation (noise, marker freeze)."""
        return bool(self._noise) or any(e.acts_on_observation for e in self.effects.values())

    def remove(self, name: str) -> BoundRandomizer:
        """Remove by name; the model fields it edited go back to their nominal values at once."""
        bound = self[name]
        self.items.remove(bound)
        if "restore" in bound.hooks:
            bound.restore(np.arange(self.sim.n_envs))
        if isinstance(bound, EffectParam):
            bound.effect.on_reset(np.arange(self.sim.n_envs))  # its state restarts (forces off, markers live)
            self._set_effect_inputs(bound.effect)
        self._refresh()
        return bound

    def restore_nominal(self) -> None:
        """Every randomized model field back to its nominal value, every effect's state cleared (forces off)."""
        ids = np.arange(self.sim.n_envs)
        for b in self.items:
            if "restore" in b.hooks:
                b.restore(ids)
        for e in self.effects.values():
            e.on_reset(ids)

    def __getitem__(self, name: str) -> BoundRandomizer:
        for b in self.items:
            if b.name == name:
                return b
        raise KeyError(f"no randomizer {name!r} (have: {', '.join(self.names) or 'none'})")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.items]

    def describe(self) -> str:
        """A table of the stack, in application order."""
        return "\n".join(b.describe() for b in self.ordered())

    def ordered(self) -> list[BoundRandomizer]:
        order = list(FAMILIES)
        return sorted(self.items, key=lambda b: order.index(b.family))

    # ------------------------------------------------------------- fixed mode
    def set_fixed(self, values: dict[str, Any] | None) -> None:
        """Evaluate at exact values: {name: value or per-element list}; None returns to sampling."""
        for b in self.items:
            b.fixed = None
        for name, value in (values or {}).items():
            self[name].set_fixed(value)

    # ------------------------------------------------------------------ hooks
    def seed(self, i: int, seed: int | None) -> None:
        self._seeds[i] = seed
        for b in self.items:
            b.seed(i, seed)
        for e in self.effects.values():
            e.seed(i, seed)
        if self.adr is not None:
            self.adr.seed(i, seed)

    def on_reset(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if self.adr is not None:
            self.adr.before_reset(ids)
        for b in self.ordered():
            b.on_reset(ids)
        for e in self.effects.values():
            e.on_reset(ids)

    def on_episode_end(self, ids: np.ndarray, metrics: np.ndarray) -> None:
        """Copies ids finished episodes scoring metrics (what ADR's ``metric`` names)."""
        if self.adr is not None:
            self.adr.on_episode_end(np.asarray(ids, dtype=np.int64), np.asarray(metrics, dtype=float))

    # ------------------------------------------------------------- the step
    def command(self, action: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The control step's commands from the policy's action, every sim alike (steps 2-4 of the order).

        Action noise on the action in [-1, 1] (``sim.unit_from_action``), the
        commands in actuator units (``sim.ctrl_from_unit``), the effects'
        ``on_ctrl`` (backlash), their ``before_physics`` (forces), then the
        timing effect (action delay) at ``sim.command_period`` resolution.
        Returns (n, nu), or (n, substeps, nu) written into ``out`` when some copy
        switches commands within the step; always inside the control range.
        """
        sim = self.sim
        if self._action:
            cmd = sim.ctrl_from_unit(self.on_action(sim.unit_from_action(action)))
        else:
            cmd = sim.ctrl_from_action(action)
        low, high = sim.ctrl_low, sim.ctrl_high
        cmd = self.on_ctrl(cmd, low, high)
        self.before_physics(sim.control_dt)
        if out is None and self.splits_steps:
            out = np.empty((sim.n_envs, sim.substeps, cmd.shape[1]))
        return self.substep_controls(cmd, sim.ctrl, sim.substeps, sim.command_period, low, high, out)

    def on_action(self, action: np.ndarray) -> np.ndarray:
        for b in self._action:
            action = b.on_action(action)
        return action

    def on_ctrl(self, ctrl: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Joint targets (n, nu) in actuator units through the effects' ``on_ctrl`` (backlash), each result
        clipped to [low, high]."""
        for e in self._hooks["on_ctrl"]:
            ctrl = np.clip(e.on_ctrl(ctrl), low, high)
        return ctrl

    def segments(self, cmd: np.ndarray, current: np.ndarray, substeps: int, timestep: float,
                 low: np.ndarray, high: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The control step as (nstep, ctrl) pieces: one piece unless action delays cut it."""
        timing = self._hooks["substep_controls"]
        if not timing:
            return [(substeps, cmd)]
        return [(n, np.clip(c, low, high)) for n, c in timing[0].segments(cmd, current, substeps, timestep) if n > 0]

    def substep_controls(self, cmd: np.ndarray, current: np.ndarray, substeps: int, timestep: float,
                         low: np.ndarray, high: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The step's controls, clipped: (n, nu) for the whole step, or (n, substeps, nu) written into out
        when action delays switch some copy's controls mid-step (what `segments` cuts into pieces)."""
        timing = self._hooks["substep_controls"]
        if not timing:
            return cmd
        return timing[0].substep_controls(cmd, current, substeps, timestep, low, high, out)

    @property
    def splits_steps(self) -> bool:
        """An effect decides which command acts in each physics substep (action delay)."""
        return bool(self._hooks["substep_controls"])

    def before_physics(self, control_dt: float) -> None:
        for e in self._hooks["before_physics"]:
            e.before_physics(control_dt)

    def on_step(self) -> None:
        for b in self._periodic:
            b.on_step()

    def on_observation(self, obs: dict[str, np.ndarray], rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Noise on the keys present in obs, then marker freeze (when its keys are all present).

        ``rows`` limits the work (and every state change, such as a marker's
        freeze countdown) to those copies: the vector env observes again only
        the copies it just reset.
        """
        if rows is not None:
            part = {k: v[rows] for k, v in obs.items()}
            self.on_observation_rows(part, np.asarray(rows))
            for k, v in part.items():
                obs[k][rows] = v
            return obs
        return self.on_observation_rows(obs, None)

    def on_observation_rows(self, obs: dict[str, np.ndarray], rows: np.ndarray | None) -> dict[str, np.ndarray]:
        for b in self._noise:
            b.on_observation(obs, rows)
        for e in self._hooks["on_observation"]:
            e.on_observation(obs, self.sim.control_dt, rows)
        return obs

    def info(self, i: int) -> dict[str, Any]:
        """Copy i's sampled values, keyed by YAML name (floats, or lists for per-element samples)."""
        return {b.name: b.info(i) for b in self.items}

    def state_dict(self) -> dict[str, Any]:
        """What must survive a restart (ADR ranges and buffers); plain numbers, safe for weights_only loading."""
        return {"adr": self.adr.state_dict() if self.adr is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("adr") is not None:
            if self.adr is None:
                raise RandomizationError(f"{self.spec.source}: the saved state has ADR ranges but this file has no adr")
            self.adr.load_state_dict(state["adr"])

    @property
    def privileged_size(self) -> int:
        return sum(b.size for b in self.items if not FAMILIES[b.family].rendered)

    def privileged(self) -> np.ndarray:
        """(n_envs, total size) of every sampled value, in stack order, for the critic's observation.

        Visual values describe the images, not the dynamics: they stay out.
        """
        items = [b for b in self.items if not FAMILIES[b.family].rendered]
        if not items:
            return np.zeros((self.sim.n_envs, 0))
        return np.concatenate([b.values for b in items], axis=1)


def bind_effect(stack: RandomizationStack, r: Randomizer) -> EffectParam:
    """The effect family's binder (`simreal.randomize.spec.FAMILIES`): the stack holds one instance of each
    registered effect its file names; each randomizer is one of that effect's parameters."""
    name = r.target.effect
    if name not in stack.effects:
        where = f"{stack.spec.locate(r.name)}.target.effect"
        try:
            effect = effect_registry.effect_class(name)(stack.sim)
        except EffectUnavailable as exc:
            raise stack.spec.error(where, str(exc)) from None
        timing = [e for e in stack.effects.values() if "substep_controls" in e.hooks()]
        if timing and "substep_controls" in effect.hooks():
            raise stack.spec.error(where, f"{name!r} and {timing[0].name!r} both decide when commands reach "
                                          "the actuators; a stack takes one of them")
        for i, seed in enumerate(stack._seeds):
            effect.seed(i, seed)
        stack.effects[name] = effect
    return EffectParam(r, stack.spec, stack.effects[name])
