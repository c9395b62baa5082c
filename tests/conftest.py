import os
import pathlib

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def load_benchmark():
    """Import a script of benchmarks/ by name (they are scripts, not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_hand_ppo(tmp_path_factory) -> pathlib.Path:
    """A run folder ``hand_ppo`` of a tiny PPO trained 64 steps on the vertical-goal hand (read it, do not write)."""
    from simreal.training.agents import get_agent
    from simreal.training.run import RunDir

    agent = get_agent("ppo")
    cfg = agent.resolve_config(["tiny"], ["run.steps=64", "eval.every=0", "run.tensorboard=false", "env.nthread=1",
                                          "env.kwargs={goal: vertical, settle_time: 0.0}"])
    run = RunDir(tmp_path_factory.mktemp("tiny_hand_ppo") / "hand_ppo")
    run.save_config(cfg)
    agent.train(cfg, run, progress=False)
    return run.path
