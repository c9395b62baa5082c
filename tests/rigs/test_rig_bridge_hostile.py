"""The bridge server against hostile messages: it checks size and token first, answers, never exits."""

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
import zmq

from simreal.rigs import bridge
from simreal.rigs.base import EmergencyStopped, SafetyConfig
from simreal.rigs.bridge import (
    MAX_ARRAY_BYTES,
    PROTOCOL,
    RemoteRig,
    RigAuthError,
    RigServer,
    decode,
    encode,
)
from simreal.rigs.leap import FakeMotorBus, LeapHandRig

TOKEN = "bridge-test-token-0123456789"
OPERATOR = "operator-token-9876543210-abc"


@pytest.fixture
def connect():
    """RemoteRig(...) that is closed after the test, passed or failed (an open socket would hang the exit)."""
    made = []

    def make(*args, **kwargs) -> RemoteRig:
        made.append(RemoteRig(*args, **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()



def _send(address: str, frames: list[bytes]) -> dict:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        assert sock.poll(3000), "the server did not answer"
        header, _ = decode(sock.recv_multipart())
        return header
    finally:
        sock.close()


_ids = iter(range(1000, 10**6))


def _header(op="hello", token=TOKEN, **extra) -> dict:
    header = {"protocol": PROTOCOL, "token": token, "op": op, "id": next(_ids), "client": "hostile-test",
              "args": {}}
    header.update(extra)
    return header


def _frames(header: dict, *buffers: bytes) -> list[bytes]:
    return [json.dumps(header).encode(), *buffers]


def _step_header(shape, dtype="<f4", **extra) -> dict:
    return _header("step", arrays=[{"name": "action", "dtype": dtype, "shape": shape}], **extra)


def _assert_still_serves(server: RigServer) -> None:
    """A normal request after the hostile one: hello, reset and a step all answered correctly."""
    hello = _send(server.address, encode(_header()))
    assert hello["ok"] and hello["result"]["info"]["name"] == "leap_hand"
    reset = _send(server.address, encode(_header("reset", args={"seed": 0})))
    assert reset["ok"] and reset["result"]["seed"] == 0
    step = _send(server.address, encode(_header("step"), {"action": np.zeros(16, np.float32)}))
    assert step["ok"] and step["id"] is not None


def _assert_error(reply: dict, code: str) -> None:
    assert (reply["ok"], reply["code"]) == (False, code), reply
    assert reply["error"] and "\n" not in reply["error"]


HOSTILE = {
    "json nested 30000 deep (list)": [b"[" * 30000 + b"]" * 30000],
    "json nested 10000 deep (object)": [b'{"a":' * 10000 + b"1" + b"}" * 10000],
    "args nested 200 deep": [b'{"protocol": "simreal-rig/1", "args": ' + b"[" * 200 + b"]" * 200 + b"}"],
    "integer of 5000 digits": [b'{"id": ' + b"7" * 5000 + b"}"],
    "too many frames": [json.dumps(_header()).encode()] + [b""] * 100,
}

BAD_SHAPES = {
    "2**32 x 2**32, empty frame": ([2**32, 2**32], b""),
    "2**70": ([2**70], b""),
    "2**64 x 0": ([2**64, 0], b""),
    "product wraps int64 to 0": ([2**16] * 4, b""),
    "negative dim": ([-16], b""),
    "negative dims that multiply to 16": ([-4, -4], b"\0" * 64),
    "float dim": ([16.0], b"\0" * 64),
    "string dim": (["16"], b"\0" * 64),
    "null dim": ([None], b"\0" * 64),
    "bool dim": ([True], b"\0" * 4),
    "bool dims": ([True, False], b""),
    "nested dim": ([[16]], b"\0" * 64),
    "nine dims": ([1] * 9, b"\0" * 4),
    "shape not a list": (16, b"\0" * 64),
    "array over 64 MiB": ([2**24 + 1], b""),
}


@pytest.mark.parametrize("what", list(HOSTILE))
def test_hostile_headers_are_malformed_and_the_server_keeps_serving(served, what):
    server, _, bus = served
    _assert_error(_send(server.address, HOSTILE[what]), "malformed")
    assert bus.writes == []
    _assert_still_serves(server)


@pytest.mark.parametrize("what", list(BAD_SHAPES))
def test_bad_array_shapes_are_malformed_and_the_server_keeps_serving(served, what):
    server, _, bus = served
    shape, buf = BAD_SHAPES[what]
    _assert_error(_send(server.address, _frames(_step_header(shape), buf)), "malformed")
    assert bus.writes == []
    _assert_still_serves(server)


@pytest.mark.parametrize("what, header", [
    ("op a list", _header(["step"])),
    ("op an object", _header({"a": 1})),
    ("token with a lone surrogate", _header(token="\ud800" * 20)),
    ("id a huge integer", _header(id=2**80)),
    ("client an object", _header(client={"x": 1})),
    ("protocol a long list", _header(protocol=list(range(5000)))),
])
def test_odd_header_values_get_one_line_errors(served, what, header):
    server, _, _ = served
    reply = _send(server.address, [json.dumps(header).encode()])
    assert reply["ok"] is False and reply["code"] in ("malformed", "bad_request", "unauthorized", "protocol"), what
    assert "\n" not in reply["error"] and len(reply["error"]) < 400, what
    _assert_still_serves(server)


def test_a_huge_frame_with_a_wrong_token_is_unauthorized_before_its_arrays_are_read(served, monkeypatch):
    server, _, bus = served
    read = []  # the requests whose arrays the server read (replies, decoded here, carry no token)
    real = bridge.decode_arrays

    def spy(header, frames):
        if "token" in header:
            read.append(header)
        return real(header, frames)

    monkeypatch.setattr(bridge, "decode_arrays", spy)
    big = bytes(MAX_ARRAY_BYTES)
    frames = _frames(_step_header([MAX_ARRAY_BYTES // 4], token="not-the-token-at-all-000"), big)
    tracemalloc.start()
    try:
        reply = decode(server.handle(frames))[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _assert_error(reply, "unauthorized")
    assert read == [] and peak < 1 << 20  # no array parsed, no copy of the 64 MiB frame made
    _assert_error(_send(server.address, frames), "unauthorized")  # over the socket too
    assert read == [] and bus.writes == []
    _assert_still_serves(server)
    assert read  # token holders' arrays are read


def test_a_frame_over_the_limit_is_refused_before_the_header_is_parsed(served, monkeypatch):
    server, _, _ = served
    frames = _frames(_step_header([16]), bytes(MAX_ARRAY_BYTES + 1))
    with monkeypatch.context() as patched:
        patched.setattr(bridge.json, "loads", lambda *a, **k: pytest.fail("the header was parsed"))
        out = server.handle(frames)
    reply = decode(out)[0]
    _assert_error(reply, "malformed")
    assert "at most" in reply["error"]


def test_any_exception_in_a_handler_is_an_internal_reply(served, monkeypatch):
    server, rig, _ = served
    monkeypatch.setattr(server, "_ops", dict(server._ops, ping=lambda *a: 1 / 0))
    _assert_error(_send(server.address, encode(_header("ping"))), "internal")
    monkeypatch.setattr(server, "_handle", lambda frames: {}[["unhashable"]])  # anything before dispatch
    _assert_error(_send(server.address, encode(_header())), "internal")
    monkeypatch.undo()
    _assert_still_serves(server)


# ----------------------------------------------------------------------------- reset seeds
@pytest.fixture
def served_sim():
    from simreal.rigs.sim import SimulatedRig

    rig = SimulatedRig("cartpole_laggy")
    server = RigServer(rig, TOKEN, port=0).start()
    yield server, rig
    server.stop()
    rig.close()


@pytest.mark.parametrize("seed", [2**32, 2**32 + 5, 2**64, 10**30, -1, 1.5, 3.0, True, False, "3", [1], {"a": 1}])
def test_a_bad_first_reset_seed_is_a_bad_request_and_leaves_no_episode(served_sim, seed):
    server, rig = served_sim
    reply = _send(server.address, encode(_header("reset", args={"seed": seed})))
    _assert_error(reply, "bad_request")
    assert not rig.episode_active and server.owner is None
    _assert_error(_send(server.address, encode(_header("step"), {"action": np.zeros(1, np.float32)})), "no_episode")
    reset = _send(server.address, encode(_header("reset", args={"seed": 4})))
    assert reset["ok"] and reset["result"]["seed"] == 4
    for _ in range(3):
        step = _send(server.address, encode(_header("step"), {"action": np.full(1, 0.3, np.float32)}))
        assert step["ok"], step


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_the_edges_of_the_seed_range_are_accepted(served_sim, seed):
    server, _ = served_sim
    reset = _send(server.address, encode(_header("reset", args={"seed": seed})))
    assert reset["ok"] and reset["result"]["seed"] == seed
    assert _send(server.address, encode(_header("step"), {"action": np.zeros(1, np.float32)}))["ok"]


def test_a_simulated_rig_survives_a_failing_first_env_reset(monkeypatch):
    from simreal.rigs.sim import SimulatedRig

    rig = SimulatedRig("cartpole_laggy")
    try:
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
            rig.reset(seed=2**32)
        assert rig.episode_seed is None and not rig.episode_active
        def offline(**kwargs):
            raise RuntimeError("sensor offline")

        monkeypatch.setattr(rig.env.unwrapped, "reset", offline)
        with pytest.raises(RuntimeError, match="sensor offline"):  # any cause, e.g. options the env refuses
            rig.reset(seed=1)
        assert rig.episode_seed is None and not rig.episode_active
        monkeypatch.undo()
        rig.reset(seed=1)
        assert rig.episode_seed == 1
        for _ in range(3):
            rig.step(np.zeros(1))
        fresh = SimulatedRig("cartpole_laggy")
        a, b = rig.reset(seed=7)[0], fresh.reset(seed=7)[0]
        assert all(np.array_equal(a[k], b[k]) for k in a)  # the failures left nothing behind
        fresh.close()
    finally:
        rig.close()


def test_a_served_simulated_rig_after_a_bad_seed_through_the_client(served_sim, connect):
    server, _ = served_sim
    client = connect(server.address, TOKEN, timeout=2.0)
    with pytest.raises(Exception, match="bad_request"):
        client.reset(seed=2**32)
    client.reset(seed=3)
    for _ in range(3):
        client.step(np.zeros(1))


# ----------------------------------------------------------------------------- clearing an emergency stop
def test_clear_estop_is_refused_remotely_by_default_and_cleared_locally(served, connect):
    server, rig, bus = served
    client = connect(server.address, TOKEN, timeout=1.0)
    assert client.ping()["remote_clear"] is False
    client.reset(seed=0)
    client.emergency_stop("red button")
    assert rig.stopped == "remote: red button" and bus.torque is False
    with pytest.raises(EmergencyStopped, match="local action at the rig"):
        client.clear_emergency_stop()  # no operator token: the client only checks with the server
    for args in ({}, {"operator_token": TOKEN}, {"operator_token": OPERATOR}):
        _assert_error(_send(server.address, encode(_header("clear_estop", args=args))), "unauthorized")
    assert rig.stopped == "remote: red button" and client.stopped  # still latched, on both sides
    with pytest.raises(EmergencyStopped):
        client.reset(seed=1)
    assert server.clear_estop() is True  # the operator, in the server's process
    assert rig.stopped is None and server.clear_estop() is False
    with pytest.raises(EmergencyStopped):
        client.reset(seed=1)  # the client's own latch is still set
    client.clear_emergency_stop()  # and clears now that the server rig is clear
    client.reset(seed=1)
    client.step(np.zeros(16))


def test_clear_estop_with_an_operator_token(connect):
    rig = LeapHandRig(FakeMotorBus(), safety=SafetyConfig(max_delta=0.1, watchdog_timeout=None))
    with pytest.raises(Exception, match="must differ"):
        RigServer(rig, TOKEN, port=0, operator_token=TOKEN)
    with RigServer(rig, TOKEN, port=0, operator_token=OPERATOR).start() as server:
        plain = connect(server.address, TOKEN, timeout=1.0)
        wrong = connect(server.address, TOKEN, timeout=1.0, operator_token="not-the-operator-token-xx")
        operator = connect(server.address, TOKEN, timeout=1.0, operator_token=OPERATOR)
        assert plain.ping()["remote_clear"] is True
        plain.reset(seed=0)
        plain.emergency_stop("red button")
        with pytest.raises(EmergencyStopped, match="local action at the rig"):
            plain.clear_emergency_stop()  # sends nothing: it has no operator token
        with pytest.raises(RigAuthError, match="needs the operator token"):
            wrong.clear_emergency_stop()
        _assert_error(_send(server.address, encode(_header("clear_estop"))), "unauthorized")
        assert rig.stopped and plain.stopped
        operator.clear_emergency_stop()
        assert rig.stopped is None
        operator.reset(seed=1)
        operator.step(np.zeros(16))
        operator.end_episode()
    rig.close()


def test_rig_serve_clears_an_emergency_stop_on_sigusr1(tmp_path, connect):
    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1 here")
    token_file = tmp_path / "token"
    proc = subprocess.Popen([sys.executable, "-m", "simreal.cli", "rig", "serve", "--leap", "fake", "--port", "0",
                             "--token-file", str(token_file), "--watchdog", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        line = proc.stdout.readline()
        assert "serving leap_hand" in line, line + proc.stderr.read()
        port = int(line.split(" at tcp://127.0.0.1:")[1].split(";")[0])
        client = connect(f"tcp://127.0.0.1:{port}", token_file=token_file, timeout=1.0)
        client.reset(seed=0)
        client.emergency_stop("red button")
        with pytest.raises(EmergencyStopped, match="local action"):
            client.clear_emergency_stop()
        assert client.ping()["stopped"]
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 3.0
        while client.ping()["stopped"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.ping()["stopped"] is None
        client.clear_emergency_stop()
        client.reset(seed=1)
        client.step(np.zeros(16))
        client.end_episode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)  # (not communicate: it would skip what readline has buffered)
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert f"clear it here with kill -USR1 {proc.pid} (remote clearing is off" in out
    assert "stopped: requests" in out and "cleared by the local operator" in err


def test_rig_serve_refuses_the_shared_token_as_operator_token(tmp_path, capsys):
    from simreal import cli

    same = str(tmp_path / "token")
    assert cli.main(["rig", "serve", "--leap", "fake", "--port", "0", "--token-file", same,
                     "--operator-token-file", same]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must not be the --token-file" in err[0]
