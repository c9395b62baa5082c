"""The hand cube as a simulated rig: the `SimulatedRig` backend of ``simreal/HandCube-v0``
(its `registration.NativeEnv.rig`).

Commands are the 20 joint position targets (rad), from the action as the env maps it: relative to
the measured angles for ``control="relative"``; with ``action="discrete"`` each actuator's bin
commands are the choices the safety layer picks among. The safe state holds the joints where they
are; frames are the three cameras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simreal.rigs.base import RigError


class HandRigBackend:
    """Builds the hand-cube env under a reality's spec and maps actions to joint targets and back."""

    units = "rad (joint position targets)"

    def __init__(self, rig, env_id: str, spec, pixels_only: bool):
        from simreal.envs.hand_cube import HandCubeEnv

        if rig.action_repeat != 1:
            raise RigError(f"SimulatedRig: action_repeat is not an option of {env_id}")
        kwargs = dict(rig.env_kwargs)
        if rig.pixels is not None:  # the tiled camera image of world-model agents trained from pixels
            kwargs.update(pixels=rig.pixels, pixels_only=pixels_only)
        if rig.cameras is not None:
            kwargs["render_size"] = rig.cameras
        try:
            self.env = HandCubeEnv(randomization=spec, **kwargs)
        except TypeError as exc:
            raise RigError(str(exc)) from None
        self.sim = self.env.sim
        self.config = self.env.config
        self.discrete = self.config.action == "discrete"
        self.stack = self.sim.randomization
        self.control_dt = self.config.control_dt
        self.command_names = [self.sim.model.actuator(i).name for i in range(self.sim.nu)]
        self.low, self.high = self.sim.ctrl_low.copy(), self.sim.ctrl_high.copy()

    def _center(self) -> np.ndarray:
        sim = self.sim
        return sim.qpos[0, sim.act_qadr] if self.config.control == "relative" else sim.ctrl_mid

    def command_of(self, action: np.ndarray) -> np.ndarray:
        """The joint targets an action asks for (the env's own mapping, before the safety layer's limits)."""
        a = np.asarray(action, dtype=np.float64).ravel()
        return self._center() + self.sim.action_to_unit(np.rint(a) if self.discrete else a) * self.sim.ctrl_half

    def command_choices(self) -> np.ndarray:
        """(actuators, bins): the joint target each bin gives now (discrete hand actions)."""
        sim = self.sim
        n = self.config.n_bins
        units = np.arange(n) * (2.0 / (n - 1)) - 1.0
        targets = self._center()[:, None] + units[None, :] * sim.ctrl_half[:, None]
        return np.clip(targets, sim.ctrl_low[:, None], sim.ctrl_high[:, None])

    def action_of(self, command: np.ndarray) -> np.ndarray:
        if self.discrete:  # the bin nearest the command
            return np.argmin(np.abs(self.command_choices() - np.asarray(command)[:, None]), axis=1)
        return np.clip((command - self._center()) / self.sim.ctrl_half, -1.0, 1.0)

    def command_spacing(self) -> np.ndarray:
        return self.sim.ctrl_half * (2.0 / (self.config.n_bins - 1))

    def hold_command(self) -> np.ndarray:
        return np.clip(self.sim.qpos[0, self.sim.act_qadr], self.low, self.high)

    def safe_state(self) -> None:
        sim = self.sim
        sim.ctrl[0] = np.clip(sim.qpos[0, sim.act_qadr], sim.ctrl_low, sim.ctrl_high)

    def frames(self) -> dict[str, np.ndarray]:
        names = [c.name for c in self.config.scene.cameras]
        return dict(zip(names, self.env.render_cameras()))

    def sim_state(self) -> dict[str, np.ndarray]:
        return {"qpos": self.sim.qpos[0].copy(), "qvel": self.sim.qvel[0].copy()}

    def extra_info(self) -> dict[str, Any]:
        return {"state_layout": {k: [s.start, s.stop] for k, s in self.env.state_layout.items()}}

    def hold_policy(self):
        """A policy (obs -> action) that holds the hand's pose: `simreal.envs.policies.HoldPolicy`."""
        from simreal.envs.policies import HoldPolicy

        return HoldPolicy(self.sim)
