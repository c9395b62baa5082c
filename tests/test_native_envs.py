"""Native envs are found through registration.NATIVE, never by comparing env ids: an alias of the
hand registered under a new id is built, bound, run as a rig and replayed like the hand itself."""

import gymnasium as gym
import pytest

from simreal import registration
from simreal.registration import NativeEnv, native_env, register_native

ALIAS = "simreal_test/HandAlias-v0"
BARE = "simreal_test/HandBare-v0"


@pytest.fixture
def aliases():
    hand = native_env(registration.HAND_CUBE_ID)
    register_native(NativeEnv(ALIAS, hand.vec_env, hand.binding_sim, rig=hand.rig, replay=hand.replay),
                    entry_point="simreal.envs.hand_cube:HandCubeEnv")
    register_native(NativeEnv(BARE, hand.vec_env, hand.binding_sim), entry_point="simreal.envs.hand_cube:HandCubeEnv")
    yield
    for env_id in (ALIAS, BARE):
        registration.NATIVE.pop(env_id, None)
        gym.registry.pop(env_id, None)


def test_an_alias_of_the_hand_is_built_bound_and_rigged_through_the_registry(aliases):
    from simreal.calibration import HandReplay, make_replay
    from simreal.envs.vec_env import HandCubeVecEnv
    from simreal.randomize import load_spec
    from simreal.rigs.hand import HandRigBackend
    from simreal.rigs.sim import SimulatedRig
    from simreal.training.envs import make_training_env

    venv = make_training_env(ALIAS, 2, seed=0, randomization="dactyl", nthread=1)
    try:
        assert isinstance(venv, HandCubeVecEnv) and venv.num_envs == 2
        assert venv.sim.randomization is not None
    finally:
        venv.close()
    spec = load_spec("dactyl")
    stack = registration.bind_to_env(spec, ALIAS)
    assert len(stack.items) == len(registration.bind_to_env(spec, registration.HAND_CUBE_ID).items)
    rig = SimulatedRig(None, env_id=ALIAS)
    try:
        assert isinstance(rig.backend, HandRigBackend) and rig.sim is not None
        assert rig.command_units.startswith("rad")
    finally:
        rig.close()
    assert isinstance(make_replay(ALIAS, load_spec("none")), HandReplay)


def test_a_native_env_without_a_rig_or_replay_is_refused_in_one_line(aliases):
    from simreal.calibration import make_replay
    from simreal.randomize import load_spec
    from simreal.rigs.sim import SimulatedRig

    with pytest.raises(ValueError, match=f"^{BARE}: has no rig ") as err:
        SimulatedRig(None, env_id=BARE)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=f"^{BARE}: has no replay "):
        make_replay(BARE, load_spec("none"))
    with pytest.raises(ValueError, match="action_repeat is not an option"):
        make_replay(BARE, load_spec("none"), action_repeat=2)


def test_gymnasium_ids_are_not_native():
    assert native_env("dm_control/cartpole-balance-v0") is None
    assert native_env(registration.HAND_CUBE_ID).rig == "simreal.rigs.hand:HandRigBackend"
