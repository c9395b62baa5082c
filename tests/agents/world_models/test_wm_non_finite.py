"""The RSSM trainer stops on NaN and inf observations: one line naming the key, the env step and the
randomizer values; the newest checkpoint (the last finite one) and policy.pt load and resume."""

import re

import numpy as np
import torch

from simreal.agents import load_policy
from simreal.cli import main
from simreal.training.run import RunDir, load_weights_only

# finite observation noise, drawn every physics step: the test makes the draws inf, as a `std: .inf` file would
NOISE = """
version: 1
randomizers:
  - name: obs_noise
    target: {observation: velocity}
    distribution: {type: normal, mean: 0.0, std: 0.001}
    operation: add
    resample: step
"""


def test_an_inf_observation_stops_dreamer_with_one_line_and_the_last_checkpoint_resumes(tmp_path, capsys,
                                                                                        monkeypatch):
    from simreal.randomize.base import BoundRandomizer
    from simreal.randomize.observation import ObservationNoise

    calls = {"n": 0}

    def draw(self, ids):  # finite for ~150 frames (past the checkpoint at 100), then inf
        BoundRandomizer.draw(self, ids)
        calls["n"] += 1
        if calls["n"] > 150:
            self.values[ids] = np.inf

    monkeypatch.setattr(ObservationNoise, "draw", draw, raising=False)
    noise = tmp_path / "noise.yaml"
    noise.write_text(NOISE)
    run = tmp_path / "run"
    args = ["train", "dreamer", "--preset", "dreamer_v3", "--preset", "tiny", "--quiet", "--run-dir", str(run)]
    assert main([*args, "--randomization", str(noise), "--set", "run.checkpoint_every=100", "--steps", "400"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.fullmatch(r"simreal train: error: Dreamer at env step 1[45]\d: observation 'velocity' of env 0 is "
                        r"-?inf \(element 0\); that episode's randomization: obs_noise=inf; the last finite "
                        r"checkpoint is .*step_000000000100\.pt", err[0]), err[0]

    monkeypatch.undo()
    checkpoints = RunDir(run, resume=True).checkpoints()
    assert [p.name for p in checkpoints] == ["step_000000000100.pt"]
    weights = load_weights_only(checkpoints[-1])["agent"]["modules"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    policy = load_policy(run / "policy.pt")   # refuses non-finite weights; these are the step-100 export's
    obs = {"position": np.zeros((1, 3), np.float32), "velocity": np.zeros((1, 2), np.float32)}
    assert np.all(np.isfinite(policy.act(obs, policy.initial_state(1))[0]))
    assert main(["train", "dreamer", "--run-dir", str(run), "--resume", "--steps", "160", "--quiet"]) == 0
