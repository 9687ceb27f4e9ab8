"""report.md of a reproduction: one table per claim (the paper's figure, ours per arm over seeds,
the difference and its paired test, the verdict), an overview of every arm, and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embodia.configs.reproduce import ReproduceRecipe
from embodia.data.engine.tasks import rivals
from embodia.utils.fs import atomic_write_text


def _value(m: dict[str, Any] | None, metric: str) -> str:
    if m is None:
        return "-"
    depth = metric.startswith("depth")
    scale, digits, unit = (1, 3, "") if depth else (100, 1, "%")
    text = f"{scale * m['mean']:.{digits}f}{unit}"
    if m.get("ci95"):
        lo, hi = m["ci95"]
        text += f" ({scale * lo:.{digits}f}-{scale * hi:.{digits}f})"
    return text


def _signed(m: dict[str, Any], metric: str) -> str:
    scale, digits = (1, 3) if metric.startswith("depth") else (100, 1)
    text = f"{scale * m['mean']:+.{digits}f}"
    if m.get("ci95"):
        lo, hi = m["ci95"]
        text += f" ({scale * lo:+.{digits}f} to {scale * hi:+.{digits}f})"
    return text


def _seeds(m: dict[str, Any] | None, metric: str) -> str:
    if m is None:
        return "-"
    scale, digits = (1, 3) if metric.startswith("depth") else (100, 1)
    return " / ".join(f"{scale * v:.{digits}f}" for v in m["per_seed"])


def _pooled(m: dict[str, Any] | None) -> str:
    if not m or "pooled" not in m:
        return "-"
    p = m["pooled"]
    lo, hi = p["ci95"]
    return f"{p['successes']}/{p['episodes']} ({100 * lo:.1f}-{100 * hi:.1f})"


def _read_timings(out: Path) -> dict[str, float]:
    import json

    try:
        return json.loads((out / "timings.json").read_text())
    except (OSError, ValueError):
        return {}


def claim_table(claim: dict[str, Any]) -> list[str]:
    lines = [f"### {claim['name']}", "", f"Paper: {claim['paper']}.", ""]
    if "drops" in claim:
        lines += [
            f"Accuracy lost from `{claim['arm']}` to `{claim['baseline']}`, points (mean over "
            "seeds, 95% interval):",
            "",
            "| category | drop | per seed |",
            "|---|---|---|",
        ]
        for cat, d in claim["drops"].items():
            mark = " **(largest)**" if cat == claim["largest"] else ""
            lines.append(f"| {cat}{mark} | {_signed(d, 'qa')} | {_seeds(d, 'qa')} |")
    elif "ours" in claim:
        metric = claim["metric"]
        lines += [
            f"Metric: `{metric}`.",
            "",
            "| arm | mean over seeds (95% interval) | per seed | pooled (Wilson 95%) |",
            "|---|---|---|---|",
        ]
        for arm in (claim["arm"], claim["baseline"]):
            m = claim["ours"][arm]
            lines.append(f"| {arm} | {_value(m, metric)} | {_seeds(m, metric)} | {_pooled(m)} |")
        d = claim["difference"]
        unit = "" if metric.startswith("depth") else " points"
        lines.append(f"| difference | {_signed(d, metric)}{unit} | {_seeds(d, metric)} | |")
    test = claim.get("paired_test")
    if test and test.get("p_value") is not None:
        extra = (
            f" (only {claim['arm']}: {test['only_arm']}, only {claim['baseline']}: "
            f"{test['only_baseline']})"
            if "only_arm" in test
            else ""
        )
        lines += [
            "",
            f"Paired test: {test['test']}, {test['pairs']} pairs{extra}, "
            f"p = {test['p_value']:.3g}.",
        ]
    lines += ["", f"**Verdict: {claim['verdict']}.**", ""]
    return lines


def instruction_tables(results: dict[str, Any]) -> list[str]:
    """Per rollout evaluation: success per instruction for every arm (mean over seeds), the
    confusion between instructions (pooled episodes; rows asked, columns goal reached) and the
    chain of thought's subtask accuracy, where the episodes could do another task."""
    lines: list[str] = []
    arms = results["arms"]
    keys = list(dict.fromkeys(k for a in arms.values() for k in a.get("instruction_following", {})))
    for key in keys:
        tables = {n: a["instruction_following"][key] for n, a in arms.items()}
        reached = {o for t in tables.values() for row in t["confusion"].values() for o in row}
        tasks = list(dict.fromkeys(t for tab in tables.values() for t in tab["confusion"]))
        if all(len(rivals(t)) == 1 for t in tasks):
            continue  # no start admits another task: success says it all
        where = "instructions as in training" if "@" not in key else "held-out paraphrases"
        lines += [f"### `{key}`: {where}", "", "Success per instruction (mean over seeds):", ""]
        lines += ["| instruction | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
        for task in tasks:
            cells = [_value(a["metrics"].get(f"{key}:{task}"), "rollout") for a in arms.values()]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        columns = [*tasks, *sorted(reached - {*tasks, "none"}), "none"]
        for name, tab in tables.items():
            lines += [
                "",
                f"`{name}`: goal reached first, episodes pooled over seeds (rows: the "
                "instruction given; off the diagonal the robot did what another instruction "
                "asks):",
                "",
                "| instruction | " + " | ".join(columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            for task in tasks:
                row = tab["confusion"].get(task, {})
                lines.append(
                    f"| {task} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |"
                )
            acc = tab.get("subtask_accuracy")
            if acc:
                lo, hi = acc["ci95"]
                lines += [
                    "",
                    f"Subtask accuracy (predicted subtask = the expert's for the state): "
                    f"{acc['successes']}/{acc['episodes']} = {100 * acc['rate']:.1f}% "
                    f"({100 * lo:.1f}-{100 * hi:.1f}).",
                ]
        lines.append("")
    return lines


def overview(results: dict[str, Any]) -> list[str]:
    metrics = [
        *dict.fromkeys(
            m
            for a in results["arms"].values()
            for m in a["metrics"]
            if m.startswith("rollout") and ":" not in m
        ),
        "qa",
        "qa:spatial",
        "depth:abs_rel",
    ]
    lines = [
        "| arm | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name, arm in results["arms"].items():
        cells = [_value(arm["metrics"].get(m), m) for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cats = sorted(
        {
            m.removeprefix("qa:")
            for a in results["arms"].values()
            for m in a["metrics"]
            if m.startswith("qa:") and "/" in m
        }
    )
    if not cats:  # no QA evaluation in this recipe: no per-category table to show
        return lines
    lines += [
        "",
        "QA per category (mean over seeds):",
        "",
        "| arm | " + " | ".join(cats) + " |",
        "|---|" + "---|" * len(cats),
    ]
    for name, arm in results["arms"].items():
        cells = [
            f"{100 * arm['metrics'][f'qa:{c}']['mean']:.1f}%"
            if f"qa:{c}" in arm["metrics"]
            else "-"
            for c in cats
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot_claims(results: dict[str, Any], out: Path) -> list[Path]:
    """One figure per compared claim: each arm's mean, its 95% interval and its seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for i, claim in enumerate(results["claims"]):
        if "ours" not in claim:
            continue
        metric = claim["metric"]
        scale = 1 if metric.startswith("depth") else 100
        fig, ax = plt.subplots(figsize=(4, 3))
        for x, arm in enumerate((claim["arm"], claim["baseline"])):
            m = claim["ours"][arm]
            ax.bar(x, scale * m["mean"], color=("tab:blue", "tab:gray")[x], alpha=0.7)
            if m.get("ci95"):
                lo, hi = m["ci95"]
                ax.errorbar(
                    x,
                    scale * m["mean"],
                    yerr=[[scale * (m["mean"] - lo)], [scale * (hi - m["mean"])]],
                    color="k",
                    capsize=4,
                )
            ax.scatter(
                [x] * len(m["per_seed"]),
                [scale * v for v in m["per_seed"]],
                color="k",
                s=12,
                zorder=3,
            )
        ax.set_xticks([0, 1], [claim["arm"], claim["baseline"]])
        ax.set_ylabel(metric + ("" if scale == 1 else " (%)"))
        ax.set_title(claim["name"], fontsize=8)
        fig.tight_layout()
        path = out / "plots" / f"claim-{i + 1}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(recipe: ReproduceRecipe, results: dict[str, Any], out: Path) -> Path:
    plots = plot_claims(results, out)
    seeds = results["recipe"]["seeds"]
    timings = _read_timings(out)
    train_s = sum(v for k, v in timings.items() if k.endswith("/train_s"))
    total_s = sum(timings.values())
    lines = [
        f"# embodia reproduce: `{recipe.name}`",
        "",
        recipe.description,
        "",
        f"Budget `{recipe.budget}`; {len(recipe.arms)} arms x {len(seeds)} training seed(s) "
        f"({', '.join(map(str, seeds))}); commits {', '.join(results['commits'])}; trained on "
        f"{', '.join(results.get('machines') or ['unknown'])}.",
        "",
        f"**Scale.** {recipe.scale}",
        "",
        f"Wall time {total_s / 3600:.2f} h in all, of which training {train_s / 3600:.2f} h "
        "(the sum over every part run, across stops and resumes; timings.json).",
        "",
        "## Arms",
        "",
        "| arm | objective | stages (steps) | what it is |",
        "|---|---|---|---|",
    ]
    for a in recipe.arms:
        stages = ", ".join(f"{s.name} {s.steps}" for s in a.stages)
        lines.append(f"| {a.name} | {a.depth_objective} | {stages} | {a.description} |")
    lines += ["", "## Claims", ""]
    for claim in results["claims"]:
        lines += claim_table(claim)
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plots] + [""]
    following = instruction_tables(results)
    if following:
        lines += ["## Instruction following", "", *following]
    lines += ["## Every arm", "", *overview(results), "", "## Protocol", ""]
    for k, v in results["protocol"].items():
        if k != "data":
            lines.append(f"- {k}: {v}")
    lines += [
        f"- data: {results['protocol']['data']['path']}",
        "",
        "Every number is in [results.json](results.json); wall times in "
        "[timings.json](timings.json); each arm's own reports under `arms/<arm>/seed-<s>/eval/`.",
        "",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
