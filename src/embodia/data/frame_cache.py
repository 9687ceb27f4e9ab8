"""Episodes decoded once, at the model's resolution, into memory-mapped arrays that every data-loader
worker and every later run share.

Why: a LeRobot dataset stores RGB as video, and a video frame can only be decoded together with the
frames before it up to a key frame. Random sampling for training wants one frame from anywhere, so
reading through the video costs a whole episode's decode per sample (measured: 63 % of a loader
worker's time, the loader at a fifth of the model's speed). Decoding each episode once, resizing it
to the model's input size and keeping the result as plain ``.npy`` arrays turns a sample into a
few memory reads; the OS page cache shares the pages between processes.

Layout of one cache entry (``<root>/<dataset name>-<path hash>/<key hash>/``)::

    manifest.json       what was cached: dataset fingerprint, episodes, keys, size, row offsets,
                        task / subtask strings (written last: an entry without it is incomplete)
    <feature>.npy       one array per cached feature, all episodes' frames back to back:
                        RGB uint8 (N, S, S, 3); depth uint16 millimetres (N, S, S), 0 = invalid;
                        vectors float32 (N, D)
    task_index.npy, subtask_index.npy   int32 (N,) indices into the manifest's string tables

The key covers the dataset's fingerprint (every meta/data/video file's size and modification
time), the episodes, the features and the size, so a changed dataset gets a new entry; older entries
of the same dataset path are deleted when it is built. Concurrent builders of one key (several
runs, several ranks) serialise on a lock file: one builds, the others wait and then open its result.
An entry is built in a temporary directory and renamed into place, so a reader never sees half of
one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data.images import resize_depth, resize_rgb
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CACHE_ENV = "EMBODIA_CACHE"


def default_root() -> Path:
    """``$EMBODIA_CACHE/frames`` if set, else ``~/.cache/embodia/frames``."""
    base = os.environ.get(CACHE_ENV)
    return Path(base).expanduser() / "frames" if base else Path.home() / ".cache/embodia/frames"


def dataset_fingerprint(root: Path) -> str:
    """Hash of the relative path, size and mtime of every file a reader uses (meta, data, videos)."""
    root = Path(root)
    h = hashlib.sha256()
    for sub in ("meta", "data", "videos"):
        base = root / sub
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            st = path.stat()
            h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class CacheRequest:
    """What to cache: which episodes of which dataset, which features, at which square size."""

    dataset: Path
    episodes: tuple[int, ...]
    images: tuple[str, ...]  # RGB features (video or image), resized bilinearly
    depths: tuple[str, ...]  # depth features, resized by nearest neighbour
    vectors: tuple[str, ...]  # low-dimensional features (state, action), kept as float32
    size: int

    def entry_dir(self, root: Path, fingerprint: str) -> Path:
        path = str(Path(self.dataset).resolve())
        group = f"{Path(path).name}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        spec = json.dumps(
            {
                "version": FORMAT_VERSION,
                "fingerprint": fingerprint,
                "episodes": list(self.episodes),
                "images": list(self.images),
                "depths": list(self.depths),
                "vectors": list(self.vectors),
                "size": self.size,
            },
            sort_keys=True,
        )
        return Path(root) / group / hashlib.sha256(spec.encode()).hexdigest()[:16]


class FrameCache:
    """A finished cache entry: frames by (episode, t), memory-mapped read-only."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.manifest: dict[str, Any] = json.loads((self.directory / MANIFEST).read_text())
        self.size = int(self.manifest["size"])
        self.offsets = {int(k): int(v) for k, v in self.manifest["offsets"].items()}
        self.lengths = {int(k): int(v) for k, v in self.manifest["lengths"].items()}
        self.tasks: list[str] = self.manifest["tasks"]
        self.subtasks: list[str] | None = self.manifest["subtasks"]
        self._arrays: dict[str, np.ndarray] = {}

    def array_names(self) -> list[str]:
        """Every array of the entry (features, task and subtask indices)."""
        m = self.manifest
        extra = ["task_index", *(["subtask_index"] if m["subtasks"] is not None else [])]
        return [*m["images"], *m["depths"], *m["vectors"], *extra]

    def array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.directory / _file(name), mmap_mode="r")
        return self._arrays[name]

    def row(self, episode: int, t: int) -> int:
        return self.offsets[episode] + t

    def image(self, key: str, episode: int, t: int) -> np.ndarray:
        return np.array(self.array(key)[self.row(episode, t)])

    def depth(self, key: str, episode: int, t: int) -> np.ndarray:
        """float32 metres, 0 = invalid."""
        return self.array(key)[self.row(episode, t)].astype(np.float32) / 1000.0

    def vectors(self, key: str, episode: int, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.array(key)[self.offsets[episode] + rows], dtype=np.float32)

    def task(self, episode: int, t: int) -> str:
        return self.tasks[int(self.array("task_index")[self.row(episode, t)])]

    def subtask(self, episode: int, t: int) -> str | None:
        if self.subtasks is None:
            return None
        return self.subtasks[int(self.array("subtask_index")[self.row(episode, t)])]


def _file(name: str) -> str:
    return name.replace("/", "_") + ".npy"


def open_frame_cache(
    ds: LeRobotV3Dataset,
    request: CacheRequest,
    root: Path | None = None,
    progress: bool = True,
) -> FrameCache:
    """The cache entry for ``request``, built first if it does not exist yet (or is stale)."""
    root = Path(root) if root is not None else default_root()
    fingerprint = dataset_fingerprint(ds.root)
    final = request.entry_dir(root, fingerprint)
    if (final / MANIFEST).is_file():
        return FrameCache(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / f"{final.name}.lock"):
        if not (final / MANIFEST).is_file():  # another process may have built it meanwhile
            tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                _build(ds, request, fingerprint, tmp, progress)
                os.rename(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            _prune_stale(final.parent, fingerprint)
    return FrameCache(final)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prune_stale(group: Path, fingerprint: str) -> None:
    """Delete entries of this dataset path built from an older version of its files."""
    for entry in group.iterdir():
        manifest = entry / MANIFEST
        if not entry.is_dir() or not manifest.is_file():
            continue
        try:
            old = json.loads(manifest.read_text()).get("fingerprint")
        except (OSError, json.JSONDecodeError):
            continue
        if old != fingerprint:
            shutil.rmtree(entry, ignore_errors=True)
            (group / f"{entry.name}.lock").unlink(missing_ok=True)


def _build(
    ds: LeRobotV3Dataset, req: CacheRequest, fingerprint: str, out: Path, progress: bool
) -> None:
    from tqdm import tqdm

    out.mkdir(parents=True)
    lengths = {ep: int(ds.episodes[ep]["length"]) for ep in req.episodes}
    offsets, total = {}, 0
    for ep in req.episodes:
        offsets[ep], total = total, total + lengths[ep]
    s = req.size
    arrays: dict[str, np.ndarray] = {}

    def create(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        arrays[name] = np.lib.format.open_memmap(
            out / _file(name), mode="w+", dtype=dtype, shape=shape
        )
        return arrays[name]

    for key in req.images:
        create(key, (total, s, s, 3), np.uint8)
    for key in req.depths:
        create(key, (total, s, s), np.uint16)
    for key in req.vectors:
        ft = ds.features[key]
        create(key, (total, *(ft.shape or (1,))), np.float32)
    create("task_index", (total,), np.int32)
    has_subtasks = ds.subtasks is not None
    if has_subtasks:
        create("subtask_index", (total,), np.int32)
    keys = [*req.images, *req.depths, *req.vectors]
    bar = tqdm(
        req.episodes,
        desc=f"frame cache {Path(ds.root).name} @{s}px",
        unit="ep",
        disable=not progress,
    )
    for ep in bar:
        raw = ds.load_episode(ep, keys=keys)
        lo, hi = offsets[ep], offsets[ep] + lengths[ep]
        for key in req.images:
            arrays[key][lo:hi] = np.stack([resize_rgb(f, s) for f in raw[key]])
        for key in req.depths:
            metres = np.stack([resize_depth(f, s) for f in raw[key]])
            arrays[key][lo:hi] = np.round(np.clip(metres, 0, 65.535) * 1000).astype(np.uint16)
        for key in req.vectors:
            values = np.asarray(raw[key], dtype=np.float32).reshape(hi - lo, -1)
            if not np.isfinite(values).all():
                raise ValueError(f"{ds.root}: episode {ep} has non-finite {key!r} values")
            arrays[key][lo:hi] = values
        arrays["task_index"][lo:hi] = raw["task_index"]
        if has_subtasks:
            arrays["subtask_index"][lo:hi] = raw.get("subtask_index", 0)
    bar.close()
    for arr in arrays.values():
        arr.flush()
    arrays.clear()  # close the memory maps before the manifest marks the entry done
    manifest = {
        "version": FORMAT_VERSION,
        "dataset": str(Path(ds.root).resolve()),
        "fingerprint": fingerprint,
        "size": s,
        "episodes": list(req.episodes),
        "images": list(req.images),
        "depths": list(req.depths),
        "vectors": list(req.vectors),
        "offsets": {str(k): v for k, v in offsets.items()},
        "lengths": {str(k): v for k, v in lengths.items()},
        "frames": total,
        "tasks": ds.tasks,
        "subtasks": ds.subtasks,
    }
    (out / MANIFEST).write_text(json.dumps(manifest))
