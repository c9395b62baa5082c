"""Throughput of the hand-cube env against the raw physics it runs on.

Prints JSON with:
  physics_bound_steps_per_s  raw MuJoCo substeps/s of the same model (one core,
                             replaying the exact controls the env applied, from
                             the same start state) / substeps per env step;
  single_env_steps_per_s     simreal.make("simreal/HandCube-v0"), full step
                             (action mapping, physics, reward, observation);
  vec_env_steps_per_s        simreal.make_vec(n_envs, nthread=cores), env-steps/s
                             summed over copies;
  and the two ratios the targets are stated in:
  single_over_bound  >= 0.85,   vec_over_single >= 1.7.

The policy is the scripted HoldPolicy (hold the hand's pose, plus Gaussian action
noise of 0.05) with goal timeouts disabled, so the cube stays on the palm and
the timed window is stepping, not resets; reset cost is reported separately.
Only env.step calls are timed (the policy runs outside the clock).
Each measurement is repeated and the best taken (a noisy, shared 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import mujoco  # noqa: E402
from _common import emit, machine  # noqa: E402

import simreal  # noqa: E402
from simreal.envs.policies import HoldPolicy  # noqa: E402

ENV_KW = dict(goal_timeout=1e6)
NOISE = 0.05


def run_single(steps: int, seed: int):
    env = simreal.make(simreal.HAND_CUBE_ID, **ENV_KW)
    obs, _ = env.reset(seed=seed)
    sim = env.unwrapped.sim
    policy = HoldPolicy(sim, noise=NOISE, seed=seed)
    start = sim.batch.get_data(0)
    ctrls = np.empty((steps, sim.nu))
    elapsed = 0.0
    for k in range(steps):
        action = policy(obs)
        t0 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        ctrls[k] = sim.ctrl[0]  # read after the step: the control it applied
        if terminated or truncated:
            raise RuntimeError("the benchmark episode ended early: its physics bound would not be comparable")
    final_qpos = sim.qpos[0].copy()
    t0 = time.perf_counter()
    n_resets = 20
    for _ in range(n_resets):
        env.reset()
    reset_ms = (time.perf_counter() - t0) / n_resets * 1e3
    env.close()
    return steps / elapsed, start, ctrls, final_qpos, reset_ms, sim


def run_physics(model: mujoco.MjModel, start: mujoco.MjData, ctrls: np.ndarray, substeps: int):
    data = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, start, state, spec)
    mujoco.mj_setState(model, data, state, spec)
    t0 = time.perf_counter()
    for ctrl in ctrls:
        data.ctrl[:] = ctrl
        mujoco.mj_step(model, data, nstep=substeps)
    elapsed = time.perf_counter() - t0
    return len(ctrls) / elapsed, data.qpos.copy()


def run_vec(steps: int, n_envs: int, nthread: int, seed: int):
    venv = simreal.make_vec(simreal.HAND_CUBE_ID, n_envs=n_envs, seed=seed, nthread=nthread, **ENV_KW)
    obs = venv.reset()
    policy = HoldPolicy(venv.sim, noise=NOISE, seed=seed)
    obs, *_ = venv.step(policy(obs))  # warm-up
    elapsed, resets = 0.0, 0
    for _ in range(steps):
        actions = policy(obs)
        t0 = time.perf_counter()
        obs, _, done, _ = venv.step(actions)
        elapsed += time.perf_counter() - t0
        resets += int(done.sum())
    venv.close()
    if resets:
        print(f"warning: {resets} episodes ended during the vec-env measurement", file=sys.stderr)
    return steps * n_envs / elapsed


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="env steps per single-env measurement")
    parser.add_argument("--vec-steps", type=int, default=100, help="vector steps per vec-env measurement")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--nthread", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="also write benchmarks/results/env_throughput_<date>.json")
    args = parser.parse_args(argv)

    bound, single, vec = [], [], []
    identical = True
    for _ in range(args.repeats):
        rate, start, ctrls, final_qpos, reset_ms, sim = run_single(args.steps, args.seed)
        single.append(rate)
        phys_rate, phys_qpos = run_physics(sim.model, start, ctrls, sim.config.substeps)
        bound.append(phys_rate)
        identical &= bool(np.array_equal(phys_qpos, final_qpos))
        vec.append(run_vec(args.vec_steps, args.n_envs, args.nthread, args.seed))

    best_bound, best_single, best_vec = max(bound), max(single), max(vec)
    result = {
        "benchmark": "env_throughput",
        "physics_bound_steps_per_s": round(best_bound, 1),
        "single_env_steps_per_s": round(best_single, 1),
        "vec_env_steps_per_s": round(best_vec, 1),
        "n_envs": args.n_envs,
        "single_over_bound": round(best_single / best_bound, 3),
        "vec_over_single": round(best_vec / best_single, 3),
        "targets": {"single_over_bound": 0.85, "vec_over_single": 1.7},
        "meets_targets": bool(best_single / best_bound >= 0.85 and best_vec / best_single >= 1.7),
        "physics_substeps_per_s": round(best_bound * sim.config.substeps, 1),
        "reset_ms": round(reset_ms, 2),
        "env_matches_raw_physics_bitwise": identical,
        "all_runs": {"physics_bound": [round(x, 1) for x in bound], "single": [round(x, 1) for x in single],
                     "vec": [round(x, 1) for x in vec]},
        "settings": {**vars(args), "substeps_per_step": sim.config.substeps, "timestep": sim.config.scene.timestep,
                     "policy": f"HoldPolicy(noise={NOISE})", "env_kwargs": ENV_KW},
        "machine": machine(),
    }
    emit("env_throughput", result, args.save)
    return result


if __name__ == "__main__":
    main()
