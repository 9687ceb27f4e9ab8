"""From every arm's outcomes to the claims' verdicts: means over seeds, intervals, paired tests.

Each arm is measured once per training seed on the same items (the same QA questions, test
layouts and held-out views). So a claim's two arms are compared on paired items:

- a success or a correct answer is paired by (seed, item) and tested with McNemar's exact test
  (a binomial test on the discordant pairs);
- a per-image depth error is paired the same way and tested with Wilcoxon's signed-rank test.

Ours per arm is the mean over seeds with a Student-t 95 % interval (none with one seed), and the
pooled rate with its Wilson interval. A claim *reproduces* where the paper's better arm is better
here with p < 0.05; otherwise the verdict says which way the difference went and that it is not
significant, or that it is reversed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from embodia.configs.reproduce import ClaimConfig, ReproduceRecipe
from embodia.evaluation.stats import rate_summary

ALPHA = 0.05


# ---------------------------------------------------------------------- one metric of one arm


def metric_items(record: dict[str, Any], metric: str) -> dict[str, float] | None:
    """``{item id: outcome}`` of one arm at one seed (1/0 for success or correct, AbsRel for
    depth); None where the arm has no such evaluation (e.g. depth of the RGB arm)."""
    kind, _, arg = metric.partition(":")
    evals = record["evaluations"]
    if kind.split("@", 1)[0] == "rollout":  # rollout[@held-out][:<task>]
        if kind not in evals:
            return None
        return {
            i["id"]: float(i["success"])
            for i in evals[kind]["items"]
            if not arg or i["task"] == arg
        }
    if kind in ("qa", "largest_drop"):
        if "qa" not in evals:
            return None
        prefix = arg if kind == "qa" else ""
        return {
            i["id"]: float(i["correct"])
            for i in evals["qa"]["items"]
            if i["category"].startswith(prefix)
        }
    if kind == "depth":
        if "depth" not in evals:
            return None
        return {i["id"]: float(i[arg or "abs_rel"]) for i in evals["depth"]["items"]}
    raise ValueError(f"unknown metric {metric!r}")


def lower_is_better(metric: str) -> bool:
    return metric.startswith("depth:") and metric.split(":", 1)[1] in ("abs_rel", "rmse")


def over_seeds(values: list[float]) -> dict[str, Any]:
    """Mean over seeds and its Student-t 95 % interval (None with a single seed)."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return {"mean": mean, "ci95": None, "per_seed": arr.tolist()}
    half = float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return {"mean": mean, "ci95": [mean - half, mean + half], "per_seed": arr.tolist()}


def arm_metric(records: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """One arm's value of a metric: per seed, the mean over seeds and (for rates) pooled."""
    per_seed = [metric_items(r, metric) for r in records]
    if any(p is None for p in per_seed):
        return None
    out = over_seeds([float(np.mean(list(p.values()))) if p else float("nan") for p in per_seed])
    out["seeds"] = [r["seed"] for r in records]
    if not metric.startswith("depth"):
        hits = sum(int(sum(p.values())) for p in per_seed)
        out["pooled"] = rate_summary(hits, sum(len(p) for p in per_seed))
    return out


# ---------------------------------------------------------------------- two arms


def paired_test(
    a: list[dict[str, float]], b: list[dict[str, float]], metric: str
) -> dict[str, Any]:
    """The paired test of arm ``a`` against arm ``b`` over items shared at each seed."""
    from scipy import stats

    pairs = [(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in sorted(x.keys() & y.keys())]
    if not pairs:
        return {"test": "none", "pairs": 0, "p_value": None}
    if metric.startswith("depth"):
        diffs = np.asarray([p - q for p, q in pairs])
        if not np.any(diffs):
            return {"test": "Wilcoxon signed-rank", "pairs": len(pairs), "p_value": 1.0}
        res = stats.wilcoxon(diffs)
        return {
            "test": "Wilcoxon signed-rank (per image, paired by seed)",
            "pairs": len(pairs),
            "median_difference": float(np.median(diffs)),
            "p_value": float(res.pvalue),
        }
    only_a = sum(1 for p, q in pairs if p > q)
    only_b = sum(1 for p, q in pairs if q > p)
    n = only_a + only_b
    p_value = float(stats.binomtest(only_a, n, 0.5).pvalue) if n else 1.0
    return {
        "test": "McNemar exact (paired by seed and item)",
        "pairs": len(pairs),
        "only_arm": only_a,
        "only_baseline": only_b,
        "p_value": p_value,
    }


def verdict(difference: float, p_value: float | None, lower_better: bool) -> str:
    better = difference < 0 if lower_better else difference > 0
    if p_value is None:
        return "not measured"
    if difference == 0:
        return "no difference"
    if p_value < ALPHA:
        return "reproduces" if better else "reversed: the baseline is better"
    return (
        "not significant, same direction as the paper"
        if better
        else "not significant, opposite direction"
    )


def evaluate_claim(claim: ClaimConfig, by_arm: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    arm, base = by_arm[claim.arm], by_arm[claim.baseline]
    kind, _, arg = claim.metric.partition(":")
    out: dict[str, Any] = {
        "name": claim.name,
        "paper": claim.paper,
        "metric": claim.metric,
        "arm": claim.arm,
        "baseline": claim.baseline,
    }
    if kind == "largest_drop":
        return {**out, **_largest_drop(arg, arm, base)}
    metric = claim.metric
    a, b = arm_metric(arm, metric), arm_metric(base, metric)
    if a is None or b is None:
        return {**out, "verdict": "not measured", "summary": "an arm lacks this evaluation"}
    diff = over_seeds([x - y for x, y in zip(a["per_seed"], b["per_seed"], strict=True)])
    test = paired_test(
        [metric_items(r, metric) for r in arm], [metric_items(r, metric) for r in base], metric
    )
    v = verdict(diff["mean"], test["p_value"], lower_is_better(metric))
    return {
        **out,
        "ours": {claim.arm: a, claim.baseline: b},
        "difference": diff,
        "paired_test": test,
        "verdict": v,
        "summary": _claim_line(claim, a, b, diff, test, metric),
    }


def _tasks(records: list[dict[str, Any]], key: str) -> list[str]:
    """The tasks a rollout evaluation covered, in the order it ran them."""
    items = (i for r in records for i in r["evaluations"].get(key, {}).get("items", []))
    return list(dict.fromkeys(i["task"] for i in items))


def instruction_following(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """What one arm's episodes did over every seed: per instruction (task), the goal each
    episode reached first (the confusion between instructions from the same start), and the
    share of its predicted subtasks that named the expert's subtask for the state."""
    items = [i for r in records for i in r["evaluations"].get(key, {}).get("items", [])]
    confusion: dict[str, dict[str, int]] = {}
    for i in items:
        row = confusion.setdefault(i["task"], {})
        outcome = i.get("outcome") or "none"
        row[outcome] = row.get(outcome, 0) + 1
    out: dict[str, Any] = {"confusion": confusion}
    queries = sum(i.get("subtask_queries", 0) for i in items)
    if queries:
        matches = sum(i.get("subtask_matches", 0) for i in items)
        out["subtask_accuracy"] = rate_summary(matches, queries)
    return out


def _largest_drop(category: str, arm: list[dict], base: list[dict]) -> dict[str, Any]:
    """Which QA category the baseline loses most against the arm (e.g. GEM: removing depth
    hurts distance most); the named category's drop is tested as a paired claim."""
    cats = sorted({i["category"] for r in arm for i in r["evaluations"]["qa"]["items"]})
    drops = {}
    for c in cats:
        a, b = arm_metric(arm, f"qa:{c}"), arm_metric(base, f"qa:{c}")
        drops[c] = over_seeds([x - y for x, y in zip(a["per_seed"], b["per_seed"], strict=True)])
    largest = max(drops, key=lambda c: drops[c]["mean"])
    test = paired_test(
        [metric_items(r, f"qa:{category}") for r in arm],
        [metric_items(r, f"qa:{category}") for r in base],
        "qa",
    )
    named = drops.get(category)
    if named is None:
        v = "not measured"
    elif drops[largest]["mean"] <= 0:
        v = "does not reproduce: no category loses accuracy"
    elif largest == category and named["mean"] > 0 and test["p_value"] < ALPHA:
        v = "reproduces"
    elif largest == category and named["mean"] > 0:
        v = "largest drop, not significant"
    else:
        v = f"does not reproduce: the largest drop is {largest}"
    summary = ", ".join(f"{c} {100 * d['mean']:+.1f}" for c, d in drops.items())
    return {
        "drops": drops,
        "largest": largest,
        "paired_test": test,
        "verdict": v,
        "summary": f"accuracy lost without the objective, points: {summary}",
    }


def _claim_line(claim, a, b, diff, test, metric) -> str:
    scale, unit = (1, "") if metric.startswith("depth") else (100, "%")

    def fmt(m):
        ci = m["ci95"]
        ci_s = f" ({scale * ci[0]:.1f}-{scale * ci[1]:.1f})" if ci else ""
        return f"{scale * m['mean']:.{3 if scale == 1 else 1}f}{unit}{ci_s}"

    p = test["p_value"]
    return (
        f"{claim.arm} {fmt(a)} vs {claim.baseline} {fmt(b)}; difference "
        f"{scale * diff['mean']:+.{3 if scale == 1 else 1}f}, {test['test']} p = "
        f"{'n/a' if p is None else f'{p:.3g}'}"
    )


# ---------------------------------------------------------------------- the whole run


def analyse(
    recipe: ReproduceRecipe, records: list[dict[str, Any]], out: Path, data: Path
) -> dict[str, Any]:
    """Every number of the run; writes ``results.json`` (no wall times: see timings.json)."""
    from embodia.evaluation.protocol import package_versions
    from embodia.utils.fs import atomic_write_text

    by_arm: dict[str, list[dict[str, Any]]] = {a.name: [] for a in recipe.arms}
    for r in records:
        by_arm[r["arm"]].append(r)
    rollouts = [e.key for e in recipe.evaluations if e.kind == "rollout"]
    metrics = [*rollouts, "qa", "qa:spatial", "depth:abs_rel", "depth:delta1"]
    categories = sorted(
        {i["category"] for r in records for i in r["evaluations"].get("qa", {}).get("items", [])}
    )
    metrics += [f"qa:{c}" for c in categories]
    metrics += [f"{key}:{task}" for key in rollouts for task in _tasks(records, key)]
    arms = {}
    for name, recs in by_arm.items():
        arms[name] = {
            "description": recipe.arm(name).description,
            "depth_objective": recipe.arm(name).depth_objective,
            "metrics": {m: v for m in metrics if (v := arm_metric(recs, m)) is not None},
            "instruction_following": {key: instruction_following(recs, key) for key in rollouts},
            "per_seed": {
                str(r["seed"]): {
                    "checkpoints": r["checkpoints"],
                    "commit": r.get("commit"),
                    "evaluations": {k: v["results"] for k, v in r["evaluations"].items()},
                }
                for r in recs
            },
        }
    results = {
        "kind": "reproduce",
        "recipe": recipe.to_dict(),
        "protocol": _protocol(recipe, data, records),
        "versions": {k: v for k, v in package_versions().items() if k != "embodia_git"},
        "commits": sorted({r.get("commit") or "unknown" for r in records}),
        "machines": sorted({r.get("machine") or "unknown" for r in records}),
        "arms": arms,
        "claims": [evaluate_claim(c, by_arm) for c in recipe.claims],
    }
    atomic_write_text(
        out / "results.json", json.dumps(results, indent=2, allow_nan=False, default=str) + "\n"
    )
    return results


def _protocol(recipe: ReproduceRecipe, data: Path, records: list[dict]) -> dict[str, Any]:
    engine = json.loads((Path(data) / "engine.json").read_text()).get("config", {})
    return {
        "data": {"path": str(data), "engine": engine},
        "same_for_every_arm": "data, test layouts, QA questions, held-out views, training seeds, "
        "batch size, preset, evaluation settings",
        "evaluations": [
            f"{e.key}: {e.kind} on the checkpoint after "
            + (f"stage {e.after}" if e.after else "the arm's last stage")
            + (f", instructions {e.instructions}" if e.kind == "rollout" else "")
            for e in recipe.evaluations
        ],
        "statistics": "per arm: mean over training seeds with a Student-t 95% interval, and the "
        "pooled rate with a Wilson 95% interval; between arms: McNemar's exact test on outcomes "
        "paired by seed and item (Wilcoxon's signed-rank test for per-image depth errors); "
        f"a claim reproduces where p < {ALPHA} in the paper's direction",
        "seeds": list(recipe.seeds),
    }
