"""ChunkBroker: the action executed at every tick is the one predicted for that tick, whether the
next chunk arrives early, late or very late; errors surface; works against a real server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from serving_helpers import make_obs

from embodia.serving.chunk_broker import ChunkBroker
from embodia.serving.client import PolicyClient


class TickPolicy:
    """Chunk predicted at tick t: action k is ``[t + k, id]``, i.e. each action names the tick it
    is meant for. Background calls (all but the first) can be slowed down."""

    def __init__(self, horizon, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.horizons = horizon if isinstance(horizon, list) else [horizon]
        self.delay_s, self.fail_on = delay_s, fail_on
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.resets = 0

    def infer(self, obs):
        self.calls.append(obs["t"])
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise RuntimeError("server went away")
        if len(self.calls) > 1 and self.delay_s:
            time.sleep(self.delay_s)
        t, h = obs["t"], self.horizons[min(len(self.calls), len(self.horizons)) - 1]
        return {"actions": np.stack([np.arange(t, t + h), np.zeros(h)], 1)}

    def reset(self):
        self.resets += 1


def run(broker: ChunkBroker, ticks: int, fast_server: bool = False) -> list[float]:
    """The action value of every tick; ``fast_server``: each reply lands before the next tick."""
    out = []
    for t in range(ticks):
        out.append(float(broker.act({"t": t})[0]))
        if fast_server:
            broker.wait(timeout=10)
    return out


def test_prefetch_on_time_switches_without_blocking_and_stays_aligned():
    policy = TickPolicy(horizon=10)
    with ChunkBroker(policy, execute_steps=10, prefetch_steps=3) as broker:
        got = run(broker, 40, fast_server=True)
    assert got == list(range(40))  # always the action for *now*
    assert policy.calls == [0, 7, 14, 21, 28, 35]  # next chunk requested 3 ticks early
    assert broker.stats.blocked <= 1  # only the very first chunk may have been waited for
    assert len(policy.threads) == 1  # every call on the broker's one worker thread


def test_late_reply_keeps_executing_the_current_chunk_then_waits():
    policy = TickPolicy(horizon=10, delay_s=0.05)
    with ChunkBroker(policy, execute_steps=6, prefetch_steps=2) as broker:
        got = run(broker, 14)  # ticks far faster than the 50 ms inference
    assert got == list(range(14))
    assert policy.calls[:2] == [0, 4]
    # ran past execute_steps to the chunk's end (tick 9), then blocked for the reply of tick 4
    assert broker.stats.blocked >= 1 and broker.stats.wait_s > 0.01


def test_reply_entirely_in_the_past_is_replaced():
    policy = TickPolicy(horizon=[6, 2, 6])  # the prefetched chunk is short
    with ChunkBroker(policy, execute_steps=6, prefetch_steps=5) as broker:
        got = run(broker, 9)
    assert got == list(range(9))
    assert policy.calls[:3] == [0, 1, 6]  # tick 1's 2 actions were over by tick 6: asked again


def test_without_prefetch_requests_at_the_switch():
    policy = TickPolicy(horizon=8)
    with ChunkBroker(policy, execute_steps=5, prefetch_steps=0) as broker:
        got = run(broker, 12)
    assert got == list(range(12)) and policy.calls == [0, 5, 10]
    assert broker.stats.chunks == 3


def test_errors_surface_and_reset_starts_over():
    policy = TickPolicy(horizon=4, fail_on=2)
    broker = ChunkBroker(policy, prefetch_steps=1)
    try:
        with pytest.raises(RuntimeError, match="server went away"):
            run(broker, 8)
        broker.reset()
        assert policy.resets == 1
        assert float(broker.act({"t": 100})[0]) == 100  # a fresh chunk after reset
    finally:
        broker.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="execute_steps"):
        ChunkBroker(TickPolicy(4), execute_steps=0)
    with pytest.raises(ValueError, match="prefetch_steps"):
        ChunkBroker(TickPolicy(4), prefetch_steps=-1)


def test_against_the_server(echo_server):
    with (
        PolicyClient("127.0.0.1", echo_server.port, timeout=30) as client,
        ChunkBroker(client, execute_steps=6, prefetch_steps=2) as broker,
    ):
        actions = [broker.act(make_obs()) for _ in range(20)]
    assert all(a.shape == (4,) for a in actions)
    assert broker.stats.chunks >= 3 and "server_timing" in broker.last_result
