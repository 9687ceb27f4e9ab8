"""Recipes: the settings that were measured to work, as data, run by name.

A recipe is everything a figure depends on: the task set and demonstrations per task (data), the
model preset, the curriculum (stages with their loss weights, mixtures, level dropping, augmentation,
learning rate and steps), the batch size and the evaluation protocol. ``embodia quickstart`` runs
the ``quickstart`` recipe end to end; ``embodia recipe --name NAME`` runs any of them. Each
recipe's docstring-level ``result`` says what it reached when it was last measured, and how; the
ablations behind the choices are in docs/learning.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embodia.configs.train import StageConfig

QUICKSTART_TASKS = ("drawer-close", "button-press-topdown", "window-open", "door-open")

#: Meta-World's object and goal coordinates in the engine's ``observation.environment_state``
#: (the 39-D observation: first object xyz, second object xyz, goal xyz); the hand is the
#: proprioception already.
METAWORLD_SCENE = ("observation.environment_state", (4, 5, 6, 11, 12, 13, 36, 37, 38))


@dataclass
class EvalSettings:
    """The closed-loop and QA protocol of a recipe (``embodia eval rollout`` / ``eval qa``)."""

    episodes_per_task: int = 10
    """Test-split layouts per task (none of them seen in training)."""
    execute_steps: int = 4
    """Actions executed from each predicted chunk before the policy is asked again: 4 of the
    16-step chunk scored 6.6 points above 8 on the same checkpoints (docs/learning.md, row
    no-vqa-exec4)."""
    levels: tuple[str, ...] = ("actions",)
    held_out_paraphrases: bool = True
    """Also score the same test layouts phrased with the instruction paraphrases the data engine
    kept out of training (``eval rollout --instructions held-out``): does the policy follow the
    words or only the scene?"""
    max_steps: int | None = None
    """Step limit per episode; None = the benchmark's own (Meta-World: 500)."""
    videos: int = 4
    qa_questions: int = 200
    """Embodied-QA questions scored, drawn evenly over categories."""


@dataclass
class Recipe:
    name: str
    description: str
    tasks: tuple[str, ...]
    episodes_per_task: tuple[int, int, int]
    """Train / val / test episodes per task (one layout each)."""
    stages: list[StageConfig]
    preset: str = "tiny"
    batch_size: int = 16
    ema: float = 0.0
    """EMA decay of the served weights (``embodia train --ema``); 0 = the last weights."""
    image_size: int = 128
    """Rendered resolution of the dataset (the model resizes to its own input size)."""
    cameras: tuple[str, ...] = ("corner", "gripperPOV")
    seed: int = 0
    held_out_instructions: int = 1
    """Paraphrases per task kept out of training, for ``eval.held_out_paraphrases``."""
    horizon: int | None = None
    """Action chunk length (``train --horizon``); None = the preset's (32)."""
    flow_noise_scale: float = 1.0
    """Starting-noise scale the checkpoint's policy.json records (``train --flow-noise-scale``),
    so its evaluation and ``embodia serve`` sample with it."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    result: str = "not measured yet"
    """The figure this recipe reached when last measured, with the command."""


def action_stage(steps: int, **overrides) -> StageConfig:
    """The quickstart's stage as measured (docs/learning.md, row Q1): the whole model, flow
    matching on episodes with 15% embodied VQA, instruction -> actions only, 4 px random shifts.
    The same stage without shifts scored lower in one run (Q2); one seed each, see the doc."""
    base = dict(
        name="actions",
        steps=steps,
        trainable=("all",),
        loss_weights={"flow": 1.0, "text": 1.0},
        mixture={"episodes": 0.85, "conversations": 0.15},
        action_modes={"flow": 1.0},
        level_drop={"reasoning": 1.0, "subtask": 1.0},
        image_shift=4,
        lr=1e-3,
        warmup=0.03,
        schedule="cosine",
    )
    base.update(overrides)
    return StageConfig(**base)


def _quickstart() -> Recipe:
    return Recipe(
        name="quickstart",
        description="4 MT10 tasks, 40 demonstrations each, tiny preset, about 6 min of training",
        tasks=QUICKSTART_TASKS,
        episodes_per_task=(40, 0, 10),
        stages=[action_stage(1700)],
        # 16-step chunks (4 executed): 74.2% at 3 seeds against 72.5% at 32, and 16 fewer
        # tokens per sample to train (docs/learning.md, row h16)
        horizon=16,
        # corner3 shows the window and the button larger and less hidden by the arm than the
        # corner camera: +5 points at 3 seeds (docs/learning.md, the camera rows)
        cameras=("corner3", "gripperPOV"),
        # flow sampled from zero noise: 85.0% at 3 seeds against 74.2% for the same checkpoints
        # sampled from unit noise (docs/learning.md, row h16-noise0)
        flow_noise_scale=0.0,
        result=(
            "3 training seeds, 40 test layouts each, 16-step chunks, 4 executed steps, zero flow "
            "noise: 85.0 / 87.5 / 82.5%, pooled 102/120 = 85.0% (95% CI 77.5-90.3); drawer-close "
            "30, button-press-topdown 26, window-open 18, door-open 28 (of 30); training 7.2-7.5 "
            "min per seed on the 2-core machine; python benchmarks/ablate.py --data <recipe data> "
            "--variant h16-noise0 --seeds 0 1 2 (docs/learning.md)"
        ),
    )


def _mt10() -> Recipe:
    return Recipe(
        name="mt10",
        description="all of MT10, 40 demonstrations per task, tiny preset, ~80 min of training",
        tasks=("MT10",),
        episodes_per_task=(40, 0, 10),
        stages=[action_stage(16000)],
        # the quickstart's measured choices (docs/learning.md): 16-step chunks, corner3 camera;
        # 16-step chunks also buy 1000 more steps within 90 min than the 32-step run's 15000
        horizon=16,
        cameras=("corner3", "gripperPOV"),
        flow_noise_scale=0.0,
        result=(
            "one training seed (0), 100 test layouts, 4 executed steps, zero flow noise: 54/100 = "
            "54.0% (95% CI 44.3-63.4); reach 1, push 2, pick-place 0, door-open 10, drawer-open "
            "6, drawer-close 10, button-press-topdown 8, peg-insert-side 0, window-open 8, "
            "window-close 9 (of 10); unit noise on the same checkpoint 51/100, and held-out "
            "paraphrases 31/100 there (unseen verb 'shut': drawer-close 2, window-close 0); QA "
            "115/200 = 57.5%; training 4764 s (79 min) on the 2-core machine, 105 min in all; "
            "embodia recipe --name mt10 (docs/learning.md)"
        ),
    )


def _micro() -> Recipe:
    """The same pipeline at test size (the suite runs it end to end in about a minute)."""
    return Recipe(
        name="micro",
        description="test-size run of the whole pipeline (not a working policy)",
        tasks=("reach",),
        episodes_per_task=(2, 0, 1),
        stages=[action_stage(4)],
        batch_size=4,
        image_size=64,
        cameras=("corner",),
        eval=EvalSettings(episodes_per_task=1, max_steps=24, videos=1, qa_questions=4),
    )


RECIPES = {"quickstart": _quickstart, "mt10": _mt10, "micro": _micro}


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name]()
