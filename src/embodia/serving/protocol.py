"""The request / reply protocol on top of openpi's: request kinds, error replies, constants.

openpi's protocol is: on connect the server sends a msgpack metadata dict; then every binary
msgpack message from the client (an observation dict) gets exactly one binary msgpack reply (a dict
with ``actions`` and ``server_timing``). openpi's client treats a *text* frame as an error and
raises ``RuntimeError`` with its content. embodia keeps all of that and adds:

- ``{"request": "text" | "depth" | "metadata", ...}`` requests (a dict without ``request`` is an
  action request, so plain openpi clients work unchanged);
- errors as a text frame holding JSON ``{"error": {"type": ..., "message": ...}}``: openpi's
  client raises with that readable text, embodia's client raises :class:`ServerError` with the
  fields, and in both cases the connection stays open for the next request.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1
REQUEST_KEY = "request"
REQUESTS = ("actions", "text", "depth", "metadata")
API_KEY_ENV = "EMBODIA_API_KEY"
HEALTH_PATH = "/healthz"

# Error types (the "type" field of an error reply).
MALFORMED = "malformed_message"  # not msgpack, not a binary frame, a bad array header
BAD_REQUEST = "bad_request"  # not a dict, unknown request kind
INVALID_OBSERVATION = "invalid_observation"  # missing keys, wrong shapes / dtypes, NaN / inf
TOO_LARGE = "message_too_large"
UNSUPPORTED = "unsupported"  # well formed, but this checkpoint cannot do it (depth, FAST)
INTERNAL = "internal_error"  # a bug or a model failure; the server logs the traceback


class ServerError(RuntimeError):
    """An error reply from the server, raised on the client side."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


def error_text(type: str, message: str) -> str:
    """The text frame of an error reply."""
    return json.dumps({"error": {"type": type, "message": message}})


def parse_error(frame: str) -> ServerError:
    """A text frame from the server as a :class:`ServerError` (any text, not only ours)."""
    try:
        err = json.loads(frame)["error"]
        return ServerError(str(err["type"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return ServerError(INTERNAL, frame)


def request_kind(message: Any) -> str:
    """The kind of a decoded request; raises ValueError (a bad_request) for anything else."""
    if not isinstance(message, dict):
        raise ValueError(
            f"a request must be a msgpack map (an observation dict), got {type(message).__name__}"
        )
    kind = message.get(REQUEST_KEY, "actions")
    if kind not in REQUESTS:
        raise ValueError(f"unknown request {kind!r}; choose from {list(REQUESTS)}")
    return kind
