"""Merge finished LeRobot v3 datasets into one, without touching their videos.

What a merge has to redo and what it can keep:

* **Videos are kept byte for byte.** A v3 episode finds its frames through
  ``videos/<key>/{chunk_index, file_index, from_timestamp}`` in meta/episodes, so a source's mp4
  files are copied whole under new file numbers and only those pointers change. Re-encoding would
  cost hours on a large dataset and lose quality; remuxing would still rewrite every byte.
* **Frames are renumbered.** ``episode_index``, the global ``index``, ``task_index`` and
  ``subtask_index`` live in every data row, and LeRobot's loader finds frame ``i`` at row ``i`` of
  the concatenated data files, so the data parquet files are rewritten in the merged order (their
  feature columns, PNG bytes included, are copied as they are).
* **Splits stay contiguous.** LeRobot's ``splits`` are "start:end" episode ranges, so the merged
  order is split by split (the sources' train episodes, then their val episodes, ...), each split's
  episodes in source order; episodes in no split go last.
* **Statistics are exact where the writer's are.** Per-episode statistics come from the sources'
  meta/episodes rows (those of the renumbered columns are recomputed), are aggregated as the
  writer aggregates them, and numeric quantiles are recomputed from the merged data.

Task and subtask tables are the union, numbered by first appearance in the merged order; the
reasoning sidecar follows the frames. Each merged episode row records where it came from
(``merge_source``, ``merge_source_episode``); ``meta/merge.json`` lists the sources.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .features import (
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_DATA_FILES_SIZE_IN_MB,
    DEFAULT_VIDEO_FILES_SIZE_IN_MB,
    INDEX_FEATURES,
    SUBTASK_INDEX,
    VIDEO_PATH,
    data_schema,
    read_parquet,
    write_json,
)
from .reader import LeRobotV3Dataset
from .writer import (
    _RESERVED_EXTRA_PREFIXES,
    _RESERVED_EXTRAS,
    DatasetLayout,
    _FileCursor,
    dataset_info_features,
    number_episodes,
    write_data_files,
    write_metadata,
)

MERGE_PATH = "meta/merge.json"
_PROVENANCE = ("merge_source", "merge_source_episode")


class MergeError(ValueError):
    """The sources cannot be merged (the message names the source and the field)."""


@dataclass(frozen=True)
class MergedEpisode:
    """Episode ``source_episode`` of source ``source``, at its place in the merged dataset."""

    source: int
    source_episode: int


@dataclass(frozen=True)
class MergePlan:
    """The merged dataset's episodes in order, and its splits as "start:end" ranges of them."""

    episodes: list[MergedEpisode]
    splits: dict[str, str]


def merge_into(
    sources: list[Path],
    root: Path,
    progress: bool = True,
    *,
    plan: MergePlan | None = None,
    move_videos: bool = False,
    provenance: bool = True,
    chunks_size: int | None = None,
    data_files_size_in_mb: float | None = None,
    video_files_size_in_mb: float | None = None,
) -> list[MergedEpisode]:
    """Write the merge of ``sources`` into the empty directory ``root``; returns the merged
    episodes in order. File size limits default to the first source's.

    ``plan`` fixes the order and splits (every source episode exactly once); by default
    :func:`merged_order`: split by split, source by source.

    ``move_videos`` moves the sources' video files instead of copying them (the sources are then
    incomplete: for staging shards that are deleted afterwards). ``provenance=False`` leaves out
    the ``merge_source*`` columns and meta/merge.json (when the sources are internal shards)."""
    from tqdm.auto import tqdm

    paths = [Path(p) for p in sources]
    datasets = [LeRobotV3Dataset(p) for p in paths]
    first = datasets[0]
    has_subtasks = _check_compatible(paths, datasets)
    plan = plan or merged_order(paths, datasets)
    _check_plan(plan, paths, datasets)
    order, split_ranges = plan.episodes, plan.splits
    layout = DatasetLayout(
        fps=first.fps,
        robot_type=first.info.get("robot_type"),
        splits=split_ranges,
        chunks_size=int(chunks_size or first.info.get("chunks_size") or DEFAULT_CHUNKS_SIZE),
        data_files_size_in_mb=float(
            data_files_size_in_mb
            or first.info.get("data_files_size_in_mb")
            or DEFAULT_DATA_FILES_SIZE_IN_MB
        ),
        video_files_size_in_mb=float(
            video_files_size_in_mb
            or first.info.get("video_files_size_in_mb")
            or DEFAULT_VIDEO_FILES_SIZE_IN_MB
        ),
    )
    info_features = dataset_info_features(
        {k: v for k, v in first.info["features"].items() if k in first.features}, has_subtasks
    )
    schema = data_schema(info_features)

    tables = []
    for m in tqdm(order, desc="read episodes", unit="ep", disable=not progress):
        tables.append(_texts_instead_of_indices(datasets[m.source], m.source_episode))
    numbered = number_episodes(tables, schema, layout.fps, has_subtasks)
    sizes = [t.nbytes / 2**20 for t in numbered.tables]
    write_data_files(
        root, numbered, sizes, layout.chunks_size, layout.data_files_size_in_mb, progress
    )
    _place_videos(
        root, paths, datasets, order, numbered.rows, layout.chunks_size, move_videos, progress
    )

    source_stats = [_episode_stats(ds, paths[i]) for i, ds in enumerate(datasets)]
    feature_stats = [source_stats[m.source][m.source_episode] for m in order]
    extras = [_extras(datasets[m.source].episodes[m.source_episode], m, provenance) for m in order]
    write_metadata(root, numbered, extras, feature_stats, first.features, info_features, layout)
    if not provenance:
        return order
    write_json(
        {
            "sources": [
                {"path": str(p.resolve()), "episodes": ds.num_episodes, "frames": ds.num_frames}
                for p, ds in zip(paths, datasets, strict=True)
            ]
        },
        root / MERGE_PATH,
    )
    return order


def merged_order(paths: list[Path], datasets: list[LeRobotV3Dataset]) -> MergePlan:
    """Split by split (in order of first appearance), each split's episodes source by source;
    episodes in no split last. Returns the order and the merged "start:end" split ranges."""
    names: list[str] = []
    for ds in datasets:
        names += [n for n in (ds.info.get("splits") or {}) if n not in names]
    members: list[dict[str, list[int]]] = []
    for path, ds in zip(paths, datasets, strict=True):
        by_split: dict[str, list[int]] = {}
        owner: dict[int, str] = {}
        for name in ds.info.get("splits") or {}:
            by_split[name] = ds.episode_indices(name)
            for ep in by_split[name]:
                if not 0 <= ep < ds.num_episodes:
                    raise MergeError(
                        f"{path}: meta/info.json split {name!r} names episode {ep}, which the "
                        f"dataset does not have ({ds.num_episodes} episodes)"
                    )
                if ep in owner:
                    raise MergeError(
                        f"{path}: meta/info.json puts episode {ep} in splits {owner[ep]!r} "
                        f"and {name!r}"
                    )
                owner[ep] = name
        by_split[""] = [ep for ep in range(ds.num_episodes) if ep not in owner]
        members.append(by_split)
    order: list[MergedEpisode] = []
    ranges: dict[str, str] = {}
    for name in [*names, ""]:
        start = len(order)
        for s, by_split in enumerate(members):
            order += [MergedEpisode(s, ep) for ep in by_split.get(name, [])]
        if name:
            ranges[name] = f"{start}:{len(order)}"
    return MergePlan(order, ranges)


def _check_plan(plan: MergePlan, paths: list[Path], datasets: list[LeRobotV3Dataset]) -> None:
    want = {MergedEpisode(s, e) for s, ds in enumerate(datasets) for e in range(ds.num_episodes)}
    if len(plan.episodes) != len(want) or set(plan.episodes) != want:
        missing = sorted(want - set(plan.episodes), key=lambda m: (m.source, m.source_episode))
        where = f"{paths[missing[0].source]} episode {missing[0].source_episode}" if missing else ""
        raise MergeError(
            f"merge plan must name every source episode exactly once "
            f"({len(plan.episodes)} named, {len(want)} exist{'; missing ' + where if where else ''})"
        )


def _check_compatible(paths: list[Path], datasets: list[LeRobotV3Dataset]) -> bool:
    """Raise unless every source has the first one's fps, robot type and features (video
    encodings included: one info.json describes every file). Returns whether they have
    subtasks."""
    first, name0 = datasets[0], paths[0]
    for path, ds in zip(paths[1:], datasets[1:], strict=True):
        if ds.fps != first.fps:
            raise MergeError(
                f"{path}: meta/info.json field 'fps' is {ds.fps}, {name0} has {first.fps}"
            )
        if ds.info.get("robot_type") != first.info.get("robot_type"):
            raise MergeError(
                f"{path}: meta/info.json field 'robot_type' is {ds.info.get('robot_type')!r}, "
                f"{name0} has {first.info.get('robot_type')!r} (one dataset is one embodiment: "
                "train on both instead, each with its own --datasets entry)"
            )
        for key in sorted(set(first.features) | set(ds.features)):
            mine, theirs = first.info["features"].get(key), ds.info["features"].get(key)
            if mine != theirs:
                raise MergeError(
                    f"{path}: meta/info.json feature {key!r} is {theirs}, {name0} has {mine}"
                )
    for label, present in (
        ("subtasks (meta/subtasks.parquet)", [ds.subtasks is not None for ds in datasets]),
        ("reasoning texts (meta/reasoning.parquet)", [ds.reasoning is not None for ds in datasets]),
    ):
        if len(set(present)) > 1:
            have = [str(p) for p, yes in zip(paths, present, strict=True) if yes]
            lack = [str(p) for p, yes in zip(paths, present, strict=True) if not yes]
            raise MergeError(f"{', '.join(have)} have {label} and {', '.join(lack)} do not")
    return datasets[0].subtasks is not None


def _texts_instead_of_indices(ds: LeRobotV3Dataset, episode: int) -> pa.Table:
    """The episode's rows with the numbering columns replaced by the texts they index."""
    rows = ds.episode_rows(episode)
    drop = [c for c in (*INDEX_FEATURES, SUBTASK_INDEX) if c in rows.column_names]
    out = rows.drop_columns(drop)
    task_index = rows.column("task_index").to_pylist()
    out = out.append_column("task", pa.array([ds.tasks[i] for i in task_index], pa.string()))
    if ds.subtasks is not None:
        sub = rows.column(SUBTASK_INDEX).to_pylist()
        out = out.append_column("subtask", pa.array([ds.subtasks[i] for i in sub], pa.string()))
    if ds.reasoning is not None:
        index = rows.column("index").to_pylist()
        out = out.append_column(
            "reasoning", pa.array([ds.reasoning[i] for i in index], pa.string())
        )
    return out


def _place_videos(
    root: Path,
    paths: list[Path],
    datasets: list[LeRobotV3Dataset],
    order: list[MergedEpisode],
    rows: list[dict[str, Any]],
    chunks_size: int,
    move: bool,
    progress: bool,
) -> None:
    """Copy (or move) every source video file under the next free file number (source by
    source, file by file) and point the merged episode rows at them; timestamps inside a file
    are unchanged."""
    from tqdm.auto import tqdm

    video_keys = [k for k, ft in datasets[0].features.items() if ft.dtype == "video"]
    jobs: list[tuple[Path, Path]] = []
    for key in video_keys:
        cursor, moved = _FileCursor(chunks_size), {}
        for s, (path, ds) in enumerate(zip(paths, datasets, strict=True)):
            used = sorted(
                {
                    (int(ep[f"videos/{key}/chunk_index"]), int(ep[f"videos/{key}/file_index"]))
                    for ep in ds.episodes
                }
            )
            for chunk, file in used:
                if moved:
                    cursor.advance()
                moved[(s, chunk, file)] = (cursor.chunk, cursor.file)
                src = path / ds.info["video_path"].format(
                    video_key=key, chunk_index=chunk, file_index=file
                )
                if not src.is_file():
                    raise MergeError(f"{src}: video file is missing")
                dst = root / VIDEO_PATH.format(
                    video_key=key, chunk_index=cursor.chunk, file_index=cursor.file
                )
                jobs.append((src, dst))
        for m, row in zip(order, rows, strict=True):
            ep = datasets[m.source].episodes[m.source_episode]
            chunk, file = int(ep[f"videos/{key}/chunk_index"]), int(ep[f"videos/{key}/file_index"])
            row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = moved[
                (m.source, chunk, file)
            ]
            start = float(ep[f"videos/{key}/from_timestamp"])
            end = ep.get(f"videos/{key}/to_timestamp")
            if end is None:  # older writers leave it out; it follows from the length
                end = start + int(ep["length"]) / datasets[m.source].fps
            row[f"videos/{key}/from_timestamp"] = start
            row[f"videos/{key}/to_timestamp"] = float(end)
    total = sum(src.stat().st_size for src, _ in jobs)
    desc = "move videos" if move else "copy videos"
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not progress) as bar:
        for src, dst in jobs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            size = src.stat().st_size
            if move:
                os.replace(src, dst)
            else:
                shutil.copyfile(src, dst)
            bar.update(size)


def _episode_stats(ds: LeRobotV3Dataset, path: Path) -> list[dict[str, dict[str, np.ndarray]]]:
    """Per-episode statistics of the features (not of the renumbered columns), from the
    flattened ``stats/<feature>/<stat>`` columns of the source's meta/episodes."""
    out: list[dict[str, dict[str, np.ndarray]]] = [{} for _ in range(ds.num_episodes)]
    renumbered = {*INDEX_FEATURES, SUBTASK_INDEX}
    for file in sorted((path / "meta" / "episodes").glob("*/*.parquet")):
        table = read_parquet(file, path)
        columns = [c for c in table.column_names if c.startswith("stats/")]
        indices = table.column("episode_index").to_pylist()
        for column in columns:
            feature, stat = column[len("stats/") :].rsplit("/", 1)
            if feature in renumbered:
                continue
            for ep, value in zip(indices, table.column(column).to_pylist(), strict=True):
                if value is not None:
                    out[ep].setdefault(feature, {})[stat] = np.asarray(value)
    return out


def _extras(row: dict[str, Any], m: MergedEpisode, provenance: bool) -> dict[str, Any]:
    """A source episode's own columns (env_name, success, ...), plus where it came from."""
    extra = {
        k: v
        for k, v in row.items()
        if k not in _RESERVED_EXTRAS and not k.startswith(_RESERVED_EXTRA_PREFIXES)
    }
    if provenance:
        extra.update(zip(_PROVENANCE, (m.source, m.source_episode), strict=True))
    return extra


__all__ = ["MERGE_PATH", "MergeError", "MergePlan", "MergedEpisode", "merge_into", "merged_order"]
