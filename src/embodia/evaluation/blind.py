"""The blind baseline of embodied QA: what the training split's answers alone get right.

A QA category is evidence that a model *sees* only where the model beats a model that never
looks: one that answers every question with the training split's typical answer to that
question. The prior groups questions as a blind model reads them
(:func:`embodia.data.engine.qa.balance_group`: task, category, the things asked about) and
answers

- a choice (nearer thing, left-hand thing, higher thing, depth order, next subtask, plan) with
  the group's most common answer class;
- a distance or height with the group's median;
- a point or a box with the group's mean point or box;

each scored by the same rule as the model (:mod:`embodia.evaluation.scoring`). A question whose
group the training split lacks falls back to its task and category, then to its category.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from embodia.data.engine.qa import balance_group
from embodia.evaluation.scoring import box_iou, within

#: How a category's prior is formed: the median value, the mean point / box, or the most
#: common answer class (every other category).
NUMERIC = ("distance", "height")
POINT, BOX = "point", "box"


def answer_class(row: dict[str, Any]) -> str:
    """The row's categorical answer (the data engine stores it; older datasets' is derived)."""
    if "answer_class" in row:
        return str(row["answer_class"])
    truth = row.get("answer") or {}
    for key in ("choice", "subtask"):
        if key in truth:
            return str(truth[key])
    for key in ("order", "subtasks"):
        if key in truth:
            return ",".join(map(str, truth[key]))
    return str(row["conversations"][1]["value"])


class AnswerPrior:
    """The blind baseline fitted on one split's rows (see the module docstring)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._levels: list[dict[tuple, list[dict[str, Any]]]] = [{}, {}, {}]
        for row in rows:
            for level, key in enumerate(self._keys(row)):
                self._levels[level].setdefault(key, []).append(row)
        self._cache: dict[tuple, Any] = {}

    @staticmethod
    def _keys(row: dict[str, Any]) -> tuple[tuple, tuple, tuple]:
        env, category, subject = balance_group(row)
        return (env, category, subject), (env, category), (category,)

    def guess(self, row: dict[str, Any]) -> Any:
        """The prior's answer to ``row``'s question, or None where no training row is alike."""
        for level, key in enumerate(self._keys(row)):
            if key in self._levels[level]:
                if (level, key) not in self._cache:
                    self._cache[(level, key)] = _fit(self._levels[level][key], row["category"])
                return self._cache[(level, key)]
        return None

    def correct(self, row: dict[str, Any]) -> bool:
        guess = self.guess(row)
        if guess is None:
            return False
        category, truth = row["category"], row.get("answer") or {}
        tol = row.get("tolerance")
        if category in NUMERIC:
            return within(guess, float(truth["value"]), tol)
        if category == POINT:
            x1, y1, x2, y2 = truth["box_2d"]
            return bool(x1 <= guess[0] <= x2 and y1 <= guess[1] <= y2)
        if category == BOX:
            return box_iou(guess, truth["bbox_2d"]) >= float((tol or {}).get("min_iou", 0.5))
        return guess == answer_class(row)


def _fit(rows: list[dict[str, Any]], category: str) -> Any:
    if category in NUMERIC:
        return float(np.median([float(r["answer"]["value"]) for r in rows]))
    if category == POINT:
        return np.mean([r["answer"]["point_2d"] for r in rows], axis=0).tolist()
    if category == BOX:
        return np.mean([r["answer"]["bbox_2d"] for r in rows], axis=0).tolist()
    counts = Counter(answer_class(r) for r in rows)
    return min(counts, key=lambda c: (-counts[c], c))  # the most common; ties by name


def beats_blind(model: dict[str, Any], blind_rate: float) -> bool:
    """Whether a category counts as evidence of seeing: the model's 95 % Wilson interval lies
    wholly above the blind baseline's accuracy."""
    return model["episodes"] > 0 and float(model["ci95"][0]) > blind_rate
