"""Dreaming: the InfoNCE loss, random crops, the contrastive world model (overshooting, the
gradient-stopped decoder), and `simreal train dreaming` end to end on CPU in seconds."""

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from simreal.agents import load_policy
from simreal.agents.actions import ActionSpec
from simreal.agents.world_models import CONFIG_PATH
from simreal.agents.world_models.config import ContrastiveConfig, DreamerConfig, section
from simreal.agents.world_models.dreaming import Dreaming, info_nce, random_crop
from simreal.agents.world_models.nets import ObsLayout
from simreal.agents.world_models.world_model import Batch
from simreal.cli import main
from simreal.training.config import resolve_config
from simreal.training.logger import read_metrics
from simreal.training.run import RunDir, load_weights_only

IMAGE_SPACE = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)})
BOX = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


# ------------------------------------------------------------------ InfoNCE and crops
def test_info_nce_is_minimal_when_the_positives_match():
    keys = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert math.isclose(float(info_nce(torch.zeros(16, 8), keys)), math.log(16), rel_tol=1e-6)
    aligned = [float(info_nce(scale * keys, keys)) for scale in (1.0, 4.0, 16.0, 64.0)]
    assert aligned == sorted(aligned, reverse=True) and aligned[0] < math.log(16) and aligned[-1] < 1e-6   # -> 0
    perm = torch.roll(torch.arange(16), 1)
    assert float(info_nce(16.0 * keys[perm], keys)) > math.log(16)            # positives mismatched: worse than chance
    others = torch.nn.functional.normalize(torch.randn(200, 16, 8, generator=torch.Generator().manual_seed(1)), dim=2)
    assert all(float(info_nce(4.0 * q, keys)) > aligned[1] for q in others)   # same norm, any other direction: worse
    valid = torch.zeros(16, dtype=torch.bool)
    valid[:4] = True
    rows = torch.nn.functional.cross_entropy(4.0 * keys[perm] @ keys.T, torch.arange(16), reduction="none")
    assert torch.isclose(info_nce(4.0 * keys[perm], keys, valid), rows[:4].mean())


def test_random_crop_shifts_each_sequence_as_a_whole_within_the_padded_frame():
    generator = torch.Generator().manual_seed(0)
    base = torch.arange(8 * 8, dtype=torch.float32).reshape(1, 1, 8, 8, 1)
    frames = torch.cat([base + 1000 * t for t in range(3)], 1).expand(5, 3, 8, 8, 2).contiguous()
    out = random_crop(frames, 2, generator)
    assert out.shape == frames.shape
    assert torch.equal(random_crop(frames, 0, generator), frames)
    padded = torch.nn.functional.pad(base[0, 0].permute(2, 0, 1), (2, 2, 2, 2), mode="replicate")[0]
    windows = {(dy, dx): padded[dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
    shifts = set()
    for b in range(5):
        first = out[b, 0, :, :, 0]
        found = [k for k, w in windows.items() if torch.equal(first, w)]
        assert len(found) == 1
        shifts.add(found[0])
        for t in range(3):                                    # every frame of the sequence: the same window
            assert torch.equal(out[b, t, :, :, 0], first + 1000 * t)
            assert torch.equal(out[b, t, :, :, 1], out[b, t, :, :, 0])
    assert len(shifts) > 1                                    # sequences get different offsets


# ------------------------------------------------------------------ the agent
def tiny_dreaming(version="dreaming", overrides=()):
    cfg = resolve_config(CONFIG_PATH, [version, "tiny"], list(overrides))
    dc = DreamerConfig.from_resolved(cfg)
    torch.manual_seed(0)
    layout = ObsLayout.from_space(IMAGE_SPACE, None)
    spec = ActionSpec.from_space(BOX, "one_hot")
    return Dreaming(layout, spec, dc.model, dc.behavior, section(ContrastiveConfig, cfg, "contrastive"), seed=0)


def image_batch(batch=3, length=6, seed=0, first_at=()):
    rng = np.random.default_rng(seed)
    arrays = {"image": rng.integers(0, 255, (batch, length, 16, 16, 3), dtype=np.uint8),
              "action": rng.uniform(-1, 1, (batch, length, 1)).astype(np.float32),
              "reward": rng.uniform(0, 1, (batch, length)).astype(np.float32),
              "is_first": np.zeros((batch, length), bool), "is_terminal": np.zeros((batch, length), bool)}
    arrays["is_first"][:, 0] = True
    for t in first_at:
        arrays["is_first"][:, t] = True
    return Batch.from_numpy(arrays, ("image",), torch.device("cpu"))


@pytest.mark.parametrize("version", ["dreaming", "dreaming_v2"])
def test_the_decoder_learns_but_never_changes_the_model_or_the_behavior(version):
    with_decoder = tiny_dreaming(version)
    without = tiny_dreaming(version, ["contrastive.decoder=false"])
    assert with_decoder.wm.decoder is not None and without.wm.decoder is None
    decoder_before = {k: v.clone() for k, v in with_decoder.wm.decoder.state_dict().items()}
    torch.manual_seed(1)
    metrics = with_decoder.train_step(image_batch())
    torch.manual_seed(1)
    without.train_step(image_batch())
    ours, theirs = with_decoder.state_dict(), without.state_dict()
    assert set(theirs) == {k for k in ours if not k.startswith("wm.decoder.")}
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)          # bit-identical without the decoder
    assert any(not torch.equal(decoder_before[k], v) for k, v in with_decoder.wm.decoder.state_dict().items())
    assert np.isfinite(metrics["train/recon_image"]) and np.isfinite(metrics["train/nce_0"])
    assert metrics["train/nce_0"] > 0 and "train/nce_overshoot" in metrics


def test_overshooting_trains_the_linear_dynamics_and_skips_pairs_across_episode_starts():
    wm = tiny_dreaming().wm
    batch = image_batch(length=6, first_at=(3,))
    view_a, view_b = wm.views(batch.obs, torch.Generator().manual_seed(0))
    post, _ = wm.rssm.observe(wm.encoder(view_a), batch.action, batch.is_first)
    feat, keys = wm.rssm.feat(post), wm.obs_proj(wm.encoder(view_b))
    total, metrics = wm.contrastive_terms(feat, keys, batch)
    total.backward()
    assert wm.dyn_state.weight.grad.abs().sum() > 0 and wm.dyn_action.weight.grad.abs().sum() > 0
    with torch.no_grad():
        first = info_nce(wm.state_proj(feat).reshape(18, -1), keys.reshape(18, -1))
        # one step ahead by hand: predictions from t = 0..4 into t + 1; the one into t = 3 crosses the start
        queries = wm.state_proj(wm.dyn_state(feat[:, :-1]) + wm.dyn_action(batch.action[:, 1:])).reshape(15, -1)
        targets = keys[:, 1:].reshape(15, -1)
        valid = torch.tensor([t != 2 for t in range(5)]).repeat(3)
        ahead = info_nce(queries, targets, valid)
        assert not torch.isclose(ahead, info_nce(queries, targets))       # the mask matters here
        assert torch.isclose(metrics["train/nce_0"], first)
        wm.contrastive = dataclasses.replace(wm.contrastive, overshoot=1)
        one, _ = wm.contrastive_terms(feat, keys, batch)
        assert torch.isclose(one, first + ahead)
        wm.contrastive = dataclasses.replace(wm.contrastive, overshoot=0)
        zero, zero_metrics = wm.contrastive_terms(feat, keys, batch)
        assert torch.isclose(zero, first) and "train/nce_overshoot" not in zero_metrics
    assert float(total.detach()) > float(one) > float(zero) > 0           # K = 3 adds three positive terms


# ------------------------------------------------------------------ end to end
def train(run_dir, *extra, steps=200, preset=()):
    return main(["train", "dreaming", *preset, "--preset", "tiny", "--quiet", "--steps", str(steps),
                 "--run-dir", str(run_dir), *extra])


@pytest.mark.parametrize("version", ["dreaming", "dreaming_v2"])
def test_dreaming_trains_from_pixels_resumes_exports_and_acts(tmp_path, capsys, version):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    preset = ("--preset", version) if version == "dreaming_v2" else ()
    assert train(run, "--preset", "dmc_pixels", "--set", "env.pixels=[16, 16]", "--set", "run.video_every=100",
                 "--set", "run.checkpoint_every=100", "--randomization", "dmc_cartpole", steps=100, preset=preset) == 0
    first = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert main(["train", "dreaming", "--run-dir", str(run), "--resume", "--steps", "200", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "simreal train dreaming: dm_control/cartpole-swingup-v0 (randomization dmc_cartpole)" in out
    last = load_weights_only(RunDir(run, resume=True).latest_checkpoint())
    assert first["step"] == 100 and last["step"] == 200 and last["counters"]["updates"] > first["counters"]["updates"]
    assert not torch.equal(first["agent"]["crop_rng"], last["agent"]["crop_rng"])
    cfg = RunDir(run, resume=True).load_config()
    assert cfg["agent"] == "dreaming" and cfg["model"]["rssm"]["dist"] == ("discrete" if preset else "gaussian")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["frames"] == 200 and summary["params"] > 0
    metrics = read_metrics(run / "metrics.jsonl")
    for key in ("train/nce_0", "train/nce_overshoot", "train/kl_dyn", "train/reward_loss", "train/actor_loss",
                "train/critic_loss", "train/recon_image"):
        assert np.all(np.isfinite(metrics[key][1])), key
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert events.Images("train/open_loop_true_pred_error")            # the visualization decoder's predictions

    policy = load_policy(run / "policy.pt")
    obs = {"image": np.zeros((2, 16, 16, 3), np.uint8)}
    action, state = policy.act(obs, policy.initial_state(2))
    assert action.shape == (2, 1) and np.all(np.abs(action) <= 1.0)
    action, _ = policy.act(obs, state, deterministic=False)
    assert np.all(np.abs(action) <= 1.0)


def test_same_seed_gives_the_same_dreaming_run(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert train(tmp_path / name, "--seed", str(seed), steps=160) == 0
    rows = {n: [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
                for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in "abc"}
    assert rows["a"] == rows["b"] and rows["a"] != rows["c"]
