"""A trivial memory task: recall a cue shown at t=0. The LSTM learns it; the feed-forward variant cannot."""

import numpy as np

from simreal.agents.ppo import resolve_ppo_config
from simreal.agents.ppo.ppo import PPOTrainer

CUE = "simreal.agents.ppo.testing:CueRecall-v0"


def train_on_cue_recall(recurrent: bool):
    cfg = resolve_ppo_config(["tiny"], [
        f"env.id={CUE}", "env.kwargs={delay: 5, random_length: 4}", "env.n_envs=16", "run.steps=40960",
        "ppo.n_steps=32", "ppo.minibatches=4", "ppo.epochs=4", "ppo.lr=1e-3", "ppo.ent_coef=0.01",
        "policy.dense=32", "policy.lstm=32", "policy.critic_hidden=[32]", f"policy.recurrent={recurrent}",
        "eval.every=80", "eval.episodes=64", "eval.max_steps=12", "run.checkpoint_every=1000"])
    trainer = PPOTrainer(cfg)
    trainer.train()
    trainer.close()
    late = [h["train/episode_return"] for h in trainer.history[-10:]]
    return float(np.mean(late)), trainer.history[-1]


def test_lstm_recalls_the_cue_and_feed_forward_cannot():
    lstm_return, lstm_last = train_on_cue_recall(True)
    ff_return, ff_last = train_on_cue_recall(False)
    # +1 right, -1 wrong: remembering scores 1, guessing 0 on average
    assert lstm_return > 0.9, lstm_return
    assert lstm_last["eval/return"] > 0.9 and lstm_last["eval/finished"] == 1.0
    assert abs(ff_return) < 0.25, ff_return
    assert ff_last["eval/return"] < 0.5  # deterministic: one answer for every cue
