"""Conversation samples (GEM / Qwen JSONL) whose every answer is computed from simulator state.

Three families, as in GEM-4M: grounding (point / box of named objects and target regions),
spatial reasoning (metric distances, which is nearer the camera, depth order, left/right in the
image, above/below, heights) and planning (the next subtask, the full subtask list). Each sample
keeps its exact answer in structured form plus a scoring tolerance, so evaluation never has to
re-derive the truth from the text.

Every sample also names its ``subject`` (the things asked about, sorted: what a blind model reads
in the question) and its ``answer_class`` (a categorical reduction of the answer: the nearer
thing, the left-hand thing, a 4 cm bin of a distance, a cell of a 3 x 3 image grid). Per split,
:func:`balance` keeps for each task, category and subject only as many samples of each class as
the m-th most common class has, so guessing from the training answers' prior scores at most 1/m
there, keeping about ``spatial_per_image`` spatial questions per image in all.
Option order and phrasing are drawn at random.

Coordinates follow Qwen: ``qwen3`` (Qwen2-VL / Qwen3-VL, GEM's backbone) uses integers relative to
the image on a 0-1000 scale; ``qwen2.5`` uses absolute pixels of the image as stored.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from embodia.data.engine.camera import PinholeCamera
from embodia.data.engine.geometry import Projection

CoordinateStyle = Literal["qwen3", "qwen2.5"]

#: Two things whose depths (or image columns, heights) differ by less than these are not compared:
#: the question would have no clear answer.
MIN_DEPTH_GAP = 0.03  # metres
MIN_COLUMN_GAP = 0.06  # fraction of the image width
MIN_HEIGHT_GAP = 0.03  # metres


@dataclass(frozen=True)
class SceneEntity:
    """A named thing in one view: its world position and (if visible) its 2D projection."""

    name: str
    kind: str  # "object" | "region" | "gripper"
    position: np.ndarray  # world xyz, metres
    projection: Projection | None


@dataclass
class FrameContext:
    """What QA generation needs about one camera frame."""

    camera: PinholeCamera
    entities: list[SceneEntity]
    instruction: str
    phases: tuple[str, ...]
    phase_index: int
    table_height: float
    image: str  # path of the RGB image, relative to the conversations folder
    depth: str  # path of the depth PNG (uint16 millimetres)
    meta: dict[str, Any] = field(default_factory=dict)


def to_qwen_xy(x: float, y: float, cam: PinholeCamera, style: CoordinateStyle) -> list[int]:
    if style == "qwen3":
        return [round(1000 * x / cam.width), round(1000 * y / cam.height)]
    return [round(x), round(y)]


def _answer_json(payload: dict[str, Any]) -> str:
    return json.dumps([payload], separators=(", ", ": "))


def _sample(
    ctx: FrameContext,
    task: str,
    category: str,
    question: str,
    answer_text: str,
    answer: Any,
    tolerance: Any = None,
    *,
    subject: tuple[str, ...],
    answer_class: str,
) -> dict[str, Any]:
    return {
        "image": ctx.image,
        "depth": ctx.depth,
        "conversations": [
            {"from": "human", "value": f"<image>\n{question}"},
            {"from": "gpt", "value": answer_text},
        ],
        "task_type": task,
        "category": category,
        "answer": answer,
        "tolerance": tolerance,
        "camera": ctx.camera.name,
        "subject": list(subject),
        "answer_class": answer_class,
        **ctx.meta,
    }


#: Width of the bins a metric answer is balanced over: twice the scoring tolerance (2 cm).
VALUE_BIN = 0.04
#: Categories whose answer follows from the question alone: a whole plan is a function of the
#: instruction. They are kept as they are; their blind baseline says what they measure.
UNBALANCED = frozenset({"plan"})


def _value_class(value: float) -> str:
    return f"bin{int(np.floor(value / VALUE_BIN))}"


def _grid_class(x: float, y: float, cam: PinholeCamera) -> str:
    col = min(2, max(0, int(3 * x / cam.width)))
    row = min(2, max(0, int(3 * y / cam.height)))
    return f"r{row}c{col}"


def _pair(a: SceneEntity, b: SceneEntity) -> tuple[str, ...]:
    return tuple(sorted((a.name, b.name)))


def grounding_samples(
    ctx: FrameContext, rng: np.random.Generator, style: CoordinateStyle
) -> list[dict[str, Any]]:
    """Point or box of every visible object and region (one question each, kind drawn at random)."""
    samples = []
    for ent in ctx.entities:
        if ent.projection is None:
            continue
        proj = ent.projection
        what = _label(ent)
        if ent.kind == "region" or rng.random() < 0.5:
            xy = to_qwen_xy(*proj.point, ctx.camera, style)
            q = rng.choice(
                [
                    f"Point to {what}.",
                    f"Where is {what}? Answer with a point.",
                    f"Locate {what} in the image and output its point coordinates.",
                ]
            )
            payload = {"point_2d": xy, "label": ent.name}
            samples.append(
                _sample(
                    ctx,
                    "grounding",
                    "point",
                    str(q),
                    _answer_json(payload),
                    {"point_2d": xy, "label": ent.name, "box_2d": _box(proj, ctx, style)},
                    subject=(ent.name,),
                    answer_class=_grid_class(*proj.point, ctx.camera),
                )
            )
        else:
            box = _box(proj, ctx, style)
            q = rng.choice(
                [
                    f"Detect {what} and output its bounding box.",
                    f"Give the bounding box of {what}.",
                    f"Outline the position of {what} with a box.",
                ]
            )
            payload = {"bbox_2d": box, "label": ent.name}
            samples.append(
                _sample(
                    ctx,
                    "grounding",
                    "box",
                    str(q),
                    _answer_json(payload),
                    {"bbox_2d": box, "label": ent.name},
                    {"min_iou": 0.5},
                    subject=(ent.name,),
                    answer_class=_grid_class(*proj.point, ctx.camera),
                )
            )
    return samples


def _box(proj: Projection, ctx: FrameContext, style: CoordinateStyle) -> list[int]:
    x1, y1, x2, y2 = proj.box
    return to_qwen_xy(x1, y1, ctx.camera, style) + to_qwen_xy(x2, y2, ctx.camera, style)


def _label(ent: SceneEntity) -> str:
    if ent.kind == "gripper":
        return "the gripper"
    if ent.kind == "region":
        return "the target location"
    return f"the {ent.name}"


def spatial_samples(
    ctx: FrameContext, rng: np.random.Generator, limit: int | None = None
) -> list[dict[str, Any]]:
    """Spatial questions about visible things, with exact answers: every candidate, or up to
    ``limit`` spread over the categories. The data engine keeps them all and thins per image
    after balancing the split (:func:`balance`, :func:`thin_per_image`)."""
    visible = [e for e in ctx.entities if e.projection is not None]
    physical = [e for e in visible if e.kind != "region"]
    candidates: list[dict[str, Any]] = []
    for a, b in itertools.combinations(visible, 2):
        if rng.random() < 0.5:  # which thing is named first says nothing about the answer
            a, b = b, a
        dist = float(np.linalg.norm(a.position - b.position))
        q = rng.choice(
            [
                f"What is the distance in metres between {_label(a)} and {_label(b)}?",
                f"How far apart are {_label(a)} and {_label(b)}, in metres?",
            ]
        )
        candidates.append(
            _sample(
                ctx,
                "spatial",
                "distance",
                str(q),
                f"About {dist:.2f} m.",
                {"value": round(dist, 4), "unit": "m"},
                {"abs": 0.02, "rel": 0.1},
                subject=_pair(a, b),
                answer_class=_value_class(dist),
            )
        )
        candidates.extend(_pair_view_questions(ctx, a, b, rng))
        if a.kind != "region" and b.kind != "region":
            gap = float(a.position[2] - b.position[2])
            if abs(gap) >= MIN_HEIGHT_GAP:
                higher = a if gap > 0 else b
                q = rng.choice(
                    [
                        f"Which is higher above the table, {_label(a)} or {_label(b)}?",
                        f"Which is farther above the table, {_label(a)} or {_label(b)}?",
                    ]
                )
                candidates.append(
                    _sample(
                        ctx,
                        "spatial",
                        "relation",
                        str(q),
                        f"{_label(higher).capitalize()} is higher.",
                        {"choice": higher.name},
                        subject=("higher", *_pair(a, b)),
                        answer_class=higher.name,
                    )
                )
    for ent in physical:
        height = float(ent.position[2] - ctx.table_height)
        q = rng.choice(
            [
                f"How high above the table is the centre of {_label(ent)}, in metres?",
                f"What is the height of the centre of {_label(ent)} above the table, in metres?",
            ]
        )
        candidates.append(
            _sample(
                ctx,
                "spatial",
                "height",
                str(q),
                f"About {height:.2f} m.",
                {"value": round(height, 4), "unit": "m"},
                {"abs": 0.02, "rel": 0.1},
                subject=(ent.name,),
                answer_class=_value_class(height),
            )
        )
    ordered = _depth_order(ctx, visible, rng)
    if ordered is not None:
        candidates.append(ordered)
    return candidates if limit is None else _balanced_pick(candidates, rng, limit)


def _balanced_pick(candidates: list[dict[str, Any]], rng: np.random.Generator, limit: int) -> list:
    """Draw up to ``limit`` questions spread over the categories, not over the candidate list:
    every visible thing yields a height question, so uniform picks would be mostly heights."""
    pools: dict[str, list[dict[str, Any]]] = {}
    for c in candidates:
        pools.setdefault(c["category"], []).append(c)
    for pool in pools.values():
        rng.shuffle(pool)
    order = [str(k) for k in rng.permutation(sorted(pools))]
    picked: list[dict[str, Any]] = []
    while len(picked) < limit and any(pools.values()):
        for category in order:
            if pools[category] and len(picked) < limit:
                picked.append(pools[category].pop())
    return picked


def _depth(ctx: FrameContext, ent: SceneEntity) -> float:
    if ent.projection is not None:
        return ent.projection.depth
    return float(ctx.camera.to_camera(ent.position)[0, 2])


def _pair_view_questions(
    ctx: FrameContext, a: SceneEntity, b: SceneEntity, rng: np.random.Generator
) -> list[dict[str, Any]]:
    out = []
    da, db = _depth(ctx, a), _depth(ctx, b)
    if abs(da - db) >= MIN_DEPTH_GAP:
        nearer = a if da < db else b
        q = rng.choice(
            [
                f"Which is closer to the camera, {_label(a)} or {_label(b)}?",
                f"Which of the two is nearer the camera, {_label(a)} or {_label(b)}?",
            ]
        )
        out.append(
            _sample(
                ctx,
                "spatial",
                "depth_order",
                str(q),
                f"{_label(nearer).capitalize()} is closer to the camera.",
                {"choice": nearer.name},
                subject=_pair(a, b),
                answer_class=nearer.name,
            )
        )
    xa, xb = a.projection.point[0], b.projection.point[0]
    if abs(xa - xb) >= MIN_COLUMN_GAP * ctx.camera.width:
        side = "left" if xa < xb else "right"
        out.append(
            _sample(
                ctx,
                "spatial",
                "relation",
                f"In the image, is {_label(a)} to the left or to the right of {_label(b)}?",
                f"{_label(a).capitalize()} is to the {side} of {_label(b)}.",
                {"choice": side},
                subject=("left-right", *_pair(a, b)),
                answer_class=(a if xa < xb else b).name,  # the thing on the left
            )
        )
    return out


def _depth_order(
    ctx: FrameContext, visible: list[SceneEntity], rng: np.random.Generator
) -> dict[str, Any] | None:
    """Order three or more things from nearest to farthest, if every gap is clear."""
    if len(visible) < 3:
        return None
    visible = [visible[i] for i in rng.permutation(len(visible))]  # the listing order is no hint
    ranked = sorted(visible, key=lambda e: _depth(ctx, e))
    depths = [_depth(ctx, e) for e in ranked]
    if min(np.diff(depths)) < MIN_DEPTH_GAP:
        return None
    names = ", ".join(_label(e) for e in visible)
    order = [e.name for e in ranked]
    return _sample(
        ctx,
        "spatial",
        "depth_order",
        f"Order these from nearest to farthest from the camera: {names}.",
        ", ".join(_label(e) for e in ranked) + ".",
        {"order": order},
        subject=tuple(sorted(order)),
        answer_class=",".join(order),
    )


def planning_samples(
    ctx: FrameContext, rng: np.random.Generator, include_plan: bool
) -> list[dict[str, Any]]:
    """The next subtask (the expert's stage at this frame) and, once per episode, the whole plan."""
    phase = ctx.phases[ctx.phase_index]
    q = rng.choice(
        [
            f'The robot\'s task is: "{ctx.instruction}" What should it do next?',
            f'Instruction: "{ctx.instruction}" Given the current view, what is the next subtask?',
        ]
    )
    out = [
        _sample(
            ctx,
            "planning",
            "next_subtask",
            str(q),
            f"{phase[0].upper()}{phase[1:]}.",
            {"subtask": phase, "index": ctx.phase_index},
            subject=(),
            answer_class=phase,
        )
    ]
    if include_plan:
        plan = "\n".join(f"{i + 1}. {p[0].upper()}{p[1:]}." for i, p in enumerate(ctx.phases))
        out.append(
            _sample(
                ctx,
                "planning",
                "plan",
                f'Break the task "{ctx.instruction}" into the steps the robot should take, in order.',
                plan,
                {"subtasks": list(ctx.phases)},
                subject=(),
                answer_class=" | ".join(ctx.phases),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Balancing a split


def balance_group(sample: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """What a blind model knows of a question: the task, the category and the things asked
    about (not the image, the camera or the moment)."""
    return (
        str(sample.get("env_name", "")),
        str(sample["category"]),
        tuple(sample.get("subject") or ()),
    )


def balance(
    samples: list[dict[str, Any]],
    rng: np.random.Generator,
    top: int = 3,
    budgets: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Keep, per :func:`balance_group`, the same number of samples of each of its m most common
    answer classes (m = min(top, classes)) and no more of any other, so that always answering
    the split's most common answer is right at most 1/m of the time. A group whose answer
    never varies says nothing about the image and is dropped.

    ``budgets`` caps the samples kept per category: every group of the category is scaled by
    one factor, which keeps its ties (the data engine's ``spatial_per_image`` per image, spread
    over the spatial categories). ``UNBALANCED`` categories and samples without an
    ``answer_class`` pass through. Kept samples stay in input order; which ones are kept is
    drawn from ``rng``."""
    groups: dict[tuple, dict[str, list[int]]] = {}
    keep = [False] * len(samples)
    for i, s in enumerate(samples):
        if s["category"] in UNBALANCED or "answer_class" not in s:
            keep[i] = True
            continue
        groups.setdefault(balance_group(s), {}).setdefault(str(s["answer_class"]), []).append(i)
    caps = {}
    for key, classes in groups.items():
        counts = sorted((len(v) for v in classes.values()), reverse=True)
        caps[key] = counts[min(top, len(counts)) - 1] if len(counts) >= 2 else 0
    for category, budget in (budgets or {}).items():
        mine = [k for k in caps if k[1] == category]
        total = sum(min(len(v), caps[k]) for k in mine for v in groups[k].values())
        if total > budget:
            for k in mine:
                caps[k] = min(caps[k], max(1, int(caps[k] * budget / total)))
    for key in sorted(groups):
        for name in sorted(groups[key]):
            members = groups[key][name]
            for j in rng.permutation(len(members))[: caps[key]]:
                keep[members[j]] = True
    return [s for s, k in zip(samples, keep, strict=True) if k]


def spatial_budgets(samples: list[dict[str, Any]], per_image: int) -> dict[str, int]:
    """``per_image`` spatial questions for every image that has any, split evenly over the
    spatial categories present: what a split keeps after :func:`balance`."""
    spatial = [s for s in samples if s.get("task_type") == "spatial"]
    categories = sorted({s["category"] for s in spatial})
    images = len({s["image"] for s in spatial})
    return {c: max(1, per_image * images // len(categories)) for c in categories}
