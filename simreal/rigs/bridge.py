"""The network bridge: a rig served next to the robot, driven from simreal as a `RemoteRig`.

::

    # next to the robot (the controller process):
    simreal rig serve --leap /dev/ttyUSB0 --token-file ~/.config/simreal/rig_token
    # or from Python:
    server = RigServer(LeapHandRig(DynamixelMotorBus("/dev/ttyUSB0")), token, port=5555)
    server.serve_forever()

    # in simreal (an evaluation):
    rig = RemoteRig("tcp://127.0.0.1:5555", token_file="~/.config/simreal/rig_token")
    obs, info = rig.reset(seed=0)

Transport: ZeroMQ REQ (client) / REP (server) over TCP. The server binds
127.0.0.1 unless told otherwise (``host=``; ``--host`` on the command line).
The token travels in clear text: beyond one machine, tunnel the port (ssh -L)
or use a private network.

**Messages.** Every message, both ways, is a multipart ZeroMQ message: frame 0
is a UTF-8 JSON object (the header, at most 64 KiB, nested at most 32 deep),
frames 1..n are the raw bytes of n numpy arrays (n <= 64), C order,
little-endian, described in the header's ``arrays`` list in frame order:
``{"name": str, "dtype": str, "shape": [int]}`` with dtype one of
``ALLOWED_DTYPES`` (numpy ``dtype.str``: ``<f4``, ``<f8``, ``|u1``, ``|b1``,
...), at most 8 dimensions (non-negative integers, not booleans) and 64 MiB per
array. Nothing is ever unpickled: a frame that does not match its description
is rejected.

The server checks a request in this order, each step cheap before the next:
the frame count and sizes (no parsing), the header (bounded JSON), the
protocol, the token -- and only then the array descriptions and data frames. A
request with a wrong token is answered ``unauthorized`` without reading its
arrays, whatever their size.

Request header::

    {"protocol": "simreal-rig/1", "token": "<shared secret>", "op": "step",
     "id": 17,                     # per-client request counter (a retry resends the same id)
     "client": "<uuid hex>",       # the client's identity (<= 64 chars)
     "args": {...}, "arrays": [{"name": "action", "dtype": "<f4", "shape": [16]}]}

Reply header::

    {"protocol": "simreal-rig/1", "ok": true, "id": 17, "session": "<server run id>",
     "result": {...}, "arrays": [{"name": "obs.joint_pos", "dtype": "<f4", "shape": [16]}, ...]}
    {"protocol": "simreal-rig/1", "ok": false, "id": 17, "session": "...", "code": "unauthorized",
     "error": "one line"}

Operations (``op``; ``args``; what comes back):

=============== ============================ ==================================================
``hello``       --                           ``result.info``: the rig's `RigInfo.to_dict()`
``reset``       ``seed``, ``options``        ``obs.<key>`` arrays, ``hold_action`` array,
                                             ``result.info``, ``result.seed``; the client
                                             becomes the episode's owner. ``seed``: null or an
                                             integer in [0, 2**32) (numpy's seed range)
``step``        array ``action``             ``obs.<key>`` arrays, ``result.reward``,
                                             ``terminated``, ``truncated``, ``info`` (the
                                             client reports the server rig's safety flags
                                             as ``info["server_clipped"]``, ...)
``end_episode`` ``reason``                   the server rig ends its episode (safe state)
``hold``        --                           the same, reason ``remote_hold``
``estop``       ``reason``                   the server rig's emergency stop latches (any
                                             token holder may stop the rig)
``clear_estop`` ``operator_token``           unlatch it: only with the server's separate
                                             operator token (``--operator-token-file``);
                                             without one configured, refused to every client
``ping``        --                           ``result``: episode_active, stopped, safety
                                             counts, ``remote_clear`` (an operator token is
                                             configured)
=============== ============================ ==================================================

**Clearing an emergency stop** is an operator's action at the cell, as on a
real robot: by default no network client can do it. Next to the robot, call
`RigServer.clear_estop` from the server's process, or send ``SIGUSR1`` to
``simreal rig serve`` (``kill -USR1 PID``; the PID is printed at start). To
allow it remotely, give the server an operator token (``operator_token=`` /
``--operator-token-file``), different from the shared token, and the client
the same (``RemoteRig(..., operator_token_file=...)``); a ``clear_estop``
without it, or with a wrong one, is ``unauthorized``.

Error codes: ``malformed`` (not a valid message: bad JSON, a header too large
or nested too deep, too many or too large frames, frames that do not match
their descriptions, a forbidden dtype, a bad shape), ``protocol`` (another
version), ``unauthorized`` (wrong or missing token, or a ``clear_estop``
without the operator token; compared in constant time), ``bad_request``
(unknown op, bad args such as a seed out of range, or a bad action),
``not_owner`` (a step from a client that did not start the episode),
``no_episode``, ``estop``, ``watchdog``, ``rig_error``, ``internal`` (anything
else that went wrong; the server logs it). Every error is one line. The server
answers every message and keeps running: a failed ``reset`` leaves it with no
episode, ready for the next.

**Reliability.** The client waits ``timeout`` seconds for each reply; on
silence it drops its socket, opens a new one and resends the same request id
(``retries`` times in all) -- the server caches its last reply per client, so
a resent ``step`` is answered without stepping twice. A server that restarted
has a new ``session`` and no episode: the client's next ``step`` fails with
`EpisodeNotStarted` and its next ``reset`` starts afresh on the new server
(the spaces are checked again). The server rig's own watchdog puts the robot
in its safe state when a client goes silent mid-episode.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import pathlib
import secrets
import threading
import uuid
from typing import Any, Mapping

import numpy as np
import zmq

from simreal.rigs.base import (
    EmergencyStopped,
    EpisodeNotStarted,
    Rig,
    RigError,
    RigInfo,
    SafetyConfig,
    WatchdogTripped,
    action_bounds,
    jsonable,
)

PROTOCOL = "simreal-rig/1"
ALLOWED_DTYPES = frozenset({"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"})
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAY_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 64
MAX_NDIM = 8
MAX_HEADER_DEPTH = 32  # nesting of JSON objects and lists in a header
MAX_SEED = 2**32  # reset seeds are in [0, MAX_SEED): what numpy's seeding (and dm_control) takes
MAX_REQUEST_ID = 2**63
TOKEN_ENV = "SIMREAL_RIG_TOKEN"
MIN_TOKEN_CHARS = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")

log = logging.getLogger(__name__)


class ProtocolError(RigError):
    """A message that breaks the protocol; ``code`` is the error code to answer with."""

    def __init__(self, message: str, code: str = "malformed"):
        super().__init__(message)
        self.code = code


class RigConnectionError(RigError):
    """No (valid) reply from the server within the timeout and retries."""


class RigAuthError(RigError):
    """The server rejected the token."""


# ----------------------------------------------------------------------------- tokens
def load_token(token: str | None = None, token_file: str | os.PathLike | None = None) -> str:
    """The shared token: ``token``, else the first line of ``token_file``, else $SIMREAL_RIG_TOKEN."""
    source = "token"
    if token is None and token_file is not None:
        path = pathlib.Path(token_file).expanduser()
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise RigError(f"{path}: cannot read the token file ({exc.strerror})") from None
        token = text.splitlines()[0] if text else ""
        source = str(path)
    if token is None:
        token = os.environ.get(TOKEN_ENV)
        source = f"${TOKEN_ENV}"
    if token is None:
        raise RigError(f"no rig token: pass --token-file FILE (or token=...) or set ${TOKEN_ENV}")
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS or not token.isprintable():
        raise RigError(f"{source}: the token must be at least {MIN_TOKEN_CHARS} printable characters")
    return token


def create_token_file(path: str | os.PathLike) -> str:
    """Write a fresh random token to ``path`` (readable by its owner only) and return it."""
    path = pathlib.Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _secret(token: str) -> bytes:
    """A token's bytes for a constant-time comparison (any str, lone surrogates included, encodes)."""
    return token.encode("utf-8", "surrogatepass")


# ----------------------------------------------------------------------------- encoding
def encode(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> list[bytes]:
    """A message's frames: the JSON header (with ``arrays`` described) and the little-endian buffers."""
    header = dict(header)
    described, buffers = [], []
    for name, value in (arrays or {}).items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ProtocolError(f"array {name!r}: dtype {arr.dtype} cannot be sent (numbers only)", "bad_request")
        arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
        described.append({"name": str(name), "dtype": arr.dtype.str, "shape": list(arr.shape)})
        buffers.append(arr.tobytes())
    header["arrays"] = described
    return [json.dumps(jsonable(header)).encode("utf-8"), *buffers]


def _too_deep(value: Any, limit: int) -> bool:
    """Whether JSON data nests objects and lists more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _short(value: Any, limit: int = 60) -> str:
    """A client-sent value for an error message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def decode_header(frames: list[bytes]) -> dict[str, Any]:
    """The header of a message, after the cheap checks (frame count and sizes); the arrays are not read.

    `ProtocolError` (``malformed``) for too many frames, a frame over its size limit, a header that is
    not a JSON object or is nested more than ``MAX_HEADER_DEPTH`` deep.
    """
    if not frames:
        raise ProtocolError("empty message")
    if len(frames) > MAX_ARRAYS + 1:
        raise ProtocolError(f"{len(frames)} frames (at most {MAX_ARRAYS + 1}: a header and {MAX_ARRAYS} arrays)")
    head = frames[0]
    if len(head) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(head)} bytes (at most {MAX_HEADER_BYTES})")
    for k, buf in enumerate(frames[1:]):
        if len(buf) > MAX_ARRAY_BYTES:
            raise ProtocolError(f"frame {k + 1} has {len(buf)} bytes (at most {MAX_ARRAY_BYTES})")
    try:
        header = json.loads(bytes(head).decode("utf-8"))
    except RecursionError:
        raise ProtocolError(f"frame 0 is nested too deep (at most {MAX_HEADER_DEPTH} levels)") from None
    except ValueError:  # not UTF-8, not JSON, or an integer too long to convert
        raise ProtocolError("frame 0 is not a UTF-8 JSON object") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame 0 is not a JSON object")
    if _too_deep(header, MAX_HEADER_DEPTH):
        raise ProtocolError(f"frame 0 is nested too deep (at most {MAX_HEADER_DEPTH} levels)")
    return header


def decode_arrays(header: Mapping[str, Any], frames: list[bytes]) -> dict[str, np.ndarray]:
    """The arrays of a message whose header `decode_header` returned; `ProtocolError` on any mismatch."""
    described = header.get("arrays", [])
    if not isinstance(described, list) or len(described) > MAX_ARRAYS:
        raise ProtocolError(f"'arrays' must be a list of at most {MAX_ARRAYS} descriptions")
    if len(described) != len(frames) - 1:
        raise ProtocolError(f"'arrays' describes {len(described)} arrays but {len(frames) - 1} data frames came")
    arrays: dict[str, np.ndarray] = {}
    for k, (desc, buf) in enumerate(zip(described, frames[1:])):
        if not isinstance(desc, dict) or set(desc) != {"name", "dtype", "shape"}:
            raise ProtocolError(f"arrays[{k}]: expected {{name, dtype, shape}}")
        name, dtype, shape = desc["name"], desc["dtype"], desc["shape"]
        if not isinstance(name, str) or not name or len(name) > 256 or name in arrays:
            raise ProtocolError(f"arrays[{k}].name: a unique non-empty string (at most 256 characters) expected")
        if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
            raise ProtocolError(f"arrays[{k}].dtype: {_short(dtype)} not allowed "
                                f"(one of {', '.join(sorted(ALLOWED_DTYPES))})")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and 0 <= d <= MAX_ARRAY_BYTES for d in shape)):
            raise ProtocolError(f"arrays[{k}].shape: a list of at most {MAX_NDIM} non-negative integers "
                                f"(each at most {MAX_ARRAY_BYTES}) expected; got {_short(shape)}")
        dt = np.dtype(dtype)
        nbytes = 0 if 0 in shape else dt.itemsize
        for d in shape:  # exact Python integers, stopped at the limit: no overflow, however large the dims
            nbytes *= d
            if nbytes > MAX_ARRAY_BYTES:
                raise ProtocolError(f"arrays[{k}]: {dtype}{shape} is over {MAX_ARRAY_BYTES} bytes")
        if len(buf) != nbytes:
            raise ProtocolError(f"arrays[{k}] ({name}): frame has {len(buf)} bytes, {dtype}{shape} needs {nbytes}")
        arrays[name] = np.frombuffer(buf, dtype=dt).reshape(shape).copy()
    return arrays


def decode(frames: list[bytes]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and arrays of a message; `ProtocolError` for anything that does not match the protocol."""
    header = decode_header(frames)
    return header, decode_arrays(header, frames)


# ----------------------------------------------------------------------------- server
class RigServer:
    """Serves one rig over ZeroMQ (REP) to token-holding clients; every message gets an answer.

    Args:
        rig: the rig to serve (its own safety layer and watchdog protect the hardware).
        token: the shared secret (at least 16 characters; see `load_token`).
        host: the address to bind (default 127.0.0.1: this machine only).
        port: TCP port; 0 picks a free one (``server.port`` tells which).
        operator_token: a second secret, different from ``token``, that a client must send to
            clear an emergency stop over the network; ``None`` (default): only `clear_estop`,
            called in the server's process, clears it.
    """

    def __init__(self, rig: Rig, token: str, *, host: str = "127.0.0.1", port: int = 5555,
                 operator_token: str | None = None):
        self.rig = rig
        self._token = _secret(load_token(token))
        self._operator_token = None if operator_token is None else _secret(load_token(operator_token))
        if self._operator_token is not None and hmac.compare_digest(self._operator_token, self._token):
            raise RigError("the operator token must differ from the shared token (every client holds that one)")
        self.host = host
        self.session = uuid.uuid4().hex
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_ARRAY_BYTES * 2)
        try:
            if int(port) == 0:
                self.port = self._socket.bind_to_random_port(f"tcp://{host}")
            else:
                self._socket.bind(f"tcp://{host}:{int(port)}")
                self.port = int(port)
        except zmq.ZMQError as exc:
            self._socket.close()
            self._ctx.term()
            raise RigError(f"cannot bind tcp://{host}:{port} ({exc})") from None
        self.address = f"tcp://{host}:{self.port}"
        self.owner: str | None = None
        self.stats = {"requests": 0, "rejected": 0, "errors": 0}
        self._replies: dict[str, tuple[int, list[bytes]]] = {}
        self._stop = threading.Event()
        self._clear_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._ops = {"hello": self._hello, "reset": self._reset, "step": self._step, "ping": self._ping,
                     "end_episode": self._end_episode, "hold": self._hold, "estop": self._estop,
                     "clear_estop": self._clear_estop}

    # ------------------------------------------------------------------ running
    def serve_forever(self, poll_interval: float = 0.05) -> None:
        """Answer requests until `stop` (or KeyboardInterrupt in the calling thread)."""
        while not self._stop.is_set():
            if self._clear_requested.is_set():
                self._clear_requested.clear()
                try:
                    self.clear_estop()
                except Exception as exc:  # noqa: BLE001 - e.g. the hardware refused; the stop stays latched
                    log.error("rig server: clearing the emergency stop failed: %s", " ".join(str(exc).split()))
            if not self._socket.poll(int(poll_interval * 1000)):
                continue
            frames = self._socket.recv_multipart()
            self._socket.send_multipart(self.handle(frames))

    def clear_estop(self) -> bool:
        """Unlatch the rig's emergency stop: the local operator's action (no token needed, no client asked).

        Returns whether a stop was latched. Safe from any thread; from a signal handler use
        `request_clear_estop` instead.
        """
        reason = self.rig.stopped
        self.rig.clear_emergency_stop()
        if reason is None:
            log.info("rig server: clear emergency stop: none was latched")
        else:
            log.warning("rig server: emergency stop (%s) cleared by the local operator", reason)
        return reason is not None

    def request_clear_estop(self) -> None:
        """Have the serving loop call `clear_estop` between two requests (what a signal handler may do)."""
        self._clear_requested.set()

    def start(self) -> "RigServer":
        """Serve from a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"rig-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (the rig stays open)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._socket.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> "RigServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ one message
    def handle(self, frames: list[bytes]) -> list[bytes]:
        """The reply frames for one request's frames (never raises)."""
        self.stats["requests"] += 1
        try:
            return self._handle(frames)
        except Exception as exc:  # noqa: BLE001 - one message never stops the server
            log.error("rig server: internal error on a request: %s: %s", type(exc).__name__,
                      " ".join(str(exc).split()))
            log.debug("rig server: internal error", exc_info=True)
            return self._error(None, "internal", f"{type(exc).__name__}: {exc}")

    def _handle(self, frames: list[bytes]) -> list[bytes]:
        try:
            header = decode_header(frames)  # cheap and bounded: frame count and sizes, then the header only
        except ProtocolError as exc:
            return self._reject(None, exc.code, str(exc))
        req_id = header.get("id")
        if type(req_id) is not int or not 0 <= req_id < MAX_REQUEST_ID:
            req_id = None
        if header.get("protocol") != PROTOCOL:
            got = _short(header.get("protocol"))
            return self._reject(req_id, "protocol", f"expected protocol {PROTOCOL!r}, got {got}")
        token = header.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(_secret(token), self._token):
            return self._reject(req_id, "unauthorized", "wrong or missing token")
        try:
            arrays = decode_arrays(header, frames)  # only for token holders
        except ProtocolError as exc:
            return self._reject(req_id, exc.code, str(exc))
        client, op, args = header.get("client"), header.get("op"), header.get("args", {})
        if req_id is None or not isinstance(client, str) or not 0 < len(client) <= 64:
            return self._reject(req_id, "malformed", "'id' (an integer in [0, 2**63)) and 'client' (1-64 characters) "
                                                     "are required")
        if not isinstance(args, dict):
            return self._reject(req_id, "malformed", "'args' must be a JSON object")
        cached = self._replies.get(client)
        if cached is not None and cached[0] == req_id:
            return cached[1]  # a retry: answer again without acting twice
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            return self._reject(req_id, "bad_request", f"unknown op {_short(op)} (known: {', '.join(self._ops)})")
        try:
            result, out_arrays = handler(args, arrays, client)
            reply = encode({"protocol": PROTOCOL, "ok": True, "id": req_id, "session": self.session,
                            "result": result}, out_arrays)
        except EmergencyStopped as exc:
            reply = self._error(req_id, "estop", str(exc))
        except WatchdogTripped as exc:
            reply = self._error(req_id, "watchdog", str(exc))
        except EpisodeNotStarted as exc:
            reply = self._error(req_id, "no_episode", str(exc))
        except ProtocolError as exc:
            if exc.code == "unauthorized":
                self.stats["rejected"] += 1
                log.warning("rig server: rejected a request (%s: %s)", exc.code, exc)
            reply = self._error(req_id, exc.code, str(exc))
        except RigError as exc:
            reply = self._error(req_id, "rig_error", str(exc))
        except (ValueError, TypeError) as exc:
            reply = self._error(req_id, "bad_request", str(exc))
        except Exception as exc:  # noqa: BLE001 - the server keeps running whatever the rig does
            log.error("rig server: %s failed: %s: %s", op, type(exc).__name__, " ".join(str(exc).split()))
            log.debug("rig server: %s failed", op, exc_info=True)
            reply = self._error(req_id, "internal", f"{type(exc).__name__}: {exc}")
        self._replies[client] = (req_id, reply)
        if len(self._replies) > 64:
            self._replies.pop(next(iter(self._replies)))
        return reply

    def _error(self, req_id, code: str, message: str) -> list[bytes]:
        self.stats["errors"] += 1
        line = " ".join(str(message).split())
        return encode({"protocol": PROTOCOL, "ok": False, "id": req_id, "session": self.session,
                       "code": code, "error": line})

    def _reject(self, req_id, code: str, message: str) -> list[bytes]:
        self.stats["rejected"] += 1
        log.warning("rig server: rejected a request (%s: %s)", code, message)
        return self._error(req_id, code, message)

    # ------------------------------------------------------------------ operations
    def _obs_arrays(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {f"obs.{k}": np.asarray(v) for k, v in obs.items()}

    def _hello(self, args, arrays, client):
        from simreal import __version__

        return {"info": self.rig.info().to_dict(), "protocol": PROTOCOL, "simreal": __version__}, {}

    def _reset(self, args, arrays, client):
        seed, options = args.get("seed"), args.get("options")
        if seed is not None and (type(seed) is not int or not 0 <= seed < MAX_SEED):
            raise ValueError(f"reset: seed must be null or an integer in [0, 2**32); got {_short(seed)}")
        if options is not None and not isinstance(options, dict):
            raise ValueError("reset: options must be a JSON object or null")
        self.owner = None  # a reset that fails leaves no episode, and so no owner
        obs, info = self.rig.reset(seed=seed, options=options)
        self.owner = client
        hold = np.asarray(self.rig._action_of(self.rig.safety.last), self.rig.action_space.dtype)
        out = self._obs_arrays(obs)
        out["hold_action"] = hold.reshape(self.rig.action_space.shape)
        return {"info": jsonable(info), "seed": self.rig.episode_seed}, out

    def _step(self, args, arrays, client):
        if self.owner is not None and client != self.owner and self.rig.episode_active:
            raise ProtocolError("another client runs this episode; reset to take over", "not_owner")
        if set(arrays) != {"action"}:
            raise ValueError("step: send exactly one array named 'action'")
        obs, reward, terminated, truncated, info = self.rig.step(arrays["action"])
        return ({"reward": reward, "terminated": terminated, "truncated": truncated, "info": jsonable(info)},
                self._obs_arrays(obs))

    def _end_episode(self, args, arrays, client):
        reason = args.get("reason", "remote")
        self.rig.end_episode(str(reason)[:64])
        return {}, {}

    def _hold(self, args, arrays, client):
        self.rig.end_episode("remote_hold")
        return {}, {}

    def _estop(self, args, arrays, client):
        self.rig.emergency_stop(f"remote: {str(args.get('reason', 'emergency stop'))[:200]}")
        return {"stopped": self.rig.stopped}, {}

    def _clear_estop(self, args, arrays, client):
        if self._operator_token is None:
            raise ProtocolError("clearing an emergency stop is a local action on this server (no operator token "
                                "configured): clear it at the rig", "unauthorized")
        given = args.get("operator_token")
        if not isinstance(given, str) or not hmac.compare_digest(_secret(given), self._operator_token):
            raise ProtocolError("clear_estop needs the operator token (wrong or missing)", "unauthorized")
        reason = self.rig.stopped
        self.rig.clear_emergency_stop()
        log.warning("rig server: emergency stop (%s) cleared by operator-token client %s", reason, client)
        return {"cleared": reason is not None}, {}

    def _ping(self, args, arrays, client):
        return {"episode_active": self.rig.episode_active, "stopped": self.rig.stopped,
                "watchdog_tripped": self.rig.watchdog_tripped, "safety": self.rig.safety_stats.to_dict(),
                "remote_clear": self._operator_token is not None}, {}


# ----------------------------------------------------------------------------- client
class RemoteRig(Rig):
    """A rig served by a `RigServer`, with the server rig's spaces, timing, name and kind.

    Args:
        address: ``tcp://HOST:PORT`` of the server.
        token, token_file: the shared token (see `load_token`; $SIMREAL_RIG_TOKEN otherwise).
        timeout: seconds to wait for each reply before retrying on a new socket.
        retries: attempts per request before `RigConnectionError`.
        safety: client-side limits in action units (default: NaN/inf and the action
            bounds only; the server rig enforces joint limits, rate and watchdog).
        operator_token, operator_token_file: the server's operator token, sent by
            `clear_emergency_stop` to clear the server rig's emergency stop (a server without one
            refuses remote clearing; see the module docstring). Without it,
            `clear_emergency_stop` only clears this client's own latch, once the stop was cleared
            at the rig, and raises `EmergencyStopped` while the server rig is still stopped.
            Never read from the environment.
    """

    def __init__(self, address: str = "tcp://127.0.0.1:5555", token: str | None = None, *,
                 token_file: str | os.PathLike | None = None, timeout: float = 2.0, retries: int = 3,
                 safety: SafetyConfig | None = None, name: str | None = None, operator_token: str | None = None,
                 operator_token_file: str | os.PathLike | None = None):
        if not address.startswith("tcp://"):
            raise RigError(f"remote rig address must look like tcp://HOST:PORT; got {address!r}")
        if timeout <= 0 or retries < 1:
            raise ValueError("RemoteRig: timeout must be > 0 and retries >= 1")
        self.address = address
        self._token = load_token(token, token_file)
        self._operator_token = (load_token(operator_token, operator_token_file)
                                if operator_token is not None or operator_token_file is not None else None)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.client_id = uuid.uuid4().hex
        self._ctx = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._io = threading.Lock()
        self._next_id = 1
        self._hold = None
        try:
            header, _ = self._call("hello")
        except BaseException:
            self._drop_socket()
            self._ctx.term()
            raise
        self.session = header["session"]
        self.server_info = RigInfo.from_dict(header["result"]["info"])
        info = self.server_info
        space = info.action_space
        low, high = action_bounds(space)
        names = info.command_names if len(info.command_names) == low.size else [f"a{i}" for i in range(low.size)]
        super().__init__(name=name or info.name, kind=info.kind, observation_space=info.observation_space,
                         action_space=space, control_dt=info.control_dt, command_names=names, command_low=low,
                         command_high=high, command_units="the server rig's action", safety=safety,
                         env_id=info.env_id)

    # ------------------------------------------------------------------ transport
    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_ARRAY_BYTES * 2)
            sock.connect(self.address)
            self._socket = sock
        return self._socket

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _call(self, op: str, args: Mapping[str, Any] | None = None, arrays: Mapping[str, np.ndarray] | None = None,
              timeout: float | None = None, retries: int | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """One request, retried on new sockets; the reply (or a one-line `RigError`)."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        with self._io:
            req_id = self._next_id
            self._next_id += 1
            frames = encode({"protocol": PROTOCOL, "token": self._token, "op": op, "id": req_id,
                             "client": self.client_id, "args": dict(args or {})}, arrays)
            for _ in range(retries):
                sock = self._connect()
                sock.send_multipart(frames)
                if sock.poll(int(timeout * 1000), zmq.POLLIN):
                    reply = sock.recv_multipart()
                    try:
                        header, out = decode(reply)
                    except ProtocolError as exc:
                        self._drop_socket()
                        raise RigConnectionError(f"{self.address}: malformed reply to {op!r} ({exc})") from None
                    break
                self._drop_socket()  # a REQ socket that lost its reply cannot send again
            else:
                raise RigConnectionError(f"{self.address}: no reply to {op!r} within {timeout:g} s "
                                         f"({retries} tries); is the rig server running?")
        if header.get("ok"):
            return header, out
        code, message = header.get("code", "error"), header.get("error", "")
        where = f"{self.address}: {op}"
        if code == "unauthorized":
            raise RigAuthError(f"{where}: the server rejected the token ({message})")
        if code == "estop":
            raise EmergencyStopped(f"{where}: {message}")
        if code == "watchdog":
            raise WatchdogTripped(f"{where}: {message}")
        if code == "no_episode":
            raise EpisodeNotStarted(f"{where}: the server has no running episode (restarted?); call reset() "
                                    f"({message})")
        raise RigError(f"{where}: {code}: {message}")

    def ping(self) -> dict[str, Any]:
        """The server rig's status (episode, stop, safety counts)."""
        return self._call("ping")[0]["result"]

    # ------------------------------------------------------------------ hooks
    def _obs(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {k[4:]: v for k, v in arrays.items() if k.startswith("obs.")}
        if set(obs) != set(self.observation_space.spaces):
            raise RigError(f"{self.address}: the server sent observation keys {sorted(obs)}, expected "
                           f"{sorted(self.observation_space.spaces)}")
        return {k: obs[k] for k in self.observation_space.spaces}

    def _reset(self, seed, options):
        header, arrays = self._call("reset", {"seed": seed, "options": options})
        if header["session"] != self.session:  # the server restarted: check it serves the same rig
            hello, _ = self._call("hello")
            again = RigInfo.from_dict(hello["result"]["info"])
            if (again.to_dict()["observation_space"], again.to_dict()["action_space"]) != (
                    self.server_info.to_dict()["observation_space"], self.server_info.to_dict()["action_space"]):
                raise RigError(f"{self.address}: the restarted server serves a rig with other spaces")
            self.session = header["session"]
        self.episode_seed = header["result"].get("seed")
        self._hold = np.asarray(arrays.get("hold_action"), np.float64).ravel() if "hold_action" in arrays else None
        return self._obs(arrays), dict(header["result"].get("info") or {})

    def _apply(self, command, action):
        header, arrays = self._call("step", arrays={"action": np.asarray(action)})
        result = header["result"]
        info = dict(result.get("info") or {})
        for flag, value in (info.pop("safety", None) or {}).items():  # the server rig's own safety flags
            info[f"server_{flag}"] = bool(value)
        return (self._obs(arrays), float(result["reward"]), bool(result["terminated"]), bool(result["truncated"]),
                info)

    def _hold_command(self) -> np.ndarray:
        if self._hold is not None and self._hold.shape == self.safety.low.shape:
            return self._hold
        return np.clip(np.zeros_like(self.safety.low), self.safety.low, self.safety.high)

    def _best_effort(self, op: str, args: Mapping[str, Any] | None = None) -> None:
        try:
            self._call(op, args, timeout=min(self.timeout, 0.5), retries=1)
        except RigError:
            pass

    def _safe_state(self) -> None:
        self._best_effort("hold")

    def _on_episode_end(self, end: str) -> None:
        if end not in ("terminated", "truncated", "error"):  # the server ended those itself (or is gone)
            self._best_effort("end_episode", {"reason": end})

    def _emergency_stop(self) -> None:
        self._best_effort("estop", {"reason": self.stopped or "emergency stop"})

    def _clear_emergency_stop(self) -> None:
        if self._operator_token is not None:
            self._call("clear_estop", {"operator_token": self._operator_token})
            return
        stopped = self.ping().get("stopped")  # cleared at the rig? then only this client's latch is left
        if stopped:
            raise EmergencyStopped(f"{self.address}: the server rig's emergency stop is latched ({stopped}); "
                                   "clearing it is a local action at the rig (SIGUSR1 to `simreal rig serve`, "
                                   "RigServer.clear_estop) unless the server has an operator token and this "
                                   "client is given it (operator_token=)")

    def _close(self) -> None:
        self._drop_socket()
        self._ctx.term()

    def _extra_info(self) -> dict[str, Any]:
        return {"bridge": {"address": self.address, "session": self.session},
                "server_rig": self.server_info.to_dict()}
