"""``simreal train worldmodels``: Ha & Schmidhuber's World Models, stage by stage or all at once."""

from __future__ import annotations

import argparse

from simreal.utils.cli import wrap  # one help layout for every command

STAGE_PRESETS = ("collect_only", "vae_only", "mdn_rnn_only", "controller_only", "all_stages")

DESCRIPTION = (
    "Train World Models (Ha & Schmidhuber 2018) from 64x64 pixels in four stages: collect random-policy "
    "episodes (RUN_DIR/rollouts), train V, a convolutional VAE to a 32-dim z, train M, an LSTM with a "
    "5-component Gaussian mixture over the next z (plus reward and done heads), on the encoded episodes, "
    "then evolve C, a linear controller a = tanh(W [z, h] + b), with CMA-ES (the cma package). Candidates "
    "are scored in parallel on run.workers processes, in the real env (controller.mode=real, the paper's "
    "CarRacing) or inside the dream, M sampled at controller.temperature (mode=dream, the paper's Doom); "
    "every controller.eval_every generations the CMA-ES mean plays in the real env and the best of these "
    "is exported to RUN_DIR/policy.pt (load it with simreal.agents.load_policy). run.stages (or a stage "
    "preset) chooses the stages of one invocation; finished stages are skipped, and a killed stage "
    "continues from its last checkpoint with --resume, which may also name the next stages "
    "(--preset vae_only, --set run.stages=[mdn_rnn,controller]). --steps caps env frames (policy steps x "
    "action repeat) of collection and real-mode candidates. Writes config.yaml, checkpoints/, per-stage "
    "metrics.jsonl and TensorBoard logs (RUN_DIR/<stage>/) and summary.json. All keys, with their sources "
    "in the paper: simreal/agents/world_models/ha/configs.yaml."
)

EPILOG = """\
presets (stack them left to right):
  dmc_cartpole      dm_control cartpole swing-up from pixels, 1M frames, CMA-ES inside the dream
  real_env          after a task preset: CMA-ES in the env, population 16 (learned better on cartpole)
  tiny              seconds: 6 ten-step episodes, tiny networks, 3 generations (tests, smoke checks)
  collect_only, vae_only, mdn_rnn_only, controller_only, all_stages
                    which stages this invocation runs (also allowed with --resume)

examples:
  simreal train worldmodels --preset dmc_cartpole --run-dir runs/wm-cartpole
  simreal train worldmodels --preset dmc_cartpole --preset real_env --run-dir runs/wm-real
  simreal train worldmodels --preset dmc_cartpole --preset collect_only --run-dir runs/wm
  simreal train worldmodels --run-dir runs/wm --resume --preset vae_only
  simreal train worldmodels --run-dir runs/wm --resume --set run.stages=[mdn_rnn,controller]
  simreal train worldmodels --preset tiny --run-dir /tmp/wm-smoke
  simreal train worldmodels --run-dir runs/wm-cartpole --resume      # continue a killed run
"""


def resume_stages(args: argparse.Namespace) -> list | None:
    """On ``--resume``: the ``run.stages`` that stage presets or ``--set run.stages=...`` ask for.

    Anything else that would change the saved config is an error (``prepare_run``'s rule).
    """
    if not args.resume or not (args.preset or args.overrides):
        return None
    from simreal.agents.world_models.ha import CONFIG_PATH
    from simreal.training.config import ConfigError, load_config_file, parse_override

    _, presets = load_config_file(CONFIG_PATH)
    stages = None
    for name in args.preset:
        if name not in STAGE_PRESETS:
            raise ConfigError(f"--resume: only stage presets ({', '.join(STAGE_PRESETS)}) may be given; "
                              f"got --preset {name}")
        stages = presets[name]["run"]["stages"]
    for text in args.overrides:
        parts, value = parse_override(text)
        if parts != ["run", "stages"]:
            raise ConfigError(f"--resume: only --set run.stages=[...] may change the saved config; got --set {text}")
        stages = value
    return stages


def cmd_train_worldmodels(args: argparse.Namespace) -> int:
    from simreal.agents.world_models.ha import CONFIG_PATH
    from simreal.agents.world_models.ha.config import WorldModelsConfig
    from simreal.agents.world_models.ha.trainer import train
    from simreal.training.cli_args import prepare_run
    from simreal.training.config import merge

    stages = resume_stages(args)
    if stages is not None:
        args = argparse.Namespace(**{**vars(args), "preset": [], "overrides": []})
    run, cfg = prepare_run(args, CONFIG_PATH, validate=WorldModelsConfig.from_resolved)
    if stages is not None:
        cfg = merge(cfg, {"run": {"stages": stages}}, "--resume stage selection")
        run.save_config(cfg)
    stage_list = cfg["run"]["stages"]
    print(f"simreal train worldmodels: {cfg['env']['id']} (randomization {cfg['env']['randomization']}), "
          f"stages {', '.join(map(str, stage_list)) if isinstance(stage_list, list) else stage_list}, "
          f"at most {cfg['run']['steps']} env steps, run dir {run.path}" + (" (resuming)" if args.resume else ""),
          flush=True)
    summary = train(cfg, run, progress=not args.quiet)
    session = summary["session"]
    print(f"stages run: {', '.join(session['ran']) or 'none'}; skipped (finished before): "
          f"{', '.join(session['skipped']) or 'none'}")
    best = summary["best_eval_return"]
    print(f"done: {summary['frames']} env steps, {summary['episodes']} episodes collected, "
          f"{summary['vae_updates']} VAE and {summary['mdn_updates']} MDN-RNN updates, "
          f"{summary['generations']} CMA-ES generations"
          + (f", eval return {summary['eval'][-1]['return']:.1f} (best {best:.1f})" if best is not None else ""))
    exported = f" and {run.export_path}" if summary["generations"] > 0 else ""
    print(f"wrote {run.path}/ (config.yaml, checkpoints/, rollouts/, <stage>/metrics.jsonl, summary.json){exported}")
    return 0


def register_train(train_sub) -> None:
    from simreal.training.cli_args import add_train_arguments

    parser = train_sub.add_parser(
        "worldmodels", help="Ha & Schmidhuber's World Models: VAE, MDN-RNN, CMA-ES controller (staged)",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=wrap(DESCRIPTION), epilog=EPILOG)
    add_train_arguments(parser, presets_help="see the list below")
    parser.set_defaults(func=cmd_train_worldmodels)
