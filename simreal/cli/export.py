"""``simreal export``: a trained policy in a deployment format (ONNX), checked against the PyTorch policy."""

from __future__ import annotations

import argparse

from simreal.utils.cli import CliError, positive_int, wrap

DESCRIPTION = (
    "Write a trained policy (a run folder or its policy.pt) as ONNX for robot computers without PyTorch: the "
    "observation normalizer, one recurrent step with the LSTM state as explicit inputs and outputs, the "
    "deterministic action and its mapping to the env's action units, in one graph (simreal/agents/onnx_export.py). "
    "Next to FILE.onnx goes FILE.onnx.json: the observation keys in order with their sizes, the state size, the "
    "action space. The graph is then run under onnxruntime next to the PyTorch policy on --check-steps "
    "observations of the policy's own env, and the largest differences of actions and states are printed "
    "(exit status 2 above --tolerance). PPO-family policies (ppo, i2a) and MBPO's SAC actor are covered. "
    "examples/onnx_on_the_robot.py runs the graph against a rig bridge with onnxruntime, zmq and numpy only.")
EPILOG = ("examples:\n"
          "  simreal export runs/ppo-cartpole --onnx\n"
          "  simreal export assets/policies/ppo_dr --onnx --out deploy/hand.onnx --check-steps 500")


def cmd_export(args: argparse.Namespace) -> int:
    from simreal.agents import load_policy
    from simreal.agents.onnx_export import export_onnx, parity, record_observations

    if not args.onnx:
        raise CliError("choose a format: --onnx (the one format so far)")
    path, meta = export_onnx(args.run, args.out)
    print(f"wrote {path} and {path.name}.json: inputs {', '.join(meta['inputs'])} (obs {meta['obs_size']} = "
          f"{' + '.join(k['key'] for k in meta['obs_keys'])}), outputs {', '.join(meta['outputs'])}")
    if args.check_steps == 0:
        return 0
    policy = load_policy(meta["source"])
    check = parity(path, policy, record_observations(policy, meta, args.check_steps, n_envs=2))
    worst = max(check["max_abs_action_diff"], check["max_abs_state_diff"])
    print(f"parity with the PyTorch policy over {check['steps']} steps x {check['batch']} envs: max |action diff| "
          f"{check['max_abs_action_diff']:.3g}, max |state diff| {check['max_abs_state_diff']:.3g}")
    if worst > args.tolerance:
        raise CliError(f"{path}: the ONNX graph differs from the PyTorch policy by {worst:.3g} "
                       f"(more than --tolerance {args.tolerance})")
    return 0


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def register(sub) -> None:
    parser = sub.add_parser("export", help="a trained policy as ONNX, checked against PyTorch",
                            description=wrap(DESCRIPTION), epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="RUN_DIR|POLICY.pt", help="a training run folder or an exported policy file")
    parser.add_argument("--onnx", action="store_true", help="write ONNX (FILE.onnx and FILE.onnx.json)")
    parser.add_argument("--out", metavar="FILE", help="the .onnx file (default: policy.onnx next to policy.pt)")
    parser.add_argument("--check-steps", type=non_negative_int, default=200, metavar="N",
                        help="steps of the policy's env compared under onnxruntime and PyTorch (default 200; 0: skip)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest difference accepted before exit status 2 (default 1e-4)")
    parser.set_defaults(func=cmd_export)
