"""Scoring one embodied-QA answer against the engine's structured exact answer.

Rules (the data engine stores the truth and tolerance with every question):

- grounding ``point``: correct if the point lies inside the object's box (``answer.box_2d``,
  the object's projected extent, in the dataset's coordinate system);
- grounding ``box``: IoU with the true box >= ``tolerance.min_iou`` (0.5);
- spatial ``distance`` / ``height``: |pred - truth| <= max(``abs``, ``rel`` * truth), with units
  read from the answer (m, cm, mm; m when none);
- spatial ``depth_order`` / ``relation``: the option mentioned first is the true one (options are
  read from the question: the two things compared, or left / right); a full order must list every
  thing in the true order;
- planning ``next_subtask``: the normalised text equals the true subtask; ``plan``: every step, in
  order.

An answer with nothing of the asked form is *unparseable*: wrong, and counted separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from embodia.evaluation import answers as A

CORRECT, WRONG, UNPARSEABLE = "correct", "wrong", "unparseable"


@dataclass
class Score:
    status: str
    parsed: Any = None

    @property
    def correct(self) -> bool:
        return self.status == CORRECT


def _ok(flag: bool, parsed: Any) -> Score:
    return Score(CORRECT if flag else WRONG, parsed)


def box_iou(a, b) -> float:
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def within(value: float, truth: float, tol: dict[str, float] | None) -> bool:
    tol = tol or {}
    allowed = max(float(tol.get("abs", 0.0)), float(tol.get("rel", 0.0)) * abs(truth))
    return abs(value - truth) <= allowed + 1e-12


def _label_name(label: str) -> str:
    return re.sub(r"^the\s+", "", label.strip().rstrip(".?"), flags=re.I)


def _compared_pair(question: str) -> list[str] | None:
    m = re.search(r",\s*(.+?)\s+or\s+(.+?)\?", question)
    return [_label_name(m.group(1)), _label_name(m.group(2))] if m else None


def _true_option(name: str, options: list[str]) -> str | None:
    """The question's wording of thing ``name``: regions are asked as "the target location"."""
    if name in options:
        return name
    rest = [o for o in options if o == "target location"]
    return rest[0] if rest else None


def score_engine_answer(row: dict[str, Any], text: str) -> Score:
    """Score the model's ``text`` for one conversation row of a data-engine dataset."""
    cat, truth, tol = row.get("category"), row.get("answer") or {}, row.get("tolerance")
    question = row["conversations"][0]["value"].replace("<image>", "").strip()
    if cat == "point":
        p = A.parse_point(text)
        if p is None:
            return Score(UNPARSEABLE)
        x1, y1, x2, y2 = truth["box_2d"]
        return _ok(x1 <= p[0] <= x2 and y1 <= p[1] <= y2, p)
    if cat == "box":
        b = A.parse_box(text)
        if b is None:
            return Score(UNPARSEABLE)
        return _ok(box_iou(b, truth["bbox_2d"]) >= float((tol or {}).get("min_iou", 0.5)), b)
    if cat in ("distance", "height"):
        v = A.parse_value(text)
        if v is None:
            return Score(UNPARSEABLE)
        return _ok(within(v, float(truth["value"]), tol), v)
    if "order" in truth:
        m = re.search(r":\s*(.+?)\.?\s*$", question)
        labels = [_label_name(x) for x in m.group(1).split(",")] if m else []
        want = [_true_option(n, labels) for n in truth["order"]]
        got = A.mention_order(text, labels) if labels else None
        if got is None:
            return Score(UNPARSEABLE)
        return _ok(got == want, got)
    if "choice" in truth:
        choice = truth["choice"]
        if choice in ("left", "right"):
            options = ["left", "right"]
            want = choice
        else:
            options = _compared_pair(question) or [choice]
            want = _true_option(choice, options)
        got = A.first_mention(text, options)
        if got is None:
            return Score(UNPARSEABLE)
        return _ok(got == want, got)
    if "subtask" in truth:
        got = A.normalize_text(text)
        if not got:
            return Score(UNPARSEABLE)
        return _ok(got == A.normalize_text(truth["subtask"]), got)
    if "subtasks" in truth:
        steps = [
            A.normalize_text(re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", line))
            for line in text.splitlines()
        ]
        steps = [s for s in steps if s]
        if not steps:
            return Score(UNPARSEABLE)
        return _ok(steps == [A.normalize_text(s) for s in truth["subtasks"]], steps)
    # unknown category: the reference answer text, normalised
    ref = row["conversations"][1]["value"]
    got = A.normalize_text(text)
    return _ok(got == A.normalize_text(ref), got) if got else Score(UNPARSEABLE)
