"""``simreal train dreamer``: train DreamerV1/V2/V3 on a (randomized) env."""

from __future__ import annotations

import argparse
import textwrap

PRESETS_HELP = ("versions: dreamer_v1, dreamer_v2, dreamer_v3 (the default); sizes: tiny, micro, xs, small "
                "(the default); tasks: dmc_pixels, hand_cube")


def cmd_train_dreamer(args: argparse.Namespace) -> int:
    from simreal.agents.world_models import CONFIG_PATH
    from simreal.agents.world_models.dreamer import TrainingDiverged
    from simreal.agents.world_models.trainer import train
    from simreal.cli import CliError
    from simreal.training.cli_args import prepare_run

    run, cfg = prepare_run(args, CONFIG_PATH)
    print(f"simreal train dreamer: {cfg['env']['id']} (randomization {cfg['env']['randomization']}), "
          f"{cfg['run']['steps']} env steps, run dir {run.path}"
          + (" (resuming)" if args.resume else ""), flush=True)
    try:
        summary = train(cfg, run, progress=not args.quiet)
    except TrainingDiverged as exc:
        raise CliError(str(exc)) from None
    evals = summary["eval"]
    final = f", eval return {evals[-1]['return']:.1f}" if evals else ""
    train_ret = summary["train_return_last10"]
    print(f"done: {summary['frames']} env steps, {summary['updates']} updates, {summary['episodes']} episodes"
          + (f", train return (last 10) {train_ret:.1f}" if train_ret is not None else "") + final)
    print(f"wrote {run.path}/ (config.yaml, checkpoints/, metrics.jsonl, tb/, summary.json) and {run.export_path}")
    return 0


def register_train(train_sub) -> None:
    from simreal.training.cli_args import add_train_arguments

    parser = train_sub.add_parser(
        "dreamer", help="DreamerV1/V2/V3 world-model agent (one RSSM core, presets per version)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Train a Dreamer agent: a world model (RSSM) learned from replayed sequences and an "
            "actor-critic trained on trajectories imagined by it. The version is a preset "
            "(dreamer_v1: Gaussian latents, free nats 3; dreamer_v2: 32x32 categoricals, KL balancing, "
            "discount head; dreamer_v3: symlog, two-hot reward and critic, return normalization; the "
            "defaults are V3), stacked with a size preset and task presets, then --set overrides. "
            "Steps count env frames (policy steps x action repeat). run.train_ratio is replayed steps "
            "per policy step. Writes config.yaml, checkpoints, metrics.jsonl, TensorBoard logs "
            "(losses, KL, returns, open-loop video predictions for pixel runs) and the exported "
            "policy.pt to --run-dir; --resume continues a stopped run. All keys: "
            "simreal/agents/world_models/configs.yaml.", width=88),
        epilog="examples:\n"
               "  simreal train dreamer --preset dreamer_v3 --env dm_control/cartpole-swingup-v0 \\\n"
               "      --steps 100000 --run-dir runs/v3-cartpole\n"
               "  simreal train dreamer --preset dreamer_v2 --preset xs --preset dmc_pixels \\\n"
               "      --env dm_control/walker-walk-v0 --randomization none --run-dir runs/v2-walker\n"
               "  simreal train dreamer --preset dreamer_v3 --preset hand_cube --randomization dactyl \\\n"
               "      --set model.keys='[fingertip_pos, object_pos, object_quat, goal_quat]' --run-dir runs/hand\n"
               "  simreal train dreamer --preset dreamer_v1 --preset tiny --steps 2000 --run-dir /tmp/smoke\n"
               "  simreal train dreamer --run-dir runs/v3-cartpole --resume --steps 200000")
    add_train_arguments(parser, presets_help=PRESETS_HELP)
    parser.set_defaults(func=cmd_train_dreamer)
