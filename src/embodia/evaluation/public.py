"""Loaders and scorers of public embodied benchmarks, in the formats their authors publish.

CV-Bench (Tong et al. 2024, ``nyu-visionx/CV-Bench``): ``test.jsonl`` rows ``{idx, type ("2D" |
"3D"), task (Count, Relation, Depth, Distance), image ("img/2D/count/ade20k_10.png"), question,
choices, answer ("(A)"), prompt, source (ADE20K | COCO | Omni3D), ...}`` beside ``img/``; the
parquet export (``test.parquet``, image as ``{"bytes", "path"}``) is read too. Accuracy per
category and source; the paper's combined score is the mean of the 2D score (mean of ADE20K and
COCO accuracies) and the 3D score (Omni3D accuracy).

Where2Place (Yuan et al. 2024, RoboPoint): ``point_questions.jsonl`` rows ``{image, text,
[question_id, category]}``, ``images/<image>`` and ``masks/<NN>.jpg`` (NN = the row's position,
as RoboPoint's scorer indexes them). The answer is a list of points ``[(x, y), ...]`` in [0, 1]
relative coordinates; a question's score is the mean mask value (mask / 255) at the predicted
pixels, points outside the image scoring 0, no point scoring 0 (and counted unparseable).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from embodia.evaluation import answers as A


@dataclass
class BenchItem:
    id: str
    category: str
    prompt: str
    load_image: Callable[[], np.ndarray]
    truth: dict[str, Any]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from exc
    return rows


def _rgb_file(path: Path) -> Callable[[], np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"image {path} is missing")
    return lambda: np.asarray(Image.open(path).convert("RGB"))


def _rgb_bytes(data: bytes) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------------- CV-Bench

LETTERS = "ABCDEFGH"


def load_cvbench(root: Path) -> list[BenchItem]:
    root = Path(root)
    if (root / "test.jsonl").is_file():
        rows = _read_jsonl(root / "test.jsonl")
        images = [_rgb_file(root / r["image"]) for r in rows]
    elif (root / "test.parquet").is_file():
        import pyarrow.parquet as pq

        rows = pq.read_table(root / "test.parquet").to_pylist()
        images = [_rgb_bytes(r["image"]["bytes"]) for r in rows]
    else:
        raise FileNotFoundError(f"{root}: no CV-Bench test.jsonl or test.parquet")
    items = []
    for n, (r, img) in enumerate(zip(rows, images, strict=True)):
        for key in ("question", "choices", "answer"):
            if key not in r:
                raise ValueError(f"{root}: CV-Bench row {n} lacks {key!r}")
        choices = list(r["choices"])
        m = A.parse_choice_letter(str(r["answer"]), len(choices))
        if m is None:
            raise ValueError(f"{root}: CV-Bench row {n}: answer {r['answer']!r} is not a letter")
        prompt = r.get("prompt") or (
            r["question"]
            + "\n"
            + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
            + "\nAnswer with the option's letter from the given choices directly."
        )
        items.append(
            BenchItem(
                str(r.get("idx", n)),
                f"{r.get('type', '?')}/{r.get('task', '?')}",
                prompt,
                img,
                {"index": m, "choices": choices, "source": r.get("source", "?")},
            )
        )
    return items


def score_cvbench(item: BenchItem, text: str) -> tuple[float, str, Any]:
    choices = item.truth["choices"]
    got = A.parse_choice_letter(text, len(choices))
    if got is None:  # the choice's own text, e.g. "3" or "the lamp"
        hit = A.first_mention(text, [str(c) for c in choices])
        got = None if hit is None else [str(c) for c in choices].index(hit)
    if got is None:
        return 0.0, "unparseable", None
    ok = got == item.truth["index"]
    return float(ok), "correct" if ok else "wrong", LETTERS[got]


def cvbench_headline(records: list[dict[str, Any]]) -> dict[str, float]:
    def acc(source: str) -> float | None:
        rs = [r for r in records if r["source"] == source]
        return sum(r["score"] for r in rs) / len(rs) if rs else None

    ade, coco, omni = acc("ADE20K"), acc("COCO"), acc("Omni3D")
    out = {f"{k} accuracy": v for k, v in (("ADE20K", ade), ("COCO", coco), ("Omni3D", omni))}
    parts_2d = [v for v in (ade, coco) if v is not None]
    if parts_2d:
        out["2D accuracy"] = sum(parts_2d) / len(parts_2d)
    if omni is not None:
        out["3D accuracy"] = omni
    if parts_2d and omni is not None:
        out["CV-Bench combined"] = (out["2D accuracy"] + omni) / 2
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------- Where2Place


def load_where2place(root: Path) -> list[BenchItem]:
    root = Path(root)
    qfile = root / "point_questions.jsonl"
    if not qfile.is_file():
        raise FileNotFoundError(f"{root}: no Where2Place point_questions.jsonl")
    items = []
    for n, r in enumerate(_read_jsonl(qfile)):
        for key in ("image", "text"):
            if key not in r:
                raise ValueError(f"{qfile}: row {n} lacks {key!r}")
        mask = root / "masks" / f"{n:02d}.jpg"
        if not mask.is_file():
            alt = [root / "masks" / f"{Path(r['image']).stem}{ext}" for ext in (".png", ".jpg")]
            mask = next((p for p in alt if p.is_file()), mask)
        if not mask.is_file():
            raise FileNotFoundError(f"{root}: mask of question {n} ({mask.name}) is missing")
        items.append(
            BenchItem(
                str(r.get("question_id", n)),
                str(r.get("category", "where2place")),
                r["text"],
                _rgb_file(root / "images" / r["image"]),
                {"mask": mask},
            )
        )
    return items


def to_pixels(
    points: list[tuple[float, float]], width: int, height: int, qwen_json: bool, coordinates: str
) -> np.ndarray:
    """Answer points -> integer pixels: [0, 1] floats are relative; Qwen ``point_2d`` JSON is
    0-1000 relative (``qwen3``) or pixels (``qwen2.5``); anything else is pixels."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) and (p <= 1.0).all() and (p >= 0.0).all() and not qwen_json:
        p = p * [width, height]
    elif qwen_json and coordinates == "qwen3":
        p = p / 1000.0 * [width, height]
    return np.floor(p).astype(np.int64)


def score_where2place(
    item: BenchItem, text: str, image_size: tuple[int, int], coordinates: str
) -> tuple[float, str, Any]:
    points = A.parse_points(text)
    if not points:
        return 0.0, "unparseable", None
    mask = np.asarray(Image.open(item.truth["mask"]).convert("L"), dtype=np.float64) / 255.0
    h, w = mask.shape
    px = to_pixels(points, image_size[0], image_size[1], "point_2d" in text, coordinates)
    if image_size != (w, h):  # masks match their images; rescale if an image was resized
        px = np.floor(px * [w / image_size[0], h / image_size[1]]).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    vals = np.zeros(len(px))
    vals[inside] = mask[px[inside, 1], px[inside, 0]]
    score = float(vals.mean())
    return score, "correct" if score >= 0.5 else "wrong", px.tolist()
