"""GAE and returns by hand, truncation bootstrapping, the segment layout, and exact LSTM resets."""

import itertools

import numpy as np
import pytest
import torch

from simreal.agents.ppo import resolve_ppo_config
from simreal.agents.ppo.buffer import SegmentLayout, call_cost, compute_gae, group_sorted_lengths
from simreal.agents.ppo.ppo import PPOTrainer
from simreal.agents.ppo.policy import select_state

CUE = "simreal.agents.ppo.testing:CueRecall-v0"


def cue_config(*overrides):
    return resolve_ppo_config(["tiny"], [f"env.id={CUE}", "eval.every=0", *overrides])


def test_gae_and_returns_match_a_hand_computed_example():
    rewards = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    last_value = torch.tensor([2.0, 5.0])
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma=0.9, lam=0.8)
    # env 0: t=2: 3 + 0.9*2 - 1.5 = 3.3; t=1 ends the episode: 2 - 1 = 1.0; t=0: (1 + 0.9*1 - 0.5) + 0.72*1.0 = 2.12
    # env 1: the episode ends at t=2, so last_value 5.0 is ignored: 1.0, 0.72, 0.72^2
    np.testing.assert_allclose(adv.numpy(), [[2.12, 0.5184], [1.0, 0.72], [3.3, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(ret.numpy(), [[2.62, 0.5184], [2.0, 0.72], [4.8, 1.0]], rtol=1e-6)


def test_truncated_episodes_bootstrap_from_the_terminal_observation_and_terminated_ones_do_not():
    # the cue is recalled after 5 blank steps, but a time limit of 3 steps cuts every episode first
    trainer = PPOTrainer(cue_config("env.kwargs={delay: 5, max_episode_steps: 3}", "ppo.gamma=0.9"))
    trainer.collect()
    buf, critic = trainer.buffer, trainer.model.critic
    done = buf.dones.numpy().astype(bool)
    assert done.sum() == 5 * trainer.cfg.env.n_envs  # steps 3, 6, ..., 15 of 16
    # the terminal observation is the 4th of the episode: privileged state [cue, (5 - 3) / 5]
    with torch.no_grad():
        cue = torch.from_numpy(buf.raw_critic[done][:, 0])
        terminal = torch.stack([cue, torch.full_like(cue, 0.4)], 1)
        expected = 0.9 * trainer.model.value(critic.step(critic.normalizer(terminal), ())[0])
    np.testing.assert_allclose(buf.rewards.numpy()[done], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(buf.rewards.numpy()[~done] == 0.0)
    assert np.abs(expected.numpy()).min() > 0  # a real bootstrap, not a zero

    untimed = PPOTrainer(cue_config("env.kwargs={delay: 2}"))
    untimed.collect()
    ended = untimed.buffer.dones.numpy().astype(bool)
    assert set(np.unique(untimed.buffer.rewards.numpy()[ended])) <= {-1.0, 1.0}  # the answer's reward only


def test_segment_layout_cuts_columns_at_episode_starts():
    starts = np.zeros((5, 2), bool)
    starts[2, 0] = True
    starts[0, 1] = starts[3, 1] = True
    layout = SegmentLayout(starts)
    assert layout.seg_env.tolist() == [0, 0, 1, 1]
    assert layout.seg_start.tolist() == [0, 2, 0, 3]
    assert layout.seg_len.tolist() == [2, 3, 3, 2]
    assert layout.seg_fresh.tolist() == [False, True, True, True]
    mb = layout.minibatch(np.array([1, 0]))
    assert len(mb.blocks) == 1 and mb.steps == 10  # four short segments: one call is cheapest
    block = mb.blocks[0]
    assert block.index.shape == (3, 4)
    # longest first (stable): env 1's first segment, env 0's second, then env 1's second, env 0's first
    assert block.env.tolist() == [1, 0, 1, 0]
    t, n = np.divmod(block.index.numpy(), 2)
    assert (n == block.env.numpy()[None]).all()
    np.testing.assert_array_equal(t[:, 1], [2, 3, 4])  # env 0's second segment
    np.testing.assert_array_equal(t[:, 3], [0, 1, 1])  # env 0's first: its padding repeats its last step
    assert block.keep.tolist() == [0.0, 0.0, 0.0, 1.0]  # only a segment that continues an episode keeps its state
    assert block.valid.tolist() == list(range(10))  # the last row's two padded steps (10, 11) are left out
    np.testing.assert_array_equal(mb.index.numpy(), block.index.numpy().ravel()[block.valid.numpy()])
    only_env1 = layout.minibatch(np.array([1]))
    assert only_env1.blocks[0].index.shape == (3, 2) and only_env1.steps == 5


def test_short_segments_go_into_their_own_block():
    # env 0 runs the whole rollout; envs 1-3 hold 12 episodes of 8 steps each
    starts = np.zeros((96, 4), bool)
    starts[::8, 1:] = True
    layout = SegmentLayout(starts)
    mb = layout.minibatch(np.arange(4))
    assert [tuple(b.index.shape) for b in mb.blocks] == [(96, 1), (8, 36)]  # not one (96, 37) block
    assert mb.steps == 4 * 96
    assert sorted(mb.index.tolist()) == list(range(4 * 96))
    costs = [call_cost(b.index.shape[1], b.index.shape[0]) for b in mb.blocks]
    assert sum(costs) < call_cost(37, 96) / 4
    # no episode start: one block of whole columns, no padding
    whole = SegmentLayout(np.zeros((96, 4), bool)).minibatch(np.arange(4))
    assert len(whole.blocks) == 1 and whole.blocks[0].valid.numel() == 4 * 96


def test_grouping_is_optimal_on_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = np.sort(rng.integers(1, 130, size=rng.integers(1, 7)))[::-1]
        runs = group_sorted_lengths(lengths)
        assert runs[0][0] == 0 and runs[-1][1] == len(lengths)
        assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
        cost = sum(call_cost(e - b, lengths[b]) for b, e in runs)
        brute = min(  # every way to cut the sorted list into runs
            sum(call_cost(e - b, lengths[b]) for b, e in zip((0, *cuts), (*cuts, len(lengths))))
            for k in range(len(lengths)) for cuts in itertools.combinations(range(1, len(lengths)), k))
        assert cost == pytest.approx(brute)


def _sharpen(actor):
    """Make the head's log-probabilities sensitive to the LSTM state (the init is deliberately flat)."""
    with torch.no_grad():
        torch.nn.init.orthogonal_(actor.head.logits.weight, 3.0)


def test_lstm_state_resets_exactly_at_episode_starts():
    # episodes of 4 to 9 steps start anywhere inside the 16-step rollout
    trainer = PPOTrainer(cue_config("env.kwargs={delay: 3, random_length: 5}", "env.n_envs=6", "run.seed=3"))
    actor = trainer.model.actor
    _sharpen(actor)
    trainer.collect()
    trainer.collect()  # the second rollout starts mid-episode, from a carried state
    buf = trainer.buffer
    assert buf.starts[1:].sum() >= 6 and not buf.starts[0].all()
    layout = SegmentLayout(buf.starts)
    with torch.no_grad():
        # 1) the update's segment replay gives the log-probabilities the rollout sampled with
        mb = layout.minibatch(np.arange(6))
        params = mb.gather(actor, buf.flat(buf.actor_obs), buf.initial_state[0])
        replay = actor.head.log_prob(params, buf.flat(buf.actions)[mb.index])
        old = buf.flat(buf.log_probs)[mb.index]
        assert mb.steps == buf.n_steps * buf.n_envs
        assert float((replay - old).abs().max()) < 1e-5
        # 2) each episode inside the rollout, run alone from a zero state, gives the same numbers
        zero = actor.initial_state(1)
        checked = 0
        for s in range(layout.n_segments):
            if not layout.seg_fresh[s]:
                continue
            n, t0, length = layout.seg_env[s], layout.seg_start[s], layout.seg_len[s]
            alone, _ = actor(buf.actor_obs[t0:t0 + length, n:n + 1], zero)
            lp = actor.head.log_prob(alone[:, 0], buf.actions[t0:t0 + length, n])
            np.testing.assert_allclose(lp.numpy(), buf.log_probs[t0:t0 + length, n].numpy(), atol=1e-5)
            checked += 1
        assert checked >= 6
        # 3) the env does expose a leak: the same steps without the reset give other numbers
        leaky, _ = actor(buf.actor_obs, buf.initial_state[0])
        leak_lp = actor.head.log_prob(leaky, buf.actions)
        after_a_start = torch.from_numpy(np.cumsum(buf.starts, 0) > 0)
        gap = (leak_lp - buf.log_probs).abs()[after_a_start]
        assert float(gap.max()) > 1e-2


def test_single_step_cell_matches_the_sequence_lstm():
    trainer = PPOTrainer(cue_config())
    core = trainer.model.actor.core
    torch.manual_seed(0)
    x = torch.randn(7, 3, core.dense.in_features)
    state = (torch.randn(1, 3, core.hidden), torch.randn(1, 3, core.hidden))
    with torch.no_grad():
        seq, (h, c) = core(x, state)
        s = state
        steps = []
        for t in range(7):
            y, s = core.step(x[t], s)
            steps.append(y)
    np.testing.assert_allclose(torch.stack(steps).numpy(), seq.numpy(), atol=1e-5)
    np.testing.assert_allclose(s[1].numpy(), c.numpy(), atol=1e-5)


@pytest.mark.parametrize("minibatches", [1, 3])
def test_every_step_is_trained_exactly_once_per_epoch(minibatches):
    starts = np.random.default_rng(0).random((16, 6)) < 0.2
    layout = SegmentLayout(starts)
    seen = np.zeros(16 * 6)
    for envs in np.array_split(np.random.default_rng(1).permutation(6), minibatches):
        mb = layout.minibatch(envs)
        np.add.at(seen, mb.index.numpy(), 1)
    assert (seen == 1).all()
