"""Runs inside the openpi-client venv (numpy<2), not embodia's: drives an embodia server with the
real ``openpi_client`` exactly as openpi robot code does, and prints one JSON line of findings.

Usage: python openpi_client_script.py HOST PORT [API_KEY]
"""

import json
import sys

import numpy as np
from openpi_client import action_chunk_broker, image_tools, websocket_client_policy


def observation(rng, cameras, state_dim, state=None):
    # openpi robot code resizes with padding to 224 and converts to uint8 before sending
    images = {
        c: image_tools.convert_to_uint8(
            image_tools.resize_with_pad(
                rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), 224, 224
            )
        )
        for c in cameras
    }
    if state is None:
        state = rng.uniform(-0.1, 0.1, state_dim).astype(np.float32)
    return {"images": images, "state": state, "prompt": "put the puck on the goal"}


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    api_key = sys.argv[3] if len(sys.argv) > 3 else None
    rng = np.random.default_rng(0)
    client = websocket_client_policy.WebsocketClientPolicy(host, port, api_key=api_key)
    meta = client.get_server_metadata()
    cams, dof = meta["cameras"], meta["state_dim"]
    out = {"numpy": np.__version__, "metadata": meta}

    reply = client.infer(observation(rng, cams, dof))
    out["actions_shape"] = list(reply["actions"].shape)
    out["actions_dtype"] = str(reply["actions"].dtype)
    out["actions_finite"] = bool(np.isfinite(reply["actions"]).all())
    out["server_timing"] = sorted(reply["server_timing"])

    try:  # a bad observation: openpi's client raises on the server's error (a text frame)
        client.infer(observation(rng, cams, dof, state=np.full(dof, np.nan, np.float32)))
        out["nan_error"] = None
    except RuntimeError as exc:
        out["nan_error"] = str(exc)
    out["after_error_shape"] = list(client.infer(observation(rng, cams, dof))["actions"].shape)

    broker = action_chunk_broker.ActionChunkBroker(client, action_horizon=meta["action_horizon"])
    steps = [broker.infer(observation(rng, cams, dof))["actions"].shape for _ in range(3)]
    out["broker_step_shapes"] = [list(s) for s in steps]
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
