"""``simreal train dreamer|planet|dreaming``: the RSSM agents on a (randomized) env.

One config file (configs.yaml) and one training loop serve all three; the verb fixes the config's
``agent`` (its own preset goes first when no given preset sets it, and a preset of another agent is
a one-line error).
"""

from __future__ import annotations

import argparse

from simreal.utils.cli import wrap  # one help layout for every command

PRESETS_HELP = {
    "dreamer": "versions: dreamer_v1, dreamer_v2, dreamer_v3 (the default); sizes: tiny, micro, xs, small "
               "(the default); tasks: dmc_pixels, hand_cube",
    "planet": "planet (implied); sizes: tiny, micro, xs, small (after it); tasks: dmc_pixels, hand_cube",
    "dreaming": "versions: dreaming (implied), dreaming_v2 (categorical latents); sizes: tiny, micro, xs, small "
                "(after the version); tasks: dmc_pixels, hand_cube",
}

DESCRIPTIONS = {
    "dreamer": (
        "Train a Dreamer agent: a world model (RSSM) learned from replayed sequences and an "
        "actor-critic trained on trajectories imagined by it. The version is a preset "
        "(dreamer_v1: Gaussian latents, free nats 3; dreamer_v2: 32x32 categoricals, KL balancing, "
        "discount head; dreamer_v3: symlog, two-hot reward and critic, return normalization; the "
        "defaults are V3), stacked with a size preset and task presets, then --set overrides. "
        "Steps count env frames (policy steps x action repeat). run.train_ratio is replayed steps "
        "per policy step. Writes config.yaml, checkpoints, metrics.jsonl, TensorBoard logs "
        "(losses, KL, returns, open-loop video predictions for pixel runs) and the exported "
        "policy.pt to --run-dir; --resume continues a stopped run. All keys: "
        "simreal/agents/world_models/configs.yaml."),
    "planet": (
        "Train PlaNet (Hafner et al. 2019): the RSSM world model (reconstruction, reward, KL with free "
        "nats) and no policy network; at every env step a cross-entropy-method planner searches "
        "action sequences in the model's latent space (planner.horizon 12, 1000 candidates, refit to "
        "the top 100, 10 iterations: the paper's values, batched on torch) and executes the first "
        "action, plus Gaussian noise of std 0.3 while collecting. The planet preset (action repeat 8, "
        "200-unit GRU, 30-dim Gaussian state, 5 seed episodes, 100 updates of 50x50 per episode) is "
        "applied first; add a size preset, task presets and --set overrides after it. Steps count env "
        "frames. Writes config.yaml, checkpoints, metrics.jsonl, TensorBoard logs (open-loop video "
        "predictions for pixel runs) and policy.pt (the world model's encoder, RSSM and reward head "
        "with the planner settings: the exported policy plans) to --run-dir; --resume continues a "
        "stopped run. Planning costs candidates x horizon x iterations RSSM steps per action: on a "
        "CPU lower planner.candidates / planner.iterations. All keys: "
        "simreal/agents/world_models/configs.yaml."),
    "dreaming": (
        "Train Dreaming (Okada & Taniguchi 2021) or DreamingV2 (2022, --preset dreaming_v2): the RSSM "
        "trained without reconstruction, by an InfoNCE loss between the model's posterior states "
        "and the encoded observations of the same batch (two random-crop views; every other sample "
        "a negative), plus multi-step terms through independent linear dynamics, the reward and KL "
        "terms; behavior is Dreamer's actor-critic in imagination (V1-style for dreaming, V2-style "
        "for dreaming_v2). A decoder is trained on stopped-gradient features only to show open-loop "
        "predictions in TensorBoard. The dreaming preset is applied first unless dreaming_v2 is "
        "given; add a size preset, task presets and --set overrides (contrastive.*) after it. Steps "
        "count env frames. Writes config.yaml, checkpoints, metrics.jsonl, TensorBoard logs and "
        "policy.pt to --run-dir; --resume continues a stopped run. All keys: "
        "simreal/agents/world_models/configs.yaml."),
}

EPILOGS = {
    "dreamer": ("examples:\n"
                "  simreal train dreamer --preset dreamer_v3 --env dm_control/cartpole-swingup-v0 \\\n"
                "      --steps 100000 --run-dir runs/v3-cartpole\n"
                "  simreal train dreamer --preset dreamer_v2 --preset xs --preset dmc_pixels \\\n"
                "      --env dm_control/walker-walk-v0 --randomization none --run-dir runs/v2-walker\n"
                "  simreal train dreamer --preset dreamer_v3 --preset hand_cube --randomization dactyl \\\n"
                "      --set model.keys='[fingertip_pos, object_pos, object_quat, goal_quat]' --run-dir runs/hand\n"
                "  simreal train dreamer --preset dreamer_v1 --preset tiny --steps 2000 --run-dir /tmp/smoke\n"
                "  simreal train dreamer --run-dir runs/v3-cartpole --resume --steps 200000"),
    "planet": ("examples:\n"
               "  simreal train planet --preset dmc_pixels --env dm_control/cartpole-swingup-v0 \\\n"
               "      --steps 1000000 --run-dir runs/planet-cartpole       # the paper's setting\n"
               "  simreal train planet --preset micro --preset dmc_pixels --randomization dmc_cartpole \\\n"
               "      --set planner.candidates=300 --set planner.iterations=5 --run-dir runs/planet-cpu\n"
               "  simreal train planet --preset tiny --steps 2000 --run-dir /tmp/planet-smoke\n"
               "  simreal train planet --run-dir runs/planet-cartpole --resume --steps 2000000"),
    "dreaming": ("examples:\n"
                 "  simreal train dreaming --preset dmc_pixels --env dm_control/cartpole-swingup-v0 \\\n"
                 "      --steps 500000 --run-dir runs/dreaming-cartpole\n"
                 "  simreal train dreaming --preset dreaming_v2 --preset micro --preset dmc_pixels \\\n"
                 "      --randomization dmc_cartpole --run-dir runs/dreaming-v2\n"
                 "  simreal train dreaming --preset dmc_pixels --set contrastive.overshoot=0 \\\n"
                 "      --set contrastive.decoder=false --run-dir runs/dreaming-single-step\n"
                 "  simreal train dreaming --preset tiny --steps 2000 --run-dir /tmp/dreaming-smoke\n"
                 "  simreal train dreaming --run-dir runs/dreaming-cartpole --resume --steps 1000000"),
}

HELPS = {
    "dreamer": "DreamerV1/V2/V3 world-model agent (one RSSM core, presets per version)",
    "planet": "PlaNet: RSSM world model + CEM planning in latent space (no policy network)",
    "dreaming": "Dreaming / DreamingV2: RSSM trained by InfoNCE instead of reconstruction + actor-critic",
}


def cmd_train(args: argparse.Namespace) -> int:
    from simreal.agents.world_models import CONFIG_PATH
    from simreal.agents.world_models.agent import with_agent_preset
    from simreal.agents.world_models.config import agent_name
    from simreal.agents.world_models.dreamer import TrainingDiverged
    from simreal.agents.world_models.trainer import train
    from simreal.utils.cli import CliError
    from simreal.training.cli_args import prepare_run

    agent = args.agent
    if not args.resume:
        args.preset = with_agent_preset(agent, args.preset, args.overrides)
    from simreal.agents.world_models.config import validate_config

    run, cfg = prepare_run(args, CONFIG_PATH, validate=validate_config)
    if agent_name(cfg) != agent:
        raise CliError(f"{run.config_path} is a {agent_name(cfg)!r} run; resume it with "
                       f"`simreal train {agent_name(cfg)}`")
    print(f"simreal train {agent}: {cfg['env']['id']} (randomization {cfg['env']['randomization']}), "
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

    for agent in ("dreamer", "planet", "dreaming"):
        parser = train_sub.add_parser(agent, help=HELPS[agent], formatter_class=argparse.RawDescriptionHelpFormatter,
                                      description=wrap(DESCRIPTIONS[agent]), epilog=EPILOGS[agent])
        add_train_arguments(parser, presets_help=PRESETS_HELP[agent])
        parser.set_defaults(func=cmd_train)
