"""``report.md`` and its figures (PNG beside it), written from the same dict as results.json.

The report is for people: the headline number with its interval, per-task / per-category tables,
the protocol in a few lines, and plots (success bars with 95% intervals, QA accuracy by category,
predicted vs ground-truth depth). Nothing in it is computed anew: it only formats the results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from embodia.utils.fs import atomic_write_text


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f}%"


def _ci(block: dict[str, Any]) -> str:
    lo, hi = block["ci95"]
    return f"{_pct(lo)} - {_pct(hi)}"


def bar_plot(
    path: Path,
    names: list[str],
    rates: list[float],
    cis: list[list[float]],
    title: str,
    ylabel: str,
) -> Path:
    """Horizontal bars with 95% interval whiskers (one bar per task or category)."""
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.4))
    y = np.arange(len(names))
    rates_a = np.nan_to_num(np.asarray(rates, dtype=float))
    lo = np.array([r - c[0] for r, c in zip(rates_a, cis, strict=True)])
    hi = np.array([c[1] - r for r, c in zip(rates_a, cis, strict=True)])
    ax.barh(
        y, rates_a, xerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)], color="#4c72b0", capsize=3
    )
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _protocol_lines(protocol: dict[str, Any]) -> list[str]:
    ck = protocol.get("checkpoint")
    lines = []
    if ck:
        lines.append(
            f"- checkpoint: `{ck['path']}` (weights sha256 `{ck['weights_sha256'][:16]}...`)"
        )
    for key, value in protocol.items():
        if key in ("checkpoint", "config", "training_data"):
            continue
        lines.append(f"- {key}: `{json.dumps(value)[:200]}`")
    lines.append("- full protocol and package versions: `results.json`")
    return lines


def rollout_report(out: Path, protocol: dict[str, Any], summary: dict[str, Any]) -> Path:
    per_task, ov = summary["per_task"], summary["overall"]
    names = list(per_task)
    fig_path = bar_plot(
        out / "success_per_task.png",
        names,
        [per_task[t]["rate"] for t in names],
        [per_task[t]["ci95"] for t in names],
        f"success rate per task ({ov['episodes']} episodes, 95% Wilson CI)",
        "success rate",
    )
    lines = [
        "# Rollout evaluation",
        "",
        f"**Success {ov['successes']}/{ov['episodes']} = {_pct(ov['rate'])}** "
        f"(95% CI {_ci(ov)}; mean of per-task rates {_pct(ov['mean_task_rate'])}; "
        f"mean episode length {ov['mean_length']:.1f} steps)",
        "",
        "## Protocol",
        *_protocol_lines(protocol),
        "",
        "## Per task",
        "",
        "| task | success | 95% CI | mean length | mean length (successes) |",
        "|---|---|---|---|---|",
    ]
    for t in names:
        b = per_task[t]
        msl = "-" if b["mean_success_length"] is None else f"{b['mean_success_length']:.1f}"
        lines.append(
            f"| {t} | {b['successes']}/{b['episodes']} ({_pct(b['rate'])}) | {_ci(b)} | "
            f"{b['mean_length']:.1f} | {msl} |"
        )
    lines += ["", f"![success per task]({fig_path.name})", ""]
    lines += _outcome_lines(per_task, ov)
    videos = [e for e in summary["episodes"] if e.get("video")]
    if videos:
        lines += ["## Videos", ""]
        for e in videos:
            lines.append(
                f"- [{e['task']} #{e['number']}](videos/{Path(e['video']).name}): "
                f"{'success' if e['success'] else 'failure'} in {e['length']} steps"
            )
        lines.append("")
    t = summary.get("timing", {})
    if t:
        lines += [
            "## Timing",
            "",
            f"{t['wall_s']:.1f} s wall, {t['steps']} env steps ({t['steps_per_s']:.1f} steps/s), "
            f"{t['queries']} policy calls ({t['policy_s']:.1f} s), environments {t['env_s']:.1f} s.",
            "",
        ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _outcome_lines(per_task: dict[str, Any], overall: dict[str, Any]) -> list[str]:
    """What the episodes did, where that says more than success: the confusion between
    instructions given the same start (a rival's goal reached), and subtask accuracy."""
    lines = []
    reached = [o for b in per_task.values() for o in b.get("outcomes", {})]
    columns = [*dict.fromkeys(o for o in reached if o != "none"), "none"]
    if any(o not in (t, "none") for t, b in per_task.items() for o in b.get("outcomes", {})):
        lines += [
            "## What the robot did (instruction x goal reached)",
            "",
            "Rows are instructions, columns the goal the episode reached first; off the "
            "diagonal the robot did another instruction's task from the same start.",
            "",
            "| instruction | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for t, b in per_task.items():
            counts = b.get("outcomes", {})
            lines.append(f"| {t} | " + " | ".join(str(counts.get(c, 0)) for c in columns) + " |")
        lines.append("")
    if "subtask_accuracy" in overall:
        lines += [
            "## Subtask accuracy (chain of thought vs the expert's phase of the state)",
            "",
            "| task | matching answers | 95% CI |",
            "|---|---|---|",
        ]
        for t, b in {**per_task, "all": overall}.items():
            acc = b.get("subtask_accuracy")
            if acc:
                lines.append(
                    f"| {t} | {acc['successes']}/{acc['episodes']} ({_pct(acc['rate'])}) | "
                    f"{_ci(acc)} |"
                )
        lines.append("")
    return lines


def accuracy_report(
    out: Path, title: str, protocol: dict[str, Any], summary: dict[str, Any], examples: list[dict]
) -> Path:
    """QA and public-benchmark reports: accuracy per category with intervals, unparseable counts."""
    cats = summary["per_category"]
    names = list(cats)
    fig_path = bar_plot(
        out / "accuracy_per_category.png",
        names,
        [cats[c]["rate"] for c in names],
        [cats[c]["ci95"] for c in names],
        f"{title}: accuracy per category (95% Wilson CI)",
        "accuracy",
    )
    ov = summary["overall"]
    lines = [
        f"# {title}",
        "",
        f"**Accuracy {ov['successes']}/{ov['episodes']} = {_pct(ov['rate'])}** (95% CI {_ci(ov)}); "
        f"unparseable answers: {summary['unparseable']} (counted as wrong)",
        "",
    ]
    for key, value in summary.get("headline", {}).items():
        lines.append(f"- {key}: {_pct(value) if isinstance(value, float) else value}")
    lines += [
        "",
        "## Protocol",
        *_protocol_lines(protocol),
        "",
        "## Per category",
        "",
    ]
    blind = all("blind" in cats[c] for c in names)
    if blind:
        lines += [
            "A category is evidence of seeing only where the model's 95% interval lies above "
            "its blind baseline (the training split's typical answer, no image).",
            "",
            "| category | correct | 95% CI | unparseable | blind baseline | evidence |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines += ["| category | correct | 95% CI | unparseable |", "|---|---|---|---|"]
    for c in names:
        b = cats[c]
        row = (
            f"| {c} | {b['successes']}/{b['episodes']} ({_pct(b['rate'])}) | {_ci(b)} | "
            f"{b['unparseable']} |"
        )
        if blind:
            row += f" {_pct(b['blind']['rate'])} | {'yes' if b['evidence'] else 'no'} |"
        lines.append(row)
    lines += ["", f"![accuracy per category]({fig_path.name})", ""]
    if examples:
        lines += ["## Examples of wrong or unparseable answers", ""]
        for e in examples:
            ans = str(e["prediction"]).replace("\n", " ")[:160]
            lines.append(
                f"- [{e['category']}] {e['question'][:120]!r} -> {ans!r} "
                f"({e['status']}; expected {json.dumps(e['expected'])[:100]})"
            )
        lines.append("")
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def depth_grid(path: Path, items: list[dict[str, Any]]) -> Path:
    """Rows of RGB | ground truth | prediction | |error|, one shared colour scale per row."""
    n = len(items)
    fig, axes = plt.subplots(n, 4, figsize=(9, 2.3 * n + 0.3), squeeze=False)
    for row, it in zip(axes, items, strict=True):
        gt, pred = it["gt"], it["pred"]
        valid = gt > 0
        vmax = float(np.percentile(gt[valid], 99)) if valid.any() else 1.0
        vmin = float(gt[valid].min()) if valid.any() else 0.0
        row[0].imshow(it["rgb"])
        row[0].set_title(it["name"][-28:], fontsize=7)
        row[1].imshow(np.where(valid, gt, np.nan), vmin=vmin, vmax=vmax, cmap="viridis")
        row[1].set_title("ground truth (m)", fontsize=8)
        im = row[2].imshow(pred, vmin=vmin, vmax=vmax, cmap="viridis")
        row[2].set_title(f"prediction, AbsRel {it['abs_rel']:.3f}", fontsize=8)
        row[3].imshow(np.where(valid, np.abs(pred - gt), np.nan), cmap="magma")
        row[3].set_title("|error| (m)", fontsize=8)
        for ax in row:
            ax.axis("off")
        fig.colorbar(im, ax=row[2], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def depth_report(
    out: Path, protocol: dict[str, Any], summary: dict[str, Any], grid: Path | None
) -> Path:
    m, base = summary["metrics"], summary["mean_depth_baseline"]
    lines = [
        "# Depth evaluation",
        "",
        f"**AbsRel {m['abs_rel']:.4f}, delta<1.25 {_pct(m['delta1'])}** on {m['images']} images "
        f"(valid ground-truth pixels only; per-image metrics averaged).",
        "",
        f"Reference: predicting each image's own mean depth everywhere gives AbsRel "
        f"{base['abs_rel']:.4f}, delta<1.25 {_pct(base['delta1'])}.",
        "",
        "## Per camera",
        "",
        "| camera | images | AbsRel | delta<1.25 |",
        "|---|---|---|---|",
    ]
    for cam, b in summary["per_camera"].items():
        lines.append(f"| {cam} | {b['images']} | {b['abs_rel']:.4f} | {_pct(b['delta1'])} |")
    lines += ["", "## Protocol", *_protocol_lines(protocol), ""]
    if grid is not None:
        lines += [f"![prediction vs ground truth]({grid.name})", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
