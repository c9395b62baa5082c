"""``simreal train ppo``: recurrent PPO from a config of defaults, presets and overrides."""

from __future__ import annotations

import argparse

from simreal.utils.cli import wrap  # one help layout for every command

DESCRIPTION = (
    "Train recurrent PPO with an asymmetric critic: an LSTM actor on what the robot measures and a critic "
    "on the privileged simulator state (the env's 'state' key, with the sampled randomization values when "
    "env.randomization_in_state is on). The config is simreal/agents/ppo/configs.yaml: its defaults, then "
    "each --preset in order, then each --set; the flags --env, --randomization, --steps, --seed and --device "
    "are shorthands for env.id, env.randomization, run.steps, run.seed and run.device. The resolved config "
    "is saved as RUN_DIR/config.yaml; TensorBoard logs (train/, eval/, rand/, time/) go to RUN_DIR/tb and "
    "RUN_DIR/metrics.jsonl; every run.checkpoint_every updates a checkpoint (model, optimizer, normalizers, "
    "ADR state, RNG states) lands in RUN_DIR/checkpoints and the policy export in RUN_DIR/policy.pt "
    "(load it with simreal.agents.load_policy). A killed run continues with --resume and loses at most "
    "one checkpoint interval; after every checkpoint the envs are re-seeded and reset, so a resumed run "
    "repeats the uninterrupted one exactly."
)

EPILOG = """\
presets (stack them left to right):
  tiny         a few seconds: 4 envs, 16-step rollouts, 16-unit networks (tests, smoke checks)
  cartpole     dm_control cartpole swing-up under randomizations/dmc_cartpole.yaml, 2.5M steps
  hand_cube    simreal/HandCube-v0 with goals about the vertical axis, 5M steps
  dactyl       Dactyl's recipe on the hand: dactyl.yaml randomizations, 11 action bins, all goals
  feedforward  no LSTM (Dactyl's feed-forward comparison)

examples:
  simreal train ppo --preset cartpole --run-dir runs/cartpole
  simreal train ppo --preset cartpole --preset feedforward --seed 1 --run-dir runs/cartpole-ff
  simreal train ppo --preset hand_cube --randomization dactyl --steps 20000000 --run-dir runs/hand
  simreal train ppo --preset hand_cube --preset dactyl --set env.kwargs.goal=vertical --run-dir runs/dactyl
  simreal train ppo --env Hopper-v5 --set ppo.lr=1e-4 --set policy.lstm=128 --run-dir runs/hopper
  simreal train ppo --run-dir runs/cartpole --resume                 # continue a killed run
  simreal train ppo --run-dir runs/cartpole --resume --steps 3000000 # train it longer
  simreal train ppo --preset cartpole --workers 2 --run-dir runs/cartpole-ray   # env copies in Ray workers
  simreal train ppo --preset hand_cube --workers 8 --ray-address auto --run-dir /shared/runs/hand  # a cluster
"""


def cmd_train_ppo(args: argparse.Namespace) -> int:
    from simreal.agents.ppo import CONFIG_PATH
    from simreal.agents.ppo.ppo import PPOTrainer, TrainConfig
    from simreal.training.cli_args import prepare_run

    run, cfg = prepare_run(args, CONFIG_PATH, validate=TrainConfig.from_dict)
    for key, value in (("workers", args.workers), ("ray_address", args.ray_address)):
        if value is not None:  # where the copies run, not what is computed: allowed on --resume too
            cfg = {**cfg, "run": {**cfg["run"], key: value}}
    TrainConfig.from_dict(cfg)
    trainer = PPOTrainer(cfg, run, progress=not args.quiet)
    start = trainer.env_steps
    if start >= trainer.total_updates * trainer.steps_per_update:
        print(f"simreal train ppo: {run.path} already trained {start} steps (run.steps={cfg['run']['steps']}); "
              "pass --steps to train longer")
        trainer.close()
        return 0
    print(f"simreal train ppo: {cfg['env']['id']} (randomization {cfg['env']['randomization']}), "
          f"{cfg['env']['n_envs']} envs, {'LSTM' if cfg['policy']['recurrent'] else 'feed-forward'} actor on "
          f"{', '.join(trainer.actor_keys)}; critic on {', '.join(trainer.critic_keys)}; device {trainer.device}; "
          + (f"resuming at step {start}" if run.resume else f"{trainer.total_updates} updates"), flush=True)
    try:
        last = trainer.train()
    finally:
        trainer.close()
    shown = [k for k in ("train/episode_return", "train/consecutive_successes", "eval/return",
                         "eval/consecutive_successes") if k in last]
    summary = ", ".join(f"{k} {last[k]:.3f}" for k in shown)
    print(f"done: {trainer.env_steps} steps, {trainer.update_index} updates" + (f"; {summary}" if summary else ""))
    print(f"run dir {run.path}: config.yaml, checkpoints/, metrics.jsonl, tb/, policy export {run.export_path}")
    return 0


def register_train(train_sub) -> None:
    """Add ``simreal train ppo``."""
    from simreal.training.cli_args import add_train_arguments

    parser = train_sub.add_parser("ppo", help="recurrent PPO with an asymmetric critic (Dactyl's learner)",
                                  description=wrap(DESCRIPTION), epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser, presets_help="tiny, cartpole, hand_cube, dactyl, feedforward")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="Ray rollout workers holding the env copies (run.workers; pip install 'simreal[ray]'); "
                             "the same numbers as one process, so a resumed run may change it")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="with --workers: a running Ray cluster (auto, HOST:6379; run.ray_address); "
                             "default: a local Ray")
    parser.set_defaults(func=cmd_train_ppo)
