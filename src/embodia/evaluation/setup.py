"""Resolve a :class:`RolloutConfig` into the exact protocol: policy, episodes, cameras, limits.

Every ``None`` default is replaced here by the value actually used (the checkpoint's cameras, the
training dataset's image size and root seed, the benchmark's step limit), and those resolved
values are what ``results.json`` records.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodia.configs.eval import RolloutConfig
from embodia.evaluation.policies import (
    ChunkPolicy,
    ExpertChunkPolicy,
    ModelChunkPolicy,
    RandomChunkPolicy,
    load_policy,
    training_data_config,
)
from embodia.evaluation.rollout import RolloutSettings
from embodia.models.checkpoint import resolve_checkpoint

DEFAULT_CAMERAS = {"metaworld": ("corner", "gripperPOV"), "libero": ("agentview", "wrist")}
ACTION_DIM = {"metaworld": 4, "libero": 7}
DEFAULT_IMAGE_SIZE = {"metaworld": 128, "libero": 128}


@dataclass
class RolloutSetup:
    policy: ChunkPolicy
    episodes: list[dict[str, Any]]
    settings: RolloutSettings
    film: set[int]
    checkpoint: Path | None
    protocol: dict[str, Any]


def build_rollout(cfg: RolloutConfig) -> RolloutSetup:
    if cfg.episodes_per_task < 1:
        raise ValueError(f"--episodes-per-task must be >= 1, got {cfg.episodes_per_task}")
    if "actions" not in cfg.levels:
        raise ValueError(f"--levels must end with 'actions', got {list(cfg.levels)}")
    bench = cfg.benchmark
    checkpoint, data_cfg = None, {}
    cameras = tuple(cfg.cameras) if cfg.cameras else DEFAULT_CAMERAS[bench]
    if cfg.policy == "model":
        if cfg.checkpoint is None:
            raise ValueError("--policy model needs --checkpoint (or use --policy expert/random)")
        checkpoint = resolve_checkpoint(cfg.checkpoint)
        pol = load_policy(checkpoint, cfg.device)
        if cfg.cameras and tuple(cfg.cameras) != tuple(pol.config.cameras):
            raise ValueError(
                f"the checkpoint was trained on cameras {list(pol.config.cameras)}; "
                f"--cameras {list(cfg.cameras)} would feed it other views"
            )
        cameras = tuple(pol.config.cameras)
        if pol.dof != ACTION_DIM[bench]:
            raise ValueError(
                f"the checkpoint's embodiment {pol.config.embodiment} has {pol.dof} action dims; "
                f"{bench} takes {ACTION_DIM[bench]}"
            )
        if (cfg.mode or pol.config.mode) == "fast" and not pol.has_fast:
            raise ValueError("--mode fast needs a checkpoint with a FAST tokenizer")
        if cfg.flow_noise_scale is not None:
            pol.config.flow_noise_scale = cfg.flow_noise_scale
            pol.config.validate()
        policy: ChunkPolicy = ModelChunkPolicy(pol, cfg.mode, cfg.levels)
        data_cfg = training_data_config(checkpoint)
        if not data_cfg and bench == "metaworld":
            print(
                f"warning: {checkpoint}: its training dataset's engine.json was not found; "
                "evaluating with the default seed, image size and no held-out paraphrases "
                "(pass --seed / --image-size to match training)",
                file=sys.stderr,
            )
    elif cfg.policy == "expert":
        if bench != "metaworld":
            raise ValueError("--policy expert exists for Meta-World only (its scripted experts)")
        policy = ExpertChunkPolicy()
    else:
        policy = RandomChunkPolicy(cfg.random_horizon, ACTION_DIM[bench], seed=cfg.seed or 0)
    image_size = cfg.image_size or int(data_cfg.get("image_size", DEFAULT_IMAGE_SIZE[bench]))
    seed = cfg.seed if cfg.seed is not None else int(data_cfg.get("seed", 0))

    if bench == "metaworld":
        from embodia.evaluation.metaworld_env import METAWORLD_MAX_STEPS, metaworld_episodes

        held_out = int(data_cfg.get("held_out_instructions", 0))
        episodes = metaworld_episodes(
            cfg.tasks, cfg.split, cfg.episodes_per_task, seed, held_out, cfg.instructions
        )
        max_steps = cfg.max_steps or METAWORLD_MAX_STEPS
        for ep in episodes:
            ep["max_steps"] = max_steps
    else:
        from embodia.evaluation.libero_env import LIBERO_SUITES, WAIT_STEPS, libero_episodes

        episodes = libero_episodes(cfg.tasks, cfg.episodes_per_task)
        for ep in episodes:
            ep["max_steps"] = cfg.max_steps or LIBERO_SUITES[ep["task"].split("/")[0]]
    tasks = list(dict.fromkeys(ep["task"] for ep in episodes))
    # film the first episode of the first tasks, then second episodes, ... up to --videos
    order = sorted(range(len(episodes)), key=lambda i: (episodes[i]["number"], i))
    film = set(order[: max(0, cfg.videos)])
    settings = RolloutSettings(
        benchmark=bench,
        cameras=cameras,
        image_size=image_size,
        max_steps=max(ep["max_steps"] for ep in episodes),
        execute_steps=cfg.execute_steps,
        ensemble=cfg.ensemble,
        workers=cfg.workers,
        backend=cfg.backend,
        address=cfg.address,
        action_dim=ACTION_DIM[bench],
    )
    desc = policy.describe()
    horizon = int(desc.get("horizon", 1))
    executed = (
        cfg.execute_steps
        if cfg.execute_steps is not None
        else (1 if cfg.ensemble is not None else horizon)
    )
    protocol = {
        "benchmark": bench,
        "tasks": tasks,
        "split": cfg.split if bench == "metaworld" else "libero fixed initial states",
        "episodes_per_task": cfg.episodes_per_task,
        "root_seed": seed if bench == "metaworld" else None,
        "initial_states": "layout_seed(root_seed, task, split, n), n = 0..N-1"
        if bench == "metaworld"
        else f"init_states[n], n = 0..N-1, after {WAIT_STEPS} no-op steps",
        # which phrasings were scored: those seen in training or the ones the engine held out
        "instructions": cfg.instructions if bench == "metaworld" else "the suite's own",
        "max_steps": sorted({ep["max_steps"] for ep in episodes}),
        "executed_steps_per_chunk": min(executed, horizon),
        "temporal_ensembling": cfg.ensemble,
        "mode": desc.get("mode"),
        "levels": list(cfg.levels) if cfg.policy == "model" else None,
        "cameras": list(cameras),
        "image_size": image_size,
        "action_clip": [-1.0, 1.0],
        "episode_end": "first success, the benchmark's truncation, or max_steps",
        "workers": cfg.workers,
        "backend": cfg.backend,
        "training_data": data_cfg or None,
    }
    return RolloutSetup(policy, episodes, settings, film, checkpoint, protocol)
