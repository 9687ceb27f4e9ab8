"""The WebSocket server: replies, every kind of bad input, API keys, health, concurrency."""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request

import msgpack
import numpy as np
import pytest
from serving_helpers import API_KEY, make_obs
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from embodia.serving import protocol
from embodia.serving.client import AuthenticationError, PolicyClient, ServerError
from embodia.serving.msgpack_numpy import packb


def client(server, **kw) -> PolicyClient:
    return PolicyClient("127.0.0.1", server.port, timeout=30, **kw)


def assert_chunk(reply, horizon=32, dof=4):
    assert reply["actions"].shape == (horizon, dof) and reply["actions"].dtype == np.float32
    assert np.isfinite(reply["actions"]).all()


def test_metadata_and_action_chunk(server):
    with client(server) as c:
        m = c.get_server_metadata()
        assert m["server"] == "embodia" and m["model"] == "tiny"
        assert m["cameras"] == ["corner", "gripperPOV"] and m["action_shape"] == [32, 4]
        assert m["requests"] == ["actions", "text"]  # no depth generator in this checkpoint
        reply = c.infer(make_obs())
        assert_chunk(reply)
        assert set(reply["server_timing"]) == {"infer_ms", "queue_ms", "decode_ms"}
        assert reply["server_timing"]["infer_ms"] > 0
        # the second reply also reports the previous request's total time (openpi's field)
        assert "prev_total_ms" in c.infer(make_obs())["server_timing"]
        assert c.request({"request": "metadata"})["action_shape"] == [32, 4]


def test_text_requests(server):
    with client(server) as c:
        cot = c.text(make_obs(), levels=["reasoning", "subtask"], max_new_tokens=4)
        assert isinstance(cot["text"], str) and {"reasoning", "subtask"} <= set(cot)
        assert isinstance(c.text(make_obs(), levels=["subtask"], max_new_tokens=4)["subtask"], str)
        vqa = c.text({"images": make_obs()["images"], "question": "how far?"}, max_new_tokens=4)
        assert isinstance(vqa["text"], str)
        # Uni-CoT then actions in one call
        assert_chunk(c.infer({**make_obs(), "levels": ["subtask", "actions"]}))


def _bad_inputs():
    obs = make_obs()
    nan = {**obs, "state": np.array([0, np.nan, 0, 0], np.float32)}
    inf = {**obs, "state": np.array([0, 0, np.inf, 0], np.float32)}
    missing_cam = {**obs, "images": {"corner": obs["images"]["corner"]}}
    float_img = {**obs, "images": {**obs["images"], "corner": np.zeros((8, 8, 3), np.float32)}}
    obj = msgpack.packb(
        {"state": {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]}}
    )
    short = msgpack.packb(
        {"state": {b"__ndarray__": True, b"data": b"\0" * 3, b"dtype": "<f4", b"shape": [4]}}
    )
    return [
        ("garbage bytes", b"\xc1\xc1\xc1", protocol.MALFORMED, "not a valid msgpack"),
        ("truncated msgpack", packb(obs)[:-10], protocol.MALFORMED, "not a valid msgpack"),
        ("text frame", "hello", protocol.MALFORMED, "text frame"),
        ("object dtype", obj, protocol.MALFORMED, "not allowed"),
        ("byte count", short, protocol.MALFORMED, "needs 16 bytes"),
        ("not a dict", packb([1, 2, 3]), protocol.BAD_REQUEST, "msgpack map"),
        ("unknown request", packb({"request": "dance"}), protocol.BAD_REQUEST, "unknown request"),
        (
            "missing state",
            packb({**obs, "state": None} | {}),
            protocol.INVALID_OBSERVATION,
            "float",
        ),
        (
            "no prompt",
            packb({k: v for k, v in obs.items() if k != "prompt"}),
            protocol.INVALID_OBSERVATION,
            "'prompt'",
        ),
        ("missing camera", packb(missing_cam), protocol.INVALID_OBSERVATION, "gripperPOV"),
        (
            "wrong state shape",
            packb({**obs, "state": np.zeros(7, np.float32)}),
            protocol.INVALID_OBSERVATION,
            r"shape (4,)",
        ),
        ("wrong image dtype", packb(float_img), protocol.INVALID_OBSERVATION, "uint8"),
        ("NaN", packb(nan), protocol.INVALID_OBSERVATION, "NaN or inf"),
        ("inf", packb(inf), protocol.INVALID_OBSERVATION, "NaN or inf"),
        ("unknown mode", packb({**obs, "mode": "magic"}), protocol.INVALID_OBSERVATION, "'mode'"),
        ("FAST without tokenizer", packb({**obs, "mode": "fast"}), protocol.UNSUPPORTED, "FAST"),
        (
            "depth without generator",
            packb({**obs, "request": "depth"}),
            protocol.UNSUPPORTED,
            "no depth generator",
        ),
        ("oversized", packb({**obs, "pad": b"\0" * (1 << 20)}), protocol.TOO_LARGE, "exceeds"),
    ]


def test_every_bad_input_gets_an_error_reply_and_the_connection_keeps_working(server, caplog):
    caplog.set_level(logging.WARNING, logger="embodia.serving")
    with client(server) as c:
        for name, frame, kind, match in _bad_inputs():
            with pytest.raises(ServerError) as err:
                c.request_raw(frame)
            assert err.value.type == kind, name
            assert match in err.value.message, (name, err.value.message)
            assert_chunk(c.infer(make_obs()))  # the same connection serves the next request
    # the log names each problem
    logged = caplog.text
    for fragment in ["not a valid msgpack", "NaN or inf", "exceeds", "no depth generator"]:
        assert fragment in logged


def test_message_beyond_the_hard_limit_closes_only_that_connection(server):
    with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        ws.recv()  # metadata
        ws.send(b"\0" * (2 * server.server.max_message_bytes + 1))
        with pytest.raises(ConnectionClosedError) as err:
            ws.recv(timeout=10)
        assert err.value.rcvd.code == 1009  # message too big
    with client(server) as c:  # the server is still up
        assert_chunk(c.infer(make_obs()))


def test_health_check(server, keyed_server):
    for srv in (server, keyed_server):  # no key needed for the health check
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=10) as r:
            assert r.status == 200 and r.read() == b"OK\n"


def test_api_key(keyed_server, caplog):
    caplog.set_level(logging.WARNING, logger="embodia.serving")
    with pytest.raises(AuthenticationError, match="missing API key"):
        client(keyed_server)
    with pytest.raises(AuthenticationError, match="wrong API key"):
        client(keyed_server, api_key="nope")
    assert "wrong API key" in caplog.text and "nope" not in caplog.text  # never log the key
    with client(keyed_server, api_key=API_KEY) as c:  # Authorization: Api-Key <key>
        assert_chunk(c.infer(make_obs()))
    for headers in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        with connect(f"ws://127.0.0.1:{keyed_server.port}", additional_headers=headers) as ws:
            assert msgpack.unpackb(ws.recv())["server"] == "embodia"
    with pytest.raises(urllib.error.HTTPError) as err:  # a plain HTTP client sees the 401 too
        urllib.request.urlopen(f"http://127.0.0.1:{keyed_server.port}/", timeout=10)
    assert err.value.code == 401


def test_concurrent_clients_get_their_own_replies(echo_server):
    """8 clients at once, each with its own state: the echo model returns each client's state as
    its actions, so any mixing of requests between clients would show."""
    n_clients, n_requests = 8, 6
    errors: list[str] = []
    barrier = threading.Barrier(n_clients)

    def run(k: int) -> None:
        rng = np.random.default_rng(k)
        try:
            with client(echo_server) as c:
                barrier.wait()
                for r in range(n_requests):
                    state = np.array([-0.4 + 0.1 * k, 0.4 + 0.05 * r, 0.1 * k / 8, 0.5], np.float32)
                    obs = make_obs(rng, state=state)
                    reply = c.infer({**obs, "levels": ["actions"]} if r % 2 else obs)
                    want = (state - LOW) / (HIGH - LOW) * 2 - 1  # normalised state, echoed
                    if reply["actions"].shape != (8, 4) or not np.allclose(
                        reply["actions"], np.tile(want, (8, 1)), atol=1e-5
                    ):
                        errors.append(f"client {k} request {r}: got {reply['actions'][0]}")
        except Exception as exc:  # surfaced below; a thread's exception would be lost
            errors.append(f"client {k}: {exc!r}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert echo_server.server.stats["errors"] == 0


LOW = np.array([-0.525, 0.348, -0.0525, 0.0], np.float32)
HIGH = np.array([0.525, 1.025, 0.7, 1.0], np.float32)
