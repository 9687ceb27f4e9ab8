"""Record one expert episode: every step rendered (RGB + metric depth per camera) and annotated.

A frame t holds the observation before action t, the expert's action t, and what followed it
(``next.reward``, ``next.success``, ``next.done``), LeRobot's convention. The subtask label is the
expert's own stage when it chose action t, and its grounded reasoning (``reasoning.py``) is written
from the same frame's state. Every ``qa_every``-th frame also yields conversation
samples whose answers come from the simulator state of that very frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodia.configs.data import GenerateConfig
from embodia.data.engine import qa
from embodia.data.engine.camera import PinholeCamera, mujoco_camera, renders_upside_down
from embodia.data.engine.geometry import project_object, project_region, table_height
from embodia.data.engine.phases import ExpertWithPhases
from embodia.data.engine.reasoning import reasoning_text
from embodia.data.engine.rendering import OffscreenRenderer
from embodia.data.engine.scene import MetaWorldScene
from embodia.data.engine.splits import EpisodeSpec
from embodia.data.engine.tasks import TASKS, instructions, object_geom_ids, object_position
from embodia.data.lerobot_v3.features import Feature
from embodia.data.lerobot_v3.video import depth_to_mm

GRIPPER_BODIES = ("hand", "rightclaw", "leftclaw", "rightpad", "leftpad")
STATE_NAMES = ["ee_x", "ee_y", "ee_z", "gripper_opening"]
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper_effort"]
JOINT_NAMES = [f"right_j{i}" for i in range(7)] + ["r_close", "l_close"]


def episode_features(cfg: GenerateConfig) -> dict[str, Feature]:
    """The per-frame schema of an engine dataset (LeRobot v3 feature names)."""
    size = cfg.image_size
    feats: dict[str, Feature] = {}
    for cam in cfg.cameras:
        feats[f"observation.images.{cam}"] = Feature(
            "video" if cfg.video else "image", (size, size, 3), ["height", "width", "channels"]
        )
        feats[f"observation.depth.{cam}"] = Feature("depth", (size, size), ["height", "width"])
        feats[f"observation.cameras.{cam}.intrinsics"] = Feature(
            "float32", (9,), [f"K{r}{c}" for r in range(3) for c in range(3)]
        )
        feats[f"observation.cameras.{cam}.cam_to_world"] = Feature(
            "float32", (16,), [f"T{r}{c}" for r in range(4) for c in range(4)]
        )
    feats["observation.state"] = Feature("float32", (4,), STATE_NAMES)
    feats["observation.joints"] = Feature("float32", (9,), JOINT_NAMES)
    feats["observation.environment_state"] = Feature("float32", (39,), None)
    feats["action"] = Feature("float32", (4,), ACTION_NAMES)
    feats["next.reward"] = Feature("float32", (1,), None)
    feats["next.success"] = Feature("bool", (1,), None)
    feats["next.done"] = Feature("bool", (1,), None)
    return feats


@dataclass
class RecordedEpisode:
    spec: EpisodeSpec
    frames: dict[str, np.ndarray]
    tasks: list[str]
    subtasks: list[str]
    extra: dict[str, Any]
    reasoning: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # relative path -> RGB or uint16 depth

    @property
    def length(self) -> int:
        return len(self.tasks)


class EpisodeRecorder:
    """Owns one task's simulator and renderer; records any number of its episodes."""

    def __init__(self, cfg: GenerateConfig, env_name: str) -> None:
        self.cfg = cfg
        self.task = TASKS[env_name]
        self.scene = MetaWorldScene(env_name)
        model = self.scene.model
        self.scene.reset(0)  # poses are needed to decide which cameras render upside down
        self.rotate180 = frozenset(
            c for c in cfg.cameras if renders_upside_down(model, self.scene.data, c)
        )
        self.renderer = OffscreenRenderer(
            model, list(cfg.cameras), cfg.image_size, cfg.image_size, self.rotate180, cfg.max_depth
        )
        self.object_geoms = {
            o.name: object_geom_ids(model, o) for o in self.task.objects if o.kind == "object"
        }
        gripper_bodies = [model.body(b).id for b in GRIPPER_BODIES]
        self.gripper_geoms = np.flatnonzero(np.isin(model.geom_bodyid, gripper_bodies))
        # A camera riding on the gripper sees the gripper smeared over its whole view: no question
        # about the gripper's position in such an image has a sensible answer.
        self.on_gripper = frozenset(
            c for c in cfg.cameras if int(model.cam_bodyid[model.camera(c).id]) in gripper_bodies
        )

    def close(self) -> None:
        self.renderer.close()
        self.scene.close()

    def cameras(self) -> dict[str, PinholeCamera]:
        size = self.cfg.image_size
        return {
            c: mujoco_camera(self.scene.model, self.scene.data, c, size, size, c in self.rotate180)
            for c in self.cfg.cameras
        }

    def record(self, spec: EpisodeSpec) -> RecordedEpisode:
        cfg, scene = self.cfg, self.scene
        rng = np.random.default_rng(spec.layout_seed)
        obs = scene.reset(spec.layout_seed)
        instruction = str(rng.choice(instructions(spec.env_name, cfg.held_out_instructions)))
        expert = ExpertWithPhases(spec.env_name)
        cols: dict[str, list[np.ndarray]] = {}
        subtasks: list[str] = []
        reasoning: list[str] = []
        samples: list[dict[str, Any]] = []
        images: dict[str, np.ndarray] = {}
        first_success: int | None = None
        table_z = table_height(scene.model, scene.data)

        def put(key: str, value: np.ndarray) -> None:
            cols.setdefault(key, []).append(value)

        for t in range(cfg.max_steps):
            views = self.renderer.render_all(scene.data)
            cams = self.cameras()
            for name, view in views.items():
                put(f"observation.images.{name}", view.rgb)
                put(f"observation.depth.{name}", view.depth)
                put(f"observation.cameras.{name}.intrinsics", cams[name].intrinsics.ravel())
                put(f"observation.cameras.{name}.cam_to_world", cams[name].cam_to_world.ravel())
            put("observation.state", obs[:4])
            put("observation.joints", scene.joint_positions())
            put("observation.environment_state", obs)
            action, phase = expert.act(obs)
            action = np.clip(action, -1.0, 1.0)  # what the environment actually executes
            subtasks.append(self.task.phases[phase])
            reasoning.append(self._reasoning(obs, phase))
            if t % cfg.qa_every == 0:
                ctx_meta = {
                    "episode": spec.key,
                    "frame_index": t,
                    "split": spec.split,
                    "env_name": spec.env_name,
                }
                for name in cfg.cameras:
                    stem = f"{spec.key}/{name}_{t:04d}"
                    images[f"{stem}.png"] = views[name].rgb
                    images[f"{stem}_depth.png"] = depth_to_mm(views[name].depth)
                    ctx = qa.FrameContext(
                        camera=cams[name],
                        entities=self._entities(cams[name], name, views[name].depth),
                        instruction=instruction,
                        phases=self.task.phases,
                        phase_index=phase,
                        table_height=table_z,
                        image=f"images/{stem}.png",
                        depth=f"images/{stem}_depth.png",
                        meta=ctx_meta,
                    )
                    samples += qa.grounding_samples(ctx, rng, cfg.coordinates)
                    samples += qa.spatial_samples(ctx, rng)  # thinned after balancing
                    samples += qa.planning_samples(ctx, rng, include_plan=(t == 0))
            obs, reward, truncated, info = scene.step(action)
            success = bool(info.get("success", 0.0))
            put("action", action)
            put("next.reward", np.array([reward]))
            put("next.success", np.array([success]))
            if success and first_success is None:
                first_success = t
            done = truncated or (
                first_success is not None and t - first_success >= cfg.steps_after_success
            )
            put("next.done", np.array([done or t == cfg.max_steps - 1]))
            if done:
                break

        features = episode_features(cfg)
        frames = {
            key: np.stack(values).astype(_numpy_dtype(features[key]))
            for key, values in cols.items()
        }
        extra = {
            "env_name": spec.env_name,
            "split": spec.split,
            "layout_seed": spec.layout_seed,
            "layout": [float(v) for v in scene.layout],
            "success": first_success is not None,
            "first_success_frame": -1 if first_success is None else first_success,
            "instruction": instruction,
            "expert_saturated_steps": expert.saturated_steps,
        }
        return RecordedEpisode(
            spec, frames, [instruction] * len(subtasks), subtasks, extra, reasoning, samples, images
        )

    def _reasoning(self, obs: np.ndarray, phase: int) -> str:
        model, data, env = self.scene.model, self.scene.data, self.scene.env
        objects = [
            (o.name, np.asarray(object_position(model, data, env, o), dtype=np.float64))
            for o in self.task.objects
        ]
        return reasoning_text(
            objects, np.asarray(env.tcp_center), float(obs[3]), self.task.phases, phase
        )

    def _entities(self, cam: PinholeCamera, name: str, depth: np.ndarray) -> list[qa.SceneEntity]:
        model, data, env = self.scene.model, self.scene.data, self.scene.env
        seg = self.renderer.segmentation(data, name)
        out = []
        for obj in self.task.objects:
            pos = np.asarray(object_position(model, data, env, obj), dtype=np.float64)
            if obj.kind == "object":
                proj = project_object(model, data, cam, self.object_geoms[obj.name], seg)
            else:
                proj = project_region(cam, pos, obj.radius, depth)
            out.append(qa.SceneEntity(obj.name, obj.kind, pos, proj))
        grip = None
        if name not in self.on_gripper:
            grip = project_object(model, data, cam, self.gripper_geoms, seg)
        out.append(qa.SceneEntity("gripper", "gripper", np.asarray(env.tcp_center), grip))
        return out


def _numpy_dtype(feature: Feature) -> type:
    return {
        "video": np.uint8,
        "image": np.uint8,
        "depth": np.float32,
        "float32": np.float32,
        "float64": np.float64,
        "int64": np.int64,
        "bool": np.bool_,
    }[feature.dtype]
