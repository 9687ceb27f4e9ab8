"""Pixel storage: per-episode mp4 encoding, packet-level mp4 concatenation, exact-frame decoding,
and the PNG codecs used for "image" and "depth" features inside parquet.

Why these choices:

* Codec: LeRobot encodes with ``libsvtav1`` (yuv420p, GOP ``g=2``, ``crf=30``, preset 12); we do
  the same when this PyAV build has it, else h264 (``libx264``/``h264``), else ``mpeg4``. A GOP of
  two keeps random access cheap: any frame is at most one frame after a keyframe. B-frames are
  disabled for h264 so presentation order equals decode order, which keeps concatenation simple.
* Concatenation: a v3 video file holds several episodes one after another. Episodes are encoded
  separately (inside parallel workers) and later joined by copying packets with shifted
  timestamps, never re-encoding, so consolidation is cheap and bit-exact with what was staged.
  Each episode starts on a keyframe, so seeking to its ``from_timestamp`` is always valid.
* Decoding returns the frame whose presentation time equals the requested timestamp, checked to
  within a small tolerance, instead of "whatever the seek landed on".
* Depth: metric depth is quantised to uint16 millimetres (0 = invalid) and stored as 16-bit
  grayscale PNG, which is lossless; lossy video codecs would corrupt geometry.
"""

from __future__ import annotations

import functools
import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from .features import DEPTH_SCALE_M, DatasetFormatError

PIX_FMT = "yuv420p"
GOP = 2
CRF = 30
_CODEC_PREFERENCE = ("libsvtav1", "libx264", "h264", "mpeg4")
# Timestamps of consecutive frames differ by 1/fps; half a frame would be ambiguous, so require
# a match far tighter than that (LeRobot's default tolerance is 1e-4 s).
TIMESTAMP_TOLERANCE_S = 1e-4
_MM_PER_M = round(1.0 / DEPTH_SCALE_M)


@functools.cache
def available_codec() -> str:
    """The most LeRobot-like encoder this PyAV build offers."""
    for name in _CODEC_PREFERENCE:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # not built into this FFmpeg
            continue
        return name
    raise RuntimeError(f"PyAV has none of the video encoders {_CODEC_PREFERENCE}")


def _codec_options(codec: str) -> dict[str, str]:
    if codec == "libsvtav1":
        return {"g": str(GOP), "crf": str(CRF), "preset": "12"}
    if codec in ("libx264", "h264"):
        return {"g": str(GOP), "crf": str(CRF), "bf": "0"}
    return {"g": str(GOP), "bf": "0", "qscale": "3"}


def encode_video(path: Path, frames: np.ndarray, fps: int, codec: str | None = None) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) to an mp4 whose frame ``i`` has pts ``i / fps``."""
    codec = codec or available_codec()
    # SVT-AV1 prints its banner to stderr for every encoder unless told otherwise.
    os.environ.setdefault("SVT_LOG", "1")
    _, height, width, _ = frames.shape
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=_codec_options(codec))
        stream.pix_fmt = PIX_FMT
        stream.width = width
        stream.height = height
        if codec == "mpeg4":
            stream.bit_rate = max(200_000, height * width * fps * 2)
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def video_info(path: Path, fps: int) -> dict[str, Any]:
    """The ``features.<key>.info`` block LeRobot records for a video feature."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.codec_context.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(fps),
            "video.channels": 3,
            "has_audio": False,
        }


def concat_videos(inputs: list[Path], frame_counts: list[int], fps: int, output: Path) -> None:
    """Join episode mp4s into one by remuxing packets, episode ``k`` shifted by the summed
    durations (``frames / fps``) of the episodes before it."""
    with av.open(str(output), "w", options={"movflags": "faststart"}) as out:
        out_stream = None
        offset_s = Fraction(0)
        for path, count in zip(inputs, frame_counts, strict=True):
            with av.open(str(path)) as src:
                in_stream = src.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(in_stream, opaque=True)
                    out_stream.time_base = in_stream.time_base
                shift = offset_s / in_stream.time_base
                if shift.denominator != 1:
                    raise ValueError(f"{path}: time base {in_stream.time_base} cannot hold 1/{fps}")
                for packet in src.demux(in_stream):
                    if packet.dts is None:  # demuxer flush packet
                        continue
                    packet.pts += int(shift)
                    packet.dts += int(shift)
                    packet.stream = out_stream
                    out.mux(packet)
            offset_s += Fraction(count, fps)


def decode_video(path: Path, from_ts: float, count: int, fps: int) -> np.ndarray:
    """Decode the ``count`` frames presented at ``from_ts + i / fps`` as uint8 (count, H, W, 3)."""
    frames = _decode_range(path, from_ts, count, fps, seek=True)
    if frames is None:  # the seek overshot (unusual demuxer); decode from the file start
        frames = _decode_range(path, from_ts, count, fps, seek=False)
    if frames is None:
        raise DatasetFormatError(
            f"{path}: no frames for every timestamp in [{from_ts}, {from_ts + count / fps})"
        )
    return frames


def _decode_range(
    path: Path, from_ts: float, count: int, fps: int, seek: bool
) -> np.ndarray | None:
    out: list[np.ndarray | None] = [None] * count
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        raise DatasetFormatError(f"{path}: cannot open video: {exc}") from exc
    with container:
        stream = container.streams.video[0]
        tb = stream.time_base
        if seek and from_ts > 0:
            container.seek(int(Fraction(from_ts) / tb), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * tb)
            idx = round((t - from_ts) * fps)
            if idx < 0:
                continue
            if idx >= count:
                break
            if abs(t - (from_ts + idx / fps)) > TIMESTAMP_TOLERANCE_S:
                raise DatasetFormatError(
                    f"{path}: frame at {t:.6f}s is off the 1/{fps}s grid from {from_ts:.6f}s"
                )
            out[idx] = frame.to_ndarray(format="rgb24")
    if any(f is None for f in out):
        return None
    return np.stack(out)  # type: ignore[arg-type]


def encode_png_rgb(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def decode_png_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres; NaN, inf and non-positive become 0 (invalid), far values clip."""
    d = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    mm = np.where(valid, np.rint(np.where(valid, d, 0.0) * _MM_PER_M), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def mm_to_depth(mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres (0 stays 0 = invalid)."""
    return mm.astype(np.float32) / np.float32(_MM_PER_M)


def encode_png_depth(mm: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # zlib level 1: ~2.5x faster than the default for ~20% more bytes; encoding runs per frame.
    Image.fromarray(np.ascontiguousarray(mm.astype(np.uint16))).save(
        buf, format="PNG", compress_level=1
    )
    return buf.getvalue()


def decode_png_depth(data: bytes) -> np.ndarray:
    """16-bit PNG -> uint16 (H, W); Pillow may hand back mode "I" (int32) for these."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.uint16)
