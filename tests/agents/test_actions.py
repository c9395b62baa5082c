"""The one action map every agent uses: both encodings, both directions, and the spaces it refuses."""

import gymnasium as gym
import numpy as np
import pytest

from simreal.agents.actions import ActionSpec

BOX = gym.spaces.Box(np.array([[-2.0, 0.0], [1.0, 1.0]], np.float32), np.array([[2.0, 10.0], [3.0, 1.0]], np.float32))


@pytest.mark.parametrize("encoding", ["index", "one_hot"])
def test_box_actions_are_clipped_scaled_and_inverted_in_both_encodings(encoding):
    spec = ActionSpec.from_space(BOX, encoding)
    assert spec.dim == 4 and not spec.discrete
    out = spec.to_env(np.array([[1.5, -0.5, 0.0, 0.3]]))
    np.testing.assert_array_equal(out, [[[2.0, 2.5], [2.0, 1.0]]])   # clipped at +1; a fixed bound stays put
    assert out.dtype == np.float32 and BOX.contains(out[0])
    unit = np.random.default_rng(0).uniform(-1, 1, (6, 4)).astype(np.float32)
    unit[:, 3] = 0.0   # the degenerate dimension has no inverse but its midpoint
    np.testing.assert_allclose(spec.from_env(spec.to_env(unit)), unit, atol=1e-6)


def test_discrete_start_is_applied_on_the_way_out_and_removed_on_the_way_in():
    space = gym.spaces.Discrete(4, start=-1)
    index, one_hot = ActionSpec.from_space(space), ActionSpec.from_space(space, "one_hot")
    assert (index.dim, one_hot.dim) == (1, 4)
    env = index.to_env(np.array([[0], [3]]))
    assert env.tolist() == [-1, 2] and all(space.contains(int(a)) for a in env)
    assert one_hot.to_env(np.eye(4)[[0, 3]]).tolist() == [-1, 2]
    np.testing.assert_array_equal(index.from_env(env), [[0], [3]])
    np.testing.assert_array_equal(one_hot.from_env(env), np.eye(4)[[0, 3]])


def test_multidiscrete_encodings_round_trip_and_random_actions_are_valid():
    space = gym.spaces.MultiDiscrete([[3, 3], [3, 3]])
    rng = np.random.default_rng(1)
    for encoding, dim in (("index", 4), ("one_hot", 12)):
        spec = ActionSpec.from_space(space, encoding)
        assert spec.dim == dim and (spec.groups, spec.classes) == (4, 3)
        agent = spec.random(50, rng)
        env = spec.to_env(agent)
        assert env.shape == (50, 2, 2) and all(space.contains(a) for a in env)
        np.testing.assert_array_equal(spec.from_env(env), agent)
    uneven = ActionSpec.from_space(gym.spaces.MultiDiscrete([3, 5]))          # index heads take uneven bins
    assert uneven.dim == 2 and (uneven.random(200, rng) < [3, 5]).all()
    with pytest.raises(ValueError, match="one size"):
        ActionSpec.from_space(gym.spaces.MultiDiscrete([3, 5]), "one_hot")


@pytest.mark.parametrize("space, encoding, message", [
    (gym.spaces.Box(-np.inf, np.inf, (2,)), "index", "must be finite"),
    (gym.spaces.MultiBinary(3), "index", "expected Box, Discrete or MultiDiscrete"),
    (gym.spaces.Discrete(2), "onehot", "action encoding"),
])
def test_bad_spaces_and_encodings_are_refused_in_one_line(space, encoding, message):
    with pytest.raises(ValueError, match=message):
        ActionSpec.from_space(space, encoding)
