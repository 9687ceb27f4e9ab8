"""Read LeRobot v3 datasets (ours or LeRobot's) into numpy, without LeRobot installed.

How the layout is read (see writer.py for the full description of each file):

* ``meta/info.json`` gives fps, the path templates and the features. A feature with dtype
  "image" and ``info.depth_unit == "mm"`` is our depth; it comes back as float32 metres.
* ``meta/episodes/*/*.parquet`` (all files, concatenated and ordered by episode_index) locate
  each episode: rows ``dataset_from_index:dataset_to_index`` of data file
  (data/chunk_index, data/file_index), and for each video key the file
  (videos/<key>/chunk_index, file_index) and the time ``from_timestamp`` at which the episode's
  first frame is presented.
* ``meta/tasks.parquet`` maps task_index to text (the text is the pandas index column);
  ``meta/subtasks.parquet`` likewise for subtask_index when present.
* Video frame i of an episode is the frame presented at ``from_timestamp + timestamp_i``.

Every missing or malformed file, field or column raises :class:`DatasetFormatError` naming the
file and the field, so a broken dataset fails loudly at open time or at first use.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import video as vid
from .features import (
    INDEX_FEATURES,
    INFO_PATH,
    REASONING_PATH,
    STATS_PATH,
    SUBTASK_INDEX,
    SUBTASKS_PATH,
    TASKS_PATH,
    DatasetFormatError,
    Feature,
    feature_from_info,
    read_indexed_strings,
    read_json,
    read_parquet,
    require_columns,
)
from .stats import stats_from_json

_REQUIRED_INFO = (
    "codebase_version",
    "fps",
    "features",
    "data_path",
    "total_episodes",
    "total_frames",
)
_REQUIRED_EPISODE_COLUMNS = (
    "episode_index",
    "length",
    "dataset_from_index",
    "dataset_to_index",
    "data/chunk_index",
    "data/file_index",
)
_CACHED_FILES = 2


class LeRobotV3Dataset:
    """A LeRobot v3 dataset on disk; episodes and frames come back as numpy arrays.

    ``load_episode`` returns every frame of one episode; ``dataset[i]`` returns global frame
    ``i``. Both give: video uint8 (H, W, 3), depth float32 metres (H, W) with 0 = invalid, image
    uint8 (H, W, 3), vectors (D,), scalars as 0-d values, plus the bookkeeping columns
    (timestamp, frame_index, episode_index, index, task_index), "task" and, if the dataset has
    subtasks, "subtask", and if it has reasoning texts (``meta/reasoning.parquet``), "reasoning"
    (per episode these gain a leading T axis / become lists).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetFormatError(f"{self.root}: dataset directory does not exist")
        self.info: dict[str, Any] = self._load_info()
        self.fps: int = int(self.info["fps"])
        self.features: dict[str, Feature] = {
            key: feature_from_info(key, entry, INFO_PATH)
            for key, entry in self.info["features"].items()
            if key not in INDEX_FEATURES and key != SUBTASK_INDEX
        }
        self.stats: dict[str, dict[str, np.ndarray]] = self._load_stats()
        self.tasks: list[str] = read_indexed_strings(
            self.root / TASKS_PATH, self.root, "task", "task_index"
        )
        self.subtasks: list[str] | None = None
        if (self.root / SUBTASKS_PATH).is_file():
            self.subtasks = read_indexed_strings(
                self.root / SUBTASKS_PATH, self.root, "subtask", SUBTASK_INDEX
            )
        self.episodes: list[dict[str, Any]] = self._load_episodes()
        self.num_episodes: int = len(self.episodes)
        self.num_frames: int = sum(int(ep["length"]) for ep in self.episodes)
        if self.num_frames != self.info["total_frames"]:
            raise DatasetFormatError(
                f"{INFO_PATH}: field 'total_frames' is {self.info['total_frames']} but "
                f"meta/episodes lengths add up to {self.num_frames}"
            )
        self.reasoning: list[str] | None = None
        if (self.root / REASONING_PATH).is_file():
            self.reasoning = read_indexed_strings(
                self.root / REASONING_PATH, self.root, "reasoning", "index"
            )
            if len(self.reasoning) != self.num_frames:
                raise DatasetFormatError(
                    f"{REASONING_PATH}: {len(self.reasoning)} texts for {self.num_frames} frames"
                )
        self._starts = [int(ep["dataset_from_index"]) for ep in self.episodes]
        self._tables: OrderedDict[Path, pa.Table] = OrderedDict()

    # ------------------------------------------------------------------ metadata

    def _load_info(self) -> dict[str, Any]:
        info = read_json(self.root / INFO_PATH, self.root)
        if not isinstance(info, dict):
            raise DatasetFormatError(f"{INFO_PATH}: top level must be an object")
        for field in _REQUIRED_INFO:
            if field not in info:
                raise DatasetFormatError(f"{INFO_PATH}: field '{field}' is missing")
        version = str(info["codebase_version"])
        if not version.startswith("v3."):
            raise DatasetFormatError(
                f"{INFO_PATH}: field 'codebase_version' is {version!r}, expected 'v3.x'"
            )
        if not isinstance(info["fps"], int | float) or info["fps"] <= 0:
            raise DatasetFormatError(f"{INFO_PATH}: field 'fps' must be positive: {info['fps']!r}")
        if not isinstance(info["features"], dict):
            raise DatasetFormatError(f"{INFO_PATH}: field 'features' must be an object")
        has_video = any(
            isinstance(f, dict) and f.get("dtype") == "video" for f in info["features"].values()
        )
        if has_video and not info.get("video_path"):
            raise DatasetFormatError(f"{INFO_PATH}: field 'video_path' is missing")
        return info

    def _load_stats(self) -> dict[str, dict[str, np.ndarray]]:
        if not (self.root / STATS_PATH).is_file():
            return {}  # LeRobot treats stats as optional too
        data = read_json(self.root / STATS_PATH, self.root)
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise DatasetFormatError(f"{STATS_PATH}: must map feature keys to stat objects")
        return stats_from_json(data)

    def _load_episodes(self) -> list[dict[str, Any]]:
        paths = sorted((self.root / "meta" / "episodes").glob("*/*.parquet"))
        if not paths:
            raise DatasetFormatError("meta/episodes: no chunk-*/file-*.parquet files")
        video_cols = [
            f"videos/{k}/{c}"
            for k, ft in self.features.items()
            if ft.dtype == "video"
            for c in ("chunk_index", "file_index", "from_timestamp")
        ]
        rows: list[dict[str, Any]] = []
        for path in paths:
            table = read_parquet(path, self.root)
            name = path.relative_to(self.root)
            require_columns(table, [*_REQUIRED_EPISODE_COLUMNS, *video_cols], name)
            keep = [c for c in table.column_names if not c.startswith("stats/")]
            rows.extend(table.select(keep).to_pylist())
        rows.sort(key=lambda r: r["episode_index"])
        if [r["episode_index"] for r in rows] != list(range(len(rows))):
            raise DatasetFormatError("meta/episodes: column 'episode_index' is not 0..N-1")
        return rows

    # ------------------------------------------------------------------ queries

    def episode_indices(self, split: str | None = None) -> list[int]:
        """Episode indices of a split ("start:end" ranges in info.json), or all of them."""
        if split is None:
            return list(range(self.num_episodes))
        splits = self.info.get("splits") or {}
        if split not in splits:
            raise KeyError(f"split {split!r} not in {INFO_PATH} splits {sorted(splits)}")
        out: list[int] = []
        for part in str(splits[split]).split(","):
            try:
                start, end = (int(x) for x in part.split(":"))
            except ValueError as exc:
                raise DatasetFormatError(
                    f"{INFO_PATH}: field 'splits.{split}' is not 'start:end': {splits[split]!r}"
                ) from exc
            out.extend(range(start, end))
        return out

    def __len__(self) -> int:
        return self.num_frames

    def _episode(self, episode_index: int) -> dict[str, Any]:
        if not 0 <= episode_index < self.num_episodes:
            raise IndexError(f"episode {episode_index} out of range 0..{self.num_episodes - 1}")
        return self.episodes[episode_index]

    def _data_table(self, ep: dict[str, Any]) -> tuple[pa.Table, Path]:
        rel = Path(
            self.info["data_path"].format(
                chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"]
            )
        )
        if rel in self._tables:
            self._tables.move_to_end(rel)
            return self._tables[rel], rel
        table = read_parquet(self.root / rel, self.root)
        needed = [k for k, ft in self.features.items() if ft.dtype != "video"]
        needed += ["timestamp", "frame_index", "episode_index", "index", "task_index"]
        if self.subtasks is not None and SUBTASK_INDEX in self.info["features"]:
            needed.append(SUBTASK_INDEX)
        require_columns(table, needed, rel)
        self._tables[rel] = table
        while len(self._tables) > _CACHED_FILES:
            self._tables.popitem(last=False)
        return table, rel

    def _rows(self, ep: dict[str, Any], start: int, stop: int) -> tuple[pa.Table, Path]:
        """Rows [start, stop) of the episode, located by the global ``index`` column."""
        table, rel = self._data_table(ep)
        index = table.column("index").to_numpy()
        lo = int(np.searchsorted(index, start))
        if lo >= len(index) or index[lo] != start or lo + (stop - start) > len(index):
            raise DatasetFormatError(
                f"{rel}: column 'index' lacks frames {start}..{stop - 1} of episode "
                f"{ep['episode_index']}"
            )
        rows = table.slice(lo, stop - start)
        if rows.column("episode_index").to_numpy().tolist() != [ep["episode_index"]] * len(rows):
            raise DatasetFormatError(
                f"{rel}: column 'episode_index' disagrees with meta/episodes for episode "
                f"{ep['episode_index']}"
            )
        return rows, rel

    def _decode_columns(
        self, rows: pa.Table, rel: Path, keys: set[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, ft in self.features.items():
            if ft.dtype == "video" or (keys is not None and key not in keys):
                continue
            col = rows.column(key)
            if ft.dtype in ("image", "depth"):
                out[key] = np.stack([self._image(v, ft, rel, key) for v in col.to_pylist()])
            elif ft.is_scalar:
                out[key] = col.to_numpy().astype(ft.dtype)
            else:
                flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
                out[key] = flat.astype(ft.dtype).reshape(len(rows), *ft.shape)
        for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            out[key] = rows.column(key).to_numpy()
        out["task"] = [self._text(self.tasks, i, TASKS_PATH) for i in out["task_index"]]
        if self.subtasks is not None and SUBTASK_INDEX in rows.column_names:
            out[SUBTASK_INDEX] = rows.column(SUBTASK_INDEX).to_numpy()
            out["subtask"] = [
                self._text(self.subtasks, i, SUBTASKS_PATH) for i in out[SUBTASK_INDEX]
            ]
        if self.reasoning is not None:
            out["reasoning"] = [self._text(self.reasoning, i, REASONING_PATH) for i in out["index"]]
        return out

    @staticmethod
    def _text(table: list[str], i: int, where: str) -> str:
        if not 0 <= i < len(table):
            raise DatasetFormatError(f"{where}: no entry for index {i}")
        return table[i]

    def _image(self, value: Any, ft: Feature, rel: Path, key: str) -> np.ndarray:
        data = value.get("bytes") if isinstance(value, dict) else None
        if data is None and isinstance(value, dict) and value.get("path"):
            path = Path(value["path"])
            data = (path if path.is_absolute() else self.root / path).read_bytes()
        if data is None:
            raise DatasetFormatError(
                f"{rel}: column '{key}' has an image with neither bytes nor path"
            )
        if ft.dtype == "depth":
            return vid.mm_to_depth(vid.decode_png_depth(data))
        return vid.decode_png_rgb(data)

    def _video_frames(
        self, ep: dict[str, Any], key: str, first_ts: float, count: int
    ) -> np.ndarray:
        rel = self.info["video_path"].format(
            video_key=key,
            chunk_index=ep[f"videos/{key}/chunk_index"],
            file_index=ep[f"videos/{key}/file_index"],
        )
        path = self.root / rel
        if not path.is_file():
            raise DatasetFormatError(f"{rel}: video file is missing")
        start = float(ep[f"videos/{key}/from_timestamp"]) + first_ts
        return vid.decode_video(path, start, count, self.fps)

    def load_episode(
        self, episode_index: int, keys: list[str] | tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """All frames of one episode, each feature with a leading T axis.

        ``keys`` limits decoding to those features (plus the index columns, task and subtask):
        reading only actions skips every video and image decode.
        """
        wanted = None if keys is None else set(keys)
        if wanted is not None:
            unknown = wanted - set(self.features)
            if unknown:
                raise DatasetFormatError(f"{INFO_PATH}: no feature(s) {sorted(unknown)}")
        ep = self._episode(episode_index)
        start, stop = int(ep["dataset_from_index"]), int(ep["dataset_to_index"])
        rows, rel = self._rows(ep, start, stop)
        out = self._decode_columns(rows, rel, wanted)
        first_ts = float(out["timestamp"][0])
        for key, ft in self.features.items():
            if ft.dtype == "video" and (wanted is None or key in wanted):
                out[key] = self._video_frames(ep, key, first_ts, stop - start)
        return out

    def episode_rows(self, episode_index: int) -> pa.Table:
        """The episode's rows of its data file, undecoded (PNG bytes, list columns): what a
        merge copies into another dataset."""
        ep = self._episode(episode_index)
        return self._rows(ep, int(ep["dataset_from_index"]), int(ep["dataset_to_index"]))[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One frame by global index, same conventions as ``load_episode`` without the T axis."""
        if index < 0:
            index += self.num_frames
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range 0..{self.num_frames - 1}")
        ep = self.episodes[bisect.bisect_right(self._starts, index) - 1]
        rows, rel = self._rows(ep, index, index + 1)
        cols = self._decode_columns(rows, rel)
        item: dict[str, Any] = {k: v[0] for k, v in cols.items()}
        for key, ft in self.features.items():
            if ft.dtype == "video":
                item[key] = self._video_frames(ep, key, float(item["timestamp"]), 1)[0]
        return item
