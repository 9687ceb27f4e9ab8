"""Rollout videos with the instruction and the predicted subtask drawn on every frame.

A success rate says how often; a video says how it failed. Each frame tiles the cameras side by
side, enlarged to a readable size, under a banner with the instruction, the subtask the policy
predicted (Uni-CoT or the expert's phase) and the step / success state. Encoded with PyAV through
the data engine's encoder (:func:`embodia.data.lerobot_v3.video.encode_video`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_VIEW = 256  # pixels per view side in the video
LINE = 16
BANNER_LINES = 4


def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def compose_frame(
    images: dict[str, np.ndarray], instruction: str, subtask: str, step: int, success: bool
) -> np.ndarray:
    """One video frame: views side by side plus a text banner; even width and height."""
    views = []
    for img in images.values():
        scale = max(1, -(-MIN_VIEW // img.shape[0]))
        views.append(np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8)))
    h = max(v.shape[0] for v in views)
    strip = np.concatenate([np.pad(v, ((0, h - v.shape[0]), (0, 0), (0, 0))) for v in views], 1)
    w = strip.shape[1] + strip.shape[1] % 2
    banner_h = LINE * BANNER_LINES + 8
    canvas = Image.new("RGB", (w, h + banner_h + (h + banner_h) % 2), (20, 20, 20))
    canvas.paste(Image.fromarray(strip), (0, banner_h))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    width_chars = max(20, w // 7)
    lines = textwrap.wrap(f"task: {instruction}", width_chars)[:2]
    lines.append(textwrap.shorten(f"subtask: {subtask or '-'}", width_chars))
    lines.append(f"step {step}" + ("   SUCCESS" if success else ""))
    for i, text in enumerate(lines):
        colour = (120, 255, 120) if success and i == len(lines) - 1 else (255, 255, 255)
        draw.text((6, 4 + i * LINE), text, fill=colour, font=font)
    return np.asarray(canvas)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 20) -> Path:
    from embodia.data.lerobot_v3.video import encode_video

    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(path, np.stack(frames), fps)
    return path


def video_strip(video: Path, out: Path, frames: int = 5, width: int = 1400) -> Path:
    """``frames`` evenly spaced frames of a rollout video side by side, as one PNG (for reports
    that are read without a video player); the last frame shows how the episode ended."""
    import av

    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not decoded:
        raise ValueError(f"{video}: no frames")
    picks = np.linspace(0, len(decoded) - 1, min(frames, len(decoded))).round().astype(int)
    strip = Image.fromarray(np.concatenate([decoded[i] for i in picks], axis=1))
    if strip.width > width:
        strip = strip.resize((width, round(strip.height * width / strip.width)), Image.BILINEAR)
    out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(out)
    return out
