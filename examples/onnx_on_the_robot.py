"""Robot-side: run a `simreal export --onnx` policy against a rig bridge with onnxruntime, zmq and numpy only.

    python examples/onnx_on_the_robot.py runs/ppo/policy.onnx tcp://127.0.0.1:5555 --token-file ~/.rig_token
"""
import argparse, json, pathlib, uuid  # noqa: E401  (kept short on purpose: this file is the whole robot side)

import numpy as np, onnxruntime as ort, zmq  # noqa: E401


def call(sock, token, op, ident, n, arrays=None, **args):
    """One request of the bridge protocol (simreal/rigs/bridge.py): JSON header, raw little-endian arrays."""
    arrays = {k: np.ascontiguousarray(v, v.dtype.newbyteorder("<")) for k, v in (arrays or {}).items()}
    head = {"protocol": "simreal-rig/1", "token": token, "op": op, "id": n, "client": ident, "args": args,
            "arrays": [{"name": k, "dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()]}
    sock.send_multipart([json.dumps(head).encode(), *(v.tobytes() for v in arrays.values())])
    reply, *frames = sock.recv_multipart()
    reply = json.loads(reply)
    if not reply["ok"]:
        raise SystemExit(f"rig: {reply['code']}: {reply['error']}")
    data = {d["name"]: np.frombuffer(f, d["dtype"]).reshape(d["shape"]) for d, f in zip(reply["arrays"], frames)}
    return reply["result"], data


def run(model: str, address: str, token: str, max_steps: int = 1000, seed: int = 0) -> float:
    meta = json.loads(pathlib.Path(model + ".json").read_text())
    session, sock = ort.InferenceSession(model), zmq.Context.instance().socket(zmq.REQ)
    sock.connect(address)
    ident, total = uuid.uuid4().hex, 0.0
    h = c = np.zeros((1, meta["state_size"]), np.float32)
    _, data = call(sock, token, "reset", ident, 1, seed=seed, options=None)
    for n in range(2, max_steps + 2):
        obs = np.concatenate([data[f"obs.{k['key']}"].reshape(-1) for k in meta["obs_keys"]])[None].astype(np.float32)
        feed = {"obs": obs, **({"h": h, "c": c} if meta["state_size"] else {})}
        action, *state = session.run(None, feed)
        h, c = state if state else (h, c)
        result, data = call(sock, token, "step", ident, n, {"action": action[0]})
        total += float(result["reward"])
        if result["terminated"] or result["truncated"]:
            break
    call(sock, token, "end_episode", ident, n + 1, reason="done")
    sock.close()
    return total


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model"), p.add_argument("address"), p.add_argument("--token-file", required=True)
    p.add_argument("--max-steps", type=int, default=1000)
    a = p.parse_args()
    print("return", run(a.model, a.address, pathlib.Path(a.token_file).expanduser().read_text().strip(), a.max_steps))
