"""Round trips and failure modes of embodia's LeRobot v3 writer and reader."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from embodia.data.lerobot_v3 import (
    DatasetFormatError,
    Feature,
    LeRobotV3Dataset,
    aggregate_stats,
    compute_feature_stats,
    consolidate,
    stage_episode,
    staged_episode_keys,
)
from embodia.data.lerobot_v3 import video as vid

H, W, FPS = 32, 32, 10
FEATURES = {
    "observation.images.front": Feature("video", (H, W, 3), ["height", "width", "channels"]),
    "observation.images.wrist": Feature("video", (H, W, 3)),
    "observation.depth.front": Feature("depth", (H, W), ["height", "width"]),
    "observation.images.top": Feature("image", (H, W, 3)),
    "observation.state": Feature("float32", (4,), ["x", "y", "z", "grip"]),
    "action": Feature("float64", (3,)),
    "next.reward": Feature("float32", (1,)),
    "next.done": Feature("bool", (1,)),
    "phase": Feature("int64", (1,)),
}
LENGTHS = {"ep_a": 5, "ep_b": 12, "ep_c": 8}
SPLITS = {"train": ["ep_a", "ep_c"], "val": ["ep_b"]}
# Episode index after consolidation: the train split first (in episode_order), then val.
FINAL_ORDER = ["ep_a", "ep_c", "ep_b"]


def make_episode(key: str) -> tuple[dict[str, np.ndarray], list[str], list[str], dict]:
    seed = sorted(LENGTHS).index(key)
    t_len = LENGTHS[key]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.stack(
        [
            np.stack([xx * 3 + t * 12, yy * 3 + 10 * seed, np.full_like(xx, 80 + 30 * seed)], -1)
            for t in range(t_len)
        ]
    ).astype(np.uint8)
    depth = rng.uniform(0.25, 6.0, (t_len, H, W)).astype(np.float32)
    depth[:, 0, 0] = np.nan
    depth[:, 0, 1] = np.inf
    depth[:, 0, 2] = 0.0
    depth[:, 0, 3] = -1.0
    depth[:, 0, 4] = 80.0  # beyond 65.535 m: clipped
    frames = {
        "observation.images.front": smooth,
        "observation.images.wrist": smooth[:, ::-1].copy(),
        "observation.depth.front": depth,
        "observation.images.top": rng.integers(0, 256, (t_len, H, W, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=(t_len, 4)).astype(np.float32),
        "action": rng.normal(size=(t_len, 3)),
        "next.reward": rng.normal(size=t_len).astype(np.float32),
        "next.done": np.arange(t_len) == t_len - 1,
        "phase": np.arange(t_len, dtype=np.int64) // 3,
    }
    tasks = [f"task {seed % 2}"] * t_len
    subtasks = ["reach" if t < t_len // 2 else f"grasp {seed}" for t in range(t_len)]
    extra = {
        "env_name": f"env-{seed}",
        "layout_seed": seed,
        "success": seed != 1,
        "layout": [0.5, seed],
    }
    return frames, tasks, subtasks, extra


def stage_all(staging: Path) -> None:
    for key in LENGTHS:
        frames, tasks, subtasks, extra = make_episode(key)
        stage_episode(staging, key, frames, tasks, FEATURES, FPS, extra=extra, subtasks=subtasks)


def build(staging: Path, out: Path, **kwargs) -> None:
    consolidate(
        staging,
        out,
        FEATURES,
        FPS,
        "toy_arm",
        list(LENGTHS),
        splits=SPLITS,
        progress=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    staging = tmp_path_factory.mktemp("staging")
    stage_all(staging)
    return staging


@pytest.fixture(scope="module")
def dataset_root(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built") / "ds"
    build(staged, out)
    return out


@pytest.fixture(scope="module")
def ds(dataset_root: Path) -> LeRobotV3Dataset:
    return LeRobotV3Dataset(dataset_root)


def test_round_trip_values(ds: LeRobotV3Dataset) -> None:
    assert ds.num_episodes == 3
    assert ds.num_frames == len(ds) == sum(LENGTHS.values())
    for ep_idx, key in enumerate(FINAL_ORDER):
        src, tasks, subtasks, _ = make_episode(key)
        out = ds.load_episode(ep_idx)
        t_len = LENGTHS[key]
        for name in ("observation.state", "action", "next.done", "phase"):
            assert out[name].dtype == np.dtype(FEATURES[name].dtype), name
            np.testing.assert_array_equal(out[name], src[name], err_msg=name)
        np.testing.assert_array_equal(out["next.reward"], src["next.reward"])
        assert out["next.reward"].shape == (t_len,)
        np.testing.assert_array_equal(out["observation.images.top"], src["observation.images.top"])
        assert out["task"] == tasks and out["subtask"] == subtasks
        np.testing.assert_array_equal(out["frame_index"], np.arange(t_len))
        assert (out["episode_index"] == ep_idx).all()
        np.testing.assert_allclose(out["timestamp"], np.arange(t_len) / FPS, atol=1e-6)


def test_depth_exact_to_the_millimetre(ds: LeRobotV3Dataset) -> None:
    for ep_idx, key in enumerate(FINAL_ORDER):
        src = make_episode(key)[0]["observation.depth.front"]
        got = ds.load_episode(ep_idx)["observation.depth.front"]
        assert got.dtype == np.float32 and got.shape == src.shape
        assert (got[:, 0, :4] == 0).all()  # NaN, inf, 0 and negative are invalid -> 0
        np.testing.assert_allclose(got[:, 0, 4], 65.535, atol=1e-6)
        want_mm = np.round(src[:, 1:].astype(np.float64) * 1000)
        np.testing.assert_array_equal(np.round(got[:, 1:] * 1000), want_mm)
        assert np.abs(got[:, 1:] - src[:, 1:]).max() <= 0.0005 + 1e-6


def test_video_close_to_source(ds: LeRobotV3Dataset) -> None:
    for ep_idx, key in enumerate(FINAL_ORDER):
        src = make_episode(key)[0]
        out = ds.load_episode(ep_idx)
        for name in ("observation.images.front", "observation.images.wrist"):
            assert out[name].shape == src[name].shape and out[name].dtype == np.uint8
            err = np.abs(out[name].astype(int) - src[name].astype(int)).mean(axis=(1, 2, 3))
            assert err.max() < 4.0, (name, err)
        # Frames are not shuffled: each decoded frame is closest to its own source frame.
        dists = np.abs(
            out["observation.images.front"][:, None].astype(int)
            - src["observation.images.front"][None].astype(int)
        ).mean(axis=(2, 3, 4))
        np.testing.assert_array_equal(dists.argmin(axis=1), np.arange(LENGTHS[key]))


def test_getitem_matches_episode(ds: LeRobotV3Dataset) -> None:
    ep1 = ds.load_episode(1)
    start = ds.episodes[1]["dataset_from_index"]
    for t in (0, 3, LENGTHS["ep_c"] - 1):
        item = ds[start + t]
        assert item["index"] == start + t and item["episode_index"] == 1
        assert item["task"] == ep1["task"][t] and item["subtask"] == ep1["subtask"][t]
        for key in FEATURES:
            np.testing.assert_array_equal(item[key], ep1[key][t], err_msg=key)
    assert ds[-1]["index"] == ds.num_frames - 1
    with pytest.raises(IndexError):
        ds[ds.num_frames]


def test_metadata(ds: LeRobotV3Dataset, dataset_root: Path) -> None:
    assert ds.episode_indices("train") == [0, 1] and ds.episode_indices("val") == [2]
    assert ds.episode_indices() == [0, 1, 2]
    bounds = [(e["dataset_from_index"], e["dataset_to_index"]) for e in ds.episodes]
    assert bounds == [(0, 5), (5, 13), (13, 25)]
    assert [e["length"] for e in ds.episodes] == [LENGTHS[k] for k in FINAL_ORDER]
    assert [e["env_name"] for e in ds.episodes] == ["env-0", "env-2", "env-1"]
    assert [e["success"] for e in ds.episodes] == [True, True, False]
    assert ds.episodes[1]["layout"] == [0.5, 2.0]
    assert ds.tasks == ["task 0", "task 1"]
    assert ds.subtasks == ["reach", "grasp 0", "grasp 2", "grasp 1"]
    assert ds.features == {
        **FEATURES,
        "observation.images.wrist": Feature("video", (H, W, 3), ["height", "width", "channels"]),
        "observation.images.top": Feature("image", (H, W, 3), ["height", "width", "channels"]),
    }
    assert ds.fps == FPS

    info = json.loads((dataset_root / "meta/info.json").read_text())
    for field in (
        "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
        "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits",
        "data_path", "video_path", "features",
    ):  # fmt: skip
        assert field in info, field
    assert info["codebase_version"] == "v3.0"
    assert info["total_tasks"] == 2 and info["splits"] == {"train": "0:2", "val": "2:3"}
    front = info["features"]["observation.images.front"]
    assert front["info"]["video.codec"] in ("av1", "h264", "mpeg4")
    assert front["info"]["video.pix_fmt"] == "yuv420p" and front["info"]["video.fps"] == FPS
    depth = info["features"]["observation.depth.front"]
    assert depth["dtype"] == "image" and depth["shape"] == [H, W, 1]
    assert depth["info"] == {"depth_unit": "mm", "depth_scale": 0.001, "invalid_value": 0}
    for key in (
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
        "subtask_index",
    ):
        assert key in info["features"]

    stats = ds.stats
    quantiles = ("q01", "q10", "q50", "q90", "q99")
    for key in (*FEATURES, "timestamp", "index"):
        assert set(stats[key]) >= {"mean", "std", "min", "max", "count", *quantiles}, key
    assert stats["observation.images.front"]["mean"].shape == (3, 1, 1)
    assert stats["observation.images.top"]["q99"].shape == (3, 1, 1)
    assert stats["observation.depth.front"]["q01"].shape == (1, 1, 1)
    assert stats["observation.state"]["std"].shape == (4,)
    assert stats["next.reward"]["mean"].shape == (1,)
    assert stats["index"]["count"].tolist() == [25]
    all_state = np.concatenate([make_episode(k)[0]["observation.state"] for k in LENGTHS])
    np.testing.assert_allclose(stats["observation.state"]["mean"], all_state.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["std"], all_state.std(0), rtol=1e-5)
    depth_min = stats["observation.depth.front"]["min"].item()
    assert 0.25 <= depth_min < 0.3  # over valid pixels only, in metres

    episodes = pq.read_table(dataset_root / "meta/episodes/chunk-000/file-000.parquet")
    for col in (
        "episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
        "dataset_from_index", "dataset_to_index", "meta/episodes/chunk_index",
        "meta/episodes/file_index", "videos/observation.images.front/from_timestamp",
        "videos/observation.images.front/to_timestamp", "stats/observation.state/q99",
        "stats/observation.images.front/mean", "stats/index/max",
    ):  # fmt: skip
        assert col in episodes.column_names, col
    from_ts = episodes.column("videos/observation.images.front/from_timestamp").to_pylist()
    assert from_ts == [0.0, 0.5, 1.3]
    data = pq.read_table(dataset_root / "data/chunk-000/file-000.parquet")
    hf = json.loads(data.schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.top"] == {"_type": "Image"}
    assert hf["observation.state"]["_type"] == "Sequence"
    assert "observation.images.front" not in data.column_names


def test_small_file_limits_split_files(staged: Path, ds: LeRobotV3Dataset, tmp_path: Path) -> None:
    out = tmp_path / "small"
    build(staged, out, chunks_size=2, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    data_files = sorted(p.relative_to(out).as_posix() for p in (out / "data").glob("*/*.parquet"))
    assert data_files == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet",
    ]
    assert len(list((out / "videos/observation.images.wrist").glob("*/*.mp4"))) == 3
    small = LeRobotV3Dataset(out)
    assert small.episodes[2]["data/chunk_index"] == 1
    for ep_idx in range(3):
        a, b = small.load_episode(ep_idx), ds.load_episode(ep_idx)
        for key in FEATURES:  # videos too: concatenation copies packets, no re-encoding
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_two_episodes_share_files(staged: Path, tmp_path: Path) -> None:
    sizes = [
        (staged / k / "videos/observation.images.front.mp4").stat().st_size for k in FINAL_ORDER
    ]
    limit = (sizes[0] + sizes[1]) * 1.01 / 2**20
    out = tmp_path / "shared"
    build(staged, out, video_files_size_in_mb=limit)
    small = LeRobotV3Dataset(out)
    keys = [(e["videos/observation.images.front/file_index"]) for e in small.episodes]
    assert keys == [0, 0, 1]
    assert small.episodes[2]["videos/observation.images.front/from_timestamp"] == 0.0
    src = make_episode("ep_b")[0]["observation.images.front"]
    got = small.load_episode(2)["observation.images.front"]
    assert np.abs(got.astype(int) - src.astype(int)).mean() < 4.0


def test_consolidate_is_deterministic(staged: Path, dataset_root: Path, tmp_path: Path) -> None:
    # Restage the same episodes in another order, as differently scheduled workers would.
    staging2 = tmp_path / "staging2"
    for key in reversed(list(LENGTHS)):
        frames, tasks, subtasks, extra = make_episode(key)
        stage_episode(staging2, key, frames, tasks, FEATURES, FPS, extra=extra, subtasks=subtasks)
        for name in ("observation.images.front", "observation.images.wrist"):  # same encoded bits
            shutil.copy(staged / key / f"videos/{name}.mp4", staging2 / key / f"videos/{name}.mp4")
    out = tmp_path / "again"
    build(staging2, out)
    files_a = sorted(p.relative_to(dataset_root) for p in dataset_root.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (dataset_root / rel).read_bytes() == (out / rel).read_bytes(), rel


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda f: f.update({"observation.state": f["observation.state"][:, :3]}),
            "observation.state",
        ),
        (lambda f: f.pop("action"), "action"),
        (lambda f: f.update({"phase": f["phase"][:-1]}), "phase"),
        (lambda f: f.update({"phase": f["phase"].astype(np.float32)}), "phase"),
        (lambda f: f.update({"next.done": f["next.done"].astype(np.int64)}), "next.done"),
        (
            lambda f: f.update({"observation.images.front": f["observation.images.front"] * 1.0}),
            "observation.images.front",
        ),
        (lambda f: f.update({"bogus": f["phase"]}), "bogus"),
    ],
    ids=["shape", "missing", "T-mismatch", "int-dtype", "bool-dtype", "video-dtype", "extra-key"],
)
def test_bad_input_names_the_key(tmp_path: Path, mutate, match: str) -> None:
    frames, tasks, subtasks, extra = make_episode("ep_a")
    mutate(frames)
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        stage_episode(tmp_path, "ep", frames, tasks, FEATURES, FPS, extra=extra, subtasks=subtasks)
    assert staged_episode_keys(tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_bad_tasks_length(tmp_path: Path) -> None:
    frames, tasks, _, _ = make_episode("ep_a")
    with pytest.raises(ValueError, match="tasks"):
        stage_episode(tmp_path, "ep", frames, tasks[:-1], FEATURES, FPS)
    with pytest.raises(ValueError, match="subtasks"):
        stage_episode(tmp_path, "ep", frames, tasks, FEATURES, FPS, subtasks=["a"])


def _copy(dataset_root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(dataset_root, dst)
    return dst


def test_missing_or_corrupt_info(dataset_root: Path, tmp_path: Path) -> None:
    root = _copy(dataset_root, tmp_path)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text("{not json")
    with pytest.raises(DatasetFormatError, match=r"meta/info\.json"):
        LeRobotV3Dataset(root)
    info_path.write_text(json.dumps({k: v for k, v in info.items() if k != "fps"}))
    with pytest.raises(DatasetFormatError, match=r"meta/info.json.*'fps'"):
        LeRobotV3Dataset(root)
    bad = json.loads(json.dumps(info))
    del bad["features"]["observation.state"]["shape"]
    info_path.write_text(json.dumps(bad))
    with pytest.raises(DatasetFormatError, match=r"meta/info.json.*observation\.state\.shape"):
        LeRobotV3Dataset(root)
    info_path.unlink()
    with pytest.raises(DatasetFormatError, match=r"meta/info.json.*missing"):
        LeRobotV3Dataset(root)


def test_parquet_missing_column(dataset_root: Path, tmp_path: Path) -> None:
    root = _copy(dataset_root, tmp_path)
    data_path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data_path)
    pq.write_table(table.drop_columns(["action"]), data_path)
    ds = LeRobotV3Dataset(root)  # metadata alone is fine; the data file is checked on use
    with pytest.raises(DatasetFormatError, match=r"data/chunk-000/file-000.parquet.*'action'"):
        ds.load_episode(0)

    eps_path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(eps_path)
    pq.write_table(table.drop_columns(["dataset_to_index"]), eps_path)
    with pytest.raises(DatasetFormatError, match=r"meta/episodes/.*'dataset_to_index'"):
        LeRobotV3Dataset(root)
    (root / "meta/tasks.parquet").unlink()
    with pytest.raises(DatasetFormatError, match=r"meta/tasks\.parquet"):
        LeRobotV3Dataset(root)


def test_failed_consolidate_leaves_nothing(
    staged: Path, dataset_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(vid, "concat_videos", boom)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="disk full"):
        build(staged, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []

    existing = _copy(dataset_root, tmp_path)
    before = {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="disk full"):
        build(staged, existing, overwrite=True)
    assert {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]

    monkeypatch.undo()
    with pytest.raises(FileExistsError):
        build(staged, existing)
    build(staged, existing, overwrite=True, video_files_size_in_mb=1e-6)
    assert LeRobotV3Dataset(existing).info["video_files_size_in_mb"] == 1e-6


def test_consolidate_rejects_unstaged_or_mismatched(staged: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ep_zzz"):
        consolidate(staged, tmp_path / "x", FEATURES, FPS, "r", ["ep_a", "ep_zzz"], progress=False)
    other = {**FEATURES, "action": Feature("float64", (5,))}
    with pytest.raises(ValueError, match="ep_a"):
        consolidate(staged, tmp_path / "x", other, FPS, "r", ["ep_a"], progress=False)
    assert not (tmp_path / "x").exists()


def test_leftover_temp_dirs_are_ignored(tmp_path: Path) -> None:
    frames, tasks, subtasks, extra = make_episode("ep_a")
    stage_episode(tmp_path, "ep_a", frames, tasks, FEATURES, FPS, subtasks=subtasks, extra=extra)
    host = socket.gethostname()
    dead = tmp_path / f".tmp-ep_b-{host}-999999999-deadbeef"  # no such pid
    live = tmp_path / f".tmp-ep_c-{host}-{os.getpid()}-cafecafe"  # a worker still writing
    for d in (dead, live):
        d.mkdir()
        (d / "frames.parquet").write_bytes(b"partial")
    (tmp_path / "not_an_episode").mkdir()
    assert staged_episode_keys(tmp_path) == ["ep_a"]
    assert not dead.exists() and live.exists()
    # Staging a key again replaces it atomically.
    stage_episode(tmp_path, "ep_a", frames, tasks, FEATURES, FPS, subtasks=subtasks, extra={})
    assert staged_episode_keys(tmp_path) == ["ep_a"]
    assert json.loads((tmp_path / "ep_a/episode.json").read_text())["extra"] == {}


def test_stats_functions() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(size=(n, 3)) for n in (7, 20, 4)]
    per_ep = [{"x": compute_feature_stats(p)} for p in parts]
    whole = np.concatenate(parts)
    exact = compute_feature_stats(whole)
    np.testing.assert_allclose(exact["q50"], np.median(whole, axis=0))
    agg = aggregate_stats(per_ep)["x"]
    for k in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(agg[k], exact[k], rtol=1e-10, err_msg=k)
    assert agg["count"].tolist() == [31]
    assert (agg["q01"] >= agg["min"]).all() and (agg["q99"] <= agg["max"]).all()

    img = np.zeros((4, 8, 8, 3), np.uint8)
    img[..., 0] = 255
    s = compute_feature_stats(img, "video")
    assert s["mean"].shape == (3, 1, 1) and s["mean"][:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    depth = np.zeros((2, 4, 4), np.float32)
    depth[:, :2] = 2.0
    d = compute_feature_stats(depth, "depth")
    assert d["min"].item() == 2.0 and d["mean"].shape == (1, 1, 1)


def test_dataset_quantiles_are_exact_for_numeric_features(tmp_path):
    """Episodes from different tasks: averaging per-episode quantiles would be far off."""
    feats = {"action": Feature("float32", (2,), None)}
    rng = np.random.default_rng(0)
    keys, values = [], []
    for i in range(6):
        n = 20 + i
        a = (rng.normal(size=(n, 2)) + (5 if i % 2 else -5)).astype(np.float32)
        values.append(a)
        stage_episode(tmp_path / "st", f"e{i}", {"action": a}, ["t"] * n, feats, 10)
        keys.append(f"e{i}")
    consolidate(tmp_path / "st", tmp_path / "out", feats, 10, "x", keys, progress=False)
    stats = LeRobotV3Dataset(tmp_path / "out").stats["action"]
    allv = np.concatenate(values).astype(np.float64)
    for name, q in (("q01", 0.01), ("q50", 0.5), ("q99", 0.99)):
        np.testing.assert_allclose(stats[name], np.quantile(allv, q, axis=0), rtol=1e-6)
