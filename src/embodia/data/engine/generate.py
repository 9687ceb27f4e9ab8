"""`embodia data generate`: parallel, resumable, atomic generation of an engine dataset.

Work happens in ``<output>.partial/``: each worker records an episode and commits it there with a
rename (conversations first, then the episode, whose presence marks it done), so an interrupt leaves
only whole episodes. Running the same command again skips what is committed. When every episode is
in, the LeRobot v3 dataset and the conversation files are assembled in a temporary directory and
renamed to ``<output>`` in one step; nothing half-written ever appears at ``<output>``.

Output layout::

    <output>/meta/, data/, videos/         LeRobot v3 (splits in meta/info.json)
    <output>/conversations/{train,val,test}.jsonl, conversations/images/...
    <output>/engine.json                   the generation config and package versions
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from embodia.configs.data import SPLITS, GenerateConfig
from embodia.data.engine.scene import CONTROL_FPS
from embodia.data.engine.splits import EpisodeSpec, check_disjoint, plan_episodes
from embodia.data.engine.tasks import instructions, resolve_tasks
from embodia.utils.fs import atomic_dir, atomic_write_text, replace_dir

ROBOT_TYPE = "sawyer"
KNOWN_CAMERAS = (
    "topview",
    "corner",
    "corner2",
    "corner3",
    "corner4",
    "behindGripper",
    "gripperPOV",
)


class GenerateError(ValueError):
    """The request cannot be carried out (bad task, camera, output path or a changed config)."""


def validate(cfg: GenerateConfig) -> list[str]:
    """Check everything checkable before any work starts; return the resolved task names."""
    try:
        tasks = resolve_tasks(cfg.tasks)
    except ValueError as exc:
        raise GenerateError(f"--tasks: {exc}") from exc
    bad = [c for c in cfg.cameras if c not in KNOWN_CAMERAS]
    if bad:
        raise GenerateError(
            f"--cameras: unknown camera {bad[0]!r}; choose from {list(KNOWN_CAMERAS)}"
        )
    if len(set(cfg.cameras)) != len(cfg.cameras) or not cfg.cameras:
        raise GenerateError(
            f"--cameras: need one or more distinct cameras, got {list(cfg.cameras)}"
        )
    if not 16 <= cfg.image_size <= 640:
        raise GenerateError(f"--image-size: {cfg.image_size} is outside 16..640 pixels")
    if min(cfg.episodes_per_task) < 0 or sum(cfg.episodes_per_task) == 0:
        raise GenerateError(
            f"--episodes-per-task: need non-negative counts, not all zero: {cfg.episodes_per_task}"
        )
    if cfg.workers < 1 or cfg.qa_every < 1 or cfg.max_steps < 1:
        raise GenerateError("--workers, --qa-every and --max-steps must be at least 1")
    for task in tasks:
        try:
            instructions(task, cfg.held_out_instructions)
        except ValueError as exc:
            raise GenerateError(f"--held-out-instructions: {exc}") from exc
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise GenerateError(f"--output: {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise GenerateError(
            f"--output: {out} already exists and is not empty; pass --overwrite to replace it"
        )
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise GenerateError(f"--output: cannot write under {parent}")
    return tasks


def staging_dir(cfg: GenerateConfig) -> Path:
    out = Path(cfg.output)
    return out.with_name(out.name + ".partial")


#: Bumped when the engine writes something new for the same settings (2: per-frame reasoning),
#: so a dataset from an older engine is regenerated rather than reused.
ENGINE_FORMAT = 2


def _config_fingerprint(cfg: GenerateConfig) -> dict[str, Any]:
    """The fields that change what is generated (not how fast or where), and the engine format."""
    skip = {"output", "workers", "backend", "address", "overwrite", "progress"}
    fields = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in dataclasses.asdict(cfg).items()
        if k not in skip
    }
    return {**fields, "engine_format": ENGINE_FORMAT}


def already_generated(cfg: GenerateConfig) -> bool:
    """Whether ``cfg.output`` holds a finished dataset generated with exactly these settings."""
    engine = Path(cfg.output) / "engine.json"
    try:
        return json.loads(engine.read_text())["config"] == _config_fingerprint(cfg)
    except (OSError, KeyError, json.JSONDecodeError):
        return False


def _check_resume(stage: Path, cfg: GenerateConfig) -> None:
    marker = stage / "config.json"
    wanted = _config_fingerprint(cfg)
    if marker.exists():
        have = json.loads(marker.read_text())
        diff = [k for k in sorted(set(have) | set(wanted)) if have.get(k) != wanted.get(k)]
        if diff:
            raise GenerateError(
                f"{stage} holds an interrupted run with a different config (field {diff[0]!r}: "
                f"{have.get(diff[0])!r} there, {wanted.get(diff[0])!r} now); delete it or rerun "
                "with the same settings"
            )
        return
    stage.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(wanted, indent=2))


# ---------------------------------------------------------------------------------------------
# Worker side


_RECORDERS: dict[str, Any] = {}
_CFG: GenerateConfig | None = None
_STAGE: Path | None = None


def _worker_init(cfg: GenerateConfig, stage: Path) -> None:
    global _CFG, _STAGE
    # Rasterise on the calling thread: the workers already fill the cores.
    os.environ.setdefault("LP_NUM_THREADS", "0")
    if cfg != _CFG:  # a Ray worker outlives one generate(): recorders hold the old settings
        _close_recorders()
    _CFG, _STAGE = cfg, stage


def _recorder(env_name: str):
    from embodia.data.engine.episode import EpisodeRecorder

    if env_name not in _RECORDERS:
        while len(_RECORDERS) >= 2:  # keep memory flat on MT50 runs
            _RECORDERS.pop(next(iter(_RECORDERS))).close()
        _RECORDERS[env_name] = EpisodeRecorder(_CFG, env_name)
    return _RECORDERS[env_name]


def _close_recorders() -> None:
    while _RECORDERS:
        _RECORDERS.popitem()[1].close()


def record_and_stage(spec: EpisodeSpec) -> tuple[str, int, float]:
    """Record one episode and commit it to the staging area; returns (key, frames, seconds)."""
    from embodia.data.engine.episode import episode_features
    from embodia.data.lerobot_v3.writer import stage_episode

    assert _CFG is not None and _STAGE is not None
    start = time.perf_counter()
    episode = _recorder(spec.env_name).record(spec)
    _stage_conversations(_STAGE / "conversations", spec.key, episode.samples, episode.images)
    stage_episode(
        _STAGE / "episodes",
        spec.key,
        episode.frames,
        episode.tasks,
        episode_features(_CFG),
        fps=CONTROL_FPS,
        extra=episode.extra,
        subtasks=episode.subtasks,
        reasoning=episode.reasoning,
    )
    return spec.key, episode.length, time.perf_counter() - start


def record_packed(cfg: GenerateConfig, spec: EpisodeSpec) -> tuple[str, int, float, dict]:
    """Ray's unit of work: record one episode into a private staging directory on the worker
    and return its files ({"episodes/<key>/...": bytes, "conversations/<key>/...": bytes}).

    The driver commits them, so the cluster needs no shared file system, and a worker killed
    mid-episode leaves nothing anywhere: Ray reruns the task, which records the same bytes.
    """
    with tempfile.TemporaryDirectory(prefix="embodia-episode-") as tmp:
        root = Path(tmp)
        _worker_init(cfg, root)
        key, frames, seconds = record_and_stage(spec)
        files = {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
    return key, frames, seconds, files


def commit_packed(stage: Path, key: str, files: dict[str, bytes]) -> None:
    """Write a packed episode into the staging area, conversations first and the episode last
    (its presence marks the episode done), each directory renamed into place whole."""
    for part in ("conversations", "episodes"):
        prefix = f"{part}/{key}/"
        with atomic_dir(stage / part / key) as tmp:
            for rel, data in files.items():
                if rel.startswith(prefix):
                    target = tmp / rel[len(prefix) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)


def _stage_conversations(
    root: Path, key: str, samples: list[dict], images: dict[str, np.ndarray]
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{key}-{uuid.uuid4().hex}"
    for rel, array in images.items():
        path = tmp / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path, compress_level=1)
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "samples.jsonl", "w") as fh:
        for sample in samples:
            fh.write(json.dumps(sample) + "\n")
    # An existing one was left by a run interrupted between this commit and the episode's.
    replace_dir(tmp, root / key)


# ---------------------------------------------------------------------------------------------
# Driver side


def generate(cfg: GenerateConfig) -> Path:
    """Generate (or finish generating) the dataset described by ``cfg``; returns its path."""
    from embodia.data.lerobot_v3.writer import staged_episode_keys

    tasks = validate(cfg)
    stage = staging_dir(cfg)
    _check_resume(stage, cfg)
    plan = plan_episodes(cfg.seed, tasks, cfg.split_of_counts())
    done = set(staged_episode_keys(stage / "episodes")) if (stage / "episodes").exists() else set()
    todo = [spec for spec in plan if spec.key not in done]
    # Group by task so each worker reuses its simulator instead of reloading the scene.
    todo.sort(key=lambda s: (s.env_name, s.split, s.number))
    _run_workers(cfg, stage, todo, already=len(plan) - len(todo), total=len(plan))
    return _finalize(cfg, stage, plan)


def _run_workers(
    cfg: GenerateConfig, stage: Path, todo: list[EpisodeSpec], already: int, total: int
) -> None:
    if not todo:
        return
    bar = tqdm(total=total, initial=already, unit="ep", desc="episodes", disable=not cfg.progress)
    frames, start = 0, time.perf_counter()

    def advance(result: tuple[str, int, float]) -> None:
        nonlocal frames
        frames += result[1]
        bar.update(1)
        bar.set_postfix(frames=frames, fps=f"{frames / (time.perf_counter() - start):.1f}")

    try:
        if cfg.backend == "ray":
            _run_ray(cfg, stage, todo, advance)
        elif cfg.workers == 1:
            _worker_init(cfg, stage)
            try:
                for spec in todo:
                    advance(record_and_stage(spec))
            finally:
                _close_recorders()
        else:
            ctx = mp.get_context("spawn")  # never fork a process that might hold a GL context
            with ctx.Pool(
                cfg.workers, initializer=_worker_init, initargs=(cfg, stage), maxtasksperchild=None
            ) as pool:
                chunk = max(1, min(4, len(todo) // (cfg.workers * 4) or 1))
                for result in pool.imap_unordered(record_and_stage, todo, chunksize=chunk):
                    advance(result)
                pool.close()
                pool.join()
    finally:
        bar.close()


def _run_ray(cfg: GenerateConfig, stage: Path, todo: list[EpisodeSpec], advance) -> None:
    """One Ray task per episode, committed here as each finishes (in any order: the
    consolidation orders episodes by plan). A task whose worker dies is retried by Ray; a task
    that raises stops the run with its error, keeping every episode already committed."""
    from embodia.utils.cluster import CPUS_PER_EPISODE, connect_ray

    ray = connect_ray(cfg.address, cfg.workers)
    record = ray.remote(num_cpus=CPUS_PER_EPISODE, max_retries=3)(record_packed)
    # the progress bar must not travel to workers; the rest of the config is what they record
    worker_cfg = ray.put(dataclasses.replace(cfg, progress=False))
    pending = [record.remote(worker_cfg, spec) for spec in todo]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            key, frames, seconds, files = ray.get(done[0])
            commit_packed(stage, key, files)
            advance((key, frames, seconds))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _finalize(cfg: GenerateConfig, stage: Path, plan: list[EpisodeSpec]) -> Path:
    from embodia.data.engine.episode import episode_features
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
    from embodia.data.lerobot_v3.writer import consolidate

    out = Path(cfg.output)
    assembled = stage / "assembled"
    if assembled.exists():
        shutil.rmtree(assembled)
    splits = {s: [p.key for p in plan if p.split == s] for s in SPLITS}
    consolidate(
        stage / "episodes",
        assembled,
        episode_features(cfg),
        fps=CONTROL_FPS,
        robot_type=ROBOT_TYPE,
        episode_order=[p.key for p in plan],
        splits={k: v for k, v in splits.items() if v},
        progress=cfg.progress,
    )
    dataset = LeRobotV3Dataset(assembled)
    check_disjoint(
        (ep["env_name"], ep["split"], np.asarray(ep["layout"])) for ep in dataset.episodes
    )
    counts = _assemble_conversations(
        stage / "conversations", assembled / "conversations", plan, cfg
    )
    summary = {
        "config": _config_fingerprint(cfg),
        "episodes": len(plan),
        "frames": dataset.num_frames,
        "conversation_samples": counts,
        "expert_success_rate": float(np.mean([bool(ep["success"]) for ep in dataset.episodes])),
        "versions": _versions(),
    }
    atomic_write_text(assembled / "engine.json", json.dumps(summary, indent=2))
    _swap_into_place(assembled, out, cfg.overwrite)
    shutil.rmtree(stage)
    return out


def _assemble_conversations(
    src: Path, dst: Path, plan: list[EpisodeSpec], cfg: GenerateConfig
) -> dict[str, dict[str, int]]:
    """Each split's conversations, balanced (:func:`embodia.data.engine.qa.balance`: no
    question's answer follows from its task and wording alone), about ``spatial_per_image``
    spatial questions per image; only the images a kept sample uses are copied."""
    from embodia.data.engine import qa

    dst.mkdir(parents=True)
    (dst / "images").mkdir()
    counts: dict[str, dict[str, int]] = {}
    for split_number, split in enumerate(SPLITS):
        specs = [spec for spec in plan if spec.split == split]
        samples = []
        for spec in specs:
            with open(src / spec.key / "samples.jsonl") as fh:
                samples += [json.loads(line) for line in fh]
        rng = np.random.default_rng([cfg.seed, split_number])
        budgets = qa.spatial_budgets(samples, cfg.spatial_per_image)
        kept = qa.balance(samples, rng, budgets=budgets)
        with open(dst / f"{split}.jsonl", "w") as fh:
            for sample in kept:
                fh.write(json.dumps(sample) + "\n")
        used = {name for s in kept for name in (s["image"], s.get("depth")) if name}
        for rel in sorted(used):  # images/<episode key>/<file>, staged under the episode
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel.split("/")[1] / rel, target)
        counts[split] = dict(
            sorted(Counter(f"{s['task_type']}/{s['category']}" for s in kept).items())
        )
    return counts


def _swap_into_place(new: Path, out: Path, overwrite: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise GenerateError(f"--output: {out} appeared while generating; not replacing it")
    replace_dir(new, out)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("embodia", "metaworld", "mujoco", "numpy", "pyarrow", "av"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out
