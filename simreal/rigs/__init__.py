"""Rigs: real robots, held-out simulated robots and recorded logs behind one interface.

Every rig has the observation and action spaces of the env its policies were
trained on, a control period, ``reset``/``step``/``close``, metadata
(``rig.info()``) and the safety layer of `simreal.rigs.base` (joint limits,
a maximum change per step, a watchdog, an emergency stop)::

    from simreal.agents import load_policy
    from simreal.rigs import open_rig, record, run_episodes

    rig = open_rig("sim:cartpole_heavy_pole", env_id="dm_control/cartpole-swingup-v0")
    record(rig, "outputs/logs/heavy_pole").set_tags(agent="ppo_dr")   # a Minari dataset, episode by episode
    results = run_episodes(rig, load_policy("runs/ppo_dr/policy.pt"), episodes=10, seed=1000)
    rig.close()

Rig specs for `open_rig` (and ``simreal rig ... RIG`` on the command line):

=========================== =====================================================================
``sim:NAME`` or ``NAME``    `SimulatedRig` under a shipped reality (``rigs/realities/NAME.yaml``)
``sim:PATH.yaml``           ... under a reality file
``nominal``                 `SimulatedRig` at nominal physics (needs ``env_id``)
``replay:DIR`` or ``DIR``   `ReplayRig` over a recorded dataset
``tcp://HOST:PORT``         `RemoteRig` (token from ``token``, ``token_file`` or $SIMREAL_RIG_TOKEN)
``leap:fake``               `LeapHandRig` on a `FakeMotorBus`
``leap:/dev/ttyUSB0``       `LeapHandRig` on a real hand (`DynamixelMotorBus`)
=========================== =====================================================================
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

from simreal.rigs.base import (
    EmergencyStopped,
    EpisodeNotStarted,
    Rig,
    RigError,
    RigInfo,
    RigStopped,
    SafetyConfig,
    SafetyStats,
    WatchdogTripped,
)
from simreal.rigs.recording import DatasetReader, DatasetWriter, RecordedEpisode, RecordingError, record
from simreal.rigs.rollout import (EpisodeResult, FunctionPolicy, batch_obs, random_policy, run_episode, run_episodes,
                                  zero_policy)
from simreal.utils.lazy import lazy_exports

__all__ = [
    "DatasetReader", "DatasetWriter", "EmergencyStopped", "EpisodeNotStarted", "EpisodeResult", "FunctionPolicy",
    "LeapHandRig", "RecordedEpisode", "RecordingError", "RemoteRig", "ReplayRig", "Rig", "RigError", "RigInfo",
    "RigServer", "RigStopped", "SafetyConfig", "SafetyStats", "SimulatedRig", "WatchdogTripped", "batch_obs",
    "list_realities", "load_reality", "open_rig", "random_policy", "record", "run_episode", "run_episodes",
    "zero_policy",
]

_LAZY = {
    "SimulatedRig": "simreal.rigs.sim", "load_reality": "simreal.rigs.sim", "list_realities": "simreal.rigs.sim",
    "Reality": "simreal.rigs.sim", "ReplayRig": "simreal.rigs.replay", "RemoteRig": "simreal.rigs.bridge",
    "RigServer": "simreal.rigs.bridge", "LeapHandRig": "simreal.rigs.leap", "FakeMotorBus": "simreal.rigs.leap",
}


__getattr__ = lazy_exports(__name__, _LAZY)


def _is_dataset(path: str) -> bool:
    p = pathlib.Path(path)
    return (p / "data" / "metadata.json").is_file() or (p.name == "data" and (p / "metadata.json").is_file())


def open_rig(spec: str, *, env_id: str | None = None, env_kwargs: Mapping[str, Any] | None = None,
             action_repeat: int = 1, pixels: tuple[int, int] | None = None, pixels_only: bool = False,
             seed: int = 0, safety: SafetyConfig | None = None, cameras: tuple[int, int] | None = None,
             realtime: bool = False, token: str | None = None, token_file: str | os.PathLike | None = None,
             timeout: float = 2.0, retries: int = 3) -> Rig:
    """The rig a spec string names (see the module docstring).

    ``env_id``, ``env_kwargs``, ``action_repeat``, ``pixels`` and
    ``pixels_only`` describe the env the policy was trained on: a simulated rig
    is built with them, and any other rig must serve that env (``env_id``
    checked when both are known).
    """
    spec = str(spec).strip()
    kind, _, rest = spec.partition(":")
    if spec.startswith("tcp://"):
        from simreal.rigs.bridge import RemoteRig

        rig: Rig = RemoteRig(spec, token, token_file=token_file, timeout=timeout, retries=retries, safety=safety)
    elif kind == "leap":
        from simreal.rigs.leap import DynamixelMotorBus, FakeMotorBus, LeapHandRig

        if not rest:
            raise RigError("leap rig: use leap:fake or leap:SERIAL_PORT (e.g. leap:/dev/ttyUSB0)")
        bus = FakeMotorBus() if rest == "fake" else DynamixelMotorBus(rest)
        rig = LeapHandRig(bus, safety=safety)
    elif kind == "replay" or (not rest and _is_dataset(spec)):
        from simreal.rigs.replay import ReplayRig

        rig = ReplayRig(rest if kind == "replay" else spec)
    else:
        from simreal.rigs.sim import SimulatedRig

        if kind == "nominal" or spec == "nominal":
            env = rest or env_id
            if env is None:
                raise RigError("rig 'nominal' needs an env (nominal:ENV_ID, or the agent's env)")
            if env_id is not None and env != env_id:
                raise RigError(f"rig {spec!r} runs {env}, but the policy's env is {env_id}")
            reality = None
            env_id = env
        else:
            reality = rest if kind == "sim" else spec
        return SimulatedRig(reality, env_id=env_id, env_kwargs=env_kwargs, action_repeat=action_repeat,
                            pixels=pixels, pixels_only=pixels_only, seed=seed, safety=safety, cameras=cameras,
                            realtime=realtime)
    if env_id is not None and rig.env_id is not None and rig.env_id != env_id:
        rig.close()
        raise RigError(f"rig {spec!r} serves {rig.env_id}, but the policy's env is {env_id}")
    return rig
