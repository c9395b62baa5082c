"""The network bridge: tokens, malformed messages, server-side safety, retries, dropped connections."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from simreal.rigs import DatasetReader, record, run_episodes, zero_policy
from simreal.rigs.base import EmergencyStopped, RigError, SafetyConfig, WatchdogTripped
from simreal.rigs.bridge import (
    PROTOCOL,
    RemoteRig,
    RigAuthError,
    RigConnectionError,
    RigServer,
    decode,
    encode,
)
from simreal.rigs.leap import LEAP_OFFSET, SIM_HIGH, SIM_LOW, FakeMotorBus, LeapHandRig

TOKEN = "bridge-test-token-0123456789"


def _raw(address: str, frames: list[bytes]) -> dict:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        assert sock.poll(2000), "the server did not answer"
        header, _ = decode(sock.recv_multipart())
        return header
    finally:
        sock.close()


def _request(op="hello", token=TOKEN, **extra):
    header = {"protocol": PROTOCOL, "token": token, "op": op, "id": 1, "client": "raw-client", "args": {}}
    header.update(extra)
    return header


def test_wrong_token_is_rejected_and_the_server_keeps_running(served):
    server, rig, _ = served
    with pytest.raises(RigAuthError, match="rejected the token"):
        RemoteRig(server.address, "not-the-right-token-at-all", timeout=1.0, retries=1)
    reply = _raw(server.address, encode({k: v for k, v in _request().items() if k != "token"}))
    assert (reply["ok"], reply["code"]) == (False, "unauthorized")
    client = RemoteRig(server.address, TOKEN, timeout=1.0)
    assert client.info().name == "leap_hand" and client.kind == rig.kind
    obs, _ = client.reset(seed=0)
    assert set(obs) == {"joint_pos", "joint_vel", "joint_target"}
    assert server.stats["rejected"] == 2
    client.close()


def test_malformed_messages_get_one_line_errors(served):
    server, _, bus = served
    cases = {
        "not json": [b"\xff\xfe garbage"],
        "a pickle": [pickle.dumps({"op": "step"})],
        "not an object": [b"[1, 2, 3]"],
        "missing frame": encode(_request("step")) [:1] + [b""],
        "object dtype": [json.dumps(dict(_request("step"), arrays=[{"name": "action", "dtype": "|O",
                                                                   "shape": [16]}])).encode(), b"x" * 128],
        "short buffer": [json.dumps(dict(_request("step"), arrays=[{"name": "action", "dtype": "<f4",
                                                                   "shape": [16]}])).encode(), b"x" * 10],
        "big endian": [json.dumps(dict(_request("step"), arrays=[{"name": "action", "dtype": ">f4",
                                                                 "shape": [16]}])).encode(), b"x" * 64],
        "huge header": [json.dumps(dict(_request(), pad="x" * 70000)).encode()],
    }
    for what, frames in cases.items():
        reply = _raw(server.address, frames)
        assert (reply["ok"], reply["code"]) == (False, "malformed"), what
        assert "\n" not in reply["error"] and reply["error"], what
    for frames, code in ((encode(_request(protocol="simreal-rig/0")), "protocol"),
                         (encode(_request("launch_missiles")), "bad_request"),
                         (encode(_request(id="seven")), "malformed"),
                         (encode(_request("reset", args={"seed": -3})), "bad_request"),
                         (encode(_request("step", id=2), {"action": np.zeros(16, np.float32),
                                                          "extra": np.zeros(1)}), "bad_request"),
                         (encode(_request("step", id=3), {"action": np.zeros(16, np.float32)}), "no_episode")):
        reply = _raw(server.address, frames)
        assert (reply["ok"], reply["code"]) == (False, code), code
    assert bus.writes == []  # nothing reached the motors
    client = RemoteRig(server.address, TOKEN, timeout=1.0)  # and the server still serves
    client.reset(seed=0)
    client.step(np.zeros(16))
    client.close()


def test_server_side_safety_holds_for_any_client(served):
    server, rig, bus = served
    client = RemoteRig(server.address, TOKEN, timeout=1.0)
    client.reset(seed=0)
    start = len(bus.writes)
    for k in range(12):
        client.step(np.full(16, [np.nan, 1e9, -1e9][k % 3]))
    # a client without our safety layer (raw frames) sending NaN and huge values
    for k, value in enumerate((np.nan, 1e30, -np.inf)):
        reply = _raw(server.address, encode({"protocol": PROTOCOL, "token": TOKEN, "op": "step", "id": 100 + k,
                                             "client": client.client_id, "args": {}},
                                            {"action": np.full(16, value, np.float32)}))
        assert reply["ok"]
    targets = np.array(bus.writes[start - 1:])
    assert np.all(targets >= SIM_LOW + LEAP_OFFSET - 1e-9) and np.all(targets <= SIM_HIGH + LEAP_OFFSET + 1e-9)
    assert np.max(np.abs(np.diff(targets, axis=0))) <= 0.1 + 1e-9
    assert client.safety_stats.non_finite == 4  # the client held its NaNs itself
    assert rig.safety_stats.non_finite == 2 and rig.safety_stats.rate_limited >= 8  # the server caught the raw ones
    client.close()


def test_a_resent_request_is_answered_without_acting_twice(served):
    server, rig, bus = served
    reset = encode({"protocol": PROTOCOL, "token": TOKEN, "op": "reset", "id": 1, "client": "c1", "args": {}})
    decode(server.handle(reset))
    step = encode({"protocol": PROTOCOL, "token": TOKEN, "op": "step", "id": 2, "client": "c1", "args": {}},
                  {"action": np.full(16, 0.5, np.float32)})
    before = len(bus.writes)
    first, second = server.handle(step), server.handle(step)
    assert first == second and len(bus.writes) == before + 1 and rig.safety_stats.steps == 1


def test_only_the_episode_owner_may_step(served):
    server, _, _ = served
    owner = RemoteRig(server.address, TOKEN, timeout=1.0)
    other = RemoteRig(server.address, TOKEN, timeout=1.0)
    owner.reset(seed=0)
    other._hold = None
    other.safety.start(np.zeros(16))
    other._episode_active = True  # pretend: a client that never reset
    with pytest.raises(RigError, match="not_owner"):
        other.step(np.zeros(16))
    other.reset(seed=1)  # resetting takes the rig over
    other.step(np.zeros(16))
    with pytest.raises(RigError, match="not_owner"):
        owner.step(np.zeros(16))
    owner.close()
    other.close()


def test_server_watchdog_and_remote_emergency_stop(tmp_path):
    bus = FakeMotorBus()
    rig = LeapHandRig(bus, safety=SafetyConfig(max_delta=0.2, watchdog_timeout=0.3))
    with RigServer(rig, TOKEN, port=0).start() as server:
        client = RemoteRig(server.address, TOKEN, timeout=1.0)
        record(client, tmp_path / "client-log")
        client.reset(seed=0)
        client.step(np.full(16, 0.3))
        time.sleep(1.0)  # the client goes silent: the server's watchdog holds the hand
        assert rig.watchdog_tripped and np.array_equal(bus.writes[-1], bus.positions)
        with pytest.raises(WatchdogTripped, match="watchdog"):
            client.step(np.zeros(16))
        client.reset(seed=1)
        client.step(np.zeros(16))
        client.emergency_stop("red button")
        assert rig.stopped == "remote: red button" and bus.torque is False
        with pytest.raises(EmergencyStopped):
            client.step(np.zeros(16))
        with pytest.raises(EmergencyStopped, match="local action"):
            client.clear_emergency_stop()  # no client may clear it by default
        server.clear_estop()  # the operator at the rig
        assert rig.stopped is None
        client.clear_emergency_stop()  # the client's own latch, now that the rig is clear
        client.reset(seed=2)
        assert bus.torque is True
        client.close()
    rig.close()
    assert [ep.end for ep in DatasetReader(tmp_path / "client-log")] == ["watchdog", "estop", "closed"]


def test_a_served_simulated_rig_matches_the_local_one():
    from simreal.rigs.sim import SimulatedRig

    served_rig = SimulatedRig("cartpole_laggy")
    local = SimulatedRig("cartpole_laggy")
    with RigServer(served_rig, TOKEN, port=0).start() as server:
        remote = RemoteRig(server.address, TOKEN, timeout=2.0)
        assert remote.observation_space == local.observation_space and remote.control_dt == local.control_dt
        a, _ = remote.reset(seed=4)
        b, _ = local.reset(seed=4)
        for t in range(15):
            action = np.array([np.sin(t)])
            a, ra, *_ = remote.step(action)
            b, rb, *_ = local.step(action)
            assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in b) and ra == rb
        remote.close()
    served_rig.close()
    local.close()


def _start_server(token_file, port: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "simreal.cli", "rig", "serve", "--leap", "fake", "--port", str(port),
                             "--token-file", str(token_file), "--watchdog", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    line = proc.stdout.readline()
    assert "serving leap_hand" in line, line + proc.stderr.read()
    return proc, int(line.split(" at tcp://127.0.0.1:")[1].split(";")[0])


def test_client_survives_a_killed_server_without_losing_recorded_data(tmp_path):
    token_file = tmp_path / "token"
    proc, port = _start_server(token_file, 0)
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"  # a fresh token, readable by its owner only
    try:
        client = RemoteRig(f"tcp://127.0.0.1:{port}", token_file=token_file, timeout=0.3, retries=2)
        record(client, tmp_path / "log")
        results = run_episodes(client, zero_policy(client), 2, seed=0, max_steps=5)
        assert [r.end for r in results] == ["cut_off", "cut_off"]
        client.reset(seed=2)
        client.step(np.full(16, 0.2))
        client.step(np.full(16, 0.2))
    finally:
        proc.send_signal(signal.SIGKILL)  # the controller process dies mid-episode
        proc.wait()
    t0 = time.monotonic()
    with pytest.raises(RigConnectionError, match="no reply to 'step' within 0.3 s"):
        client.step(np.zeros(16))
    assert time.monotonic() - t0 < 2.0
    proc, _ = _start_server(token_file, port)  # back on the same port
    try:
        obs, _ = client.reset(seed=3)  # the client reconnects by itself
        for _ in range(3):
            client.step(np.full(16, -0.1))
        client.end_episode()
        assert client.ping()["episode_active"] is False
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop leaves the rig safe and prints the counts
        out, _ = proc.communicate(timeout=10)
    assert "stopped: requests" in out
    client.close()
    reader = DatasetReader(tmp_path / "log")
    assert [ep.end for ep in reader] == ["cut_off", "cut_off", "error", "cut_off"]
    assert [ep.steps for ep in reader] == [5, 5, 2, 3]
    assert [ep.seed for ep in reader] == [0, 1, 2, 3]
    assert np.allclose(reader[2].actions, 0.2) and np.allclose(reader[3].actions, -0.1)
