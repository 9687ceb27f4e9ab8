"""Environment slots: each runs one episode at a time, in its own process, a Ray actor, or this
process.

Why processes and the policy in the main process: on a CPU machine rendering (Mesa's rasteriser)
and physics dominate a rollout step, and each worker process owns its scenes and its GL context,
so K workers step and render K episodes at once. The policy stays in the main process so the model
is loaded once and observations of all slots that need a chunk can be answered together.
Workers use the ``spawn`` start method (a forked GL context or torch thread pool is unsafe).
Results travel over ``multiprocessing`` pipes between our own processes only.

With ``--backend ray`` each slot is an :class:`EnvHost` actor on a Ray cluster instead of a local
process: the policy still answers every slot in one batch on the driver, and the cluster adds
cores for physics and rendering. An actor that dies (a preempted node, the OOM killer) is replaced
and its episode replayed to where it was (reset, then the same actions, without rendering): a
Meta-World episode is a pure function of its seed and actions, so the replayed state is the one
that was lost and the episode's result does not change.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import traceback
from collections import OrderedDict
from typing import Any

from embodia.utils.cluster import Backend

#: Scenes a worker keeps open (one per task); episodes are handed out task by task, so a small
#: cache avoids rebuilding a scene for every episode without holding all of MT50's in memory.
SCENE_CACHE = 2


def make_env(benchmark: str, task: str, cameras: tuple[str, ...], image_size: int):
    if benchmark == "metaworld":
        from embodia.evaluation.metaworld_env import MetaWorldEvalEnv

        return MetaWorldEvalEnv(task, cameras, image_size)
    if benchmark == "libero":
        from embodia.evaluation.libero_env import LiberoEvalEnv

        return LiberoEvalEnv(task, cameras, image_size)
    raise ValueError(f"unknown benchmark {benchmark!r}")


class EnvHost:
    """The environments of one slot; executes ``reset`` / ``step`` commands."""

    def __init__(self, benchmark: str, cameras: tuple[str, ...], image_size: int) -> None:
        self.benchmark, self.cameras, self.image_size = benchmark, tuple(cameras), image_size
        self.envs: OrderedDict[str, Any] = OrderedDict()
        self.current: Any = None

    def handle(self, cmd: str, payload: Any) -> Any:
        if cmd == "reset":
            episode, render = payload
            self.current = self._env(episode["task"])
            return self.current.reset(episode, render)
        if cmd == "step":
            action, render = payload
            return self.current.step(action, render)
        if cmd == "info":
            return {"max_steps": self._env(payload).max_steps}
        raise ValueError(f"unknown command {cmd!r}")

    def _env(self, task: str):
        if task in self.envs:
            self.envs.move_to_end(task)
            return self.envs[task]
        env = make_env(self.benchmark, task, self.cameras, self.image_size)
        self.envs[task] = env
        while len(self.envs) > SCENE_CACHE:
            _, old = self.envs.popitem(last=False)
            old.close()
        return env

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()

    def whereabouts(self) -> str:
        """Where this host runs, for error messages about it: "pid N on host"."""
        import os
        import socket

        return f"pid {os.getpid()} on {socket.gethostname()}"


def _serve(conn, benchmark: str, cameras: tuple[str, ...], image_size: int) -> None:
    import embodia  # noqa: F401  (sets MUJOCO_GL before MuJoCo is imported)

    host = EnvHost(benchmark, cameras, image_size)
    try:
        while True:
            cmd, payload = conn.recv()
            if cmd == "close":
                break
            try:
                conn.send(("ok", host.handle(cmd, payload)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        host.close()
        conn.close()


class EnvWorkerError(RuntimeError):
    """An environment raised inside a worker; the message carries its traceback."""


class Slot:
    """Send a command now, collect its result later (so all slots work at the same time)."""

    def __init__(self, benchmark: str, cameras: tuple[str, ...], image_size: int, process: bool):
        self._pending: tuple[str, Any] | None = None
        self._result: Any = None
        if process:
            ctx = mp.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_serve, args=(child, benchmark, cameras, image_size), daemon=True
            )
            self._proc.start()
            child.close()
            self._host = None
        else:
            self._conn = self._proc = None
            self._host = EnvHost(benchmark, cameras, image_size)

    def send(self, cmd: str, payload: Any) -> None:
        if self._host is not None:
            try:
                self._result = ("ok", self._host.handle(cmd, payload))
            except Exception:
                self._result = ("error", traceback.format_exc())
        else:
            # a worker that is gone makes recv() say so, with its exit status
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._conn.send((cmd, payload))
        self._pending = (cmd, payload)

    def recv(self) -> Any:
        if self._pending is None:
            raise RuntimeError("recv() without a pending command")
        self._pending = None
        status, value = self._result if self._host is not None else self._receive()
        if status != "ok":
            raise EnvWorkerError(value)
        return value

    def _receive(self) -> tuple[str, Any]:
        """The worker's reply; a worker that died (a crash in the renderer, the OOM killer) is an
        error that says so instead of a hang or a bare EOFError."""
        while not self._conn.poll(1.0):
            if not self._proc.is_alive():
                break
        try:
            return self._conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            self._proc.join(timeout=5)
            raise EnvWorkerError(
                f"environment worker (pid {self._proc.pid}) died without replying "
                f"({_death(self._proc.exitcode)})"
            ) from None

    def call(self, cmd: str, payload: Any) -> Any:
        self.send(cmd, payload)
        return self.recv()

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            return
        with contextlib.suppress(OSError):
            self._conn.send(("close", None))
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()


#: Times a Ray slot replaces a dead actor before the rollout stops with an error: a node that
#: keeps dying is a fault to report, not to hide.
RAY_RESTARTS = 3


class RaySlot:
    """A slot whose environments live in a Ray actor; same interface as :class:`Slot`.

    It keeps the commands of the episode in progress (its reset and every step since), so that
    when the actor dies it can start a fresh one, replay them without rendering, and then answer
    the pending command as the lost actor would have.
    """

    def __init__(self, benchmark: str, cameras: tuple[str, ...], image_size: int, ray: Any):
        from embodia.utils.cluster import CPUS_PER_EPISODE

        self._ray = ray
        self._args = (benchmark, tuple(cameras), image_size)
        self._actor_class = ray.remote(num_cpus=CPUS_PER_EPISODE, max_restarts=0)(EnvHost)
        self._actor = self._actor_class.remote(*self._args)
        self._episode: list[tuple[str, Any]] = []  # the reset and the steps since
        self._pending: tuple[str, Any] | None = None
        self._ref: Any = None
        self.restarts = 0

    def send(self, cmd: str, payload: Any) -> None:
        self._pending = (cmd, payload)
        self._ref = self._actor.handle.remote(cmd, payload)

    def recv(self) -> Any:
        if self._pending is None:
            raise RuntimeError("recv() without a pending command")
        from ray.exceptions import RayActorError, RayTaskError

        cmd, payload = self._pending
        while True:
            try:
                value = self._ray.get(self._ref)
                break
            except RayTaskError as exc:  # the environment raised: not the node's fault
                self._pending = None
                raise EnvWorkerError(str(exc)) from None
            except RayActorError as exc:
                self._replace_actor(exc)
                self._ref = self._actor.handle.remote(cmd, payload)
        self._pending = None
        if cmd == "reset":
            self._episode = [(cmd, payload)]
        elif cmd == "step":
            self._episode.append((cmd, payload))
        return value

    def call(self, cmd: str, payload: Any) -> Any:
        self.send(cmd, payload)
        return self.recv()

    def _replace_actor(self, cause: Exception) -> None:
        """A fresh actor brought to the state of the dead one (the episode so far, unrendered)."""
        from ray.exceptions import RayActorError

        if self.restarts >= RAY_RESTARTS:
            raise EnvWorkerError(
                f"environment actor died {self.restarts + 1} times, last: {cause}; "
                "the cluster's nodes are failing (memory, preemption): see `ray status`"
            ) from None
        self.restarts += 1
        print(
            f"environment actor died ({type(cause).__name__}); replaying its episode "
            f"({len(self._episode)} commands) on a new one, restart {self.restarts}/{RAY_RESTARTS}",
            file=sys.stderr,
        )
        self._actor = self._actor_class.remote(*self._args)
        replay = [(cmd, (payload[0], False)) for cmd, payload in self._episode]
        try:
            for cmd, payload in replay:
                self._ray.get(self._actor.handle.remote(cmd, payload))
        except RayActorError as exc:
            self._replace_actor(exc)

    def close(self) -> None:
        # a dead actor has nothing left to close; the episode's result is already in hand
        with contextlib.suppress(Exception):
            self._ray.get(self._actor.close.remote(), timeout=10)
        with contextlib.suppress(Exception):
            self._ray.kill(self._actor)


def _death(code: int | None) -> str:
    """Why a worker process most likely ended, from its exit code."""
    if code is not None and code < 0:
        return (
            f"killed by signal {-code}; a crash in MuJoCo's renderer (SIGSEGV) or the "
            "out-of-memory killer (SIGKILL) are the usual causes"
        )
    return (
        f"exit {code}: it raised, and its traceback is printed above. Workers are spawned and "
        "import the main script again: a script that runs rollouts must start them under "
        "`if __name__ == '__main__':`"
    )


def open_slots(
    benchmark: str,
    cameras: tuple[str, ...],
    image_size: int,
    count: int,
    workers: int,
    backend: Backend = "local",
    address: str | None = None,
) -> list[Slot] | list[RaySlot]:
    """``count`` slots: Ray actors (``backend="ray"``), worker processes (``workers > 0``) or,
    with ``workers=0``, environments in this process (for debugging and tests)."""
    if backend == "ray":
        from embodia.utils.cluster import connect_ray

        ray = connect_ray(address, workers)
        return [RaySlot(benchmark, cameras, image_size, ray) for _ in range(count)]
    return [Slot(benchmark, cameras, image_size, workers > 0) for _ in range(count)]
