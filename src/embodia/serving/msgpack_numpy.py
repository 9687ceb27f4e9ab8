"""msgpack with numpy arrays, byte-compatible with openpi-client's ``msgpack_numpy``.

Why msgpack and not pickle: unpickling runs code chosen by the sender, and a policy server accepts
messages from the network. msgpack only builds dicts, lists, strings, numbers and bytes.

Wire format (the one openpi uses, so its clients and servers interoperate with ours)::

    ndarray   -> {b"__ndarray__": True, b"data": raw bytes (C order), b"dtype": dtype.str,
                  b"shape": [d0, d1, ...]}
    np.generic -> {b"__npgeneric__": True, b"data": python scalar, b"dtype": dtype.str}

The marker keys are msgpack *bin* (bytes), user keys are msgpack *str*. Decoding is strict because
its input is untrusted: object / void dtypes are refused (they are how pickle sneaks back in),
the byte count must match shape x itemsize, and any malformed input raises :class:`DecodeError`
(never a crash or a half-built array). Decoded arrays are read-only views of the message.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ND, GENERIC = b"__ndarray__", b"__npgeneric__"
DATA, DTYPE, SHAPE = b"data", b"dtype", b"shape"
#: Kinds a message may carry: bool, ints, floats, complex, bytes and unicode strings. Never "O"
#: (Python objects) or "V" (structured / void, which can embed objects).
ALLOWED_KINDS = frozenset("biufcSU")
MAX_NDIM = 32


class DecodeError(ValueError):
    """The bytes are not a valid message of this protocol; the message says what is wrong."""


class EncodeError(TypeError):
    """The object holds something the protocol cannot carry (an object array, a custom class)."""


def _default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in ALLOWED_KINDS:
        raise EncodeError(f"cannot send numpy dtype {obj.dtype} (kind {obj.dtype.kind!r})")
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {ND: True, DATA: arr.tobytes(), DTYPE: arr.dtype.str, SHAPE: list(arr.shape)}
    if isinstance(obj, np.generic):
        return {GENERIC: True, DATA: obj.item(), DTYPE: obj.dtype.str}
    raise EncodeError(f"cannot send an object of type {type(obj).__name__}")


def _dtype(raw: Any) -> np.dtype:
    if not isinstance(raw, (str, bytes)):
        raise DecodeError(f"array dtype must be a string, got {type(raw).__name__}")
    try:
        dtype = np.dtype(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"unknown array dtype {raw!r}") from exc
    if dtype.kind not in ALLOWED_KINDS or dtype.hasobject:
        raise DecodeError(f"array dtype {dtype} (kind {dtype.kind!r}) is not allowed")
    return dtype


def _object_hook(obj: dict) -> Any:
    if ND in obj:
        dtype = _dtype(obj.get(DTYPE))
        shape, data = obj.get(SHAPE), obj.get(DATA)
        if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
            raise DecodeError(f"array shape must be a list of at most {MAX_NDIM} ints")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise DecodeError(f"array shape must hold non-negative ints, got {shape!r}")
        if not isinstance(data, bytes):
            raise DecodeError(f"array data must be bytes, got {type(data).__name__}")
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise DecodeError(
                f"array of shape {list(shape)} and dtype {dtype} needs {expected} bytes, "
                f"got {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if GENERIC in obj:
        dtype = _dtype(obj.get(DTYPE))
        try:
            return dtype.type(obj.get(DATA))
        except (TypeError, ValueError, OverflowError) as exc:
            raise DecodeError(f"bad numpy scalar of dtype {dtype}: {exc}") from exc
    return obj


def _ext_hook(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not part of the protocol")


def packb(obj: Any) -> bytes:
    """Encode a message (dicts, lists, str, numbers, bytes, numpy arrays and scalars)."""
    try:
        return msgpack.packb(obj, default=_default, use_bin_type=True)
    except EncodeError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(str(exc)) from exc


def unpackb(data: bytes) -> Any:
    """Decode a message; any malformation raises :class:`DecodeError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(
            data, object_hook=_object_hook, ext_hook=_ext_hook, raw=False, strict_map_key=True
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        raise DecodeError(f"not a valid msgpack message ({type(exc).__name__}: {exc})") from exc
