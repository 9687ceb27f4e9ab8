"""The text the preset tokenizer is trained on: the language embodia's own data speaks.

The tiny and small presets are trained from scratch on embodia's data, so their vocabulary should
spend its merges on exactly that language: Meta-World instructions, paraphrases and subtask labels,
the data engine's grounding / spatial / planning questions and answers, Qwen-style grounding JSON
and chain-of-thought markers. Everything is generated from the package itself (the task catalog and
the QA generator, run on synthetic scenes), never downloaded, and in a fixed order with fixed seeds,
so retraining on an unchanged package gives a byte-identical tokenizer.

Only the digits of generated numbers depend on floating-point details, and they cannot change the
trained vocabulary: the tokenizer splits every digit into its own piece before any merge.
"""

from __future__ import annotations

import json

import numpy as np

from embodia.data.engine import qa
from embodia.data.engine.camera import PinholeCamera, intrinsics_matrix
from embodia.data.engine.geometry import Projection
from embodia.data.engine.tasks import TASK_SETS, TASKS, TaskSpec

#: Synthetic scenes generated per task and coordinate style; more only repeats the same phrasings.
SCENES_PER_TASK = 3
#: Image sizes of the synthetic cameras (qwen2.5 answers are absolute pixels, so sizes matter).
_IMAGE_SIZES = ((224, 224), (640, 480))
_STYLES: tuple[qa.CoordinateStyle, ...] = ("qwen3", "qwen2.5")

#: Words of the chat format and of chain-of-thought answers that no generator writes.
_CHAT_WORDS = (
    "system",
    "user",
    "assistant",
    "You are a helpful robot assistant.",
    "You are a robot arm controlling a gripper above a table.",
    "Answer with a point.",
    "Answer with a bounding box.",
    "Answer in JSON.",
    "The task is complete.",
    "The task is not complete yet.",
    "Yes.",
    "No.",
)

#: Everyday manipulation words no Meta-World task uses, so that new instructions (other benchmarks,
#: a user's own) still tokenise into words rather than letters. One theme per line.
_EXTRA_WORDS = (
    "red orange yellow green blue purple pink brown black white grey gray silver gold dark light",
    "cup bowl plate spoon fork knife bottle can jar box lid tray basket bag towel sponge cloth",
    "apple banana orange lemon bread cheese egg carrot tomato potato onion cookie candy snack",
    "book pen pencil marker paper card phone remote key keys toy ball cube sphere cylinder ring",
    "table counter shelf cabinet fridge microwave oven stove sink tap kettle pot pan chair bin",
    "door drawer window handle knob switch lever button dial slider valve plug socket cable rope",
    "block brick stack tower pile row column corner edge center centre middle top bottom side",
    "left right front back behind near far inside outside onto into under over above below",
    "between next beside around along across through toward towards away up down forward",
    "pick place put take grab grasp hold release drop lift lower raise move push pull slide",
    "open close turn rotate twist flip press tap wipe clean pour fill empty stir sweep fold",
    "insert remove stack unstack sort arrange align hang hook attach detach reach approach",
    "gripper arm robot hand finger joint wrist elbow base camera view image scene object",
    "small large big tiny long short tall wide narrow round square flat heavy soft hard",
    "first second third last next then after before until while again once twice slowly",
    "one two three four five six seven eight nine ten half quarter meter meters metre",
    "position orientation pose state height width depth distance angle speed force contact",
    "success failure done complete completed finished failed retry recover stop wait",
    "please carefully gently quickly make sure all both each every other same different",
)


def corpus() -> list[str]:
    """Every training text, in a deterministic order (task catalog order, then fixed seeds)."""
    texts: list[str] = list(_CHAT_WORDS)
    for line in _EXTRA_WORDS:  # a leading space: every word as it appears mid-sentence
        texts += [f" {line}", " " + " ".join(w.capitalize() for w in line.split())]
    # Meta-World's tasks only: the shared-start tasks reuse their language word for word
    for index, (env_name, spec) in enumerate((n, TASKS[n]) for n in TASK_SETS["MT50"]):
        texts.extend(_task_texts(env_name, spec))
        texts.extend(_qa_texts(spec, np.random.default_rng(index)))
        texts.extend(_reasoning_texts(spec, np.random.default_rng(1000 + index)))
    return texts


def _sentence(phrase: str) -> str:
    """A subtask label as the planning answers write it: capitalised, with a full stop."""
    return f"{phrase[0].upper()}{phrase[1:]}."


def _task_texts(env_name: str, spec: TaskSpec) -> list[str]:
    names = [obj.name for obj in spec.objects]
    return [
        env_name,
        spec.instruction,
        *spec.paraphrases,
        *spec.phases,
        *(_sentence(p) for p in spec.phases),
        *names,
    ]


def _camera(width: int, height: int) -> PinholeCamera:
    """A camera at the origin looking along world +y (OpenCV axes: x right, y down = world -z)."""
    pose = np.eye(4)
    pose[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)
    return PinholeCamera("synthetic", width, height, intrinsics_matrix(60.0, width, height), pose)


def _entity(name: str, kind: str, cam: PinholeCamera, rng: np.random.Generator) -> qa.SceneEntity:
    """A thing at a random spot in front of the camera, with a small box around its point."""
    pos = np.array([rng.uniform(-0.3, 0.3), rng.uniform(0.6, 1.2), rng.uniform(0.0, 0.3)])
    uv, z = cam.project(pos)
    x, y = (float(v) for v in uv[0])
    half_w, half_h = rng.uniform(4.0, 30.0, size=2)
    box = (
        max(0.0, x - half_w),
        max(0.0, y - half_h),
        min(float(cam.width), x + half_w),
        min(float(cam.height), y + half_h),
    )
    return qa.SceneEntity(name, kind, pos, Projection((x, y), box, float(z[0]), 100))


def _qa_texts(spec: TaskSpec, rng: np.random.Generator) -> list[str]:
    """Questions and answers of every QA family, as the data engine writes them for this task."""
    instructions = (spec.instruction, *spec.paraphrases)
    texts: list[str] = []
    for scene in range(SCENES_PER_TASK):
        width, height = _IMAGE_SIZES[scene % len(_IMAGE_SIZES)]
        cam = _camera(width, height)
        entities = [_entity(obj.name, obj.kind, cam, rng) for obj in spec.objects]
        entities.append(_entity("gripper", "gripper", cam, rng))
        phase_index = int(rng.integers(len(spec.phases)))
        ctx = qa.FrameContext(
            cam,
            entities,
            instructions[scene % len(instructions)],
            spec.phases,
            phase_index,
            0.0,
            "image.png",
            "depth.png",
        )
        samples = []
        for style in _STYLES:
            samples += qa.grounding_samples(ctx, rng, style)
        samples += qa.spatial_samples(ctx, rng, limit=64)
        samples += qa.planning_samples(ctx, rng, include_plan=scene == 0)
        for sample in samples:
            for turn in sample["conversations"]:
                texts.append(turn["value"].removeprefix("<image>\n"))
    return texts


def _reasoning_texts(spec: TaskSpec, rng: np.random.Generator) -> list[str]:
    """Chain-of-thought answers: the instruction, reasoning, the plan, the subtask, the action."""
    phases = spec.phases
    target = next((obj.name for obj in spec.objects if obj.kind == "object"), "target")
    texts: list[str] = []
    for i, phase in enumerate(phases):
        point = [int(v) for v in rng.integers(0, 1000, size=2)]
        dist = float(rng.uniform(0.01, 0.5))
        grounding = json.dumps([{"point_2d": point, "label": target}], separators=(", ", ": "))
        after = f"then {phases[i + 1]}" if i + 1 < len(phases) else "and the task is done"
        plan = " ".join(f"{k + 1}. {_sentence(p)}" for k, p in enumerate(phases))
        texts += [
            f"Task: {spec.instruction}",
            f"Plan: {plan}",
            f"Reasoning: The {target} is about {dist:.2f} m from the gripper, "
            f"so the robot should {phase} first, {after}.",
            f"Observation: the {target} is at {grounding}.",
            f"Subtask: {_sentence(phase)}",
            f"Next subtask: {_sentence(phase)}",
            f"Step {i + 1}: {_sentence(phase)}",
            f"Action: {_sentence(phase)}",
            f"Answer: {_sentence(phase)}",
        ]
    return texts
