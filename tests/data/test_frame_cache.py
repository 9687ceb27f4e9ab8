"""The frame cache: frames equal the reader's decode + the one resize, an entry is built once and
shared, a changed dataset is rebuilt (and the stale entry deleted), concurrent builders produce one
entry, a failed build leaves nothing, and training samples never decode video."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from embodia.configs.data import GenerateConfig
from embodia.configs.train import DatasetSpec
from embodia.data import frame_cache as fc
from embodia.data.engine.generate import generate
from embodia.data.images import resize_depth, resize_rgb
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
from embodia.training.data import EpisodeSource

CAM = "observation.images.corner"
DEPTH = "observation.depth.corner"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fc") / "ds"
    generate(
        GenerateConfig(
            output=out,
            tasks=("reach",),
            episodes_per_task=(2, 1, 0),
            cameras=("corner",),
            image_size=64,
            max_steps=20,
            qa_every=10,
            workers=1,
            progress=False,
        )
    )
    return out


def request(ds: Path, size: int = 32) -> fc.CacheRequest:
    episodes = tuple(LeRobotV3Dataset(ds).episode_indices("train"))
    return fc.CacheRequest(ds, episodes, (CAM,), (DEPTH,), ("observation.state", "action"), size)


def entries(root: Path) -> list[Path]:
    return [p for group in root.iterdir() for p in group.iterdir() if p.is_dir()]


def test_cached_frames_equal_decoded_and_resized(dataset, tmp_path):
    reader = LeRobotV3Dataset(dataset)
    cache = fc.open_frame_cache(reader, request(dataset), tmp_path, progress=False)
    for ep in reader.episode_indices("train"):
        raw = reader.load_episode(ep)
        for t in (0, len(raw["task"]) - 1):
            assert np.array_equal(cache.image(CAM, ep, t), resize_rgb(raw[CAM][t], 32))
            np.testing.assert_allclose(
                cache.depth(DEPTH, ep, t), resize_depth(raw[DEPTH][t], 32), atol=5e-4
            )
            assert cache.task(ep, t) == raw["task"][t]
            assert cache.subtask(ep, t) == raw["subtask"][t]
        rows = np.arange(len(raw["task"]))
        np.testing.assert_array_equal(cache.vectors("action", ep, rows), raw["action"])


def test_an_entry_is_built_once_and_reused(dataset, tmp_path, monkeypatch):
    reader = LeRobotV3Dataset(dataset)
    first = fc.open_frame_cache(reader, request(dataset), tmp_path, progress=False)

    def no_build(*a, **k):
        raise AssertionError("rebuilt an existing cache entry")

    monkeypatch.setattr(fc, "_build", no_build)
    again = fc.open_frame_cache(reader, request(dataset), tmp_path, progress=False)
    assert again.directory == first.directory
    # another size is another entry (both kept: the dataset did not change)
    monkeypatch.undo()
    fc.open_frame_cache(reader, request(dataset, size=16), tmp_path, progress=False)
    assert len(entries(tmp_path)) == 2


def test_a_changed_dataset_is_rebuilt_and_the_stale_entry_deleted(dataset, tmp_path):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(dataset, copy)
    root = tmp_path / "cache"
    old = fc.open_frame_cache(LeRobotV3Dataset(copy), request(copy), root, progress=False)
    data_file = next((copy / "data").rglob("*.parquet"))
    os.utime(data_file, ns=(1, 1))  # the dataset's files changed
    new = fc.open_frame_cache(LeRobotV3Dataset(copy), request(copy), root, progress=False)
    assert new.directory != old.directory
    assert not old.directory.exists()
    assert entries(root) == [new.directory]


def _open_in_child(ds: str, root: str, queue) -> None:
    cache = fc.open_frame_cache(LeRobotV3Dataset(ds), request(Path(ds)), Path(root), False)
    queue.put(str(cache.directory))


def test_concurrent_builders_make_one_entry(dataset, tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_open_in_child, args=(str(dataset), str(tmp_path), queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    dirs = {queue.get(timeout=5) for _ in procs}
    assert len(dirs) == 1
    assert entries(tmp_path) == [Path(dirs.pop())]
    assert not [p for p in tmp_path.rglob(".*tmp-*")]


def test_a_failed_build_leaves_no_entry(dataset, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = fc.resize_rgb

    def failing(img, size):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt  # e.g. Ctrl-C half way through
        return real(img, size)

    monkeypatch.setattr(fc, "resize_rgb", failing)
    with pytest.raises(KeyboardInterrupt):
        fc.open_frame_cache(LeRobotV3Dataset(dataset), request(dataset), tmp_path, False)
    assert entries(tmp_path) == []
    assert not list(tmp_path.rglob(fc.MANIFEST))


def test_training_samples_never_decode_video(dataset, tmp_path, monkeypatch):
    spec = DatasetSpec(path=dataset, cameras=(CAM,))
    source = EpisodeSource(spec, horizon=8, image_size=32, cache_root=tmp_path, progress=False)
    source.open_frames()
    from embodia.data.lerobot_v3 import video

    def no_decode(*a, **k):
        raise AssertionError("decoded video for a training sample")

    monkeypatch.setattr(video, "decode_video", no_decode)
    rng = np.random.default_rng(0)
    for i in rng.integers(len(source), size=20):
        item = source.get(int(i))
        assert item["images"][0].shape == (32, 32, 3)
        assert item["chunk"].shape == (8, 4)
