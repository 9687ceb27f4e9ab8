"""Reproduction recipes as data: the arms of a paper's ablation, their curricula, the seeds, the
evaluations and the claims they test.

``embodia reproduce gem`` and ``embodia reproduce wall-oss`` each build a
:class:`ReproduceRecipe` for a budget (``cpu``: this 2-core machine in at most 3 hours; ``gpu``:
one 80 GB GPU with full-size presets) and write it as ``recipe.json`` into the run's directory,
where ``--recipe-file`` reads it back: a run is exactly its file. Every arm sees the same data,
the same seeds and the same evaluations; arms differ only in their stages and auxiliary head.

A claim names a metric, the arm the paper says is better and the arm it beats. The runner
(:mod:`embodia.reproduce`) reports for each: the paper's figure, ours per arm as the mean and 95 %
interval over seeds, the difference between the arms and a paired test over the shared items.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from embodia.configs.recipes import QUICKSTART_TASKS, EvalSettings, action_stage
from embodia.configs.train import StageConfig

Budget = Literal["cpu", "gpu", "micro"]
DepthObjective = Literal["depth", "rgb", "regression", "none"]
EvaluationKind = Literal["qa", "depth", "rollout"]


@dataclass
class ArmConfig:
    """One arm: a curriculum and the auxiliary objective its model carries."""

    name: str
    description: str
    stages: list[StageConfig]
    depth_objective: DepthObjective = "none"
    """``embodia train --depth-objective`` (``depth`` / ``rgb`` use the recipe's codec of that
    target, trained once per run)."""


@dataclass
class EvaluationConfig:
    """One evaluation of every arm, on the checkpoint at the end of one of its stages."""

    kind: EvaluationKind
    after: str = ""
    """The stage whose final checkpoint is evaluated; '' = the arm's last stage. GEM scores its
    VLM (spatial QA, depth) before the action stage and its VLA (closed loop) after it."""


@dataclass
class ClaimConfig:
    """A claim of the paper as a comparison of two arms on one metric."""

    name: str
    paper: str
    """The paper's own figure, as the paper states it."""
    metric: str
    """``rollout`` (closed-loop success), ``qa`` (all QA), ``qa:<category prefix>`` (e.g.
    ``qa:spatial`` or ``qa:spatial/distance``), ``depth:abs_rel`` (lower is better) or
    ``largest_drop:<category>`` (the category loses most from arm to baseline)."""
    arm: str
    """The arm the paper says is better."""
    baseline: str
    """The arm it is compared with."""


@dataclass
class CodecSettings:
    """The frozen autoencoder each codec-based arm generates in (``embodia depth
    train-autoencoder``), trained once per run on the recipe's data."""

    steps: int = 1000
    batch_size: int = 16


@dataclass
class ReproduceRecipe:
    name: str
    paper: str
    description: str
    budget: Budget
    scale: str
    """Which scale the budget forces, and why."""
    arms: list[ArmConfig]
    evaluations: list[EvaluationConfig]
    claims: list[ClaimConfig]
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds; every arm trains once per seed on the same data and layouts."""
    tasks: tuple[str, ...] = QUICKSTART_TASKS
    episodes_per_task: tuple[int, int, int] = (40, 0, 10)
    cameras: tuple[str, ...] = ("corner3", "gripperPOV")
    image_size: int = 128
    seed: int = 0
    """The data's seed (layouts, QA); the same for every arm and training seed."""
    preset: str = "tiny"
    init: str | None = None
    """A local Hugging Face Qwen-VL directory to start every arm from (``--budget gpu``)."""
    batch_size: int = 16
    mixed_precision: Literal["no", "bf16"] = "no"
    gradient_checkpointing: bool = False
    device: str = "cpu"
    """Where the evaluations run (training places itself through accelerate)."""
    codec: CodecSettings = field(default_factory=CodecSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    depth_images: int = 64
    """Held-out views scored by ``eval depth`` in arms with a depth head."""

    def arm(self, name: str) -> ArmConfig:
        for a in self.arms:
            if a.name == name:
                return a
        raise ValueError(
            f"recipe {self.name}: no arm {name!r}; arms: {[a.name for a in self.arms]}"
        )

    def validate(self) -> None:
        """Refuse a recipe whose parts do not fit, naming the part."""
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"recipe {self.name}: arm names must be unique and present: {names}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"recipe {self.name}: seeds must be unique and present: {self.seeds}")
        for a in self.arms:
            stage_names = [s.name for s in a.stages]
            if len(set(stage_names)) != len(stage_names) or not stage_names:
                raise ValueError(f"arm {a.name!r}: stage names must be unique: {stage_names}")
            for ev in self.evaluations:
                if ev.after and ev.after not in stage_names:
                    raise ValueError(
                        f"evaluation {ev.kind!r} after stage {ev.after!r}: arm {a.name!r} has "
                        f"stages {stage_names}"
                    )
        for c in self.claims:
            self.arm(c.arm), self.arm(c.baseline)
            kind = c.metric.split(":", 1)[0]
            if kind not in ("rollout", "qa", "depth", "largest_drop"):
                raise ValueError(f"claim {c.name!r}: unknown metric {c.metric!r}")
            needed = {"largest_drop": "qa"}.get(kind, kind)
            if needed not in {e.kind for e in self.evaluations}:
                raise ValueError(f"claim {c.name!r} needs the {needed!r} evaluation")

    # ------------------------------------------------------------------ as a file

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "recipe") -> ReproduceRecipe:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            data["arms"] = [
                ArmConfig(
                    **{
                        **a,
                        "stages": [StageConfig.from_dict(s) for s in a["stages"]],
                    }
                )
                for a in data["arms"]
            ]
            data["evaluations"] = [EvaluationConfig(**e) for e in data["evaluations"]]
            data["claims"] = [ClaimConfig(**c) for c in data["claims"]]
            data["codec"] = CodecSettings(**data.get("codec", {}))
            data["eval"] = EvalSettings(
                **{k: tuple(v) if k == "levels" else v for k, v in data.get("eval", {}).items()}
            )
            for key in ("seeds", "tasks", "episodes_per_task", "cameras"):
                if key in data:
                    data[key] = tuple(data[key])
            recipe = cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        recipe.validate()
        return recipe


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


# ---------------------------------------------------------------------- GEM


@dataclass
class GemSteps:
    """Steps of GEM's four stages in one budget."""

    connector: int
    warmup: int
    joint: int
    action: int


GEM_STEPS = {
    # 2-core CPU, tiny preset: ~9 min of training per arm and seed, so that 5 arms x 3 seeds
    # with their evaluations fit in 3 hours (see the recipe's ``scale``)
    "cpu": GemSteps(connector=100, warmup=200, joint=500, action=1000),
    "gpu": GemSteps(connector=500, warmup=1000, joint=6000, action=10000),
    "micro": GemSteps(connector=1, warmup=1, joint=2, action=2),
}


def _micro_scale() -> dict[str, Any]:
    """The test suite's size: every arm, stage and evaluation runs, a few steps each (not a
    measurement)."""
    return dict(
        tasks=("reach",),
        episodes_per_task=(2, 0, 1),
        cameras=("corner",),
        image_size=64,
        batch_size=2,
        codec=CodecSettings(steps=2, batch_size=4),
        eval=EvalSettings(
            episodes_per_task=1,
            max_steps=16,
            videos=0,
            qa_questions=6,
            held_out_paraphrases=False,
        ),
        depth_images=2,
    )


def _gem_vlm_stages(steps: GemSteps, depth: bool, progressive: bool) -> list[StageConfig]:
    """GEM's VLM stages: connector warm-up -> generator warm-up (backbone frozen) -> joint
    language + 0.1 x auxiliary loss on the embodied QA. ``progressive=False`` is the paper's
    direct co-training: everything trains jointly from the first step, for the same total steps.
    Without an auxiliary head only the joint stage remains (the warm-ups train nothing else)."""
    joint = dict(
        trainable=("all",),
        loss_weights={"text": 1.0, **({"depth": 0.1} if depth else {})},
        mixture={"conversations": 1.0},
        lr=1e-3,
        warmup=0.03,
        schedule="cosine",
    )
    if not depth:
        return [StageConfig("joint", steps.joint, **joint)]
    if not progressive:
        total = steps.connector + steps.warmup + steps.joint
        return [StageConfig("joint", total, **joint)]
    head_only = dict(loss_weights={"depth": 1.0}, mixture={"conversations": 1.0}, lr=1e-3)
    return [
        StageConfig("connector", steps.connector, ("depth_connector",), **head_only),
        StageConfig(
            "depth-warmup", steps.warmup, ("depth_connector", "depth_generator"), **head_only
        ),
        StageConfig("joint", steps.joint, **joint),
    ]


def _gem_arm(name, description, steps, objective, progressive=True) -> ArmConfig:
    depth = objective != "none"
    action = action_stage(steps.action, name="action")
    if depth:
        action.loss_weights = {**action.loss_weights, "depth": 0.1}
    return ArmConfig(
        name=name,
        description=description,
        stages=[*_gem_vlm_stages(steps, depth, progressive), action],
        depth_objective=objective,
    )


def gem_recipe(budget: Budget = "cpu", seeds: int = 3) -> ReproduceRecipe:
    """GEM's claims as five arms on one dataset: depth generation, no auxiliary objective, RGB
    reconstruction, dense depth regression, and depth generation by direct co-training."""
    steps = GEM_STEPS[budget]
    arms = [
        _gem_arm(
            "gem",
            "GEM: the DiT generates each view's depth from the final visual tokens",
            steps,
            "depth",
        ),
        _gem_arm("no-aux", "the same stages with no auxiliary objective", steps, "none"),
        _gem_arm("rgb", "the DiT reconstructs each view's RGB instead of its depth", steps, "rgb"),
        _gem_arm("regression", "a dense head regresses depth (no generation)", steps, "regression"),
        _gem_arm(
            "gem-direct",
            "GEM's objective, all stages at once (direct co-training)",
            steps,
            "depth",
            progressive=False,
        ),
    ]
    claims = [
        ClaimConfig(
            "depth generation improves spatial understanding",
            "VSI-Bench 62.8 (GEM-2B) vs 60.0 without depth generation; 70.6 vs 68.6 at 8B",
            "qa:spatial",
            "gem",
            "no-aux",
        ),
        ClaimConfig(
            "depth generation improves the VLA",
            "LIBERO average 96.1 vs 94.9 without depth",
            "rollout",
            "gem",
            "no-aux",
        ),
        ClaimConfig(
            "depth supervision beats RGB reconstruction",
            "ablation: depth supervision beats RGB reconstruction (spatial benchmarks)",
            "qa:spatial",
            "gem",
            "rgb",
        ),
        ClaimConfig(
            "removing depth hurts distance questions most",
            "ablation: removing depth hurts distance questions most",
            "largest_drop:spatial/distance",
            "gem",
            "no-aux",
        ),
        ClaimConfig(
            "generating depth beats regressing it",
            "not a GEM figure: the generative objective against a plain dense depth regressor",
            "qa:spatial",
            "gem",
            "regression",
        ),
        ClaimConfig(
            "generated depth is more accurate than regressed depth",
            "not a GEM figure: AbsRel of the generated maps against the regressor's",
            "depth:abs_rel",
            "gem",
            "regression",
        ),
        ClaimConfig(
            "progressive stages beat direct co-training",
            "ablation: progressive stages beat direct co-training",
            "qa:spatial",
            "gem",
            "gem-direct",
        ),
    ]
    extra: dict[str, Any] = {"eval": EvalSettings(held_out_paraphrases=False)}
    if budget == "cpu":
        scale = (
            "tiny preset (3.2 M parameters, trained from scratch), the quickstart's data (4 MT10 "
            "tasks x 40 demonstrations and their embodied QA, corner3 + gripper views at 128 px, "
            "read at 64 px), batch 16: connector 100, depth warm-up 200, joint 500 and action "
            "1000 steps. 5 arms x 3 seeds of training and evaluation must fit 3 hours on 2 CPU "
            "cores, about 8 minutes of training per arm and seed with the depth head (which "
            "costs ~50% per action step): the action stage is the quickstart's, shortened from "
            "1700 steps, and the VLM stages get what remains. A from-scratch backbone stands in "
            "for GEM's pretrained Qwen VLM, so what the objective adds is measured on top of "
            "little prior knowledge."
        )
    elif budget == "micro":
        scale = "test size: a few steps per stage, one layout, not a measurement"
        extra.update(_micro_scale())
    else:
        scale = (
            "gem-2b preset from a local Qwen-VL checkpoint (--init), bf16 with gradient "
            "checkpointing on one 80 GB GPU, 4 MT10 tasks x 100 demonstrations at 224 px, "
            "batch 32: connector 500, warm-up 1000, joint 6000, action 10000 steps per arm."
        )
        extra.update(
            preset="gem-2b",
            episodes_per_task=(100, 0, 20),
            image_size=224,
            batch_size=32,
            mixed_precision="bf16",
            gradient_checkpointing=True,
            device="cuda",
            codec=CodecSettings(steps=5000, batch_size=32),
            eval=EvalSettings(episodes_per_task=20, qa_questions=800, held_out_paraphrases=False),
            depth_images=256,
        )
    recipe = ReproduceRecipe(
        name=f"gem-{budget}",
        paper="gem",
        description="GEM: does generating depth from the VLM's visual tokens teach it space?",
        budget=budget,
        scale=scale,
        arms=arms,
        evaluations=[
            EvaluationConfig("qa", after="joint"),
            EvaluationConfig("depth", after="joint"),
            EvaluationConfig("rollout"),
        ],
        claims=claims,
        seeds=tuple(range(seeds)),
        **extra,
    )
    recipe.validate()
    return recipe
