"""`embodia data generate`: parallel, resumable, atomic generation of an engine dataset.

Work happens in ``<output>.partial/``: each worker records an episode and commits it there with a
rename (conversations first, then the episode, whose presence marks it done), so an interrupt leaves
only whole episodes. Running the same command again skips what is committed.

Episodes are grouped into shards by their place in the plan (``--shard-episodes`` consecutive
episodes, whichever workers record them, so the grouping never depends on the number of workers
or the backend). As soon as every episode of a shard is in, the driver assembles it into a small
LeRobot v3 dataset under ``<output>.partial/shards/`` (its episode videos remuxed into one file
per camera) while the workers record the next ones. When every shard is in, the shards are merged
(:mod:`embodia.data.lerobot_v3.merge`: frames renumbered, statistics aggregated, videos moved, not
rewritten) and the conversation files assembled, in a temporary directory renamed to ``<output>``
in one step; nothing half-written ever appears at ``<output>``.

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from embodia.configs.data import SPLITS, GenerateConfig
from embodia.data.engine.scene import CONTROL_FPS
from embodia.data.engine.splits import EpisodeSpec, check_disjoint, plan_episodes
from embodia.data.engine.tasks import instructions, resolve_tasks
from embodia.utils.fs import atomic_dir, atomic_write_text, replace_dir

if TYPE_CHECKING:
    from embodia.data.lerobot_v3.merge import MergePlan

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
    if min(cfg.workers, cfg.qa_every, cfg.max_steps, cfg.shard_episodes) < 1:
        raise GenerateError(
            "--workers, --qa-every, --max-steps and --shard-episodes must be at least 1"
        )
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


#: Bumped when the engine writes something new for the same settings (2: per-frame reasoning,
#: 3: assembled from shards), so a dataset from an older engine is regenerated rather than reused.
ENGINE_FORMAT = 3


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
    staged = set(staged_episode_keys(stage / "episodes"))
    shards = ShardAssembler(cfg, stage, plan, staged)
    todo = [
        spec
        for spec in recording_order(plan)
        if spec.key not in staged and spec.key not in shards.built_keys
    ]
    _run_workers(cfg, stage, todo, len(plan) - len(todo), len(plan), shards.episode_staged)
    shards.assemble_ready()  # shards completed by an earlier, interrupted run
    return _finalize(cfg, stage, plan, shards)


def recording_order(plan: list[EpisodeSpec]) -> list[EpisodeSpec]:
    """Task by task (each worker reuses its simulator instead of reloading the scene), then
    split and number: the order episodes are handed out in, and the one shards are cut from."""
    return sorted(plan, key=lambda s: (s.env_name, s.split, s.number))


class ShardAssembler:
    """Turns each shard (``cfg.shard_episodes`` consecutive episodes of the recording order)
    into a LeRobot v3 dataset under ``<stage>/shards/`` once all its episodes are staged, then
    drops them from the staging area. A shard directory appears whole (consolidate renames it
    into place), so after an interrupt a shard is either built, with its episodes done, or not
    built at all."""

    def __init__(self, cfg: GenerateConfig, stage: Path, plan: list[EpisodeSpec], staged: set):
        self.cfg, self.stage = cfg, stage
        size, order = cfg.shard_episodes, recording_order(plan)
        self.shards = [order[i : i + size] for i in range(0, len(order), size)]
        self.shard_of = {spec.key: n for n, shard in enumerate(self.shards) for spec in shard}
        self.built = {n for n in range(len(self.shards)) if self._path(n).is_dir()}
        self.built_keys = {spec.key for n in self.built for spec in self.shards[n]}
        for key in staged & self.built_keys:  # interrupted between a build and its clean-up
            shutil.rmtree(stage / "episodes" / key, ignore_errors=True)
        self.missing = [
            {s.key for s in shard} - staged if n not in self.built else set()
            for n, shard in enumerate(self.shards)
        ]

    def _path(self, n: int) -> Path:
        return self.stage / "shards" / f"shard-{n:05d}"

    def episode_staged(self, key: str) -> None:
        n = self.shard_of[key]
        self.missing[n].discard(key)
        if not self.missing[n] and n not in self.built:
            self._assemble(n)

    def assemble_ready(self) -> None:
        for n, missing in enumerate(self.missing):
            if not missing and n not in self.built:
                self._assemble(n)

    def _assemble(self, n: int) -> None:
        from embodia.data.engine.episode import episode_features
        from embodia.data.lerobot_v3.writer import consolidate

        keys = [spec.key for spec in self.shards[n]]
        consolidate(
            self.stage / "episodes",
            self._path(n),
            episode_features(self.cfg),
            fps=CONTROL_FPS,
            robot_type=ROBOT_TYPE,
            episode_order=keys,
            splits=self._splits(n),
            progress=False,
        )
        self.built.add(n)
        for key in keys:
            shutil.rmtree(self.stage / "episodes" / key, ignore_errors=True)

    def _splits(self, n: int) -> dict[str, list[str]]:
        """The shard's episodes by split, splits in the dataset's order (so is the shard's)."""
        by_split = {s: [spec.key for spec in self.shards[n] if spec.split == s] for s in SPLITS}
        return {s: keys for s, keys in by_split.items() if keys}

    def merge_plan(self, plan: list[EpisodeSpec]) -> MergePlan:
        """The final dataset in plan order (split, then task as given, then number), located
        in the shards: episode i of a shard is the i-th of its split-ordered keys."""
        from embodia.data.lerobot_v3.merge import MergedEpisode, MergePlan

        where = {}
        for n in range(len(self.shards)):
            keys = [k for ks in self._splits(n).values() for k in ks]
            where.update({key: MergedEpisode(n, i) for i, key in enumerate(keys)})
        ranges, start = {}, 0
        for split in SPLITS:
            count = sum(spec.split == split for spec in plan)
            if count:
                ranges[split] = f"{start}:{start + count}"
            start += count
        return MergePlan([where[spec.key] for spec in plan], ranges)

    def paths(self) -> list[Path]:
        unbuilt = [n for n in range(len(self.shards)) if n not in self.built]
        if unbuilt:
            raise GenerateError(f"shard {unbuilt[0]} was never assembled: episodes are missing")
        return [self._path(n) for n in range(len(self.shards))]


def _run_workers(
    cfg: GenerateConfig,
    stage: Path,
    todo: list[EpisodeSpec],
    already: int,
    total: int,
    on_staged: Callable[[str], None],
) -> None:
    """Record ``todo``; ``on_staged(key)`` runs here, in the driver, as each episode is in."""
    if not todo:
        return
    bar = tqdm(total=total, initial=already, unit="ep", desc="episodes", disable=not cfg.progress)
    frames, start = 0, time.perf_counter()

    def advance(result: tuple[str, int, float]) -> None:
        nonlocal frames
        on_staged(result[0])
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


def _finalize(
    cfg: GenerateConfig, stage: Path, plan: list[EpisodeSpec], shards: ShardAssembler
) -> Path:
    from embodia.data.lerobot_v3.merge import merge_into
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

    out = Path(cfg.output)
    assembled = stage / "assembled"
    if assembled.exists():
        shutil.rmtree(assembled)
    assembled.mkdir()
    merge_into(
        shards.paths(),
        assembled,
        cfg.progress,
        plan=shards.merge_plan(plan),
        move_videos=True,
        provenance=False,
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
