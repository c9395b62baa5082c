"""Adding an agent is one new file plus one registry line: this file is the whole toy agent (basic
random search over a linear policy, Mania et al. 2018), and with ``REGISTRY["toy"]`` set it trains
from ``simreal train toy``, exports a policy that `load_policy` rebuilds and `simreal study` runs
on nominal simulation and a held-out rig, with no other edit."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from simreal.training.agents import REGISTRY, Agent, get_agent

DEFAULTS = {"env": {"id": "dm_control/cartpole-balance-v0", "randomization": "none"},
            "run": {"steps": 2400, "seed": 0, "device": "cpu"},
            "search": {"directions": 2, "noise": 0.2, "lr": 0.2, "horizon": 100}}
PRESETS = {"tiny": {"run": {"steps": 1200}}}


def _flat(obs: dict, keys: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(obs[k], np.float64).reshape(len(obs[k]), -1) for k in keys], axis=1)


class LinearPolicy:
    """action = clip(W x): x the observation keys in sorted order (the `simreal.agents.Policy` protocol)."""

    def __init__(self, weights: np.ndarray, observation_space, action_space):
        self.w, self.observation_space, self.action_space = weights, observation_space, action_space
        self.keys = sorted(observation_space.spaces)

    def initial_state(self, batch_size: int):
        return None

    def reset_state(self, state, done):
        return state

    def act(self, obs, state, deterministic: bool = True):
        a = _flat(obs, self.keys) @ self.w.T
        return np.clip(a, self.action_space.low, self.action_space.high).astype(np.float32), state


class ToyAgent:
    name = "toy"
    summary = "basic random search over a linear policy (a test of the Agent protocol)"
    config_path = pathlib.Path(__file__)  # its defaults and presets are the dicts above

    def resolve_config(self, presets=(), overrides=()) -> dict:
        from simreal.training.config import apply_overrides, apply_presets

        return apply_overrides(apply_presets(DEFAULTS, PRESETS, presets, "toy"), overrides)

    def train(self, cfg, run, progress: bool = True) -> dict:
        import torch

        from simreal.training.envs import make_training_env
        from simreal.training.export import save_export

        marker = run.path / "toy_steps.json"
        if run.export_path.is_file() and marker.is_file():
            done = json.loads(marker.read_text())["env_steps"]
            if done >= cfg["run"]["steps"]:
                return {"env_steps": done}
        s, rng = cfg["search"], np.random.default_rng(cfg["run"]["seed"])
        venv = make_training_env(cfg["env"]["id"], 1, seed=cfg["run"]["seed"],
                                 randomization=cfg["env"]["randomization"])
        keys = sorted(venv.observation_space.spaces)
        obs = venv.reset()
        w = np.zeros((venv.action_space.shape[0], _flat(obs, keys).shape[1]))
        steps = 0

        def episode(weights):
            nonlocal steps
            obs, total = venv.reset(), 0.0
            for _ in range(s["horizon"]):
                action = np.clip(_flat(obs, keys) @ weights.T, venv.action_space.low, venv.action_space.high)
                obs, reward, done, _ = venv.step(action.astype(np.float32))
                total, steps = total + float(reward[0]), steps + 1
                if done[0]:
                    break
            return total

        while steps < cfg["run"]["steps"]:
            deltas = rng.standard_normal((s["directions"], *w.shape))
            gains = np.array([episode(w + s["noise"] * d) - episode(w - s["noise"] * d) for d in deltas])
            w = w + s["lr"] / (s["directions"] * (gains.std() + 1e-8)) * np.tensordot(gains, deltas, axes=1)
        venv.close()
        save_export(run.export_path, self.name, cfg, venv.observation_space, venv.action_space,
                    {"w": torch.as_tensor(w)})
        marker.write_text(json.dumps({"env_steps": steps}))
        return {"env_steps": steps}

    def policy_from_export(self, data, device: str = "cpu"):
        return LinearPolicy(data["weights"]["w"].numpy(), data["observation_space"], data["action_space"])


AGENT = ToyAgent()


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy", f"{__name__}:AGENT")  # the one registry line
    return get_agent("toy")


def test_the_toy_agent_trains_from_the_cli_and_load_policy_rebuilds_it(toy, tmp_path, capsys):
    from simreal.agents import load_policy
    from simreal.cli import main

    assert isinstance(toy, Agent)
    run_dir = tmp_path / "toy"
    assert main(["train", "toy", "--preset", "tiny", "--run-dir", str(run_dir), "--quiet"]) == 0
    assert "simreal train toy: dm_control/cartpole-balance-v0" in capsys.readouterr().out
    policy = load_policy(run_dir / "policy.pt")
    assert isinstance(policy, LinearPolicy) and np.abs(policy.w).sum() > 0  # the search moved the weights
    obs = {k: np.zeros((2, *sp.shape), sp.dtype) for k, sp in policy.observation_space.spaces.items()}
    action, _ = policy.act(obs, policy.initial_state(2))
    assert action.shape == (2, 1)
    with pytest.raises(SystemExit):  # the generic verb explains itself
        main(["train", "toy", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "basic random search" in help_text and "Registered as 'toy'" in help_text


def test_a_study_trains_and_evaluates_the_toy_agent_with_no_other_edit(toy, tmp_path):
    from simreal.evaluation.study import parse_study, run_study

    study = parse_study({"version": 1, "name": "toy", "metric": "return", "success_threshold": 10,
                         "steps": 600, "seeds": [0], "rigs": ["sim:cartpole_laggy"],
                         "agents": [{"name": "toy", "agent": "toy", "randomizations": ["none"]}],
                         "evaluation": {"episodes": 1, "seed": 5}}, tmp_path / "toy.yaml")
    report = run_study(study, tmp_path / "out", progress=False)
    (row,) = report["rows"]
    assert row["row"] == "toy-none" and report["training"]["toy-none/seed0"]["agent"] == "toy"
    for setting in ("nominal", "sim:cartpole_laggy"):
        assert np.isfinite(row["settings"][setting]["mean"]) and row["settings"][setting]["episodes"] == 1
    assert pathlib.Path(report["paths"]["plot"]).is_file()
