"""PPO stops on NaN and inf: one line naming what and where, the newest checkpoint is the last finite one,
policy.pt is never overwritten with NaN weights."""

import pathlib

import numpy as np
import pytest
import torch

import simreal.agents.ppo.ppo as ppo_module
from simreal import cli
from simreal.agents import load_policy
from simreal.agents.ppo import resolve_ppo_config
from simreal.agents.ppo.ppo import PPOTrainer
from simreal.utils.finite import NonFiniteError
from simreal.training.run import RunDir, load_weights_only

CUE = "simreal.agents.ppo.testing:CueRecall-v0"
CUE_RUN = (["tiny"], [f"env.id={CUE}", "run.steps=384", "run.checkpoint_every=2", "eval.every=0"])

# finite observation noise, drawn every step: the tests make the draws inf, as a `std: .inf` file would
NOISE = """
version: 1
randomizers:
  - name: obs_noise
    target: {observation: object_pos}
    distribution: {type: normal, mean: 0.0, std: 0.001}
    operation: add
    resample: step
"""
HAND = ["env.n_envs=2", "ppo.minibatches=1", "eval.every=0", "run.checkpoint_every=1", "run.steps=64"]


def finite(state):
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


@pytest.fixture
def noise_file(tmp_path):
    path = tmp_path / "noise.yaml"
    path.write_text(NOISE)
    return path


def test_a_nan_loss_stops_before_the_step_and_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch):
    trainer = PPOTrainer(resolve_ppo_config(*CUE_RUN), RunDir(tmp_path / "run"))
    trainer.train(max_updates=2)
    export = (tmp_path / "run" / "policy.pt").read_bytes()
    params = {k: v.clone() for k, v in trainer.model.named_parameters()}
    original = ppo_module.compute_gae

    def nan_advantages(*args):
        advantages, returns = original(*args)
        return advantages * float("nan"), returns

    monkeypatch.setattr(ppo_module, "compute_gae", nan_advantages)
    with pytest.raises(NonFiniteError) as err:
        trainer.train()
    message = str(err.value)
    assert message.startswith("PPO update 3 (env step 192), epoch 1, minibatch 1: policy loss is nan; "
                              "the last finite checkpoint is ")
    assert message.endswith("step_000000000128.pt") and "\n" not in message
    assert all(torch.equal(params[k], v) for k, v in trainer.model.named_parameters())  # the step never ran
    assert [p.name for p in trainer.run.checkpoints()] == ["step_000000000128.pt"]
    assert (tmp_path / "run" / "policy.pt").read_bytes() == export
    resumed = PPOTrainer(resolve_ppo_config(*CUE_RUN), RunDir(tmp_path / "run", resume=True))
    assert resumed.update_index == 2 and finite(resumed.model.state_dict())

    # a weight gone NaN some other way: the checkpoint and the export refuse it, the files stay
    with torch.no_grad():
        trainer.model.actor.head.logits.bias[0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"PPO checkpoint after update 2 \(env step 128\): tensor "
                                             r"'model/actor\.head\.logits\.bias' holds inf \(1 of 2 values"):
        trainer.checkpoint()
    assert [p.name for p in trainer.run.checkpoints()] == ["step_000000000128.pt"]
    assert (tmp_path / "run" / "policy.pt").read_bytes() == export
    trainer.close(), resumed.close()


def test_a_nan_reward_names_the_env_copy(monkeypatch):
    from simreal.agents.ppo.testing import CueRecallEnv

    original = CueRecallEnv.step

    def step(self, action):
        obs, reward, terminated, truncated, info = original(self, action)
        return obs, (float("nan") if terminated else reward), terminated, truncated, info

    monkeypatch.setattr(CueRecallEnv, "step", step)
    trainer = PPOTrainer(resolve_ppo_config(*CUE_RUN))
    with pytest.raises(NonFiniteError, match=r"^PPO update 1 \(env step 16\): reward of env 0 is nan$"):
        trainer.train()
    trainer.close()


def test_an_inf_observation_names_key_env_and_the_randomizer_values_and_the_checkpoint_loads(tmp_path, noise_file):
    cfg = resolve_ppo_config(["tiny"], [f"env.randomization={noise_file}", *HAND])
    trainer = PPOTrainer(cfg, RunDir(tmp_path / "run"))
    trainer.train(max_updates=1)
    trainer.stacks[0]["obs_noise"].fixed = np.array([np.inf])  # every draw from now on: what std .inf samples
    with pytest.raises(NonFiniteError) as err:
        trainer.train()
    trainer.close()
    assert str(err.value) == (
        "PPO update 2 (env step 32): observation 'object_pos' of env 0 is inf (element 0); that episode's "
        f"randomization: obs_noise=inf; the last finite checkpoint is {tmp_path / 'run' / 'checkpoints'}"
        "/step_000000000032.pt")
    run = RunDir(tmp_path / "run", resume=True)
    assert [p.name for p in run.checkpoints()] == ["step_000000000032.pt"]
    assert finite(load_weights_only(run.latest_checkpoint())["model"])
    policy = load_policy(tmp_path / "run" / "policy.pt")  # refuses non-finite weights: these are finite
    obs = {k: np.zeros((1, *s.shape), np.float32) for k, s in policy.observation_space.spaces.items()}
    assert np.all(np.isfinite(policy.act(obs, policy.initial_state(1))[0]))
    resumed = PPOTrainer(cfg, run)
    assert resumed.env_steps == 32
    resumed.close()


def test_the_cli_with_inf_observations_exits_2_with_one_line(tmp_path, noise_file, capsys, monkeypatch):
    from simreal.randomize.base import BoundRandomizer
    from simreal.randomize.observation import ObservationNoise

    def inf_draw(self, ids):
        BoundRandomizer.draw(self, ids)
        self.values[ids] = np.inf

    monkeypatch.setattr(ObservationNoise, "draw", inf_draw, raising=False)
    run = tmp_path / "run"
    code = cli.main(["train", "ppo", "--preset", "tiny", "--randomization", str(noise_file), "--run-dir", str(run),
                     "--quiet", *[a for s in HAND for a in ("--set", s)]])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0] == ("simreal train: error: PPO update 1 (env step 0): observation 'object_pos' of env 0 is inf "
                      "(element 0); that episode's randomization: obs_noise=inf; no checkpoint was written yet")
    assert not (run / "policy.pt").exists() and not list(run.glob("checkpoints/*.pt"))


GEAR = pathlib.Path(__file__).parents[2] / "data" / "diverging_gear.yaml"  # the cartpole diverges in step 1


def test_dm_control_physics_errors_are_one_line_naming_the_randomizer_values(tmp_path, capsys):
    pytest.importorskip("shimmy")
    run = tmp_path / "run"
    code = cli.main(["train", "ppo", "--preset", "tiny", "--env", "dm_control/cartpole-swingup-v0",
                     "--randomization", str(GEAR), "--steps", "128", "--run-dir", str(run), "--quiet"])
    assert code == 2
    # (dm_control also logs MuJoCo's own warning through absl before raising)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("simreal")]
    assert len(err) == 1, err
    assert err[0].startswith("simreal train: error: PPO update 1 (env step 0): dm_control/cartpole-swingup-v0: "
                             "the simulation became invalid in step 1 of the episode (Physics state is invalid")
    assert "that episode's randomization: motor_gear=1." in err[0]
    assert err[0].endswith("e+12; no checkpoint was written yet")
    assert not (run / "policy.pt").exists()
