"""The codec: round trips, openpi's byte layout, and strict refusal of anything unsafe."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from embodia.serving.msgpack_numpy import DecodeError, EncodeError, packb, unpackb


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(6, dtype=np.int64),
        np.zeros((2, 0, 3), np.uint8),
        np.array([True, False]),
        np.array([1 + 2j], np.complex64),
        np.array(["ab", "c"]),
        np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        np.arange(10, dtype=">i4"),  # big-endian survives (dtype.str carries the byte order)
    ],
)
def test_round_trip_arrays(arr):
    back = unpackb(packb({"x": arr}))["x"]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_round_trip_nested_and_scalars():
    msg = {"a": [np.float32(1.5), np.int8(-3)], "b": {"c": "text", "d": None, "e": b"raw"}}
    back = unpackb(packb(msg))
    assert back["a"][0] == np.float32(1.5) and back["a"][0].dtype == np.float32
    assert back["a"][1].dtype == np.int8 and back["b"] == {"c": "text", "d": None, "e": b"raw"}


def test_openpi_layout():
    """openpi's msgpack_numpy: bin marker keys, dtype.str, shape as a list, raw C-order bytes."""
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = msgpack.unpackb(packb({"x": arr}), raw=False)["x"]
    assert raw == {
        b"__ndarray__": True,
        b"data": arr.tobytes(),
        b"dtype": "<f4",
        b"shape": [2, 3],
    }
    # and an array packed the way openpi's client packs it decodes here
    theirs = msgpack.packb(
        {"x": {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": "<f4", b"shape": (2, 3)}}
    )
    np.testing.assert_array_equal(unpackb(theirs)["x"], arr)


def test_refuses_object_arrays_on_encode():
    with pytest.raises(EncodeError, match="object"):
        packb({"x": np.array([{"a": 1}, None], dtype=object)})
    with pytest.raises(EncodeError, match="set"):
        packb({"x": {1, 2}})


def _array(dtype, shape, data):
    return msgpack.packb(
        {"x": {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}}
    )


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"\xc1\x00garbage", "not a valid msgpack"),
        (b"", "not a valid msgpack"),
        (_array("|O", [1], b"\0" * 8), "not allowed"),
        (_array("V8", [1], b"\0" * 8), "not allowed"),
        (_array([("a", "O")], [1], b"\0" * 8), "dtype must be a string"),
        (_array("<f4", [3], b"\0" * 8), "needs 12 bytes"),
        (_array("<f4", [-1], b""), "non-negative"),
        (_array("<f4", "3", b"\0" * 12), "shape must be a list"),
        (_array("not-a-dtype", [1], b"\0"), "unknown array dtype"),
        (_array("<f4", [1], "text"), "data must be bytes"),
        (msgpack.packb(msgpack.ExtType(5, b"x")), "extension type 5"),
        (msgpack.packb({1: 2}), "not a valid msgpack"),  # non-string map key
        (b"\x91" * 100_000 + b"\xc0", "StackError"),  # nested 100k deep: refused, no crash
        (b"\xdd\xff\xff\xff\xff", "exceeds max_array_len"),  # claims 4G items in 5 bytes
    ],
)
def test_decode_refuses(frame, match):
    with pytest.raises(DecodeError, match=match):
        unpackb(frame)


def test_decoded_arrays_are_read_only_views():
    back = unpackb(packb({"x": np.zeros(3, np.float32)}))["x"]
    assert not back.flags.writeable
