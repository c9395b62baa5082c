"""How fast Dreamer trains and acts on this machine, per version preset and size.

Prints JSON with one row per (preset, size):
  updates_per_s        gradient updates per second (world model + actor + critic), on
                       replay batches of the preset's batch.size x batch.length, on the
                       dm_control cartpole-swingup spaces (proprioception: 5 numbers in,
                       1 action out)
  replayed_steps_per_s updates_per_s x batch.size x batch.length
  env_steps_per_s      collection speed: env frames per second (action repeat 2) with
                       the agent's exploring policy choosing every action (one env copy)
  train_env_steps_per_s  what a training run at the preset's train_ratio achieves:
                       frames per second including the updates due per frame
  params               trainable parameters of the agent
and a ``compile`` block: the same update timed eager and with ``torch.compile`` of the
RSSM step functions (the ``run.compile`` option), alternating to share the machine's
noise, plus the one-off compile time. Baseline for the ratio: eager, same process.

The machine is shared: each number is the best of ``--repeats`` timed blocks.
``--quick`` runs the tiny size only, with a few updates (a check that it works).

What helped on the 2-core CPU (benchmarks/results/dreamer_throughput_2026-11-21.json):
one torch thread per process when the machine is shared (two threads are 1.7x faster
on an idle machine, several times slower when the other core is busy); no per-step
``.any()`` branches, sampling categoricals by inverse CDF instead of ``multinomial``,
no prior sample during filtering, computing the learned initial state once per batch.
``torch.compile`` of the RSSM steps gave 1.07x (tiny) and 1.03x (micro) for 12-23 s of
compiling, so ``run.compile`` stays off by default. The cost is in the matrix products
of imagination (B*T starts x 15 steps through RSSM, actor, reward, continue and two
critics), i.e. compute-bound: batch and size are the levers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, machine  # noqa: E402

PRESETS = ("dreamer_v1", "dreamer_v2", "dreamer_v3")
ENV_ID = "dm_control/cartpole-swingup-v0"


def build(preset: str, size: str, overrides=()):
    import torch

    from simreal.agents.actions import ActionSpec
    from simreal.agents.world_models import CONFIG_PATH
    from simreal.agents.world_models.config import DreamerConfig
    from simreal.agents.world_models.dreamer import Dreamer
    from simreal.agents.world_models.nets import ObsLayout
    from simreal.agents.world_models.trainer import make_env
    from simreal.training.config import resolve_config

    cfg = resolve_config(CONFIG_PATH, [preset, size], list(overrides))
    dc = DreamerConfig.from_resolved(cfg)
    env = make_env(cfg["env"], 1, seed=0)
    layout = ObsLayout.from_space(env.observation_space, dc.model.keys)
    spec = ActionSpec.from_space(env.action_space, "one_hot")
    torch.manual_seed(0)
    agent = Dreamer(layout, spec, dc.model, dc.behavior)
    return cfg, dc, env, agent


def collect_batch(env, agent, dc, rng):
    """A replay batch of real cartpole steps (random actions), shaped like the preset's batches."""
    from simreal.agents.world_models.replay import SequenceReplay
    from simreal.agents.world_models.trainer import replay_fields
    from simreal.agents.world_models.world_model import Batch

    size, length = dc.batch.size, dc.batch.length
    replay = SequenceReplay(replay_fields(agent.layout, env.observation_space, agent.spec), 10 * length, 1)
    obs = env.reset()
    for t in range(2 * length):
        action = agent.spec.random(1, rng)
        next_obs, reward, done, _ = env.step(agent.spec.to_env(action))
        replay.add({**{k: np.asarray(obs[k]) for k in agent.layout.keys}, "action": action,
                    "reward": reward.astype(np.float32), "is_first": np.array([t == 0]),
                    "is_terminal": np.zeros(1, bool)})
        obs = next_obs
    return Batch.from_numpy(replay.sample(size, length), agent.layout.keys, agent.device)


def time_updates(agent, batch, updates: int, repeats: int) -> float:
    agent.train_step(batch)   # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(updates):
            agent.train_step(batch)
        best = min(best, (time.perf_counter() - t0) / updates)
    return 1.0 / best


def time_acting(env, agent, steps: int, repeats: int, repeat: int) -> float:
    import torch

    best = float("inf")
    for _ in range(repeats):
        obs = env.reset()
        state = agent.policy.initial_state(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            action, state = agent.policy.act(agent.obs_to_tensors(obs), state, explore=True)
            obs, _, done, _ = env.step(agent.spec.to_env(action.numpy()))
            state = agent.policy.reset_state(state, torch.as_tensor(done))
        best = min(best, (time.perf_counter() - t0) / steps)
    return repeat / best


def measure(preset: str, size: str, args) -> dict:
    cfg, dc, env, agent = build(preset, size)
    rng = np.random.default_rng(0)
    batch = collect_batch(env, agent, dc, rng)
    updates_per_s = time_updates(agent, batch, args.updates, args.repeats)
    repeat = int(cfg["env"]["action_repeat"])
    env_steps_per_s = time_acting(env, agent, args.env_steps, args.repeats, repeat)
    replayed = dc.batch.size * dc.batch.length
    updates_per_frame = dc.run.train_ratio / replayed / repeat
    env.close()
    return {
        "preset": preset, "size": size, "batch": [dc.batch.size, dc.batch.length],
        "train_ratio": dc.run.train_ratio, "params": sum(p.numel() for p in agent.parameters() if p.requires_grad),
        "updates_per_s": round(updates_per_s, 3), "replayed_steps_per_s": round(updates_per_s * replayed, 1),
        "env_steps_per_s": round(env_steps_per_s, 1),
        "train_env_steps_per_s": round(1.0 / (1.0 / env_steps_per_s + updates_per_frame / updates_per_s), 2),
    }


def measure_compile(preset: str, size: str, args) -> dict:
    """Eager against torch.compile'd RSSM steps, alternating blocks; best of each."""
    from simreal.agents.world_models.trainer import compile_agent

    _, dc, env, eager = build(preset, size)
    _, _, _, compiled = build(preset, size)
    batch = collect_batch(env, eager, dc, np.random.default_rng(0))
    t0 = time.perf_counter()
    compile_agent(compiled)
    compiled.train_step(batch)
    compile_s = time.perf_counter() - t0
    eager_best = compiled_best = 0.0
    for _ in range(args.repeats):
        eager_best = max(eager_best, time_updates(eager, batch, args.updates, 1))
        compiled_best = max(compiled_best, time_updates(compiled, batch, args.updates, 1))
    env.close()
    return {"preset": preset, "size": size, "eager_updates_per_s": round(eager_best, 3),
            "compiled_updates_per_s": round(compiled_best, 3), "speedup": round(compiled_best / eager_best, 3),
            "compile_seconds": round(compile_s, 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,small", help="comma-separated size presets (default tiny,small)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated version presets")
    parser.add_argument("--updates", type=int, default=5, help="updates per timed block (default 5)")
    parser.add_argument("--env-steps", type=int, default=500, help="policy steps per timed acting block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks per number; the best counts")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--compile", default="dreamer_v3:tiny,dreamer_v3:micro",
                        help="PRESET:SIZE pairs to time with and without torch.compile ('' to skip)")
    parser.add_argument("--quick", action="store_true", help="tiny size, 2 updates, no compile: a smoke check")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/dreamer_throughput_<date>.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.updates, args.env_steps, args.repeats, args.compile = "tiny", 2, 50, 1, ""

    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    jobs = [(p, s) for s in args.sizes.split(",") for p in args.presets.split(",")]
    rows = [measure(p, s, args) for p, s in tqdm(jobs, desc="presets", leave=False)]
    compile_rows = [measure_compile(*pair.split(":"), args) for pair in args.compile.split(",") if pair]
    result = {
        "benchmark": "dreamer_throughput", "machine": machine(), "device": "cpu", "torch": torch.__version__,
        "settings": {"env": ENV_ID, "observations": "proprioceptive", "threads": args.threads,
                     "updates_per_block": args.updates, "env_steps_per_block": args.env_steps,
                     "repeats": args.repeats},
        "results": rows,
        "compile": compile_rows,
    }
    emit("dreamer_throughput", result, args.save)
    return result


if __name__ == "__main__":
    main()
