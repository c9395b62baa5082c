"""Every shipped randomization file and reality on every kind of env, as dm_control's suite test runs every task:
where a file fits an env it binds and runs the same trajectory from the same seed with finite observations;
where it does not, binding fails in one line naming the file."""

import pathlib

import gymnasium as gym
import numpy as np
import pytest
import shimmy  # noqa: F401  (registers the dm_control/ ids)

import simreal
from simreal.randomize import RandomizationError, load_spec, wrap
from simreal.rigs.sim import load_reality

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = {p.stem: p for p in sorted((ROOT / "randomizations").glob("*.yaml"))}
REALITIES = sorted(p.stem for p in (ROOT / "rigs" / "realities").glob("*.yaml"))
ENVS = (simreal.HAND_CUBE_ID, "dm_control/cartpole-swingup-v0", "Hopper-v5")
FITS = {  # the files written for each env; every other pair must be refused
    simreal.HAND_CUBE_ID: {"none", "dactyl", "dactyl_adr"} | {r for r in REALITIES if r.startswith("hand_")},
    "dm_control/cartpole-swingup-v0": {"none", "dmc_cartpole"} | {r for r in REALITIES if r.startswith("cartpole_")},
    "Hopper-v5": {"none"},
}


def spec_of(name):
    return load_reality(name).spec if name in REALITIES else load_spec(FILES[name])


def make(env_id, spec):
    if env_id == simreal.HAND_CUBE_ID:
        return simreal.make(env_id, randomization=spec)
    return wrap(gym.make(env_id), spec)


def rollout(env_id, spec, steps=3):
    env = make(env_id, spec)
    try:
        env.action_space.seed(5)
        obs, _ = env.reset(seed=11)
        out = [obs]
        for _ in range(steps):
            obs, *_ = env.step(env.action_space.sample())
            out.append(obs)
        return out
    finally:
        env.close()


def flat(obs):
    return np.concatenate([np.ravel(v) for _, v in sorted(obs.items())]) if isinstance(obs, dict) else np.ravel(obs)


def test_every_file_is_one_the_matrix_knows():
    assert set(FILES) | set(REALITIES) == set().union(*FITS.values()) | {"dmc_cartpole", "dactyl", "dactyl_adr"}


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("name", sorted(FILES) + REALITIES)
def test_a_file_binds_where_it_fits_and_is_refused_in_one_line_elsewhere(env_id, name):
    spec = spec_of(name)
    if name not in FITS[env_id]:
        with pytest.raises(RandomizationError) as err:
            make(env_id, spec).close()
        message = str(err.value)
        assert "\n" not in message and pathlib.Path(spec.source).name in message
        return
    first, again = rollout(env_id, spec), rollout(env_id, spec)
    for a, b in zip(first, again):
        assert np.all(np.isfinite(flat(a)))
        np.testing.assert_array_equal(flat(a), flat(b))
