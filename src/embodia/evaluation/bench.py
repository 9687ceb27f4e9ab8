"""``embodia eval bench``: run a checkpoint on CV-Bench or Where2Place from local files."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from embodia.configs.eval import BenchConfig
from embodia.evaluation import public
from embodia.evaluation.qa import stratified
from embodia.evaluation.stats import rate_summary


def _mean_block(scores: list[float]) -> dict[str, Any]:
    """Mean of per-question scores in [0, 1] with a normal 95% interval (Where2Place's scores
    are fractions, not successes; for 0/1 scores this is close to Wilson's for large n)."""
    n = len(scores)
    mean = sum(scores) / n if n else float("nan")
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n) if n else 0.0
    return {
        "successes": round(sum(scores), 3),
        "episodes": n,
        "rate": mean,
        "ci95": [max(0.0, mean - half), min(1.0, mean + half)],
    }


def summarize_bench(records: list[dict[str, Any]], fractional: bool) -> dict[str, Any]:
    def block(rs):
        if fractional:
            return _mean_block([r["score"] for r in rs])
        return rate_summary(int(sum(r["score"] for r in rs)), len(rs))

    per_cat = {}
    for cat in sorted({r["category"] for r in records}):
        rs = [r for r in records if r["category"] == cat]
        per_cat[cat] = {**block(rs), "unparseable": sum(r["status"] == "unparseable" for r in rs)}
    return {
        "overall": block(records),
        "unparseable": sum(r["status"] == "unparseable" for r in records),
        "per_category": per_cat,
    }


def run_bench(cfg: BenchConfig) -> Path:
    from embodia.evaluation.answerer import Answerer
    from embodia.evaluation.protocol import checkpoint_info, config_dict, write_results
    from embodia.evaluation.report import accuracy_report

    if cfg.benchmark == "cvbench":
        items = public.load_cvbench(cfg.data)
    else:
        items = public.load_where2place(cfg.data)
    items = stratified(items, cfg.limit, key=lambda it: it.category)
    model = Answerer(cfg.checkpoint, cfg.device)
    records = []
    t0 = time.perf_counter()
    for it in items:
        image = it.load_image()
        text = model.answer({"image": image}, it.prompt, cfg.max_new_tokens)
        if cfg.benchmark == "cvbench":
            score, status, parsed = public.score_cvbench(it, text)
            extra = {"source": it.truth["source"]}
        else:
            size = (image.shape[1], image.shape[0])
            score, status, parsed = public.score_where2place(it, text, size, cfg.coordinates)
            extra = {}
        records.append(
            {
                "id": it.id,
                "category": it.category,
                "prediction": text,
                "parsed": parsed,
                "score": score,
                "status": status,
                **extra,
            }
        )
    summary = summarize_bench(records, fractional=cfg.benchmark == "where2place")
    if cfg.benchmark == "cvbench":
        summary["headline"] = public.cvbench_headline(records)
    summary["timing"] = {"wall_s": time.perf_counter() - t0, "questions": len(records)}
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r, default=str) + "\n")
    protocol = {
        "config": config_dict(cfg),
        "checkpoint": checkpoint_info(model.checkpoint),
        "benchmark": cfg.benchmark,
        "data": str(cfg.data),
        "questions": len(records),
        "decoding": f"greedy, at most {cfg.max_new_tokens} new tokens",
        "scoring": "letter (or choice text) == answer"
        if cfg.benchmark == "cvbench"
        else "mean mask value at the predicted points (RoboPoint's rule)",
    }
    write_results(out, f"bench-{cfg.benchmark}", protocol, summary)
    bad = [
        {"question": it.prompt, "expected": _expected(it), **r}
        for it, r in zip(items, records, strict=True)
        if r["status"] != "correct"
    ][:8]
    title = "CV-Bench" if cfg.benchmark == "cvbench" else "Where2Place"
    accuracy_report(out, title, protocol, summary, bad)
    ov = summary["overall"]
    print(f"{title}: {ov['rate']:.1%} on {ov['episodes']} questions; wrote {out / 'report.md'}")
    return out


def _expected(item: public.BenchItem) -> Any:
    if "index" in item.truth:
        return f"({public.LETTERS[item.truth['index']]})"
    return str(item.truth.get("mask"))
