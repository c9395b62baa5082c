"""dm_control's PhysicsError under a randomization: one line naming the env, the step and the episode's values."""

import pathlib

import gymnasium as gym
import numpy as np
import pytest

from simreal.utils.finite import PhysicsDiverged, fmt

shimmy = pytest.importorskip("shimmy")

GEAR = pathlib.Path(__file__).parents[1] / "data" / "diverging_gear.yaml"  # the cartpole diverges in step 1


def test_a_physics_error_is_one_line_with_the_episode_values():
    from simreal.randomize.wrappers import wrap

    env = wrap(gym.make("dm_control/cartpole-swingup-v0"), GEAR, seed=0)
    _, info = env.reset(seed=0)
    with pytest.raises(PhysicsDiverged) as err:
        for _ in range(5):
            env.step(np.ones(1, np.float32))
    message = str(err.value)
    assert message.startswith("dm_control/cartpole-swingup-v0: the simulation became invalid in step 1 of the "
                              "episode (Physics state is invalid")
    assert message.endswith(f"that episode's randomization: motor_gear={fmt(info['randomization']['motor_gear'])}")
    assert "\n" not in message
    env.close()
