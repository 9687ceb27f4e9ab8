"""Client-side chunked execution: keep executing the current chunk while the next is computed.

A VLA returns H actions per call; a robot executes one per control tick. Asking for a new chunk
only when the old one runs out (openpi's ``ActionChunkBroker``) stalls the robot for one inference
latency every chunk. :class:`ChunkBroker` instead requests the next chunk ``prefetch_steps`` ticks
before the switch, on a background thread, with the observation of that moment, and keeps
stepping through the current chunk meanwhile. The next chunk was predicted for the tick at which
it was requested, so at the switch the broker skips the actions for the ticks already executed
(``offset = ticks since the request``): the robot always executes the action meant for *now*.
If the reply is late, the broker keeps executing the current chunk beyond ``execute_steps`` while
it lasts, and only then blocks.

``policy`` is anything with openpi's ``infer(obs) -> {"actions": (H, dof), ...}``: embodia's
:class:`~embodia.serving.client.PolicyClient`, openpi's ``WebsocketClientPolicy``, or a local
:class:`~embodia.policy.Policy`. All calls go through one worker thread, so the policy object is
never used from two threads at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class InferPolicy(Protocol):
    def infer(self, obs: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class BrokerStats:
    chunks: int = 0  # chunks received
    ticks: int = 0  # actions returned
    blocked: int = 0  # ticks that had to wait for a chunk (the first one included)
    wait_s: float = 0.0  # total time spent waiting


class ChunkBroker:
    """``act(obs) -> action`` per control tick, chunks fetched ahead of time.

    Args:
        policy: ``infer(obs) -> {"actions": (H, dof)}``.
        execute_steps: actions executed from each chunk before switching to the next one
            (default: the whole chunk, the first time one arrives).
        prefetch_steps: request the next chunk this many ticks before the switch; 0 = request it
            only at the switch, synchronously (openpi's behaviour). Choose about the inference
            latency in control ticks; more is safe (the offset keeps actions aligned) but uses
            older observations.
    """

    def __init__(
        self, policy: InferPolicy, execute_steps: int | None = None, prefetch_steps: int = 4
    ) -> None:
        if execute_steps is not None and execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {execute_steps}")
        if prefetch_steps < 0:
            raise ValueError(f"prefetch_steps must be >= 0, got {prefetch_steps}")
        self.policy = policy
        self.execute_steps = execute_steps
        self.prefetch_steps = prefetch_steps
        self.stats = BrokerStats()
        self.last_result: dict[str, Any] | None = None  # the latest reply (text, timing, ...)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embodia-broker")
        self._chunk: np.ndarray | None = None
        self._i = 0  # index of the next action in the current chunk
        self._tick = 0
        self._pending: Future | None = None
        self._pending_tick = 0

    # ------------------------------------------------------------------ stepping

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The action for this tick (a copy, shape (dof,))."""
        if self._chunk is None:
            self._adopt(self._wait(self._pool.submit(self.policy.infer, obs)), self._tick)
        e = self._execute()
        # switch once the current chunk is done: now if the next has arrived, else at its end
        switch = self._pending is not None and self._i >= e
        if switch and (self._pending.done() or self._i >= len(self._chunk)):
            fut, tick = self._pending, self._pending_tick
            self._pending = None
            self._adopt(self._wait(fut), tick)
            if self._i >= len(self._chunk):  # a (shorter) new chunk that is all in the past
                self._adopt(self._wait(self._pool.submit(self.policy.infer, obs)), self._tick)
        if self._pending is None:
            if self.prefetch_steps == 0 and self._i >= e:
                self._adopt(self._wait(self._pool.submit(self.policy.infer, obs)), self._tick)
            # never at index 0: that observation is the one the current chunk came from
            elif self.prefetch_steps > 0 and self._i >= max(e - self.prefetch_steps, 1):
                self._pending = self._pool.submit(self.policy.infer, obs)
                self._pending_tick = self._tick
        action = np.array(self._chunk[self._i], copy=True)
        self._i += 1
        self._tick += 1
        self.stats.ticks += 1
        return action

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """openpi's per-step policy interface: ``{"actions": (dof,)}``."""
        return {"actions": self.act(obs)}

    def wait(self, timeout: float | None = None) -> None:
        """Block until the request in flight (if any) has its reply; it is used at the switch.

        For a loop that wants determinism (tests, replaying a log) rather than overlap."""
        if self._pending is not None:
            concurrent.futures.wait([self._pending], timeout)

    def reset(self) -> None:
        """Forget the current chunk (new episode); a request in flight is awaited and dropped."""
        if self._pending is not None:
            # the episode is over: an error of its last request no longer matters
            if not self._pending.cancel():
                with contextlib.suppress(Exception):
                    self._pending.result()
            self._pending = None
        self._chunk, self._i, self._tick = None, 0, 0
        if hasattr(self.policy, "reset"):
            self.policy.reset()

    def close(self) -> None:
        self.reset()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ChunkBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _execute(self) -> int:
        return min(self.execute_steps or len(self._chunk), len(self._chunk))

    def _wait(self, fut: Future) -> dict[str, Any]:
        if not fut.done():
            self.stats.blocked += 1
            start = time.perf_counter()
            try:
                return fut.result()
            finally:
                self.stats.wait_s += time.perf_counter() - start
        return fut.result()

    def _adopt(self, result: dict[str, Any], requested_at: int) -> None:
        actions = np.asarray(result["actions"])
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"policy returned actions of shape {actions.shape}, not (H, dof)")
        self.last_result = result
        self._chunk = actions
        self._i = self._tick - requested_at
        self.stats.chunks += 1
