"""``simreal render preview`` and ``simreal pose dataset | train | eval``."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from simreal.utils.cli import positive_int, wrap  # one help layout, one "whole number >= 1"

_FMT = argparse.RawDescriptionHelpFormatter


def _in_range(cast, low, high, what: str):
    """An argparse type: ``cast(text)`` within [low, high], else a one-line usage error."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} {low:g}-{high:g}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:g}-{high:g}, got {value:g}")
        return value
    return parse


_samples = _in_range(int, 0, 16, "a whole number")  # --antialias
_zoom = _in_range(float, 1.0, 16.0, "a magnification")  # --zoom


def _cli_error(exc: Exception):
    from simreal.utils.cli import CliError, short_paths

    return CliError(short_paths(str(exc)))


def _check_randomization(name: str) -> str:
    """The file exists and validates (one-line error otherwise); returns the name as given."""
    from simreal.randomize.spec import RandomizationError, load_spec

    if name in ("", "none"):
        return "none"
    try:
        load_spec(name)
    except RandomizationError as exc:
        raise _cli_error(exc) from None
    return name


# ------------------------------------------------------------------ render preview
def cmd_render_preview(args: argparse.Namespace) -> int:
    from PIL import Image

    from simreal.randomize.spec import RandomizationError
    from simreal.envs.preview import preview_grid

    randomization = _check_randomization(args.randomization)
    out = pathlib.Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise _cli_error(ValueError(f"--out {args.out}: expected a .png or .jpg file name"))
    print(f"simreal render preview: {args.n} episode starts under {randomization}, {args.height}x{args.width} per "
          f"camera, seeds {args.seed}..{args.seed + args.n - 1}", flush=True)
    try:
        grid = preview_grid(randomization, n=args.n, height=args.height, width=args.width, seed=args.seed,
                            columns=args.columns, show_goal=args.show_goal, progress=not args.quiet,
                            antialias=args.antialias, zoom=args.zoom)
    except RandomizationError as exc:
        raise _cli_error(exc) from None
    if out.parent != pathlib.Path("."):
        out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]} px: {args.n} cells of cam_left | cam_front | cam_right, "
          f"{args.columns} per row)")
    return 0


def _add_render(sub) -> None:
    render = sub.add_parser(
        "render", help="render the cameras: preview what a randomization file does", formatter_class=_FMT,
        description=wrap("Headless rendering of the hand-cube scene's three cameras (MUJOCO_GL=egl by default; "
                          "GPU EGL where present)."),
        epilog="examples:\n  simreal render preview --randomization dactyl --n 16 --out grid.png")
    render_sub = render.add_subparsers(dest="render_command", metavar="SUBCOMMAND")
    preview = render_sub.add_parser(
        "preview", help="a PNG grid of randomized three-camera views", formatter_class=_FMT,
        description=wrap(
            "Start N episodes of simreal/HandCube-v0 under a randomization file (physics and the file's visual "
            "list: cameras, lights, materials, textures, image effects), episode k seeded SEED+k, and write one "
            "grid cell per episode: the three camera views side by side, as the pose estimator and a vision "
            "policy would see them. Look at it before training on a file."),
        epilog="examples:\n"
               "  simreal render preview --randomization dactyl --n 16 --out grid.png\n"
               "  simreal render preview --randomization my.yaml --n 8 --height 200 --width 200 --columns 2 "
               "--out outputs/my.png\n"
               "  simreal render preview --randomization none --n 1 --show-goal --out nominal.png")
    preview.add_argument("--randomization", default="dactyl", metavar="FILE",
                         help="randomization YAML, a path or a shipped name (dactyl, none, ...); default dactyl")
    preview.add_argument("--n", type=positive_int, default=16, help="number of randomized views (default 16)")
    preview.add_argument("--out", default="outputs/preview.png", help="PNG to write (default outputs/preview.png)")
    preview.add_argument("--height", type=positive_int, default=128, help="pixels per camera image, height (128)")
    preview.add_argument("--width", type=positive_int, default=128, help="pixels per camera image, width (128)")
    preview.add_argument("--columns", type=positive_int, default=4, help="grid cells per row (default 4)")
    preview.add_argument("--seed", type=int, default=0, help="seed of the first view; view k uses seed+k (default 0)")
    preview.add_argument("--antialias", type=_samples, default=None,
                         help="multisamples per pixel, 0-16 (default: the scene's, 4)")
    preview.add_argument("--zoom", type=_zoom, default=1.0,
                         help="camera magnification, 1-16 (default 1); shows what `pose dataset --zoom` renders")
    preview.add_argument("--show-goal", action="store_true", help="draw the translucent goal cube too")
    preview.add_argument("--quiet", action="store_true", help="no progress bar")
    preview.set_defaults(func=cmd_render_preview)
    render.set_defaults(func=lambda args: _help(render))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ------------------------------------------------------------------ pose dataset
def cmd_pose_dataset(args: argparse.Namespace) -> int:
    from simreal.perception.dataset import DatasetError, DatasetSettings, default_workers, write_dataset
    from simreal.randomize.spec import RandomizationError

    randomization = _check_randomization(args.randomization)
    workers = args.workers or default_workers()
    settings = DatasetSettings(randomization=randomization, height=args.height, width=args.width, seed=args.seed,
                               shard_size=args.shard_size, antialias=args.antialias, zoom=args.zoom)
    zoom = f", zoom {args.zoom:g}" if args.zoom != 1.0 else ""
    print(f"simreal pose dataset: {args.n} samples under {randomization} into {args.out} "
          f"({args.height}x{args.width} per camera{zoom}, shards of {args.shard_size}, seed {args.seed})", flush=True)
    t0 = time.perf_counter()
    try:
        manifest = write_dataset(args.out, settings, args.n, n_envs=args.n_envs, progress=not args.quiet,
                                 workers=workers)
    except (DatasetError, RandomizationError) as exc:
        raise _cli_error(exc) from None
    have = sum(e["count"] for e in manifest["shards"])
    print(f"done: {have} samples in {len(manifest['shards'])} shards under {args.out} "
          f"(manifest.json; rendering took {time.perf_counter() - t0:.1f} s this run, {workers} worker(s))")
    return 0


# ------------------------------------------------------------------ pose train
def cmd_pose_train(args: argparse.Namespace) -> int:
    from simreal.perception.dataset import DatasetError
    from simreal.perception.train import CONFIG_PATH, PoseTrainer
    from simreal.training.cli_args import prepare_run

    args.env = None
    args.randomization = None
    if args.data is not None:
        if args.resume:
            raise _cli_error(ValueError("--resume uses the saved config's data.path; drop --data"))
        args.overrides = [f"data.path={json.dumps(str(args.data))}"] + list(args.overrides)
    try:
        run, cfg = prepare_run(args, CONFIG_PATH)
        trainer = PoseTrainer(cfg, run, progress=not args.quiet)
    except DatasetError as exc:
        raise _cli_error(exc) from None
    if trainer.step >= trainer.total_steps:
        print(f"simreal pose train: {run.path} already trained {trainer.step} steps (run.steps="
              f"{cfg['run']['steps']}); pass --steps to train longer")
        trainer.close()
        return 0
    print(f"simreal pose train: {trainer.describe()}; "
          + (f"resuming at step {trainer.step} of {trainer.total_steps}" if run.resume
             else f"{trainer.total_steps} steps"), flush=True)
    try:
        last = trainer.train()
    finally:
        trainer.close()
    shown = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.startswith("eval/"))
    print(f"done: {trainer.step} steps" + (f"; held out: {shown}" if shown else ""))
    print(f"run dir {run.path}: config.yaml, checkpoints/, metrics.jsonl, tb/, estimator {run.path / 'pose_estimator.pt'}")
    return 0


# ------------------------------------------------------------------ pose eval
def evaluate_estimator(estimator_path, data_dirs=(), n: int = 500, seed: int = 1_000_000, cache=None,
                       progress: bool = True, device: str = "cpu") -> dict:
    """The JSON report of ``simreal pose eval`` (see its help)."""
    from simreal.perception.dataset import DatasetSettings, load_dataset, write_dataset
    from simreal.perception.estimator import PoseEstimator
    from simreal.perception.evaluate import evaluate

    estimator = PoseEstimator.load(estimator_path, device=device)
    r = estimator.render
    report = {"estimator": str(estimator_path), "resolution": [int(r["height"]), int(r["width"])],
              "cameras": list(r["cameras"]), "antialias": int(r["antialias"]), "zoom": r["zoom"],
              "trained_steps": estimator.info.get("step"), "trained_on": estimator.info.get("randomization")}
    sets: list[tuple[str, pathlib.Path, str | None]] = []
    if data_dirs:
        sets = [(pathlib.Path(d).name, pathlib.Path(d), None) for d in data_dirs]
    else:
        root = pathlib.Path(cache) if cache is not None else (
            pathlib.Path(estimator_path) if pathlib.Path(estimator_path).is_dir()
            else pathlib.Path(estimator_path).parent) / "eval_data"
        trained_on = estimator.info.get("randomization") or "dactyl"
        sets = [("randomized", root / "randomized", trained_on), ("unrandomized", root / "unrandomized", "none")]
    for name, folder, randomization in sets:
        if randomization is not None:
            settings = DatasetSettings(randomization=randomization, height=int(r["height"]), width=int(r["width"]),
                                       seed=seed, shard_size=500, antialias=int(r["antialias"]),
                                       zoom=r["zoom"], cameras=tuple(r["cameras"]))
            write_dataset(folder, settings, n, progress=progress)
        data = load_dataset(folder, limit=n if randomization is not None else None)
        result = evaluate(estimator, data)
        report[name] = dict(result, data=str(folder), randomization=data.settings["randomization"],
                            seed=data.settings["seed"])
    return report


def cmd_pose_eval(args: argparse.Namespace) -> int:
    from simreal.perception.dataset import DatasetError
    from simreal.randomize.spec import RandomizationError
    from simreal.training.run import RunDirError

    try:
        report = evaluate_estimator(args.estimator, args.data or (), n=args.n, seed=args.seed, cache=args.cache,
                                    progress=not args.quiet, device=args.device)
    except (DatasetError, RunDirError, RandomizationError) as exc:
        raise _cli_error(exc) from None
    text = json.dumps(report, indent=2)
    if args.out:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


POSE_EPILOG = """\
examples:
  simreal pose dataset --randomization dactyl --n 20000 --out data/pose-train
  simreal pose train --data data/pose-train --run-dir runs/pose
  simreal pose eval --estimator runs/pose --out runs/pose/eval.json
"""


def _add_pose(sub) -> None:
    pose = sub.add_parser(
        "pose", help="the CNN pose estimator: render a dataset, train, evaluate", formatter_class=_FMT,
        description=wrap("Dactyl's vision path: a CNN trained only on randomized renders of the three cameras "
                          "estimates the cube's position and orientation; simreal.perception.wrapper then runs "
                          "any agent on the estimate instead of motion capture."),
        epilog=POSE_EPILOG)
    pose_sub = pose.add_subparsers(dest="pose_command", metavar="SUBCOMMAND")
    pose.set_defaults(func=lambda args: _help(pose))

    ds = pose_sub.add_parser(
        "dataset", help="render labelled samples into resumable shards", formatter_class=_FMT,
        description=wrap(
            "Render N labelled samples: the hand in a random reachable pose (each joint between its nominal "
            "angle and a uniform draw within its limits), the cube dropped in and around it with a random "
            "orientation and settled by the physics, everything randomized by FILE (physics and visual lists), "
            "seen by the three cameras. Labels: the cube's world position (m) and orientation (quaternion w, x, "
            "y, z, w >= 0). Samples go to OUT/shard_NNNNN.npz (images uint8 (n, 3, H, W, 3), position, quat, "
            "index), each written atomically and listed with its checksum in OUT/manifest.json. Sample k depends "
            "only on (SEED, k): run the same command again after an interruption and it renders only the "
            "missing shards (no duplicates, no gaps); a larger --n extends the dataset."),
        epilog="examples:\n"
               "  simreal pose dataset --randomization dactyl --n 20000 --out data/pose-train\n"
               "  simreal pose dataset --randomization dactyl --n 1000 --seed 1000000 --out data/pose-val\n"
               "  simreal pose dataset --randomization none --n 1000 --seed 1000000 --out data/pose-plain\n"
               "  simreal pose dataset --randomization dactyl --n 48000 --zoom 1.5 --antialias 0 --out data/pose-zoomed"
               "   # as benchmarks/pose_accuracy.py")
    ds.add_argument("--randomization", default="dactyl", metavar="FILE",
                    help="randomization YAML, a path or a shipped name (default dactyl; 'none': nominal scene)")
    ds.add_argument("--n", type=positive_int, required=True, help="number of samples")
    ds.add_argument("--out", required=True, help="dataset folder (created; an existing one is resumed)")
    ds.add_argument("--height", type=positive_int, default=64, help="pixels per camera image, height (64)")
    ds.add_argument("--width", type=positive_int, default=64, help="pixels per camera image, width (64)")
    ds.add_argument("--seed", type=int, default=0, help="dataset seed; sample k is seeded from (seed, k) (default 0)")
    ds.add_argument("--shard-size", type=positive_int, default=500, help="samples per shard file (default 500)")
    ds.add_argument("--antialias", type=_samples, default=4,
                    help="multisamples per pixel, 0-16 (default 4, the scene's; 0 renders 2-3x faster on CPUs)")
    ds.add_argument("--zoom", type=_zoom, default=1.0,
                    help="camera magnification, 1-16 (default 1: the scene's cameras). 1.5 shows the central 2/3 "
                         "of each view: the cube about 1.5x larger in pixels at the same resolution and cost")
    ds.add_argument("--n-envs", type=positive_int, default=8, help="simulation copies rendered per batch (8)")
    ds.add_argument("--workers", type=positive_int, default=None,
                    help="rendering processes, each on its own shards (default: one per core, at most 8; "
                         "the renderer uses one core each)")
    ds.add_argument("--quiet", action="store_true", help="no progress bar")
    ds.set_defaults(func=cmd_pose_dataset)

    tr = pose_sub.add_parser(
        "train", help="train the pose CNN on a dataset", formatter_class=_FMT,
        description=wrap(
            "Train the pose CNN (simreal/perception/model.py: a convolutional trunk shared by the three cameras, "
            "spatial softmax keypoints, a fused head predicting position and a unit quaternion; the orientation "
            "loss, sin of half the angle (optim.loss: distance) or its square (squared), does not care about the "
            "quaternion's sign). The config is "
            "simreal/perception/configs.yaml: its defaults, each --preset in order, then each --set; run.steps "
            "counts minibatches. Held-out evaluation and the export use a moving average of the weights "
            "(optim.ema; 0 turns it off). The resolved config is saved as RUN_DIR/config.yaml, logs (train/, "
            "eval/ on the dataset's held-out tail, eval_raw/ the same for the weights being trained, time/) go "
            "to RUN_DIR/tb and RUN_DIR/metrics.jsonl, checkpoints to "
            "RUN_DIR/checkpoints every run.checkpoint_every steps with the estimator RUN_DIR/pose_estimator.pt. A "
            "killed run continues with --resume."),
        epilog="presets:\n"
               "  tiny    seconds: 20 steps of an 8-channel network (tests, smoke checks)\n"
               "  quick   minutes: 600 steps, enough to see the errors fall\n\n"
               "examples:\n"
               "  simreal pose train --data data/pose-train --run-dir runs/pose\n"
               "  simreal pose train --data data/pose-train --preset quick --run-dir runs/pose-quick\n"
               "  simreal pose train --data data/pose-train --set optim.lr=1e-3 --steps 50000 --run-dir runs/pose2\n"
               "  simreal pose train --run-dir runs/pose --resume                # continue a killed run\n"
               "  simreal pose train --run-dir runs/pose --resume --steps 60000  # train it longer")
    tr.add_argument("--data", metavar="DIR", help="dataset folder from `simreal pose dataset` (sets data.path)")
    tr.add_argument("--run-dir", required=True, help="folder for config, checkpoints, logs and the estimator")
    tr.add_argument("--steps", type=int, help="total minibatches to train for (run.steps)")
    tr.add_argument("--preset", action="append", default=[], metavar="NAME",
                    help="named preset from configs.yaml (tiny, quick); repeat to stack")
    tr.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", dest="overrides",
                    help="override one config value (YAML syntax), e.g. --set optim.lr=1e-3; repeatable")
    tr.add_argument("--seed", type=int, help="seed of the network initialization and the minibatch order")
    tr.add_argument("--device", help="auto (CUDA when present), cpu or cuda[:N]")
    tr.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_pose_train)

    ev = pose_sub.add_parser(
        "eval", help="position (mm) and orientation (degrees) errors as JSON", formatter_class=_FMT,
        description=wrap(
            "Evaluate an estimator: median, 90th percentile and mean position error (mm) and orientation error "
            "(degrees, the angle of the rotation between estimate and truth). Without --data it renders two "
            "held-out sets at the estimator's resolution, seeded away from training data (--seed): "
            "'randomized' under the randomization it was trained with and 'unrandomized' under none, cached "
            "in --cache (default: eval_data next to the estimator, reused and resumed). Prints JSON."),
        epilog="examples:\n"
               "  simreal pose eval --estimator runs/pose --out runs/pose/eval.json\n"
               "  simreal pose eval --estimator runs/pose/pose_estimator.pt --n 2000\n"
               "  simreal pose eval --estimator runs/pose --data data/pose-val --data data/pose-plain")
    ev.add_argument("--estimator", required=True, metavar="PATH",
                    help="pose_estimator.pt, or the run directory holding it")
    ev.add_argument("--data", action="append", metavar="DIR",
                    help="evaluate on this dataset folder instead (repeatable; keys are the folder names)")
    ev.add_argument("--n", type=positive_int, default=500, help="samples per rendered held-out set (default 500)")
    ev.add_argument("--seed", type=int, default=1_000_000,
                    help="seed of the rendered held-out sets (default 1000000; training sets use small seeds)")
    ev.add_argument("--cache", metavar="DIR", help="where the rendered held-out sets go")
    ev.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    ev.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_pose_eval)


def register(sub) -> None:
    """Add the top-level verbs ``render`` and ``pose``."""
    _add_render(sub)
    _add_pose(sub)
