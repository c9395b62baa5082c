"""`simreal rollout`: a short scripted or random rollout of the hand-cube env, its stats and a camera PNG."""

from __future__ import annotations

import argparse
import json
import pathlib
import time


def _episode_end(info: dict, terminated: bool, truncated: bool, cfg) -> str:
    if info.get("dropped"):
        return "drop"
    if terminated and info.get("consecutive_successes", 0) >= cfg.max_consecutive_successes:
        return f"{cfg.max_consecutive_successes} successes"
    if truncated:
        return "timeout"
    return "cut off"


def cmd_rollout(args: argparse.Namespace) -> int:
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

    print(f"simreal rollout: {simreal.HAND_CUBE_ID}, goal={args.goal}, policy={args.policy}"
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


def register(sub) -> None:
    rollout = sub.add_parser("rollout", help="short rollout of the hand-cube env: episode stats and a camera PNG",
                          description="Roll out a scripted or random policy in simreal/HandCube-v0, print "
                                      "per-episode statistics, and write the three camera views as a PNG.")
    rollout.add_argument("--episodes", type=int, default=3, help="number of episodes (default 3)")
    rollout.add_argument("--max-steps", type=int, default=150, help="cap on steps per episode (80 ms each; default 150)")
    rollout.add_argument("--policy", choices=("hold", "random"), default="hold",
                      help="hold: scripted pose-holding with action noise; random: uniform actions")
    rollout.add_argument("--noise", type=float, default=0.1, help="action noise std of the hold policy (default 0.1)")
    rollout.add_argument("--goal", choices=("full", "vertical"), default="full", help="goal variant (default full)")
    rollout.add_argument("--seed", type=int, default=0, help="seed of episode 0; episode k uses seed+k")
    rollout.add_argument("--height", type=int, default=240, help="camera image height in px")
    rollout.add_argument("--width", type=int, default=320, help="camera image width in px")
    rollout.add_argument("--out", default="outputs/rollout", help="output folder (default outputs/rollout)")
    rollout.set_defaults(func=cmd_rollout)
