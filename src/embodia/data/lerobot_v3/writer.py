"""Write LeRobot v3 datasets in two phases: stage episodes in parallel, then consolidate.

Why two phases: simulation workers produce episodes concurrently and may die at any moment.
``stage_episode`` does all the expensive per-episode work (validation, video encoding, PNG
encoding, statistics) inside the worker and publishes the result with one atomic directory
rename, so a staged episode is either complete or absent and a rerun only redoes what is missing.
``consolidate`` then lays the staged episodes out as a LeRobot v3 dataset in a caller-given
order; it copies bytes (parquet rows, mp4 packets) instead of recomputing, so it is cheap and its
output depends only on the staged content and the order, never on which worker staged what when.

The LeRobot v3 layout (codebase_version "v3.0"), as LeRobot's own loader reads it::

    meta/info.json        codebase_version, robot_type, total_episodes, total_frames,
                          total_tasks, chunks_size (files per chunk dir), data_files_size_in_mb,
                          video_files_size_in_mb, fps, splits {"name": "start:end"} over episode
                          indices, data_path / video_path templates, features
                          {key: {dtype, shape, names[, info]}}; "video" features carry
                          info {video.height, video.width, video.codec, video.pix_fmt,
                          video.is_depth_map, video.fps, video.channels, has_audio}
    meta/stats.json       {key: {mean, std, min, max, count, q01, q10, q50, q90, q99}}
    meta/tasks.parquet    pandas frame: index "task" (the text), column task_index
    meta/subtasks.parquet same for "subtask" / subtask_index (LeRobot >= 0.4 reads it when
                          "subtask_index" is a declared feature)
    meta/reasoning.parquet  (ours) per-frame Uni-CoT reasoning texts: columns index (the global
                          frame index) and reasoning; a sidecar, because the texts are unique per
                          frame and LeRobot's loader ignores files it does not know
    meta/episodes/chunk-XXX/file-YYY.parquet
                          one row per episode: episode_index, tasks (list of texts), length,
                          data/chunk_index, data/file_index, dataset_from_index,
                          dataset_to_index (global frame range, end exclusive),
                          videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp},
                          flattened stats/<key>/<stat>, meta/episodes/{chunk_index, file_index};
                          our extra per-episode columns (env_name, seed, success, ...) ride along
    data/chunk-XXX/file-YYY.parquet
                          several whole episodes of frames: one column per non-video feature
                          plus timestamp (float32 s), frame_index, episode_index, index (global),
                          task_index; "image" columns are HF ``datasets`` Image structs
                          {bytes: PNG, path: null}; the schema metadata key "huggingface" holds the
                          ``datasets`` feature spec so HF tooling decodes those structs
    videos/<key>/chunk-XXX/file-YYY.mp4
                          several episodes back to back; an episode's frame i is presented at
                          from_timestamp + timestamp_i. A new file starts when the current one
                          would reach the size limit; file_index wraps to the next chunk after
                          chunks_size files.

Depth (our extension, readable by LeRobot as an ordinary one-channel image): dtype "image",
shape [H, W, 1], 16-bit grayscale PNG of millimetres, info {"depth_unit": "mm",
"depth_scale": 0.001, "invalid_value": 0}.
"""

from __future__ import annotations

import numbers
import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodia.utils.fs import replace_dir

from . import video as vid
from .features import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_DATA_FILES_SIZE_IN_MB,
    DEFAULT_VIDEO_FILES_SIZE_IN_MB,
    EPISODES_PATH,
    INDEX_FEATURES,
    INFO_PATH,
    NUMERIC_DTYPES,
    REASONING_PATH,
    STATS_PATH,
    SUBTASK_FEATURE,
    SUBTASK_INDEX,
    SUBTASKS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    Feature,
    arrow_type,
    data_schema,
    feature_to_info,
    indexed_strings_table,
    read_json,
    validate_feature_key,
    write_json,
    write_parquet,
)
from .stats import (
    aggregate_stats,
    compute_feature_stats,
    set_exact_quantiles,
    stats_from_json,
    stats_to_json,
)

_TMP_PREFIX = ".tmp-"
_STAGED_FORMAT = 1
_EPISODE_JSON = "episode.json"
_FRAMES = "frames.parquet"
_STATS = "stats.json"
_RESERVED_EXTRA_PREFIXES = ("stats/", "videos/", "data/", "meta/")
_RESERVED_EXTRAS = frozenset(
    ["episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index"]
)


# ----------------------------------------------------------------------------- staging


def _check_episode_key(key: str) -> None:
    if not key or key != Path(key).name or key.startswith(".") or key in ("..", "."):
        raise ValueError(f"episode_key {key!r} must be a plain file name not starting with '.'")


def _as_array(key: str, ft: Feature, value: Any) -> np.ndarray:
    """Check one feature's frames against its declaration; returns the array to store."""
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if ft.dtype in ("video", "image"):
        ok = arr.dtype == np.uint8
        want = "uint8"
    elif ft.dtype == "depth":
        ok = kind == "f"
        want = "floating-point metres"
    elif ft.dtype in ("float32", "float64"):
        ok = kind in "fiu"
        want = "a real number dtype"
    elif ft.dtype == "int64":
        ok = kind in "iu"
        want = "an integer dtype"
    else:  # bool
        ok = kind == "b"
        want = "bool"
    if not ok:
        raise ValueError(
            f"frames[{key!r}]: dtype {arr.dtype} does not fit {ft.dtype} (need {want})"
        )
    shape = (1,) if ft.is_scalar else ft.shape
    if ft.is_scalar and arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != shape:
        expected = "(T,) or (T, 1)" if ft.is_scalar else f"(T, {', '.join(map(str, shape))})"
        raise ValueError(f"frames[{key!r}]: expected shape {expected}, got {arr.shape}")
    return arr


def _validate_inputs(
    frames: dict[str, np.ndarray],
    tasks: list[str],
    features: dict[str, Feature],
    fps: int,
    subtasks: list[str] | None,
    extra: dict[str, Any] | None,
    reasoning: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    if isinstance(fps, bool) or not isinstance(fps, numbers.Integral) or fps <= 0:
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    for key in features:
        validate_feature_key(key)
    missing = [k for k in features if k not in frames]
    if missing:
        raise ValueError(f"frames is missing feature key(s) {missing}")
    unknown = [k for k in frames if k not in features]
    if unknown:
        raise ValueError(f"frames has key(s) {unknown} that are not declared features")
    arrays = {k: _as_array(k, ft, frames[k]) for k, ft in features.items()}
    lengths = {k: len(a) for k, a in arrays.items()}
    lengths["tasks"] = len(tasks)
    if subtasks is not None:
        lengths["subtasks"] = len(subtasks)
    if reasoning is not None:
        lengths["reasoning"] = len(reasoning)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inconsistent number of frames T per key: {lengths}")
    length = lengths["tasks"]
    if length == 0:
        raise ValueError("an episode needs at least one frame")
    for name, texts in (
        ("tasks", tasks),
        ("subtasks", subtasks or []),
        ("reasoning", reasoning or []),
    ):
        bad = [t for t in texts if not isinstance(t, str) or not t]
        if bad:
            raise ValueError(f"{name} must be non-empty strings, got {bad[0]!r}")
    for name, value in (extra or {}).items():
        if name in _RESERVED_EXTRAS or name.startswith(_RESERVED_EXTRA_PREFIXES):
            raise ValueError(f"extra key {name!r} clashes with a LeRobot episodes column")
        _plain_extra(name, value)
    return arrays, length


_SCALARS = (str, int, float, bool, np.generic)


def _plain_extra(name: str, value: Any) -> Any:
    """An extra as a JSON/Arrow-friendly value: a scalar, None, or a flat list of scalars."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        if not all(isinstance(v, _SCALARS) and not isinstance(v, list) for v in value):
            raise ValueError(f"extra[{name!r}] must be a flat list of scalars, got {value!r}")
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    if value is not None and not isinstance(value, _SCALARS):
        raise ValueError(f"extra[{name!r}] must be a scalar, None or a list, got {value!r}")
    return value.item() if isinstance(value, np.generic) else value


def _frames_table(
    arrays: dict[str, np.ndarray],
    features: dict[str, Feature],
    tasks: list[str],
    subtasks: list[str] | None,
    reasoning: list[str] | None = None,
) -> pa.Table:
    """Per-frame columns of one episode; images and depth are PNG-encoded here (in the worker)."""
    cols: dict[str, pa.Array] = {}
    for key, ft in features.items():
        arr = arrays[key]
        entry = feature_to_info(ft)
        if ft.dtype == "video":
            continue
        if ft.dtype == "image":
            blobs = [vid.encode_png_rgb(img) for img in arr]
        elif ft.dtype == "depth":
            blobs = [vid.encode_png_depth(vid.depth_to_mm(d)) for d in arr]
        if ft.is_visual:
            cols[key] = pa.array(
                [{"bytes": b, "path": None} for b in blobs], type=arrow_type(entry)
            )
            continue
        flat = arr.astype(np.dtype(ft.dtype)).reshape(len(arr), -1)
        if ft.is_scalar:
            cols[key] = pa.array(flat[:, 0], type=arrow_type(entry))
        else:
            values = pa.array(flat.reshape(-1), type=arrow_type(entry).value_type)
            cols[key] = pa.FixedSizeListArray.from_arrays(values, flat.shape[1])
    cols["task"] = pa.array(tasks, type=pa.string())
    if subtasks is not None:
        cols["subtask"] = pa.array(subtasks, type=pa.string())
    if reasoning is not None:
        cols["reasoning"] = pa.array(reasoning, type=pa.string())
    return pa.table(cols)


def _episode_stats(arrays: dict[str, np.ndarray], features: dict[str, Feature]) -> dict:
    stats = {}
    for key, ft in features.items():
        values = arrays[key]
        if ft.dtype == "depth":  # stats of what readers will get back: quantised metres
            values = vid.mm_to_depth(vid.depth_to_mm(values))
        stats[key] = compute_feature_stats(values, ft.dtype)
    return stats_to_json(stats)


def _tmp_name(label: str) -> str:
    return f"{_TMP_PREFIX}{label}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def stage_episode(
    staging_root: Path,
    episode_key: str,
    frames: dict[str, np.ndarray],
    tasks: list[str],
    features: dict[str, Feature],
    fps: int,
    extra: dict[str, Any] | None = None,
    subtasks: list[str] | None = None,
    reasoning: list[str] | None = None,
) -> Path:
    """Validate, encode and publish one episode as ``staging_root/<episode_key>``.

    Everything is written into a hidden temp dir first and renamed into place as the very last
    step, so an interrupted worker leaves at most a temp dir that :func:`staged_episode_keys`
    ignores and cleans. Staging a key again replaces the earlier staged episode.
    """
    _check_episode_key(episode_key)
    arrays, length = _validate_inputs(frames, tasks, features, fps, subtasks, extra, reasoning)
    fps = int(fps)
    staging_root = Path(staging_root)
    staging_root.mkdir(parents=True, exist_ok=True)
    tmp = staging_root / _tmp_name(episode_key)
    tmp.mkdir()
    try:
        codec = vid.available_codec()
        for key, ft in features.items():
            if ft.dtype == "video":
                (tmp / "videos").mkdir(exist_ok=True)
                vid.encode_video(tmp / "videos" / f"{key}.mp4", arrays[key], fps, codec)
        table = _frames_table(arrays, features, tasks, subtasks, reasoning)
        write_parquet(table, tmp / _FRAMES)
        write_json(_episode_stats(arrays, features), tmp / _STATS)
        meta = {
            "format": _STAGED_FORMAT,
            "episode_key": episode_key,
            "length": length,
            "fps": fps,
            "video_codec": codec,
            "features": {k: feature_to_info(ft) for k, ft in features.items()},
            "has_subtasks": subtasks is not None,
            "has_reasoning": reasoning is not None,
            "extra": {k: _plain_extra(k, v) for k, v in (extra or {}).items()},
        }
        write_json(meta, tmp / _EPISODE_JSON)
        final = staging_root / episode_key
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _owner_is_gone(name: str) -> bool:
    """A temp dir may be removed only if the process that made it (on this host) has exited."""
    parts = name.rsplit("-", 3)
    if len(parts) != 4 or parts[1] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError, OSError):
        return False
    return False


def staged_episode_keys(staging_root: Path) -> list[str]:
    """Keys of completely staged episodes (sorted). Temp dirs left by dead workers are removed;
    those of live workers are left alone."""
    staging_root = Path(staging_root)
    if not staging_root.is_dir():
        return []
    keys = []
    for path in sorted(staging_root.iterdir()):
        if path.name.startswith(_TMP_PREFIX):
            if _owner_is_gone(path.name):
                shutil.rmtree(path, ignore_errors=True)
            continue
        if path.name.startswith("."):  # e.g. a replaced episode set aside by replace_dir
            continue
        if path.is_dir() and (path / _EPISODE_JSON).is_file():
            keys.append(path.name)
    return keys


# ----------------------------------------------------------------------------- consolidation


class _FileCursor:
    """Chunk/file numbering with LeRobot's rule: after chunks_size files, move to next chunk."""

    def __init__(self, chunks_size: int) -> None:
        self.chunks_size = chunks_size
        self.chunk = 0
        self.file = 0

    def advance(self) -> None:
        if self.file == self.chunks_size - 1:
            self.chunk, self.file = self.chunk + 1, 0
        else:
            self.file += 1


def _group_by_size(sizes_mb: list[float], limit_mb: float) -> list[list[int]]:
    """Consecutive groups; a new group starts when adding the next item would reach the limit."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0.0
    for i, size in enumerate(sizes_mb):
        if current and total + size >= limit_mb:
            groups.append(current)
            current, total = [], 0.0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups


def _final_order(
    episode_order: list[str], splits: dict[str, list[str]] | None
) -> tuple[list[str], dict[str, str]]:
    if len(set(episode_order)) != len(episode_order):
        raise ValueError("episode_order has duplicate keys")
    if not episode_order:
        raise ValueError("episode_order is empty")
    if splits is None:
        return list(episode_order), {"train": f"0:{len(episode_order)}"}
    known = set(episode_order)
    owner: dict[str, str] = {}
    for name, keys in splits.items():
        for key in keys:
            if key not in known:
                raise ValueError(f"splits[{name!r}] names episode {key!r} not in episode_order")
            if key in owner:
                raise ValueError(f"episode {key!r} is in splits {owner[key]!r} and {name!r}")
            owner[key] = name
    order: list[str] = []
    ranges: dict[str, str] = {}
    for name in splits:
        start = len(order)
        order.extend(k for k in episode_order if owner.get(k) == name)
        ranges[name] = f"{start}:{len(order)}"
    order.extend(k for k in episode_order if k not in owner)
    return order, ranges


def _load_staged(staging_root: Path, key: str, features_info: dict, fps: int) -> dict[str, Any]:
    path = staging_root / key
    if not (path / _EPISODE_JSON).is_file():
        raise ValueError(f"episode {key!r} is not staged under {staging_root}")
    meta = read_json(path / _EPISODE_JSON)
    if meta.get("features") != features_info:
        raise ValueError(f"staged episode {key!r} was staged with different features")
    if meta.get("fps") != fps:
        raise ValueError(f"staged episode {key!r} has fps {meta.get('fps')}, expected {fps}")
    meta["dir"] = path
    return meta


def _index_stats(columns: dict[str, np.ndarray]) -> dict:
    return stats_to_json({k: compute_feature_stats(v, "float64") for k, v in columns.items()})


def _episodes_table(rows: list[dict[str, Any]], extra_keys: list[str]) -> pa.Table:
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for k in row:
            columns.setdefault(k, [])
    for k in extra_keys:
        columns.setdefault(k, [])
    for row in rows:
        for k in columns:
            columns[k].append(row.get(k))
    arrays = {}
    for k, values in columns.items():
        try:
            arrays[k] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"episode column {k!r} mixes incompatible value types: {exc}") from exc
    return pa.table(arrays)


def consolidate(
    staging_root: Path,
    out_root: Path,
    features: dict[str, Feature],
    fps: int,
    robot_type: str,
    episode_order: list[str],
    splits: dict[str, list[str]] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    *,
    chunks_size: int = DEFAULT_CHUNKS_SIZE,
    data_files_size_in_mb: float = DEFAULT_DATA_FILES_SIZE_IN_MB,
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILES_SIZE_IN_MB,
) -> None:
    """Build the LeRobot v3 dataset at ``out_root`` from staged episodes, atomically.

    Episodes are numbered in ``episode_order``, regrouped so that each split is one contiguous
    range (LeRobot's ``splits`` are "start:end" episode ranges); episodes in no split go last.
    The dataset is built in a temp dir beside ``out_root`` and renamed into place only when
    complete: on failure nothing is left behind and an existing dataset is untouched; an existing
    dataset is replaced only with ``overwrite=True`` and only after the new one is complete.
    """
    staging_root, out_root = Path(staging_root), Path(out_root)
    fps = int(fps)
    if out_root.exists() and not overwrite:
        raise FileExistsError(f"{out_root} exists; pass overwrite=True to replace it")
    if chunks_size <= 0 or data_files_size_in_mb <= 0 or video_files_size_in_mb <= 0:
        raise ValueError("chunks_size and file size limits must be positive")
    for key in features:
        validate_feature_key(key)
    order, split_ranges = _final_order(list(episode_order), splits)
    features_info = {k: feature_to_info(ft) for k, ft in features.items()}
    staged = [_load_staged(staging_root, key, features_info, fps) for key in order]
    with_sub = {m["has_subtasks"] for m in staged}
    if len(with_sub) > 1:
        lacking = [m["episode_key"] for m in staged if not m["has_subtasks"]]
        raise ValueError(f"some episodes have subtasks and {lacking} do not")
    with_reasoning = {bool(m.get("has_reasoning")) for m in staged}
    if len(with_reasoning) > 1:
        lacking = [m["episode_key"] for m in staged if not m.get("has_reasoning")]
        raise ValueError(f"some episodes have reasoning texts and {lacking} do not")
    has_subtasks = with_sub == {True}

    out_root.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_root.parent / f".{out_root.name}{_tmp_name('build')}"
    tmp.mkdir()
    try:
        _build(
            tmp,
            staged,
            features,
            features_info,
            fps,
            robot_type,
            split_ranges,
            has_subtasks,
            progress,
            chunks_size,
            data_files_size_in_mb,
            video_files_size_in_mb,
        )
        replace_dir(tmp, out_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(
    root: Path,
    staged: list[dict[str, Any]],
    features: dict[str, Feature],
    features_info: dict[str, dict[str, Any]],
    fps: int,
    robot_type: str,
    split_ranges: dict[str, str],
    has_subtasks: bool,
    progress: bool,
    chunks_size: int,
    data_mb: float,
    video_mb: float,
) -> None:
    info_features = dataset_info_features(features_info, has_subtasks)
    schema = data_schema(info_features)
    numbered = number_episodes(
        [pq.read_table(meta["dir"] / _FRAMES) for meta in staged], schema, fps, has_subtasks
    )
    sizes = [(m["dir"] / _FRAMES).stat().st_size / 2**20 for m in staged]
    write_data_files(root, numbered, sizes, chunks_size, data_mb, progress)

    # Videos: per key, episodes back to back, packets copied.
    for key in [k for k, ft in features.items() if ft.dtype == "video"]:
        codecs = {m["video_codec"] for m in staged}
        if len(codecs) > 1:
            raise ValueError(f"video {key!r}: staged episodes use different codecs {codecs}")
        inputs = [m["dir"] / "videos" / f"{key}.mp4" for m in staged]
        cursor = _FileCursor(chunks_size)
        sizes = [p.stat().st_size / 2**20 for p in inputs]
        for g, group in enumerate(_group_by_size(sizes, video_mb)):
            if g:
                cursor.advance()
            path = root / VIDEO_PATH.format(
                video_key=key, chunk_index=cursor.chunk, file_index=cursor.file
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            counts = [staged[i]["length"] for i in group]
            vid.concat_videos([inputs[i] for i in group], counts, fps, path)
            offset = 0
            for i in group:
                row = numbered.rows[i]
                row[f"videos/{key}/chunk_index"] = cursor.chunk
                row[f"videos/{key}/file_index"] = cursor.file
                row[f"videos/{key}/from_timestamp"] = offset / fps
                row[f"videos/{key}/to_timestamp"] = (offset + staged[i]["length"]) / fps
                offset += staged[i]["length"]
        info_features[key]["info"] = vid.video_info(
            root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0), fps
        )

    feature_stats = [stats_from_json(read_json(m["dir"] / _STATS)) for m in staged]
    write_metadata(
        root,
        numbered,
        [m["extra"] for m in staged],
        feature_stats,
        features,
        info_features,
        DatasetLayout(fps, robot_type, split_ranges, chunks_size, data_mb, video_mb),
    )


# ------------------------------------------- shared by consolidation and merging (merge.py)


def dataset_info_features(
    features_info: dict[str, dict[str, Any]], has_subtasks: bool
) -> dict[str, dict[str, Any]]:
    """info.json's features: the declared ones, then the bookkeeping columns every frame has."""
    info_features = {k: dict(v) for k, v in features_info.items()}
    info_features.update({k: dict(v) for k, v in INDEX_FEATURES.items()})
    if has_subtasks:
        info_features[SUBTASK_INDEX] = dict(SUBTASK_FEATURE)
    return info_features


@dataclass
class NumberedEpisodes:
    """Episodes in their final order, numbered as one dataset: frame tables in the data schema,
    meta/episodes rows (to be completed with file locations, extras and stats), per-episode
    stats of the numbering columns, and the text tables those numbers index."""

    tables: list[pa.Table]
    rows: list[dict[str, Any]]
    index_stats: list[dict[str, dict[str, np.ndarray]]]
    tasks: list[str]
    subtasks: list[str] | None
    reasoning: list[str] | None


def number_episodes(
    tables: list[pa.Table], schema: pa.Schema, fps: int, has_subtasks: bool
) -> NumberedEpisodes:
    """Give episodes (frame tables with a "task" text column, "subtask" / "reasoning" texts if
    the dataset has them, and every feature column) their global numbering.

    Task and subtask indices follow first appearance in this order, so the numbering depends
    only on the content and the order of the episodes, never on where they came from.
    """
    task_ids: dict[str, int] = {}
    subtask_ids: dict[str, int] = {}
    for table in tables:
        for text in table.column("task").to_pylist():
            task_ids.setdefault(text, len(task_ids))
        if has_subtasks:
            for text in table.column("subtask").to_pylist():
                subtask_ids.setdefault(text, len(subtask_ids))
    has_reasoning = bool(tables) and "reasoning" in tables[0].column_names
    numbered = NumberedEpisodes([], [], [], list(task_ids), None, None)
    if has_subtasks:
        numbered.subtasks = list(subtask_ids)
    if has_reasoning:
        numbered.reasoning = []
    start = 0
    for ep_idx, table in enumerate(tables):
        n = table.num_rows
        task_texts = table.column("task").to_pylist()
        index_cols = {
            "timestamp": (np.arange(n) / fps).astype(np.float32),
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, ep_idx, dtype=np.int64),
            "index": np.arange(start, start + n, dtype=np.int64),
            "task_index": np.array([task_ids[t] for t in task_texts], dtype=np.int64),
        }
        if has_subtasks:
            index_cols[SUBTASK_INDEX] = np.array(
                [subtask_ids[t] for t in table.column("subtask").to_pylist()], dtype=np.int64
            )
        cols = []
        for field in schema:
            if field.name in index_cols:
                cols.append(pa.array(index_cols[field.name], type=field.type))
            else:
                col = table.column(field.name)
                cols.append(col if col.type == field.type else col.cast(field.type))
        numbered.tables.append(pa.Table.from_arrays(cols, schema=schema))
        numbered.index_stats.append(stats_from_json(_index_stats(index_cols)))
        if numbered.reasoning is not None:
            numbered.reasoning += table.column("reasoning").to_pylist()
        numbered.rows.append(
            {
                "episode_index": ep_idx,
                "tasks": list(dict.fromkeys(task_texts)),
                "length": n,
                "dataset_from_index": start,
                "dataset_to_index": start + n,
            }
        )
        start += n
    return numbered


def write_data_files(
    root: Path,
    numbered: NumberedEpisodes,
    sizes_mb: list[float],
    chunks_size: int,
    data_mb: float,
    progress: bool,
) -> None:
    """data/ parquet files of whole episodes, a new file when the size limit would be reached;
    each episode row learns its file."""
    from tqdm.auto import tqdm

    cursor = _FileCursor(chunks_size)
    bar = tqdm(total=len(numbered.tables), desc="data files", disable=not progress)
    for g, group in enumerate(_group_by_size(sizes_mb, data_mb)):
        if g:
            cursor.advance()
        path = root / DATA_PATH.format(chunk_index=cursor.chunk, file_index=cursor.file)
        write_parquet(pa.concat_tables([numbered.tables[i] for i in group]), path)
        for i in group:
            numbered.rows[i]["data/chunk_index"] = cursor.chunk
            numbered.rows[i]["data/file_index"] = cursor.file
            bar.update(1)
    bar.close()


@dataclass(frozen=True)
class DatasetLayout:
    """The dataset-wide facts info.json records besides the features."""

    fps: int
    robot_type: str | None
    splits: dict[str, str]
    chunks_size: int
    data_files_size_in_mb: float
    video_files_size_in_mb: float


def write_metadata(
    root: Path,
    numbered: NumberedEpisodes,
    extras: list[dict[str, Any]],
    feature_stats: list[dict[str, dict[str, np.ndarray]]],
    features: dict[str, Feature],
    info_features: dict[str, dict[str, Any]],
    layout: DatasetLayout,
) -> None:
    """meta/: episodes (rows with extras and flattened per-episode stats), tasks, subtasks,
    reasoning, info.json and stats.json (per-episode stats aggregated, numeric quantiles exact).
    Data and video files must be written first: the rows carry their locations."""
    per_episode_stats = [
        {**stats, **index} for stats, index in zip(feature_stats, numbered.index_stats, strict=True)
    ]
    extra_keys = sorted({k for extra in extras for k in extra})
    for row, extra, ep_stats in zip(numbered.rows, extras, per_episode_stats, strict=True):
        for k in extra_keys:
            row[k] = extra.get(k)
        for feat in info_features:
            if feat in ep_stats:
                for stat, value in stats_to_json({feat: ep_stats[feat]})[feat].items():
                    row[f"stats/{feat}/{stat}"] = value
    _write_episodes(
        root, numbered.rows, extra_keys, layout.chunks_size, layout.data_files_size_in_mb
    )
    write_parquet(indexed_strings_table(numbered.tasks, "task", "task_index"), root / TASKS_PATH)
    if numbered.subtasks is not None:
        table = indexed_strings_table(numbered.subtasks, "subtask", SUBTASK_INDEX)
        write_parquet(table, root / SUBTASKS_PATH)
    if numbered.reasoning is not None:
        texts = numbered.reasoning
        reasoning = pa.table(
            {"index": pa.array(np.arange(len(texts), dtype=np.int64)), "reasoning": texts}
        )
        write_parquet(reasoning, root / REASONING_PATH)
    has_video = any(ft.dtype == "video" for ft in features.values())
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": layout.robot_type,
        "total_episodes": len(numbered.rows),
        "total_frames": sum(row["length"] for row in numbered.rows),
        "total_tasks": len(numbered.tasks),
        "chunks_size": layout.chunks_size,
        "data_files_size_in_mb": layout.data_files_size_in_mb,
        "video_files_size_in_mb": layout.video_files_size_in_mb,
        "fps": layout.fps,
        "splits": layout.splits,
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": info_features,
    }
    write_json(info, root / INFO_PATH)
    dataset_stats = aggregate_stats(per_episode_stats)
    _exact_numeric_quantiles(dataset_stats, numbered.tables, features)
    write_json(stats_to_json(dataset_stats), root / STATS_PATH)


def _exact_numeric_quantiles(
    stats: dict, tables: list[pa.Table], features: dict[str, Feature]
) -> None:
    """Exact dataset quantiles for every numeric feature (see ``set_exact_quantiles``)."""
    for key, ft in features.items():
        if ft.dtype not in NUMERIC_DTYPES or key not in stats:
            continue
        col = pa.chunked_array([t.column(key) for t in tables]).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            values = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
        else:
            values = col.to_numpy(zero_copy_only=False).reshape(len(col), -1)
        set_exact_quantiles(stats[key], values)


def _write_episodes(
    root: Path, rows: list[dict], extra_keys: list[str], chunks_size: int, limit_mb: float
) -> None:
    """meta/episodes files, split by the data size limit (rows are ~equal in size)."""
    probe = _episodes_table(rows, extra_keys)
    per_row_mb = probe.nbytes / 2**20 / max(1, len(rows))
    groups = _group_by_size([per_row_mb] * len(rows), limit_mb)
    cursor = _FileCursor(chunks_size)
    for g, group in enumerate(groups):
        if g:
            cursor.advance()
        for i in group:
            rows[i]["meta/episodes/chunk_index"] = cursor.chunk
            rows[i]["meta/episodes/file_index"] = cursor.file
    table = _episodes_table(rows, extra_keys)
    for group in groups:
        first = rows[group[0]]
        path = root / EPISODES_PATH.format(
            chunk_index=first["meta/episodes/chunk_index"],
            file_index=first["meta/episodes/file_index"],
        )
        write_parquet(table.slice(group[0], len(group)), path)


__all__ = ["consolidate", "stage_episode", "staged_episode_keys"]
