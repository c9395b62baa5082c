"""Frame rate of the three cameras with the full visual randomization, against a plain mujoco.Renderer.

A frame is the three camera images (cam_left, cam_front, cam_right) of one state,
at the same resolution in every path; states come from a hand-cube rollout
(physics and state changes happen outside the timed calls). Prints JSON with:

  raw_fps              plain ``mujoco.Renderer`` (update_scene + render per camera) on the
                       nominal model, with the offscreen buffer and antialiasing the
                       randomized renderer uses (so both draw the same pixels and samples).
  randomized_fps       ``simreal.render.MultiCameraRenderer`` with the whole visual list of
                       randomizations/dactyl.yaml, resampled every episode of
                       ``--episode-frames`` frames: cameras, lights, materials, hue/saturation/
                       value of the cube's texture, procedural textures regenerated and uploaded,
                       contrast and noise on every frame.
  ratio                randomized_fps / raw_fps; ``overhead`` = 1 - ratio. Target: overhead <= 0.10.
  raw_fps_same_lights  the plain renderer with as many lights on as each randomized episode
                       had (Dactyl's 4-6 lights against the nominal scene's 2): drawing more
                       lights is scene content, which costs the same with or without the stack.
  stack_overhead       1 - randomized_fps / raw_fps_same_lights: the stack's own cost.
  raw_fps_model_buffer the plain renderer on the model as it is (its 1280x960 offscreen buffer):
                       what ``mujoco.Renderer`` costs out of the box, for reference.
  resample_every_frame_fps   the randomized renderer resampling every frame (a pose dataset's
                       regime: every sample is its own episode), for reference.

Runs alternate between paths and the best of ``--repeats`` is kept (a noisy, shared machine).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402
from _common import emit, machine  # noqa: E402

from simreal.envs.hand_cube import HandCubeConfig, HandCubeSim  # noqa: E402
from simreal.envs.policies import HoldPolicy  # noqa: E402
from simreal.randomize import load_spec  # noqa: E402
from simreal.render.multicam import MultiCameraRenderer  # noqa: E402

CAMERAS = ("cam_left", "cam_front", "cam_right")


def visual_only(path: str):
    """The visual list of a file (the physics stays nominal: only rendering is measured)."""
    spec = load_spec(path)
    out = spec.model_copy(update={"randomizers": []})
    out._source = spec.source
    return out


def record_states(sim: HandCubeSim, frames: int, seed: int) -> np.ndarray:
    """qpos of a short hold-policy rollout of copy 0."""
    sim.seed(0, seed)
    sim.reset(np.array([0]))
    policy = HoldPolicy(sim, noise=0.1, seed=seed)
    states = []
    for _ in range(frames):
        states.append(sim.qpos[0].copy())
        obs = sim.observe()
        sim.step(policy(obs))
    return np.array(states)


def set_state(sim: HandCubeSim, qpos: np.ndarray) -> None:
    sim.qpos[0] = qpos
    sim.batch.forward(np.array([0]), stage=int(mujoco.mjtStage.mjSTAGE_POS))


def time_plain(sim, states, height, width, antialias, buffer_from_model=False, lights_per_episode=None,
               episode_frames=1) -> float:
    """Seconds per frame of a plain mujoco.Renderer drawing the three cameras."""
    model = copy.copy(sim.model)
    if not buffer_from_model:
        model.vis.global_.offwidth, model.vis.global_.offheight = width, height
    model.vis.quality.offsamples = antialias
    data = mujoco.MjData(model)
    elapsed = 0.0
    with mujoco.Renderer(model, height, width) as renderer:
        for k, qpos in enumerate(states):
            if lights_per_episode is not None and k % episode_frames == 0:
                on = lights_per_episode[(k // episode_frames) % len(lights_per_episode)]
                model.light_active[:] = 0
                model.light_active[:on] = 1
            set_state(sim, qpos)
            t0 = time.perf_counter()
            sim.batch.get_data(0, data)
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            for name in CAMERAS:
                renderer.update_scene(data, camera=name)
                renderer.render()
            elapsed += time.perf_counter() - t0
    return elapsed / len(states)


def time_randomized(sim, states, height, width, antialias, episode_frames, seed) -> tuple[float, list[int]]:
    """Seconds per frame of MultiCameraRenderer with the visual stack, and the lights on per episode."""
    stack = sim.randomization
    visual = stack.visual.items
    lights = []
    elapsed = 0.0
    ids = np.array([0])
    with MultiCameraRenderer(sim, height, width, cameras=CAMERAS, antialias=antialias) as renderer:
        for k, qpos in enumerate(states):
            set_state(sim, qpos)
            t0 = time.perf_counter()
            if k % episode_frames == 0:  # a new episode: every visual randomizer draws again
                stack.seed(0, seed + k)
                for b in visual:
                    b.on_reset(ids)
            renderer.render(0)
            elapsed += time.perf_counter() - t0
            if k % episode_frames == 0:
                lights.append(int(renderer.model.light_active.sum()))
    return elapsed / len(states), lights


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=64, help="pixels per camera image (default 64)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--antialias", type=int, default=4, help="multisamples per pixel (default 4, the scene's)")
    parser.add_argument("--frames", type=int, default=200, help="frames per timed run (default 200)")
    parser.add_argument("--episode-frames", type=int, default=50,
                        help="frames between resamples of the visual stack (default 50: 4 s of the env)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per path; the best is kept")
    parser.add_argument("--randomization", default="dactyl", help="file whose visual list is measured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/render_throughput_<date>.json")
    args = parser.parse_args(argv)

    sim = HandCubeSim(1, HandCubeConfig(goal_timeout=1e6, drop_height=-10.0))
    sim.set_randomization(visual_only(args.randomization))
    states = record_states(sim, args.frames, args.seed)
    size = (args.height, args.width, args.antialias)
    best = {"raw": np.inf, "randomized": np.inf, "same_lights": np.inf, "model_buffer": np.inf, "every_frame": np.inf}
    lights: list[int] = []
    for _ in range(args.repeats):
        best["raw"] = min(best["raw"], time_plain(sim, states, *size))
        t, lights = time_randomized(sim, states, *size, args.episode_frames, args.seed)
        best["randomized"] = min(best["randomized"], t)
        best["same_lights"] = min(best["same_lights"], time_plain(sim, states, *size, lights_per_episode=lights,
                                                                  episode_frames=args.episode_frames))
    best["model_buffer"] = time_plain(sim, states, *size, buffer_from_model=True)
    best["every_frame"], _ = time_randomized(sim, states[: max(args.frames // 4, 1)], *size, 1, args.seed)
    fps = {k: 1.0 / v for k, v in best.items()}
    ratio = fps["randomized"] / fps["raw"]
    result = {
        "raw_fps": round(fps["raw"], 2),
        "randomized_fps": round(fps["randomized"], 2),
        "ratio": round(ratio, 3),
        "overhead": round(1.0 - ratio, 3),
        "raw_fps_same_lights": round(fps["same_lights"], 2),
        "stack_overhead": round(1.0 - fps["randomized"] / fps["same_lights"], 3),
        "raw_fps_model_buffer": round(fps["model_buffer"], 2),
        "resample_every_frame_fps": round(fps["every_frame"], 2),
        "target": "overhead <= 0.10",
        "meets_target": bool(1.0 - ratio <= 0.10),
        "lights_on_mean": round(float(np.mean(lights)), 2) if lights else None,
        "settings": {"resolution": [args.height, args.width], "cameras": list(CAMERAS), "antialias": args.antialias,
                     "frames": args.frames, "episode_frames": args.episode_frames, "repeats": args.repeats,
                     "randomization": args.randomization, "visual_randomizers": len(sim.randomization.visual.items),
                     "gl": os.environ.get("MUJOCO_GL")},
        "machine": machine(),
    }
    emit("render_throughput", result, args.save)
    return result


if __name__ == "__main__":
    main()
