"""Ha & Schmidhuber's World Models: the MDN fits a known mixture, CMA-ES finds an LQR gain, the VAE
learns, and `simreal train worldmodels --preset tiny` trains, resumes after an interruption without
redoing finished stages, and exports a policy that acts in the env."""

import json
import math

import numpy as np
import pytest
import torch

from simreal.agents import Policy, load_policy
from simreal.agents.world_models.ha.controller import CMAES
from simreal.agents.world_models.ha.mdn_rnn import mdn_nll, sample_mixture
from simreal.agents.world_models.ha.vae import ConvVAE, vae_loss
from simreal.cli import main
from simreal.training.run import RunDir, load_weights_only

TINY = ["train", "worldmodels", "--preset", "tiny", "--quiet"]


# ------------------------------------------------------------------ M: mixture density
def test_mdn_loss_fits_a_known_two_component_mixture_and_samples_it_with_a_temperature():
    rng = np.random.default_rng(0)
    n = 4000
    first = rng.random(n) < 0.3
    data = np.where(first, rng.normal(-2.0, 0.5, n), rng.normal(1.5, 0.3, n))
    target = torch.tensor(data, dtype=torch.float32)[:, None]          # (n, z_size=1)
    logits = torch.zeros(2, requires_grad=True)
    mean = torch.tensor([-0.5, 0.5], requires_grad=True)
    log_std = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([logits, mean, log_std], lr=0.05)
    for _ in range(500):
        nll = mdn_nll(logits.expand(n, 1, 2), mean.expand(n, 1, 2), log_std.expand(n, 1, 2), target).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
    weights = torch.softmax(logits, 0).detach().numpy()
    np.testing.assert_allclose(weights, [0.3, 0.7], atol=0.02)
    np.testing.assert_allclose(mean.detach().numpy(), [-2.0, 1.5], atol=0.04)
    np.testing.assert_allclose(log_std.exp().detach().numpy(), [0.5, 0.3], atol=0.03)
    # the fitted NLL is the data's: close to the true mixture's NLL
    true_nll = mdn_nll(torch.log(torch.tensor([[[0.3, 0.7]]])).expand(n, 1, 2),
                       torch.tensor([[[-2.0, 1.5]]]).expand(n, 1, 2),
                       torch.log(torch.tensor([[[0.5, 0.3]]])).expand(n, 1, 2), target).mean()
    assert abs(float(nll.detach()) - float(true_nll)) < 0.01

    params = [p.detach().expand(20000, 1, 2) for p in (logits, mean, log_std)]
    samples = sample_mixture(*params, temperature=1.0, generator=torch.Generator().manual_seed(1)).numpy()
    assert abs(np.mean(samples < -0.25) - 0.3) < 0.015
    assert abs(samples.mean() - (0.3 * -2.0 + 0.7 * 1.5)) < 0.03
    cold = sample_mixture(*params, temperature=0.01, generator=torch.Generator().manual_seed(1)).numpy()
    assert np.all(np.abs(cold - 1.5) < 0.2)        # tau -> 0: the heavier component's mean
    hot = sample_mixture(*params, temperature=2.0, generator=torch.Generator().manual_seed(1)).numpy()
    assert np.std(hot[hot > -0.25]) > 1.3 * np.std(samples[samples > -0.25])   # wider Gaussians


# ------------------------------------------------------------------ C: CMA-ES
def lqr_cost(params: np.ndarray, a=1.2, b=1.0, q=1.0, r=1.0, horizon=60) -> float:
    """Quadratic cost of u = w x + c on x' = a x + b u from x0 = +1 and -1."""
    w, c = params
    total = 0.0
    for x in (1.0, -1.0):
        for _ in range(horizon):
            u = w * x + c
            total += q * x * x + r * u * u
            x = a * x + b * u
            if abs(x) > 1e6:
                return 1e12
    return total


def test_cmaes_finds_the_lqr_gain_of_a_scalar_linear_system_and_resumes_by_replay():
    a, b, q, r = 1.2, 1.0, 1.0, 1.0
    p = (a * a * r - r + b * b * q + math.sqrt((a * a * r - r + b * b * q) ** 2 + 4 * b * b * q * r)) / (2 * b * b)
    gain = a * b * p / (r + b * b * p)                    # scalar Riccati: u* = -gain x
    assert abs(gain - 0.7935) < 1e-3

    es = CMAES(2, popsize=8, sigma0=0.5, seed=3)
    for generation in range(60):
        population = es.ask()
        es.tell(population, -np.array([lqr_cost(x) for x in population]))
        if generation == 29:
            halfway = [h.copy() for h in es.history]
    np.testing.assert_allclose(es.mean, [-gain, 0.0], atol=1e-3)

    resumed = CMAES(2, popsize=8, sigma0=0.5, seed=3)
    resumed.replay(halfway)
    for _ in range(30):
        population = resumed.ask()
        resumed.tell(population, -np.array([lqr_cost(x) for x in population]))
    np.testing.assert_array_equal(resumed.mean, es.mean)
    assert resumed.sigma == es.sigma


# ------------------------------------------------------------------ V: VAE
def squares(n: int, rng: np.random.Generator) -> torch.Tensor:
    """64x64 frames: one colored 16x16 square on black at a random place."""
    images = np.zeros((n, 64, 64, 3), np.uint8)
    for image in images:
        y, x = rng.integers(0, 48, 2)
        image[y:y + 16, x:x + 16] = rng.integers(64, 256, 3)
    return torch.from_numpy(images)


def test_vae_loss_is_recon_plus_clipped_kl_and_drops_in_a_tiny_run():
    image = squares(4, np.random.default_rng(0))
    target = image.float().permute(0, 3, 1, 2) / 255
    zeros = torch.zeros(4, 8)
    loss, metrics = vae_loss(target, image, zeros, zeros, kl_tolerance=0.5)
    assert float(loss) == pytest.approx(0.5 * 8)                # perfect recon, KL 0 clipped up to 0.5 per dim
    assert float(metrics["kl"]) == 0.0

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = ConvVAE(z_size=8, depth=8)
    data = squares(64, np.random.default_rng(1))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for update in range(40):
        batch = data[(update * 16) % 64:(update * 16) % 64 + 16]
        recon, mu, logvar = vae(batch, generator)
        loss, _ = vae_loss(recon, batch, mu, logvar, kl_tolerance=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    assert recon.shape == (16, 3, 64, 64) and float(recon.min()) >= 0 and float(recon.max()) <= 1


# ------------------------------------------------------------------ the whole command
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("worldmodels") / "run"
    threads = torch.get_num_threads()
    code = main([*TINY, "--run-dir", str(run)])
    torch.set_num_threads(threads)   # the tiny preset sets one thread for the run (conftest's fixture is per test)
    return run, code


def test_tiny_run_trains_every_stage_and_exports_a_policy_that_acts(tiny_run):
    run, code = tiny_run
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    # 6 episodes of 40 frames (10 policy steps x action repeat 4): 66 frames, 4 VAE batches of 16 per epoch
    assert summary["frames"] == 240 and summary["episodes"] == 6
    assert [e["length"] for e in summary["episode_returns"]] == [40] * 6
    assert summary["vae_updates"] == 8 and summary["mdn_updates"] == 6 and summary["generations"] == 3
    assert summary["stages_done"] == ["collect", "vae", "mdn_rnn", "controller"]
    # dream mode: evaluations at generations 2 (eval_every) and 3 (the last), 2 episodes of 40 frames each
    assert [(e["generation"], e["frames"]) for e in summary["eval"]] == [(2, 240), (3, 240)]
    assert summary["eval_frames"] == 2 * 2 * 40
    assert summary["best_eval_return"] == max(e["return"] for e in summary["eval"])
    # V (z 8, depth 4) + M (LSTM 16 over [z, a], head 3 x 8 x 5 + 2) + C ((8 + 16) x 1 + 1)
    vae = ConvVAE(8, 4)
    lstm_params = 4 * 16 * (9 + 16 + 2)
    head_params = 16 * 122 + 122
    assert summary["controller_params"] == 25
    assert summary["params"] == sum(p.numel() for p in vae.parameters()) + lstm_params + head_params + 25
    for stage in ("collect", "vae", "mdn_rnn", "controller"):
        rows = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
        assert rows and all(v is not None for row in rows for v in row.values()), stage

    from simreal.training.envs import make_training_env

    policy = load_policy(run / "policy.pt")
    assert isinstance(policy, Policy) and list(policy.observation_space.spaces) == ["image"]
    env = make_training_env("dm_control/cartpole-swingup-v0", 2, seed=7, action_repeat=4, pixels=(64, 64),
                            pixels_only=True, env_kwargs={"max_episode_steps": 40})
    obs = env.reset()
    state = policy.initial_state(2)
    ended = 0
    for _ in range(12):
        action, state = policy.act(obs, state)
        assert action.shape == (2, 1) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
        obs, _, done, _ = env.step(action)
        state = policy.reset_state(state, done)
        ended += int(done.sum())
    env.close()
    assert ended == 2                                            # both 10-step episodes ended and were reset
    first, _ = policy.act({"image": obs["image"]}, policy.initial_state(2))
    np.testing.assert_array_equal(first, policy.act({"image": obs["image"]}, policy.initial_state(2))[0])


def test_an_interrupted_run_resumes_where_it_stopped_and_matches_the_uninterrupted_one(tiny_run, tmp_path,
                                                                                      monkeypatch, capsys):
    import simreal.agents.world_models.ha.trainer as trainer

    reference, _ = tiny_run
    run = tmp_path / "run"
    original, calls = trainer.mdn_rnn_loss, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:          # during MDN-RNN update 4; the last checkpoint is at update 2
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "mdn_rnn_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main([*TINY, "--run-dir", str(run)])
    monkeypatch.setattr(trainer, "mdn_rnn_loss", original)
    stopped = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert stopped["done"] == ["collect", "vae"] and stopped["counters"]["mdn_updates"] == 2
    rollouts = {p.name: p.stat().st_mtime_ns for p in (run / "rollouts").iterdir()}
    vae_metrics = (run / "vae" / "metrics.jsonl").read_text()
    capsys.readouterr()

    assert main(["train", "worldmodels", "--run-dir", str(run), "--resume", "--quiet"]) == 0
    assert "stages run: mdn_rnn, controller; skipped (finished before): collect, vae" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (run / "rollouts").iterdir()} == rollouts
    assert (run / "vae" / "metrics.jsonl").read_text() == vae_metrics
    steps = [json.loads(line)["step"] for line in (run / "mdn_rnn" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]

    final = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    expected = load_weights_only(RunDir(reference, resume=True).latest_checkpoint())
    for part in ("vae", "mdn_rnn"):
        assert all(torch.equal(final[part][k], expected[part][k]) for k in expected[part]), part
    assert all(torch.equal(final["vae"][k], stopped["vae"][k]) for k in stopped["vae"])
    assert torch.equal(final["fitness"], expected["fitness"])
    ours, theirs = (json.loads((d / "summary.json").read_text()) for d in (run, reference))
    assert ours["eval"] == theirs["eval"] and ours["frames"] == theirs["frames"] == 240


def test_stage_order_and_resume_overrides_are_one_line_errors(tmp_path, capsys):
    assert main([*TINY, "--preset", "vae_only", "--run-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "stage 'vae' needs stage 'collect' finished first" in err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.yaml").write_text((tmp_path / "a" / "config.yaml").read_text())
    assert main(["train", "worldmodels", "--run-dir", str(tmp_path / "b"), "--resume", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "only stage presets" in err
    assert main(["train", "worldmodels", "--run-dir", str(tmp_path / "b"), "--resume",
                 "--set", "vae.lr=0.1"]) == 2
    assert "only --set run.stages=[...]" in capsys.readouterr().err
