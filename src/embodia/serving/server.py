"""WebSocket policy server speaking openpi's wire protocol (see :mod:`embodia.serving.protocol`).

One asyncio event loop owns the sockets; the model runs on a single worker thread. Why one: on a
CPU or a single GPU a second concurrent call would not be faster (the two would share the same
cores or device), and one thread keeps torch's per-thread settings (threads, no-grad) in one place.
Requests from several clients therefore queue FIFO for the worker while the loop keeps reading,
answering health checks and keep-alive pings; each reply reports its own ``queue_ms`` and
``infer_ms``. Connections share nothing else: each has its own reply stream and timing.

Bad input never takes the server down: every message gets exactly one reply, an error reply
(a JSON text frame, see the protocol module) when it cannot be served, and the log names the peer
and what was wrong. Two size limits: a message above ``max_message_bytes`` is read, refused with an
error reply, and the connection stays open; one above twice that is not even buffered: the
WebSocket library closes the connection with code 1009 (message too big).
"""

from __future__ import annotations

import asyncio
import hmac
import http
import itertools
import logging
import signal
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from embodia.observation import ObservationError
from embodia.policy import Policy, UnsupportedRequest
from embodia.serving import msgpack_numpy, protocol
from embodia.serving.protocol import (
    BAD_REQUEST,
    INTERNAL,
    INVALID_OBSERVATION,
    MALFORMED,
    TOO_LARGE,
    UNSUPPORTED,
)

log = logging.getLogger("embodia.serving")
MiB = 1 << 20


class _Refused(Exception):
    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type, self.message = type, message


class PolicyServer:
    """Serve a :class:`~embodia.policy.Policy` to any number of WebSocket clients."""

    def __init__(
        self,
        policy: Policy,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_message_bytes: int = 32 * MiB,
    ) -> None:
        if max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
        self.policy = policy
        self.host, self.port = host, port
        self._api_key = api_key or None
        self.max_message_bytes = int(max_message_bytes)
        self.metadata: dict[str, Any] = {
            "server": "embodia",
            "protocol_version": protocol.PROTOCOL_VERSION,
            **policy.metadata(),
            "max_message_bytes": self.max_message_bytes,
        }
        self._metadata_frame = msgpack_numpy.packb(self.metadata)
        self._ids = itertools.count(1)
        self.stats = {"connections": 0, "requests": 0, "errors": 0, "refused": 0}

    # ------------------------------------------------------------------ running

    async def run(
        self, stop: asyncio.Event | None = None, on_ready: Callable[[int], None] | None = None
    ) -> None:
        """Serve until ``stop`` is set (forever without one); ``on_ready(port)`` once listening."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embodia-infer")
        try:
            async with serve(
                self._handler,
                self.host,
                self.port,
                process_request=self._process_request,
                max_size=2 * self.max_message_bytes,  # beyond this: close 1009, not buffered
                compression=None,  # images and float arrays barely compress; deflate costs CPU
                logger=logging.getLogger("embodia.serving.websockets"),
            ) as server:
                self.port = int(next(iter(server.sockets)).getsockname()[1])
                log.info(
                    "serving %s (%s) on ws://%s:%d%s",
                    self.metadata["model"],
                    self.metadata["embodiment"],
                    self.host,
                    self.port,
                    " (API key required)" if self._api_key else "",
                )
                if on_ready is not None:
                    on_ready(self.port)
                await (stop.wait() if stop is not None else asyncio.Future())
                log.info("shutting down")
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def serve_forever(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Run in the main thread until SIGINT / SIGTERM, then close connections cleanly."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await self.run(stop, on_ready)

        asyncio.run(main())

    # ------------------------------------------------------------------ HTTP: health, auth

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path == protocol.HEALTH_PATH:
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        reason = self._auth_failure(request)
        if reason is None:
            return None
        self.stats["refused"] += 1
        log.warning("refused connection from %s: %s", _peer(connection), reason)
        response = connection.respond(
            http.HTTPStatus.UNAUTHORIZED,
            f"401 Unauthorized: {reason}; send 'Authorization: Api-Key <key>' "
            "or 'X-API-Key: <key>'\n",
        )
        response.headers["WWW-Authenticate"] = "Api-Key"
        return response

    def _auth_failure(self, request: Request) -> str | None:
        """None when the request may connect, else why not (never echoing the key)."""
        if self._api_key is None:
            return None
        given = None
        scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() in ("api-key", "bearer") and value.strip():
            given = value.strip()
        given = given or (request.headers.get("X-API-Key") or "").strip()
        if not given:
            return "missing API key"
        if not hmac.compare_digest(given.encode(), self._api_key.encode()):
            return "wrong API key"
        return None

    # ------------------------------------------------------------------ WebSocket

    async def _handler(self, ws: ServerConnection) -> None:
        name = f"client#{next(self._ids)} ({_peer(ws)})"
        self.stats["connections"] += 1
        log.info("%s connected", name)
        prev_total_ms: float | None = None
        try:
            await ws.send(self._metadata_frame)
            async for message in ws:
                start = time.perf_counter()
                reply = await self._reply(message, name, prev_total_ms)
                await ws.send(reply)
                prev_total_ms = (time.perf_counter() - start) * 1000
        except ConnectionClosed:
            pass
        code = ws.close_code
        if code == 1009:
            log.warning(
                "%s closed: a message exceeded the hard limit of %d bytes",
                name,
                2 * self.max_message_bytes,
            )
        else:
            log.info("%s disconnected (code %s)", name, code)

    async def _reply(self, message: bytes | str, name: str, prev_total_ms: float | None):
        """Exactly one reply per message: msgpack bytes, or an error text frame."""
        self.stats["requests"] += 1
        kind = "?"
        try:
            start = time.perf_counter()
            request = self._decode(message)
            try:
                kind = protocol.request_kind(request)
            except ValueError as exc:
                raise _Refused(BAD_REQUEST, str(exc)) from None
            decode_ms = (time.perf_counter() - start) * 1000
            submitted = time.perf_counter()
            loop = asyncio.get_running_loop()
            result, started, ended = await loop.run_in_executor(
                self._executor, self._dispatch, kind, request
            )
            timing = {
                "infer_ms": (ended - started) * 1000,
                "queue_ms": (started - submitted) * 1000,
                "decode_ms": decode_ms,
            }
            if prev_total_ms is not None:
                timing["prev_total_ms"] = prev_total_ms
            result["server_timing"] = timing
            try:
                return msgpack_numpy.packb(result)
            except msgpack_numpy.EncodeError as exc:
                raise _Refused(INTERNAL, f"reply could not be encoded: {exc}") from None
        except _Refused as bad:
            self.stats["errors"] += 1
            level = logging.ERROR if bad.type == INTERNAL else logging.WARNING
            log.log(level, "%s: %s request refused: %s: %s", name, kind, bad.type, bad.message)
            return protocol.error_text(bad.type, bad.message)

    def _decode(self, message: bytes | str) -> Any:
        if isinstance(message, str):
            raise _Refused(MALFORMED, "expected a binary msgpack frame, got a text frame")
        if len(message) > self.max_message_bytes:
            raise _Refused(
                TOO_LARGE,
                f"message of {len(message)} bytes exceeds the server's limit of "
                f"{self.max_message_bytes} bytes",
            )
        try:
            return msgpack_numpy.unpackb(message)
        except msgpack_numpy.DecodeError as exc:
            raise _Refused(MALFORMED, str(exc)) from None

    def _dispatch(self, kind: str, request: dict) -> tuple[dict, float, float]:
        """Runs on the inference thread: one request at a time, whoever sent it."""
        started = time.perf_counter()
        try:
            if kind == "metadata":
                result = dict(self.metadata)
            elif kind == "text":
                result = self.policy.text(request)
            elif kind == "depth":
                result = self.policy.depth(request)
            else:
                result = self.policy.infer(request)
        except ObservationError as exc:
            raise _Refused(INVALID_OBSERVATION, str(exc)) from None
        except UnsupportedRequest as exc:
            raise _Refused(UNSUPPORTED, str(exc)) from None
        except Exception as exc:
            log.error("%s request failed:\n%s", kind, traceback.format_exc())
            raise _Refused(INTERNAL, f"{type(exc).__name__}: {exc}") from None
        return result, started, time.perf_counter()


def _peer(conn: ServerConnection) -> str:
    addr = conn.remote_address
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)
