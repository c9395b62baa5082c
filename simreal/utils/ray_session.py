"""Joining Ray (the optional ``simreal[ray]`` extra) the one way simreal's rollout workers, study tasks and
benchmarks do it."""

from __future__ import annotations

import os
from typing import Any


def join_ray(address: str | None = None, num_cpus: int | None = None) -> tuple[Any, bool]:
    """``(ray, started)``: the running Ray session as it is, else a new one, on the cluster at ``address``
    (``"auto"``, ``HOST:6379``, ``ray://HOST:10001``) or, without one, a local Ray with ``num_cpus`` CPUs.
    Worker processes render headless (``MUJOCO_GL`` as here, default ``egl``). ``started``: this call began
    the session, so the caller shuts it down (`leave_ray`). ImportError when Ray is not installed."""
    import ray

    if ray.is_initialized():
        return ray, False
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}})
    return ray, True


def leave_ray(ray, started: bool) -> None:
    """Shut down a session `join_ray` started; leave one that was running before alone."""
    if started and ray.is_initialized():
        ray.shutdown()
