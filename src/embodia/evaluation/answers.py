"""Reading structured answers out of free model text, leniently but never by guessing.

A model may answer in Qwen JSON (``[{"point_2d": [x, y], "label": ...}]``), inside a code fence,
as a bare tuple ``(x, y)``, with units ("12 cm"), or with a preamble ("Answer: ..."). Each parser
returns the value, or ``None`` when the text holds no well-formed answer of the asked kind: such an
answer is scored as wrong and counted as *unparseable*, so a format problem is visible instead of
being mixed into, or hidden from, the accuracy.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(_NUM)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_UNITS = {
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "cm": 0.01,
    "centimeter": 0.01,
    "centimeters": 0.01,
    "centimetre": 0.01,
    "centimetres": 0.01,
    "mm": 0.001,
    "millimeter": 0.001,
    "millimeters": 0.001,
    "millimetre": 0.001,
    "millimetres": 0.001,
}
_VALUE_RE = re.compile(rf"({_NUM})\s*({'|'.join(sorted(_UNITS, key=len, reverse=True))})?\b", re.I)


def _json_objects(text: str) -> list[Any]:
    """Every JSON value found in the text: a fenced block, the whole text, or a [...] / {...}."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for opener, closer in (("[", "]"), ("{", "}")):
        i, j = text.find(opener), text.rfind(closer)
        if 0 <= i < j:
            candidates.append(text[i : j + 1])
    out = []
    for c in candidates:
        try:
            out.append(json.loads(c.strip()))
        except (json.JSONDecodeError, ValueError):
            continue
    return out


def _find_key(obj: Any, key: str) -> list[float] | None:
    if isinstance(obj, dict):
        if key in obj:
            v = obj[key]
            if isinstance(v, list) and all(isinstance(x, int | float) for x in v):
                return [float(x) for x in v]
            return None
        for v in obj.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    if isinstance(obj, list):
        for v in obj:
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def parse_point(text: str) -> tuple[float, float] | None:
    """(x, y) from ``point_2d`` JSON, a box's centre (``bbox_2d``), or the first two numbers."""
    for obj in _json_objects(text):
        p = _find_key(obj, "point_2d")
        if p is not None and len(p) == 2:
            return (p[0], p[1])
        b = _find_key(obj, "bbox_2d")
        if b is not None and len(b) == 4:
            return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    nums = _numbers_after_answer(text)
    if len(nums) >= 2:
        return (nums[0], nums[1])
    return None


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """(x1, y1, x2, y2) from ``bbox_2d`` JSON or the first four numbers; corners sorted."""
    box = None
    for obj in _json_objects(text):
        b = _find_key(obj, "bbox_2d")
        if b is not None and len(b) == 4:
            box = b
            break
    if box is None:
        nums = _numbers_after_answer(text)
        if len(nums) < 4:
            return None
        box = nums[:4]
    x1, y1, x2, y2 = box
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def parse_points(text: str) -> list[tuple[float, float]]:
    """Every point of a list answer: ``[(x, y), ...]`` tuples or ``point_2d`` JSON entries."""
    pts: list[tuple[float, float]] = []
    for obj in _json_objects(text):
        items = obj if isinstance(obj, list) else [obj]
        for it in items:
            p = _find_key(it, "point_2d")
            if p is not None and len(p) == 2:
                pts.append((p[0], p[1]))
        if pts:
            return pts
    for m in re.finditer(rf"[\(\[]\s*({_NUM})\s*,\s*({_NUM})\s*[\)\]]", text):
        pts.append((float(m.group(1)), float(m.group(2))))
    return pts


def _numbers_after_answer(text: str) -> list[float]:
    m = re.search(r"answer\s*:", text, re.I)
    tail = text[m.end() :] if m else text
    return [float(x) for x in _NUM_RE.findall(tail)]


def parse_value(text: str) -> float | None:
    """A length in metres: the first number, scaled by its unit (m by default)."""
    m = re.search(r"answer\s*:", text, re.I)
    tail = text[m.end() :] if m else text
    hit = _VALUE_RE.search(tail)
    if hit is None:
        return None
    unit = (hit.group(2) or "m").lower()
    return float(hit.group(1)) * _UNITS[unit]


def normalize_text(text: str) -> str:
    """Lower case, no "Subtask:" style prefix, no punctuation, single spaces."""
    text = re.sub(r"^\s*(?:answer|subtask|next subtask)\s*:\s*", "", text.strip(), flags=re.I)
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    return " ".join(text.split())


def _word(option: str) -> str:
    """A whole-word pattern that also keeps "2" from matching inside "0.2" or "2.5"."""
    return rf"(?<![\w.]){re.escape(option.lower())}(?!\w|\.\d)"


def _positions(text: str, options: list[str]) -> dict[str, int]:
    """Where each option is first mentioned (word-bounded, case-insensitive). Longer options are
    found first and blanked out, so "faucet" is not found inside "faucet handle"."""
    low = text.lower()
    out: dict[str, int] = {}
    for opt in sorted(options, key=len, reverse=True):
        pattern = _word(opt)
        m = re.search(pattern, low)
        if m:
            out[opt] = m.start()
            low = re.sub(pattern, lambda k: "#" * len(k.group()), low)
    return out


def first_mention(text: str, options: list[str]) -> str | None:
    """The option mentioned first in ``text``; None if none is."""
    pos = _positions(text, options)
    return min(pos, key=pos.get) if pos else None


def mention_order(text: str, options: list[str]) -> list[str] | None:
    """Options sorted by their first mention; None unless every option is mentioned."""
    pos = _positions(text, options)
    if len(pos) != len(set(options)):
        return None
    return sorted(pos, key=pos.get)


def parse_choice_letter(text: str, n_choices: int) -> int | None:
    """A multiple-choice letter ("(B)", "B", "Answer: B.") -> 0-based index, or None."""
    letters = "ABCDEFGH"[:n_choices]
    for pattern in (
        rf"\(([{letters}])\)",
        rf"answer\s*(?:is)?\s*:?\s*\(?([{letters}])\b",
        rf"^\s*\(?([{letters}])\b[\).:]?",
    ):
        m = re.search(pattern, text, re.I if "answer" in pattern else 0)
        if m:
            return letters.index(m.group(1).upper())
    return None
