"""A thin synchronous client for an embodia (or any openpi-protocol) policy server.

openpi's ``WebsocketClientPolicy`` works against the server unchanged; this client exists for the
parts openpi's does not cover: text and depth requests, error replies as :class:`ServerError` with
their type, a refused API key as :class:`AuthenticationError`, and timeouts. ``infer`` has the
openpi signature, so :class:`~embodia.serving.chunk_broker.ChunkBroker` takes either client.
"""

from __future__ import annotations

from typing import Any

from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from embodia.serving import msgpack_numpy
from embodia.serving.protocol import ServerError, parse_error

__all__ = ["AuthenticationError", "PolicyClient", "ServerError"]


class AuthenticationError(PermissionError):
    """The server refused the connection (HTTP 401): missing or wrong API key."""


class PolicyClient:
    """``with PolicyClient("127.0.0.1", 8000) as c: c.infer(obs)["actions"]``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 8000,
        api_key: str | None = None,
        timeout: float | None = 120.0,
        max_size: int | None = None,
    ) -> None:
        uri = host if host.startswith("ws") else f"ws://{host}"
        self.uri = uri if port is None else f"{uri}:{port}"
        self.timeout = timeout
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        try:
            # Entered by hand: the connection outlives this call (websockets >= 17.1 warns
            # about a bare connect(), and `legacy=True` does not exist in older versions).
            self._ws: ClientConnection = connect(
                self.uri,
                additional_headers=headers,
                compression=None,
                max_size=max_size,
                open_timeout=timeout,
            ).__enter__()
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise AuthenticationError(
                    f"{self.uri} refused the connection: {exc.response.body.decode(errors='replace').strip()}"
                ) from None
            raise
        self.metadata: dict[str, Any] = msgpack_numpy.unpackb(self._ws.recv(timeout))

    def get_server_metadata(self) -> dict[str, Any]:  # openpi's name
        return self.metadata

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its reply; an error reply raises :class:`ServerError`."""
        return self.request_raw(msgpack_numpy.packb(message))

    def request_raw(self, data: bytes | str) -> dict[str, Any]:
        """Send an already-encoded frame (tests send malformed ones on purpose)."""
        self._ws.send(data)
        reply = self._ws.recv(self.timeout)
        if isinstance(reply, str):
            raise parse_error(reply)
        return msgpack_numpy.unpackb(reply)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """An action chunk: ``{"actions": (H, dof) float32, "text", ..., "server_timing"}``."""
        return self.request(obs)

    def text(self, obs: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """VQA (``question=...``) or Uni-CoT text (``levels=[...]``)."""
        return self.request({**obs, **fields, "request": "text"})

    def depth(self, obs: dict[str, Any]) -> dict[str, Any]:
        return self.request({**obs, "request": "depth"})

    def reset(self) -> None:  # openpi's policy interface; the server keeps no episode state
        pass

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
