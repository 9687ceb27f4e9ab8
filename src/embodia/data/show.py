"""`embodia data show`: a contact sheet so a person can see at a glance that the data is right.

One row per sampled image: the RGB view with every grounding answer drawn on it (boxes and points
computed from the simulator), the metric depth colour-mapped with a scale in metres, and the
questions and answers asked about that image.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from embodia.configs.data import ShowConfig
from embodia.data.conversations import read_conversations


class ShowError(ValueError):
    pass


def load_conversations(dataset: Path, split: str) -> list[dict]:
    path = Path(dataset) / "conversations" / f"{split}.jsonl"
    if not path.exists():
        raise ShowError(
            f"{path} not found: is {dataset} a dataset written by `embodia data generate`?"
        )
    return [row for _, row in read_conversations(path)]


def read_depth_png(path: Path) -> np.ndarray:
    """uint16 millimetre PNG -> float32 metres with NaN where invalid (0)."""
    mm = np.asarray(Image.open(path)).astype(np.float32)
    return np.where(mm > 0, mm / 1000.0, np.nan)


def _to_pixels(xy: list[int], size: tuple[int, int], style: str) -> tuple[float, float]:
    w, h = size
    if style == "qwen3":
        return xy[0] * w / 1000.0, xy[1] * h / 1000.0
    return float(xy[0]), float(xy[1])


def _qa_lines(samples: list[dict]) -> str:
    lines = []
    for s in samples:
        q = s["conversations"][0]["value"].replace("<image>\n", "")
        a = s["conversations"][1]["value"].replace("\n", " ")
        lines.append(textwrap.shorten(f"[{s['category']}] Q: {q}  A: {a}", 150))
    return "\n".join(textwrap.fill(line, 75) for line in lines)


def contact_sheet(cfg: ShowConfig) -> Path:
    dataset = Path(cfg.dataset)
    engine = dataset / "engine.json"
    style = json.loads(engine.read_text())["config"]["coordinates"] if engine.exists() else "qwen3"
    by_image: dict[str, list[dict]] = defaultdict(list)
    for sample in load_conversations(dataset, cfg.split):
        by_image[sample["image"]].append(sample)
    if not by_image:
        raise ShowError(f"{dataset}: the {cfg.split} split has no conversation samples")
    rng = np.random.default_rng(cfg.seed)
    keys = sorted(by_image)
    picks = [
        keys[i] for i in sorted(rng.choice(len(keys), min(cfg.samples, len(keys)), replace=False))
    ]

    fig, axes = plt.subplots(
        len(picks),
        3,
        figsize=(15, 3.6 * len(picks)),
        gridspec_kw={"width_ratios": [1, 1.15, 2.4]},
        squeeze=False,
    )
    for row, key in zip(axes, picks, strict=True):
        samples = by_image[key]
        first = samples[0]
        rgb = np.asarray(Image.open(dataset / "conversations" / first["image"]))
        depth = read_depth_png(dataset / "conversations" / first["depth"])
        size = (rgb.shape[1], rgb.shape[0])
        row[0].imshow(rgb)
        for s in samples:
            if s["task_type"] != "grounding":
                continue
            ans = s["answer"]
            if "bbox_2d" in ans:
                x1, y1 = _to_pixels(ans["bbox_2d"][:2], size, style)
                x2, y2 = _to_pixels(ans["bbox_2d"][2:], size, style)
                row[0].add_patch(
                    plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", lw=1.2)
                )
                row[0].text(x1, y1 - 1, ans["label"], color="yellow", fontsize=7, va="bottom")
            if "point_2d" in ans:
                x, y = _to_pixels(ans["point_2d"], size, style)
                row[0].plot([x], [y], marker="+", color="cyan", ms=9, mew=2)
                row[0].text(x + 2, y + 2, ans["label"], color="cyan", fontsize=7, va="top")
        row[0].set_title(
            f"{first['env_name']} {first['camera']} t={first['frame_index']}", fontsize=8
        )
        im = row[1].imshow(depth, cmap="Spectral")
        fig.colorbar(im, ax=row[1], fraction=0.046, pad=0.02, label="depth (m)")
        row[1].set_title(f"metric depth, {np.isnan(depth).mean():.0%} invalid", fontsize=8)
        row[2].text(
            0.0,
            1.0,
            _qa_lines(samples),
            va="top",
            ha="left",
            fontsize=7,
            family="monospace",
            transform=row[2].transAxes,
        )
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[2].axis("off")
    fig.suptitle(f"{dataset.name}: {cfg.split} split, {len(by_image)} images with QA", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out = Path(cfg.output) if cfg.output else dataset / "contact_sheet.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out
