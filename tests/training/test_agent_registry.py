"""The agent registry: every registered agent implements the Agent protocol, resolves its tiny preset,
and load_policy rebuilds a policy through it."""

import numpy as np
import pytest

from simreal.training.agents import REGISTRY, Agent, UnknownAgentError, agent_names, get_agent


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_agent_implements_the_protocol_and_its_tiny_preset(name):
    agent = get_agent(name)
    assert isinstance(agent, Agent) and agent.name == name and agent.config_path.is_file()
    cfg = agent.resolve_config(["tiny"], ["run.seed=3"])
    assert cfg["run"]["seed"] == 3 and "id" in cfg["env"]


def test_an_unknown_agent_lists_the_known_ones():
    with pytest.raises(UnknownAgentError, match="known: " + ", ".join(agent_names())):
        get_agent("nope")


def test_the_rssm_agents_fix_their_config_agent():
    assert get_agent("planet").resolve_config(["tiny"])["agent"] == "planet"
    with pytest.raises(ValueError, match="train it with `simreal train dreamer`"):
        get_agent("planet").resolve_config(["tiny"], ["agent=dreamer"])


def test_training_through_the_registry_exports_a_policy_load_policy_rebuilds(tmp_path):
    from simreal.agents import load_policy
    from simreal.training.run import RunDir

    agent = get_agent("ppo")
    cfg = agent.resolve_config(["tiny"], ["run.steps=64", "eval.every=0", "run.tensorboard=false",
                                          "env.nthread=1"])
    run = RunDir(tmp_path / "run")
    run.save_config(cfg)
    summary = agent.train(cfg, run, progress=False)
    assert summary["env_steps"] == 64
    assert agent.train(cfg, RunDir(tmp_path / "run", resume=True), progress=False)["env_steps"] == 64  # done
    policy = load_policy(run.export_path)
    obs = {k: np.zeros((1, *s.shape), s.dtype) for k, s in policy.observation_space.spaces.items()}
    action, _ = policy.act(obs, policy.initial_state(1))
    assert action.shape == (1, 20)
