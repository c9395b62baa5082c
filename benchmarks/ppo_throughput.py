"""Recurrent PPO throughput: ours against sb3-contrib's RecurrentPPO, same env, same sizes, one run.

Prints JSON with:
  ours_steps_per_s     env steps per second of simreal's PPO, collection plus update
                       (wall time of whole updates: rollout, GAE, epochs of minibatches)
  sb3_steps_per_s      the same for sb3_contrib.RecurrentPPO (MultiInputLstmPolicy)
  ratio                ours / sb3. Target >= 3.
  per_update_s         where the time goes, for both: collection (of which the env's own
                       step time) and update
  env_only_steps_per_s the env alone under a constant action: the bound on both
  ratio_bound          sb3's time per update over the env's: the ratio an infinitely fast
                       learner would reach on this env
  update_ratio         sb3's update phase (epochs over the rollout) over ours
  learner_only_ratio   sb3's time per update outside the env's step function over ours
                       (policy inference, storage, GAE, update: the learners themselves)

Both learners get the same VecEnv, the same number of copies, rollout length,
epochs and number of minibatches, the same LSTM size and the same architecture: a
dense layer and an LSTM for the actor and -- as sb3-contrib's default
``enable_critic_lstm=True`` -- an LSTM critic (``--critic mlp`` compares
feed-forward critics, ``enable_critic_lstm=False``). sb3-contrib's actor reads
every observation key (it has no asymmetric critic); ours reads the policy keys.
One torch thread each. Runs alternate ours / theirs and the best of ``--repeats``
is kept (the machine is shared and noisy); each side first runs one untimed
warm-up update.

``--env cartpole`` (default): dm_control cartpole swing-up (shimmy, our training
wrappers, SB3's DummyVecEnv, action repeat 2) with the ``cartpole`` preset's
sizes: 16 copies, 128-step rollouts, 10 epochs of 4 minibatches, a 64-unit layer
and a 128-unit LSTM. Its episodes all last 500 steps and start together, so
about one rollout in four holds an episode start -- where sb3-contrib's LSTM
falls back to a Python loop over time steps while ours still runs one LSTM call
per minibatch. Time at least 8 updates for that mix to show.

``--env hopper``: Gymnasium's Hopper-v5 (our training wrappers, DummyVecEnv) with
the cartpole sizes. Hopper episodes terminate when it falls -- tens of steps
apart early in training -- so episodes start inside nearly every sequence: the
case where sb3-contrib loops over time steps in Python, and where ours groups
the short segments into a few LSTM calls (`simreal.agents.ppo.buffer`). Its
env step is about a third cheaper than cartpole's.

``--env hand``: simreal/HandCube-v0 (its ``mujoco.batch`` VecEnv, goals about the
vertical axis) with the ``hand_cube`` preset's sizes: 16 copies, 128-step
rollouts, 4 epochs of 4 minibatches, a 256-unit dense layer and LSTM. The cube
drops within tens of steps early in training, so episodes start inside nearly
every sequence; the env's physics takes most of both learners' time.

The env's own step time bounds the ratio (``ratio_bound``): collection costs both
learners the same env steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, machine  # noqa: E402

ENVS = {
    # env id, env kwargs, action repeat, and the matching preset's sizes
    "hand": ("simreal/HandCube-v0", {"goal": "vertical"}, 1,
             dict(n_envs=16, n_steps=128, epochs=4, minibatches=4, dense=256, lstm=256)),
    "cartpole": ("dm_control/cartpole-swingup-v0", {}, 2,
                 dict(n_envs=16, n_steps=128, epochs=10, minibatches=4, dense=64, lstm=128)),
    "hopper": ("Hopper-v5", {}, 1,
               dict(n_envs=16, n_steps=128, epochs=10, minibatches=4, dense=64, lstm=128)),
}


def _venv(args, seed: int):
    from simreal.training.envs import make_training_env

    env_id, kwargs, repeat, _ = ENVS[args.env]
    return make_training_env(env_id, args.n_envs, seed=seed, randomization=args.randomization,
                             action_repeat=repeat, env_kwargs=kwargs)


def _clock_env(venv) -> list[float]:
    spent = [0.0]
    inner = venv.step_wait

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    venv.step_wait = timed
    return spent


def run_ours(args, seed: int) -> dict:
    import torch

    from simreal.agents.ppo import resolve_ppo_config
    from simreal.agents.ppo.ppo import PPOTrainer

    steps_per_update = args.n_envs * args.n_steps
    env_id, kwargs, repeat, _ = ENVS[args.env]
    overrides = [
        f"env.id={env_id}", f"env.randomization={args.randomization}", f"env.n_envs={args.n_envs}",
        f"env.kwargs={kwargs}", f"env.action_repeat={repeat}",
        f"run.steps={steps_per_update * (args.updates + 1) * 10}",
        f"run.seed={seed}", "run.device=cpu", "run.torch_threads=1", "eval.every=0",
        f"ppo.n_steps={args.n_steps}", f"ppo.epochs={args.epochs}", f"ppo.minibatches={args.minibatches}",
        f"policy.dense={args.dense}", f"policy.lstm={args.lstm}", "policy.activation=tanh",  # as SB3
        f"policy.critic_recurrent={args.critic == 'lstm'}", f"policy.critic_hidden=[{args.dense}]",
    ]
    trainer = PPOTrainer(resolve_ppo_config([], overrides))
    torch.set_num_threads(1)
    trainer.train(max_updates=1)  # warm-up
    spent = _clock_env(trainer.venv)
    first = len(trainer.history)
    t0 = time.perf_counter()
    trainer.train(max_updates=args.updates)
    elapsed = time.perf_counter() - t0
    timed = trainer.history[first:]
    trainer.close()
    return {"steps_per_s": args.updates * steps_per_update / elapsed, "seconds": elapsed,
            "collect_s": sum(h["time/collect_s"] for h in timed) / args.updates,
            "update_s": sum(h["time/update_s"] for h in timed) / args.updates,
            "env_s": spent[0] / args.updates}


def run_sb3(args, seed: int) -> dict:
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.logger import Logger

    steps_per_update = args.n_envs * args.n_steps
    venv = _venv(args, seed)
    model = RecurrentPPO(
        "MultiInputLstmPolicy", venv, n_steps=args.n_steps, batch_size=steps_per_update // args.minibatches,
        n_epochs=args.epochs, learning_rate=3e-4, seed=seed, device="cpu", verbose=0,
        policy_kwargs=dict(lstm_hidden_size=args.lstm, enable_critic_lstm=args.critic == "lstm",
                           net_arch=dict(pi=[args.dense], vf=[args.dense])))
    # a logger with no outputs: SB3's default makes a /tmp/SB3-<date> folder on every learn()
    model.set_logger(Logger(folder=None, output_formats=[]))
    torch.set_num_threads(1)
    phases = {"collect": 0.0, "train": 0.0}
    collect, train = model.collect_rollouts, model.train

    def timed_collect(*a, **k):
        t0 = time.perf_counter()
        try:
            return collect(*a, **k)
        finally:
            phases["collect"] += time.perf_counter() - t0

    def timed_train(*a, **k):
        t0 = time.perf_counter()
        try:
            return train(*a, **k)
        finally:
            phases["train"] += time.perf_counter() - t0

    model.collect_rollouts, model.train = timed_collect, timed_train
    model.learn(steps_per_update)  # warm-up
    phases.update(collect=0.0, train=0.0)
    spent = _clock_env(venv)
    t0 = time.perf_counter()
    model.learn(steps_per_update * args.updates, reset_num_timesteps=False)
    elapsed = time.perf_counter() - t0
    venv.close()
    return {"steps_per_s": args.updates * steps_per_update / elapsed, "seconds": elapsed,
            "collect_s": phases["collect"] / args.updates, "update_s": phases["train"] / args.updates,
            "env_s": spent[0] / args.updates}


def env_only(args, seed: int) -> float:
    import numpy as np

    venv = _venv(args, seed)
    venv.reset()
    action = np.zeros((args.n_envs, *venv.action_space.shape), np.float32)
    n = args.n_steps
    t0 = time.perf_counter()
    for _ in range(n):
        venv.step(action)
    elapsed = time.perf_counter() - t0
    venv.close()
    return n * args.n_envs / elapsed


def _learner_s(run: dict, args) -> float:
    """Seconds per update spent outside the env's step (the learner's own cost)."""
    return args.n_envs * args.n_steps / run["steps_per_s"] - run["env_s"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=tuple(ENVS), default="cartpole",
                        help="cartpole (default: dm_control, rare episode starts), hopper (Gymnasium MuJoCo, "
                             "frequent starts) or hand (simreal/HandCube-v0, physics-bound)")
    parser.add_argument("--n-envs", type=int, help="env copies (default: the env's preset)")
    parser.add_argument("--n-steps", type=int, help="rollout length per env (default: the env's preset)")
    parser.add_argument("--epochs", type=int, help="default: the env's preset")
    parser.add_argument("--minibatches", type=int, help="default: the env's preset")
    parser.add_argument("--lstm", type=int, help="LSTM hidden size of both (default: the env's preset)")
    parser.add_argument("--dense", type=int, help="the dense layer's size, both (default: the env's preset)")
    parser.add_argument("--critic", choices=("lstm", "mlp"), default="lstm",
                        help="lstm: both critics recurrent (sb3-contrib's default); mlp: both feed-forward")
    parser.add_argument("--randomization", default="none",
                        help="randomization file for the env (default none: time the learners, not the randomizers)")
    parser.add_argument("--updates", type=int, default=8,
                        help="timed updates per run (cartpole: 8 hold two episode boundaries, as a long run does)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a small check: 4 envs, 32 steps, 2 epochs, 1 update")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true",
                        help="also write benchmarks/results/ppo_throughput[_hand]_<date>.json")
    args = parser.parse_args(argv)
    for key, value in ENVS[args.env][3].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.n_envs, args.n_steps, args.epochs, args.minibatches = 4, 32, 2, 2
        args.updates, args.repeats, args.lstm, args.dense = 1, 1, 32, 16

    os.environ.setdefault("MUJOCO_GL", "egl")
    ours, theirs = [], []
    for r in range(args.repeats):  # alternate, so drifts in machine load hit both sides
        ours.append(run_ours(args, args.seed + r))
        theirs.append(run_sb3(args, args.seed + r))
    bound = env_only(args, args.seed)
    best_ours = max(ours, key=lambda x: x["steps_per_s"])
    best_sb3 = max(theirs, key=lambda x: x["steps_per_s"])
    ratio = best_ours["steps_per_s"] / best_sb3["steps_per_s"]
    rounded = lambda d: {k: round(v, 4) for k, v in d.items()}  # noqa: E731
    result = {
        "benchmark": "ppo_throughput",
        "ours_steps_per_s": round(best_ours["steps_per_s"], 1),
        "sb3_steps_per_s": round(best_sb3["steps_per_s"], 1),
        "ratio": round(ratio, 2),
        "target_ratio": 3.0,
        "meets_target": bool(ratio >= 3.0),
        "env_only_steps_per_s": round(bound, 1),
        "ratio_bound": round(bound / best_sb3["steps_per_s"], 2),
        "update_ratio": round(best_sb3["update_s"] / best_ours["update_s"], 2),
        "learner_only_ratio": round(_learner_s(best_sb3, args) / _learner_s(best_ours, args), 2),
        "per_update_s": {"ours": rounded({k: best_ours[k] for k in ("collect_s", "env_s", "update_s")}),
                         "sb3": rounded({k: best_sb3[k] for k in ("collect_s", "env_s", "update_s")})},
        "all_runs_steps_per_s": {"ours": [round(x["steps_per_s"], 1) for x in ours],
                                 "sb3": [round(x["steps_per_s"], 1) for x in theirs]},
        "settings": {**{k: v for k, v in vars(args).items() if k != "save"}, "env_id": ENVS[args.env][0],
                     "env_kwargs": ENVS[args.env][1], "action_repeat": ENVS[args.env][2],
                     "steps_per_update": args.n_envs * args.n_steps},
        "machine": machine(),
    }
    emit("ppo_throughput" if args.env == "cartpole" else f"ppo_throughput_{args.env}", result, args.save)
    return result


if __name__ == "__main__":
    main()
