"""`simreal export --onnx`: the graph matches the PyTorch policy under onnxruntime (recurrent and feed-forward,
Box and Discrete, PPO and I2A), its contract file says what the robot needs, other agents are refused in one
line, and the robot-side example drives a served rig with onnxruntime alone."""

import json
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from simreal.cli import main  # noqa: E402
from simreal.training.agents import get_agent  # noqa: E402
from simreal.training.run import RunDir  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
CARTPOLE = "dm_control/cartpole-balance-v0"


def train(path, name, env, *extra):
    agent = get_agent(name)
    cfg = agent.resolve_config(["tiny"], [f"env.id={env}", "run.tensorboard=false", "eval.every=0", *extra])
    agent.train(cfg, RunDir(path), progress=False)
    return path


@pytest.fixture(scope="module")
def cartpole_ppo(tmp_path_factory):
    return train(tmp_path_factory.mktemp("onnx") / "ppo", "ppo", CARTPOLE, "env.action_repeat=2")


def test_a_recurrent_ppo_exports_with_its_state_as_inputs_and_matches_pytorch(cartpole_ppo, capsys):
    assert main(["export", str(cartpole_ppo), "--onnx", "--check-steps", "60"]) == 0
    out = capsys.readouterr().out
    assert "inputs obs, h, c" in out and "parity with the PyTorch policy over 60 steps x 2 envs" in out
    meta = json.loads((cartpole_ppo / "policy.onnx.json").read_text())
    assert meta["agent"] == "ppo" and meta["state_size"] == 16 and meta["outputs"] == ["action", "h_next", "c_next"]
    assert [k["key"] for k in meta["obs_keys"]] == ["position", "velocity"] and meta["obs_size"] == 5
    assert meta["env"]["env_id"] == CARTPOLE and meta["action_space"]["type"] == "Box"
    import onnx

    model = onnx.load(str(cartpole_ppo / "policy.onnx"))
    assert json.loads({p.key: p.value for p in model.metadata_props}["simreal"]) == meta


def test_feed_forward_and_discrete_i2a_policies_match_too(tmp_path):
    from simreal.agents import load_policy
    from simreal.agents.onnx_export import export_onnx, parity, record_observations

    ff = train(tmp_path / "ff", "ppo", "CartPole-v1", "policy.recurrent=false")
    i2a = train(tmp_path / "i2a", "i2a", "CartPole-v1")
    for run, inputs in ((ff, ["obs"]), (i2a, ["obs", "h", "c"])):
        path, meta = export_onnx(run, tmp_path / f"{run.name}.onnx")
        assert meta["inputs"] == inputs and path.with_name(path.name + ".json").is_file()
        policy = load_policy(run / "policy.pt")
        check = parity(path, policy, record_observations(policy, meta, 40, n_envs=3))
        assert check["max_abs_action_diff"] == 0.0 and check["max_abs_state_diff"] < 1e-5  # integer actions


def test_an_mbpo_actor_exports_without_state_and_matches_pytorch(tmp_path, capsys):
    run = tmp_path / "mbpo"
    assert main(["train", "mbpo", "--preset", "tiny", "--env", "Pendulum-v1", "--set", "env.action_repeat=1",
                 "--steps", "200", "--run-dir", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", "--check-steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "inputs obs (obs 3 = observation), outputs action" in out and "max |action diff|" in out
    meta = json.loads((run / "policy.onnx.json").read_text())
    assert meta["agent"] == "mbpo" and meta["state_size"] == 0 and meta["env"]["env_id"] == "Pendulum-v1"


def test_other_agents_and_missing_exports_are_one_line_errors(tmp_path, capsys):
    run = tmp_path / "pets"
    assert main(["train", "pets", "--preset", "tiny", "--env", "Pendulum-v1", "--set", "env.action_repeat=1",
                 "--steps", "200", "--run-dir", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a 'pets' policy; ONNX export covers ppo, i2a, mbpo" in err[0]
    assert main(["export", str(tmp_path / "nothing"), "--onnx"]) == 2
    assert "no such export" in capsys.readouterr().err


def test_the_robot_side_example_drives_a_served_rig_with_onnxruntime_only(cartpole_ppo, tmp_path):
    from simreal.agents.onnx_export import export_onnx
    from simreal.rigs import RigServer
    from simreal.rigs.sim import SimulatedRig

    path, _ = export_onnx(cartpole_ppo, tmp_path / "robot.onnx")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import onnx_on_the_robot as robot
    finally:
        sys.path.pop(0)
    rig = SimulatedRig("cartpole_laggy", env_id=CARTPOLE, action_repeat=2)
    try:
        with RigServer(rig, "robot-token-0123456789", port=0).start() as server:
            total = robot.run(str(path), f"tcp://127.0.0.1:{server.port}", "robot-token-0123456789", max_steps=25)
    finally:
        rig.close()  # its render context is freed here, not by the garbage collector on another thread
    assert np.isfinite(total) and total > 0  # cart-pole balance pays every step the pole is up
