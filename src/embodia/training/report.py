"""Loss curves from metrics.jsonl: one panel per loss term, stages shaded, so a person can see at
a glance whether every objective fell."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SKIP = {"global_step", "stage", "stage_name", "step", "lr", "samples_per_s"}


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_loss_curves(metrics: Path, out: Path) -> Path | None:
    rows = read_metrics(metrics)
    if not rows:
        return None
    terms = sorted({k for r in rows for k in r if k not in SKIP})
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.2), squeeze=False)
    stages = []
    for r in rows:
        if not stages or stages[-1][0] != r["stage_name"]:
            stages.append([r["stage_name"], r["global_step"], r["global_step"]])
        stages[-1][2] = r["global_step"]
    for ax, term in zip(axes[0], terms, strict=True):
        xs = [r["global_step"] for r in rows if term in r]
        ys = [r[term] for r in rows if term in r]
        ax.plot(xs, ys, lw=1.4)
        ax.set_title(term)
        ax.set_xlabel("step")
        if ys and min(ys) > 0:
            ax.set_yscale("log")
        for i, (name, lo, hi) in enumerate(stages):
            ax.axvspan(lo, hi, color=f"C{i % 10}", alpha=0.08)
            ax.text(lo, 1.0, name, transform=ax.get_xaxis_transform(), fontsize=7, va="top")
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out
