"""Run a :class:`PolicyServer` on a background thread (tests, benchmarks, self-contained demos).

The CLI runs the server in the main thread (signals); code that also wants to be the client, in
the same process, needs it elsewhere and needs a clean stop: :meth:`ServerThread.stop` sets the
server's stop event from outside its loop, waits for connections to close and joins the thread,
so nothing is left running.
"""

from __future__ import annotations

import asyncio
import threading

from embodia.serving.server import PolicyServer


class ServerThread:
    """``with ServerThread(server) as t: ... ws://127.0.0.1:{t.port}``."""

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="embodia-server", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"ws://{self.server.host}:{self.server.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"server did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"server failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"server thread did not stop within {timeout} s")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced by start(); after start, the log has it
            self._error = exc
        finally:
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.server.run(self._stop, on_ready=lambda _port: self._ready.set())
