"""``embodia eval qa``: grounding, spatial reasoning and planning on held-out conversations.

Questions come from a data-engine dataset's ``conversations/<split>.jsonl`` (default ``test``:
episodes whose layouts no training episode had). Each is asked with its single image, the answer
scored by :mod:`embodia.evaluation.scoring` against the stored exact answer and tolerance.
Accuracy per category (``grounding/point``, ``spatial/distance``, ...) with Wilson intervals;
unparseable answers are wrong and counted. Every prediction goes to ``predictions.jsonl``.

Beside each category stands its blind baseline (:mod:`embodia.evaluation.blind`: the training
split's typical answer to the same question, no image), and whether the model beats it: only
then does the category say anything about seeing.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from embodia.configs.eval import QAConfig
from embodia.data.conversations import read_conversations
from embodia.evaluation.blind import AnswerPrior, beats_blind
from embodia.evaluation.scoring import UNPARSEABLE, score_engine_answer
from embodia.evaluation.stats import rate_summary


def load_rows(dataset: Path, split: str) -> list[dict[str, Any]]:
    path = Path(dataset) / "conversations" / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no conversation split {split!r} in {dataset}")
    return [
        row for _, row in read_conversations(path, ("image", "conversations", "category", "answer"))
    ]


def stratified(rows: list[dict], limit: int | None, key=lambda r: _category(r)) -> list[dict]:
    """At most ``limit`` rows, taken round-robin over categories (file order within each), so a
    small limit still covers every category."""
    if limit is None or limit >= len(rows):
        return rows
    pools: OrderedDict[str, list[dict]] = OrderedDict()
    for r in rows:
        pools.setdefault(key(r), []).append(r)
    out: list[dict] = []
    while len(out) < limit:
        for pool in pools.values():
            if pool and len(out) < limit:
                out.append(pool.pop(0))
    return out


def _category(row: dict[str, Any]) -> str:
    return f"{row.get('task_type', 'qa')}/{row['category']}"


def question_text(row: dict[str, Any]) -> str:
    return row["conversations"][0]["value"].replace("<image>", "").strip()


def summarize_scores(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per category and per task type, overall, and unparseable counts; where the
    records carry ``blind`` (the blind baseline's verdict), its accuracy and whether the model
    beats it (``evidence``)."""
    per_cat: dict[str, Any] = {}
    for cat in sorted({r["category"] for r in records}):
        rs = [r for r in records if r["category"] == cat]
        per_cat[cat] = {
            **rate_summary(sum(r["status"] == "correct" for r in rs), len(rs)),
            "unparseable": sum(r["status"] == UNPARSEABLE for r in rs),
        }
        if all("blind" in r for r in rs):
            blind = rate_summary(sum(bool(r["blind"]) for r in rs), len(rs))
            per_cat[cat]["blind"] = blind
            per_cat[cat]["evidence"] = beats_blind(per_cat[cat], blind["rate"])
    headline = {}
    for group in sorted({c.split("/")[0] for c in per_cat}):
        rs = [r for r in records if r["category"].split("/")[0] == group]
        headline[f"{group} accuracy"] = sum(r["status"] == "correct" for r in rs) / len(rs)
    return {
        "overall": rate_summary(sum(r["status"] == "correct" for r in records), len(records)),
        "unparseable": sum(r["status"] == UNPARSEABLE for r in records),
        "per_category": per_cat,
        "headline": headline,
    }


def run_qa(cfg: QAConfig) -> Path:
    from embodia.evaluation.answerer import Answerer
    from embodia.evaluation.protocol import checkpoint_info, config_dict, write_results
    from embodia.evaluation.report import accuracy_report

    rows = stratified(load_rows(cfg.dataset, cfg.split), cfg.limit)
    prior = _blind_prior(cfg)
    engine = _engine_config(cfg.dataset)
    model = Answerer(cfg.checkpoint, cfg.device)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    t0 = time.perf_counter()
    conv = Path(cfg.dataset) / "conversations"
    for row in _progress(rows):
        image = np.asarray(Image.open(conv / row["image"]).convert("RGB"))
        question = question_text(row)
        text = model.answer({row.get("camera", "image"): image}, question, cfg.max_new_tokens)
        score = score_engine_answer(row, text)
        records.append(
            {
                "category": _category(row),
                "image": row["image"],
                "question": question,
                "expected": row["answer"],
                "tolerance": row.get("tolerance"),
                "prediction": text,
                "parsed": score.parsed,
                "status": score.status,
                **({"blind": prior.correct(row)} if prior is not None else {}),
            }
        )
    summary = summarize_scores(records)
    summary["timing"] = {"wall_s": time.perf_counter() - t0, "questions": len(records)}
    with open(out / "predictions.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r, default=_plain) + "\n")
    protocol = {
        "config": config_dict(cfg),
        "checkpoint": checkpoint_info(model.checkpoint),
        "dataset": str(cfg.dataset),
        "split": cfg.split,
        "questions": len(records),
        "coordinates": engine.get("coordinates"),
        "image_size": engine.get("image_size"),
        "decoding": f"greedy, at most {cfg.max_new_tokens} new tokens",
        "scoring": "embodia.evaluation.scoring (point in box, IoU >= min_iou, value within "
        "max(abs, rel * truth), first-mentioned option, normalised subtask match)",
        "blind_baseline": (
            f"the {cfg.blind_split} split's typical answer per task, category and subject "
            "(embodia.evaluation.blind); evidence = the model's 95% CI lies above it"
            if prior is not None
            else "none"
        ),
    }
    write_results(out, "qa", protocol, summary)
    bad = [r for r in records if r["status"] != "correct"][: cfg.examples]
    accuracy_report(out, "Embodied QA", protocol, summary, bad)
    ov = summary["overall"]
    print(
        f"QA accuracy {ov['successes']}/{ov['episodes']} = {ov['rate']:.1%}, unparseable "
        f"{summary['unparseable']}; wrote {out / 'results.json'} and {out / 'report.md'}"
    )
    return out


def _blind_prior(cfg: QAConfig) -> AnswerPrior | None:
    if cfg.blind_split is None:
        return None
    try:
        return AnswerPrior(load_rows(cfg.dataset, cfg.blind_split))
    except FileNotFoundError as exc:
        print(f"no blind baseline: {exc}")
        return None


def _engine_config(dataset: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(dataset) / "engine.json").read_text())["config"]
    except (OSError, KeyError, json.JSONDecodeError):
        return {}


def _plain(x: Any) -> Any:
    if isinstance(x, tuple | np.ndarray):
        return list(x)
    return str(x)


def _progress(items):
    from tqdm import tqdm

    return tqdm(items, desc="questions", unit="q")
