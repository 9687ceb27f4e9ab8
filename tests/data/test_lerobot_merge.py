"""Merging LeRobot v3 datasets: frames and texts unchanged, videos byte-identical, splits
regrouped, statistics equal to consolidating all episodes at once; bad sources are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from embodia.configs.data import MergeConfig
from embodia.data.lerobot_v3 import Feature, LeRobotV3Dataset, consolidate, stage_episode
from embodia.data.lerobot_v3.merge import MergeError, merge_into
from embodia.data.merge import merge

H = W = 16
FPS = 10
FEATURES = {
    "observation.images.front": Feature("video", (H, W, 3)),
    "observation.depth.front": Feature("depth", (H, W)),
    "observation.images.top": Feature("image", (H, W, 3)),
    "observation.state": Feature("float32", (3,)),
    "action": Feature("float32", (2,)),
}
# source -> {episode key: (length, split)}; B's tasks overlap A's and add one
SOURCES = {
    "A": {"a0": (5, "train"), "a1": (7, "train"), "a2": (4, "val")},
    "B": {"b0": (6, "train"), "b1": (5, "val")},
}
MERGED = ["a0", "a1", "b0", "a2", "b1"]  # train of A, train of B, val of A, val of B


def _stage(staging: Path, key: str, length: int) -> None:
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:6], 16)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack(
        [
            np.stack([xx * 8 + t * 9, yy * 8, np.full_like(xx, seed % 200)], -1)
            for t in range(length)
        ]
    ).astype(np.uint8)
    frames = {
        "observation.images.front": rgb,
        "observation.depth.front": rng.uniform(0.3, 3.0, (length, H, W)).astype(np.float32),
        "observation.images.top": rng.integers(0, 256, (length, H, W, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=(length, 3)).astype(np.float32) + seed % 7,
        "action": rng.normal(size=(length, 2)).astype(np.float32),
    }
    task = {"a": "open the drawer", "b": "close the drawer"}[key[0]] if key != "b1" else "reach"
    stage_episode(
        staging,
        key,
        frames,
        [task] * length,
        FEATURES,
        FPS,
        extra={"env_name": f"env-{key}", "success": length % 2 == 0},
        subtasks=["reach" if t < length // 2 else f"pull {key}" for t in range(length)],
        reasoning=[f"{key} step {t}" for t in range(length)],
    )


def _consolidate(staging: Path, out: Path, episodes: dict[str, tuple[int, str]]) -> None:
    splits: dict[str, list[str]] = {}
    for key, (_, split) in episodes.items():
        splits.setdefault(split, []).append(key)
    consolidate(staging, out, FEATURES, FPS, "toy_arm", list(episodes), splits, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The two sources, their merge, and the reference: all five episodes consolidated at once."""
    root = tmp_path_factory.mktemp("merge")
    staging = root / "staging"
    for episodes in SOURCES.values():
        for key, (length, _) in episodes.items():
            _stage(staging, key, length)
    paths = {}
    for name, episodes in SOURCES.items():
        _consolidate(staging, root / name, episodes)
        paths[name] = root / name
    _consolidate(staging, root / "reference", {k: SOURCES[k[0].upper()][k] for k in MERGED})
    (root / "merged").mkdir()
    merge_into([paths["A"], paths["B"]], root / "merged", progress=False)
    return {**paths, "reference": root / "reference", "merged": root / "merged"}


def test_episodes_come_back_unchanged_in_split_order(built: dict[str, Path]) -> None:
    merged = LeRobotV3Dataset(built["merged"])
    sources = {"A": LeRobotV3Dataset(built["A"]), "B": LeRobotV3Dataset(built["B"])}
    assert merged.info["splits"] == {"train": "0:3", "val": "3:5"}
    assert merged.num_frames == sum(ds.num_frames for ds in sources.values())
    for index, key in enumerate(MERGED):
        source = sources[key[0].upper()]
        source_index = list(SOURCES[key[0].upper()]).index(key)
        # consolidate put each source's train split first, so its order is the key order
        got, want = merged.load_episode(index), source.load_episode(source_index)
        row = merged.episodes[index]
        assert row["env_name"] == f"env-{key}"
        assert (row["merge_source"], row["merge_source_episode"]) == (
            "AB".index(key[0].upper()),
            source_index,
        )
        for name in [*FEATURES, "task", "subtask", "reasoning", "frame_index", "timestamp"]:
            assert np.array_equal(np.asarray(got[name]), np.asarray(want[name])), (key, name)
        start = int(row["dataset_from_index"])
        assert got["index"].tolist() == list(range(start, start + len(got["index"])))
        assert set(got["episode_index"].tolist()) == {index}


def test_videos_are_copied_byte_for_byte(built: dict[str, Path]) -> None:
    def digests(root: Path) -> list[str]:
        return sorted(
            hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "videos").rglob("*.mp4")
        )

    assert digests(built["merged"]) == sorted(digests(built["A"]) + digests(built["B"]))


def test_statistics_and_tables_equal_one_consolidation(built: dict[str, Path]) -> None:
    merged, reference = LeRobotV3Dataset(built["merged"]), LeRobotV3Dataset(built["reference"])
    assert merged.tasks == reference.tasks
    assert merged.subtasks == reference.subtasks
    assert merged.reasoning == reference.reasoning
    assert set(merged.stats) == set(reference.stats)
    for key, stats in reference.stats.items():
        for stat, value in stats.items():
            np.testing.assert_allclose(merged.stats[key][stat], value, rtol=1e-6, err_msg=key)
    assert json.loads((built["merged"] / "meta" / "info.json").read_text())["total_tasks"] == 3


def test_merged_dataset_merges_again(built: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    merge_into([built["merged"], built["A"]], out, progress=False)
    ds = LeRobotV3Dataset(out)
    assert ds.num_episodes == 8
    assert ds.info["splits"] == {"train": "0:5", "val": "5:8"}
    np.testing.assert_array_equal(
        ds.load_episode(3)["observation.images.front"],
        LeRobotV3Dataset(built["A"]).load_episode(0)["observation.images.front"],
    )


def _edit_info(root: Path, edit) -> None:
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda info: info.update(fps=20), "field 'fps' is 20"),
        (lambda info: info.update(robot_type="other_arm"), "'robot_type' is 'other_arm'"),
        (
            lambda info: info["features"]["action"].update(shape=[3]),
            "feature 'action'",
        ),
    ],
)
def test_incompatible_sources_are_refused(built, tmp_path: Path, edit, match: str) -> None:
    import shutil

    other = tmp_path / "B"
    shutil.copytree(built["B"], other)
    _edit_info(other, edit)
    out = tmp_path / "out"
    with pytest.raises(MergeError, match=match) as err:
        merge(MergeConfig(sources=(built["A"], other), output=out, progress=False))
    assert str(other) in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing half-written


def test_failed_merge_leaves_nothing(built, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "B"
    shutil.copytree(built["B"], other)
    next((other / "videos").rglob("*.mp4")).unlink()
    out = tmp_path / "out"
    with pytest.raises(MergeError, match="video file is missing"):
        merge(MergeConfig(sources=(built["A"], other), output=out, progress=False))
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_arguments_are_checked(built, tmp_path: Path) -> None:
    with pytest.raises(MergeError, match="two or more"):
        merge(MergeConfig(sources=(built["A"],), output=tmp_path / "o", progress=False))
    with pytest.raises(MergeError, match="given twice"):
        merge(MergeConfig(sources=(built["A"], built["A"]), output=tmp_path / "o", progress=False))
    with pytest.raises(FileNotFoundError, match=r"no meta/info\.json"):
        merge(MergeConfig(sources=(built["A"], tmp_path), output=tmp_path / "o", progress=False))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(MergeError, match="--overwrite"):
        merge(
            MergeConfig(sources=(built["A"], built["B"]), output=tmp_path / "full", progress=False)
        )
    assert (tmp_path / "full" / "x").read_text() == "keep me"
