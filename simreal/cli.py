"""The `simreal` command: one entry point, one verb per job.

    simreal demo            short rollout of the hand-cube env, stats + camera PNG
    simreal env info        spaces, sizes and timing constants of an env

Later verbs (train, evaluate, calibrate, ...) hang off the same parser.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _episode_end(info: dict, terminated: bool, truncated: bool, cfg) -> str:
    if info.get("dropped"):
        return "drop"
    if terminated and info.get("consecutive_successes", 0) >= cfg.max_consecutive_successes:
        return f"{cfg.max_consecutive_successes} successes"
    if truncated:
        return "timeout"
    return "cut off"


def cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    import simreal
    from simreal.envs.policies import HoldPolicy

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = simreal.make(simreal.HAND_CUBE_ID, goal=args.goal, render_mode="rgb_array",
                       render_size=(args.height, args.width))
    sim = env.unwrapped.sim
    cfg = env.unwrapped.config
    if args.policy == "hold":
        policy = HoldPolicy(sim, noise=args.noise, seed=args.seed)
    else:
        env.action_space.seed(args.seed)
        policy = lambda obs: env.action_space.sample()  # noqa: E731

    print(f"simreal demo: {simreal.HAND_CUBE_ID}, goal={args.goal}, policy={args.policy}"
          f" (noise {args.noise}), {args.episodes} episodes of at most {args.max_steps} steps", flush=True)
    episodes, frames = [], []
    t0 = time.perf_counter()
    total_steps = 0
    with tqdm(total=args.episodes * args.max_steps, desc="rollout", unit="step", leave=False) as bar:
        for ep in range(args.episodes):
            obs, info = env.reset(seed=args.seed + ep)
            if ep == 0:
                frames.append(env.unwrapped.render_cameras(show_goal=False))
            ret, steps = 0.0, 0
            terminated = truncated = False
            for steps in range(1, args.max_steps + 1):
                obs, reward, terminated, truncated, info = env.step(policy(obs))
                ret += reward
                bar.update(1)
                if terminated or truncated:
                    break
            bar.update(args.max_steps - steps)
            total_steps += steps
            if ep == 0:
                frames.append(env.unwrapped.render_cameras(show_goal=False))
            episodes.append({
                "episode": ep, "seed": args.seed + ep, "steps": steps, "seconds": round(steps * cfg.control_dt, 2),
                "return": round(ret, 3), "consecutive_successes": info["consecutive_successes"],
                "final_rotation_distance_rad": round(info["rotation_distance"], 3),
                "end": _episode_end(info, terminated, truncated, cfg),
            })
    elapsed = time.perf_counter() - t0

    header = f"{'ep':>3} {'steps':>6} {'return':>9} {'successes':>9} {'dist(rad)':>9}  end"
    print(header)
    for e in episodes:
        print(f"{e['episode']:>3} {e['steps']:>6} {e['return']:>9.3f} {e['consecutive_successes']:>9} "
              f"{e['final_rotation_distance_rad']:>9.3f}  {e['end']}")
    summary = {
        "env": simreal.HAND_CUBE_ID, "goal": args.goal, "policy": args.policy, "noise": args.noise,
        "mean_return": round(float(np.mean([e["return"] for e in episodes])), 3),
        "mean_steps": round(float(np.mean([e["steps"] for e in episodes])), 1),
        "drop_rate": round(float(np.mean([e["end"] == "drop" for e in episodes])), 3),
        "steps_per_s_with_rendering": round(total_steps / elapsed, 1),
        "episodes": episodes,
    }
    print(f"mean return {summary['mean_return']}, mean length {summary['mean_steps']} steps, "
          f"drop rate {summary['drop_rate']}")

    grid = np.concatenate([np.concatenate(row, axis=1) for row in frames], axis=0)
    png = out / "cameras.png"
    Image.fromarray(grid).save(png)
    (out / "episodes.json").write_text(json.dumps(summary, indent=2) + "\n")
    env.close()
    print(f"wrote {png} (rows: start and end of episode 0; columns: "
          f"{', '.join(c.name for c in cfg.scene.cameras)}) and {out / 'episodes.json'}")
    return 0


def cmd_env_info(args: argparse.Namespace) -> int:
    import simreal

    env = simreal.make(args.env_id)
    u = env.unwrapped
    print(f"{args.env_id}")
    print(f"  action space:      {env.action_space}")
    for key, space in env.observation_space.spaces.items():
        print(f"  obs[{key!r}]: {space.shape} {space.dtype}")
    if hasattr(u, "config"):
        cfg = u.config
        print(f"  control period:    {cfg.control_dt * 1e3:.0f} ms ({cfg.substeps} substeps of "
              f"{cfg.scene.timestep * 1e3:.1f} ms)")
        print(f"  goal timeout:      {cfg.goal_timeout} s ({cfg.timeout_steps} steps)")
        print("  state layout:      " + ", ".join(f"{k}[{s.start}:{s.stop}]" for k, s in u.state_layout.items()))
    env.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simreal",
        description="simreal: sim-to-real domain randomization on MuJoCo (the Dactyl hand-cube task).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="short rollout of the hand-cube env: episode stats and a camera PNG",
                          description="Roll out a scripted or random policy in simreal/HandCube-v0, print "
                                      "per-episode statistics, and write the three camera views as a PNG.")
    demo.add_argument("--episodes", type=int, default=3, help="number of episodes (default 3)")
    demo.add_argument("--max-steps", type=int, default=150, help="cap on steps per episode (80 ms each; default 150)")
    demo.add_argument("--policy", choices=("hold", "random"), default="hold",
                      help="hold: scripted pose-holding with action noise; random: uniform actions")
    demo.add_argument("--noise", type=float, default=0.1, help="action noise std of the hold policy (default 0.1)")
    demo.add_argument("--goal", choices=("full", "vertical"), default="full", help="goal variant (default full)")
    demo.add_argument("--seed", type=int, default=0, help="seed of episode 0; episode k uses seed+k")
    demo.add_argument("--height", type=int, default=240, help="camera image height in px")
    demo.add_argument("--width", type=int, default=320, help="camera image width in px")
    demo.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    demo.set_defaults(func=cmd_demo)

    env = sub.add_parser("env", help="inspect environments")
    env_sub = env.add_subparsers(dest="env_command", metavar="SUBCOMMAND")
    info = env_sub.add_parser("info", help="print spaces and timing of an env")
    info.add_argument("env_id", nargs="?", default="simreal/HandCube-v0")
    info.set_defaults(func=cmd_env_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (CliError, ValueError, TypeError) as exc:
        print(f"simreal {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
