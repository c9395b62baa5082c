"""`simreal env info`: the spaces, sizes and timing constants of an env."""

from __future__ import annotations

import argparse


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


def register(sub) -> None:
    env = sub.add_parser("env", help="inspect environments")
    env_sub = env.add_subparsers(dest="env_command", metavar="SUBCOMMAND")
    info = env_sub.add_parser("info", help="print spaces and timing of an env")
    info.add_argument("env_id", nargs="?", default="simreal/HandCube-v0")
    info.set_defaults(func=cmd_env_info)
