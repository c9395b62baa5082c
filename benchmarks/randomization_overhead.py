"""What the randomization engine costs, against running without it and against recompiling.

Prints JSON with:
  step_overhead_ratio    vector-env step time with the full non-visual Dactyl stack
                         (randomizations/dactyl.yaml: physics, timing jitter, action
                         delay, backlash, marker freeze and occlusion, object forces,
                         action and observation noise) / the same env without it;
                         n_envs copies on all cores, the training configuration.
                         Target <= 1.10.
  single_env_overhead_ratio   the same for one env (no copies to share Python work
                         over; reported, no target).
  hooks_overhead_ratio   the randomized vector step over itself minus the time spent
                         inside the stack's hooks: the engine's own cost, without the
                         change in physics cost that randomized dynamics bring
                         (noisier actions, other masses and timesteps simulate at a
                         different speed; that part is in step_overhead_ratio).
  reset_randomize_ms     the extra work a reset does for physics randomization: every
                         physics randomizer of dactyl.yaml draws and writes its values
                         into the copy's model fields from the cached nominal values,
                         derived fields follow, mj_setConst runs. Per copy.
                         Target <= 1 ms.
  recompile_reset_ms     the same randomization done the way dm_control's MJCF
                         variator does it: write the sampled values into the model
                         description, export it as XML and build a new model and
                         data from it (dm_control: Physics.from_mjcf_model). Median
                         per reset. Target: >= 20x reset_randomize_ms.
  recompile_spec_ms      the quickest recompiling path we know, for reference:
                         MjSpec.compile() on the edited spec (no XML round trip;
                         MuJoCo caches the processed meshes between compiles).

Episodes do not end inside the timed windows (goal timeouts off, drop height below
the floor), so what is timed is stepping, with whatever the randomized physics costs.
Runs alternate with and without randomization and the best of each is taken
(a noisy, shared 2-core machine).
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

from simreal.envs import scene as scene_mod  # noqa: E402
from simreal.envs.hand_cube import HandCubeConfig, HandCubeEnv, HandCubeSim  # noqa: E402
from simreal.envs.policies import HoldPolicy  # noqa: E402
from simreal.envs.vec_env import HandCubeVecEnv  # noqa: E402
from simreal.randomize import load_spec  # noqa: E402
from simreal.randomize.physics import FieldRandomizer  # noqa: E402

ENV_KW = dict(goal_timeout=1e6, drop_height=-10.0)
NOISE = 0.05
YAML = "dactyl.yaml"


HOOKS = ("on_action", "on_ctrl", "substep_controls", "before_physics", "on_step", "on_observation")


def clock_hooks(stack) -> list[float]:
    """Time every stack hook the env calls during a step (the engine's own Python work)."""
    spent = [0.0]
    for name in HOOKS:
        inner = getattr(stack, name)

        def timed(*args, _inner=inner, **kwargs):
            t0 = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        setattr(stack, name, timed)
    return spent


def time_vec(randomization, n_envs: int, nthread: int, steps: int, seed: int) -> tuple[float, float]:
    """(seconds per vector step, of which seconds in the randomization hooks)."""
    venv = HandCubeVecEnv(n_envs, nthread=nthread, randomization=randomization, **ENV_KW)
    venv.seed(seed)
    obs = venv.reset()
    policy = HoldPolicy(venv.sim, noise=NOISE, seed=seed)
    obs, *_ = venv.step(policy(obs))  # warm-up
    spent = clock_hooks(venv.sim.randomization) if venv.sim.randomization is not None else [0.0]
    elapsed = 0.0
    for _ in range(steps):
        actions = policy(obs)
        t0 = time.perf_counter()
        obs, _, done, _ = venv.step(actions)
        elapsed += time.perf_counter() - t0
        if done.any():
            raise RuntimeError("an episode ended inside the timed window")
    venv.close()
    return elapsed / steps, spent[0] / steps


def time_single(randomization, steps: int, seed: int) -> float:
    env = HandCubeEnv(randomization=randomization, **ENV_KW)
    obs, _ = env.reset(seed=seed)
    policy = HoldPolicy(env.sim, noise=NOISE, seed=seed)
    elapsed = 0.0
    for _ in range(steps):
        action = policy(obs)
        t0 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        if terminated or truncated:
            raise RuntimeError("an episode ended inside the timed window")
    return elapsed / steps


def physics_only(spec):
    """The physics randomizers of spec, as their own spec (what a reset writes into the model)."""
    out = spec.model_copy(update={"randomizers": [r for r in spec.enabled() if r.family == "physics"], "visual": []})
    out._source = spec.source
    return out


def time_reset_randomize(n: int, seed: int) -> tuple[float, list]:
    sim = HandCubeSim(1, HandCubeConfig(settle_time=0.0))
    sim.set_randomization(physics_only(load_spec(YAML)))
    sim.seed(0, seed)
    stack, ids = sim.randomization, np.array([0])
    stack.on_reset(ids)  # warm-up: first expansion of each field
    t0 = time.perf_counter()
    for _ in range(n):
        stack.on_reset(ids)
    return (time.perf_counter() - t0) / n * 1e3, [b for b in stack.items if isinstance(b, FieldRandomizer)]


class Recompiler:
    """Applies a stack's sampled physics values to an MjSpec and compiles (dm_control variator style)."""

    def __init__(self, bound: list[FieldRandomizer]):
        self.spec = scene_mod.build_spec(scene_mod.SceneSpec())
        self.nominal = self.spec.compile()
        self.bound = bound

    def reset(self, via_xml: bool = True) -> tuple[mujoco.MjModel, mujoco.MjData]:
        s, m0 = self.spec, self.nominal
        for b in self.bound:
            values = b._table()[0][np.ix_(b.rows, b.cols)]  # what the in-place path wrote
            for k, row in enumerate(b.rows):
                v = values[k]
                if b.field == "body_mass":
                    body = s.body(m0.body(row).name)
                    body.explicitinertial = True
                    body.mass = float(v[0])
                    body.inertia = m0.body_inertia[row] * float(v[0] / max(m0.body_mass[row], 1e-12))
                    body.ipos, body.iquat = m0.body_ipos[row], m0.body_iquat[row]
                elif b.field == "geom_size":
                    s.geom(m0.geom(row).name).size[b.cols] = v
                elif b.field == "geom_friction":
                    s.geom(m0.geom(row).name).friction[b.cols] = v
                elif b.field == "dof_damping":
                    s.joint(m0.joint(m0.dof_jntid[row]).name).damping[0] = float(v[0])
                elif b.field == "actuator_gainprm":
                    act = s.actuator(m0.actuator(row).name)
                    act.gainprm[0] = float(v[0])
                    act.biasprm[1] = -float(v[0])
                elif b.field == "jnt_range":
                    s.joint(m0.joint(row).name).range[b.cols] = np.sort(v)
                elif b.field == "opt.gravity":
                    s.option.gravity[b.cols] = v
                elif b.field == "opt.timestep":
                    s.option.timestep = float(v[0])
        model = mujoco.MjModel.from_xml_string(s.to_xml(), s.assets) if via_xml else s.compile()
        return model, mujoco.MjData(model)


def recompiled_model_matches(recompiler: Recompiler, bound: list[FieldRandomizer]) -> bool:
    """Both paths give the same randomized model (so the two times are for the same work)."""
    model, _ = recompiler.reset(via_xml=False)
    for b in bound:
        ours = b._table()[0][np.ix_(b.rows, b.cols)]
        theirs = (np.atleast_1d(getattr(model.opt, b.field[4:])).reshape(1, -1) if b.field.startswith("opt.")
                  else getattr(model, b.field).reshape(getattr(model, b.field).shape[0], -1))[np.ix_(b.rows, b.cols)]
        if not np.allclose(ours, theirs, rtol=1e-6, atol=1e-9):
            print(f"warning: recompiled {b.field} differs from the in-place values", file=sys.stderr)
            return False
    return True


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vec-steps", type=int, default=100, help="vector steps per timed window")
    parser.add_argument("--steps", type=int, default=300, help="single-env steps per timed window")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--nthread", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--resets", type=int, default=500, help="resets timed for in-place randomization")
    parser.add_argument("--recompiles", type=int, default=20, help="resets timed for recompiling")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true",
                        help="also write benchmarks/results/randomization_overhead_<date>.json")
    args = parser.parse_args(argv)

    spec = load_spec(YAML)
    vec_plain, vec_rand, vec_hooks, one_plain, one_rand = [], [], [], [], []
    for _ in range(args.repeats):  # alternate, so drifts in machine load hit both sides
        vec_plain.append(time_vec(None, args.n_envs, args.nthread, args.vec_steps, args.seed)[0])
        total, hooks = time_vec(spec, args.n_envs, args.nthread, args.vec_steps, args.seed)
        vec_rand.append(total)
        vec_hooks.append(hooks)
        one_plain.append(time_single(None, args.steps, args.seed))
        one_rand.append(time_single(spec, args.steps, args.seed))

    reset_ms, bound = time_reset_randomize(args.resets, args.seed)
    recompiler = Recompiler(bound)
    times, spec_times = [], []
    for _ in range(args.recompiles):
        t0 = time.perf_counter()
        recompiler.reset(via_xml=True)
        times.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        recompiler.reset(via_xml=False)
        spec_times.append((time.perf_counter() - t0) * 1e3)
    recompile_ms = float(np.median(times))

    ratio = min(vec_rand) / min(vec_plain)
    best = int(np.argmin(vec_rand))
    hooks_ratio = vec_rand[best] / (vec_rand[best] - vec_hooks[best])
    single_ratio = min(one_rand) / min(one_plain)
    speedup = recompile_ms / reset_ms
    result = {
        "benchmark": "randomization_overhead",
        "step_overhead_ratio": round(ratio, 3),
        "single_env_overhead_ratio": round(single_ratio, 3),
        "hooks_overhead_ratio": round(hooks_ratio, 3),
        "hooks_ms_per_vec_step": round(vec_hooks[best] * 1e3, 3),
        "reset_randomize_ms": round(reset_ms, 4),
        "recompile_reset_ms": round(recompile_ms, 2),
        "recompile_over_in_place": round(speedup, 1),
        "recompile_spec_ms": round(float(np.median(spec_times)), 2),
        "recompile_spec_over_in_place": round(float(np.median(spec_times)) / reset_ms, 1),
        "targets": {"step_overhead_ratio": 1.10, "reset_randomize_ms": 1.0, "recompile_over_in_place": 20.0},
        "meets_targets": bool(ratio <= 1.10 and reset_ms <= 1.0 and speedup >= 20.0),
        "vec_step_ms": {"plain": round(min(vec_plain) * 1e3, 3), "randomized": round(min(vec_rand) * 1e3, 3)},
        "single_step_ms": {"plain": round(min(one_plain) * 1e3, 3), "randomized": round(min(one_rand) * 1e3, 3)},
        "recompile_first_ms": round(times[0], 2),
        "recompiled_model_matches": recompiled_model_matches(recompiler, bound),
        "physics_randomizers": [f"{b.name} ({b.field}, {b.size} values)" for b in bound],
        "all_runs_ms": {"vec_plain": [round(x * 1e3, 3) for x in vec_plain],
                        "vec_randomized": [round(x * 1e3, 3) for x in vec_rand],
                        "single_plain": [round(x * 1e3, 3) for x in one_plain],
                        "single_randomized": [round(x * 1e3, 3) for x in one_rand]},
        "settings": {**vars(args), "randomization": YAML, "randomizers": len(spec.enabled()),
                     "policy": f"HoldPolicy(noise={NOISE})", "env_kwargs": ENV_KW},
        "machine": machine(),
    }
    emit("randomization_overhead", result, args.save)
    return result


if __name__ == "__main__":
    main()
