"""Serving fixtures: a tiny random-weights checkpoint on disk and servers on free loopback ports.

Servers run on a background thread of the test process (:class:`ServerThread`) and are stopped
and joined at teardown, so no process or thread outlives the tests.
"""

from __future__ import annotations

import pytest
import torch
from serving_helpers import API_KEY, EchoModel

from embodia.policy import Policy
from embodia.serving.demo import demo_config, write_demo_checkpoint
from embodia.serving.server import PolicyServer
from embodia.serving.thread import ServerThread


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Inference on one thread while these tests run (restored after each module): on a small
    machine shared with other jobs, torch's default thread pool spins against them and a 40 ms
    chunk can take seconds; serving tests measure behaviour, not speed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    """A complete tiny checkpoint (random weights + policy.json), written once per session."""
    return str(write_demo_checkpoint(tmp_path_factory.mktemp("serving") / "tiny-ckpt"))


@pytest.fixture(scope="session")
def policy(checkpoint) -> Policy:
    return Policy.load(checkpoint)


def _serve(policy: Policy, **kw):
    thread = ServerThread(PolicyServer(policy, host="127.0.0.1", port=0, **kw)).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def server(policy):
    """The tiny checkpoint served without an API key; small limits so size tests stay cheap."""
    yield from _serve(policy, max_message_bytes=1 << 20)


@pytest.fixture(scope="module")
def keyed_server(policy):
    yield from _serve(policy, api_key=API_KEY)


@pytest.fixture(scope="module")
def echo_server():
    """An echo model behind the real Policy and server: replies reveal what each client sent."""
    yield from _serve(Policy(EchoModel(delay_s=0.005), demo_config()))
