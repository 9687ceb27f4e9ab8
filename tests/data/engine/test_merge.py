"""`embodia data merge` on data-engine datasets: QA conversations follow their episodes (colliding
episode names renumbered), engine.json says what was merged, the result trains, and the same
generation merged twice is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from small_generation import SMALL

from embodia.configs.data import GenerateConfig, MergeConfig
from embodia.configs.train import DatasetSpec
from embodia.data.engine import generate as gen
from embodia.data.lerobot_v3 import LeRobotV3Dataset
from embodia.data.lerobot_v3.merge import MergeError
from embodia.data.merge import merge
from embodia.training.data import build_sources


@pytest.fixture(scope="module")
def seed_one(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen-seed1") / "ds"
    gen.generate(GenerateConfig(output=out, seed=1, **SMALL))
    return out


@pytest.fixture(scope="module")
def merged(dataset: Path, seed_one: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "ds"
    merge(MergeConfig(sources=(dataset, seed_one), output=out, progress=False))
    return out


def _samples(root: Path, split: str) -> list[dict]:
    lines = (root / "conversations" / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_conversations_follow_their_episodes(dataset: Path, seed_one: Path, merged: Path) -> None:
    for split in ("train", "val", "test"):
        first, second = _samples(dataset, split), _samples(seed_one, split)
        both = _samples(merged, split)
        assert len(both) == len(first) + len(second)
        assert both[: len(first)] == first  # the first source keeps its names
        # the second source's episodes had the same names: renumbered, images moved with them
        old = {s["episode"] for s in second}
        new = {s["episode"] for s in both[len(first) :]}
        assert old == {s["episode"] for s in first} and not new & old
        for before, after in zip(second, both[len(first) :], strict=True):
            assert after["conversations"] == before["conversations"]
            for field in ("image", "depth"):
                assert after[field].split("/")[1] == after["episode"]
                moved = (merged / "conversations" / after[field]).read_bytes()
                assert moved == (seed_one / "conversations" / before[field]).read_bytes()


def test_engine_json_records_the_merge(dataset: Path, seed_one: Path, merged: Path) -> None:
    engine = json.loads((merged / "engine.json").read_text())
    first = json.loads((dataset / "engine.json").read_text())["config"]
    assert engine["config"] == {**first, "merged": True}
    assert engine["merge"]["differing"] == {"seed": [0, 1]}
    assert [s["path"] for s in engine["merge"]["sources"]] == [
        str(dataset.resolve()),
        str(seed_one.resolve()),
    ]
    ds = LeRobotV3Dataset(merged)
    assert engine["episodes"] == ds.num_episodes == 12
    # data generate never takes the merged dataset for the first source's generation
    assert not gen.already_generated(GenerateConfig(output=merged, **SMALL))
    assert [ep["split"] for ep in ds.episodes] == ["train"] * 4 + ["val"] * 4 + ["test"] * 4


def test_merged_dataset_trains(dataset: Path, seed_one: Path, merged: Path, tmp_path: Path) -> None:
    """The training loader reads the merge: both sources' train splits, the last frame's views
    and texts those of the second source's last train frame, and its QA after the first's."""
    (episodes, qa), (first, first_qa), (own, own_qa) = (
        build_sources([DatasetSpec(path=root)], 4, 32, cache_root=tmp_path / str(i))
        for i, root in enumerate((merged, dataset, seed_one))
    )
    assert len(episodes) == len(first) + len(own)
    assert len(qa) == len(first_qa) + len(own_qa)
    last, own_last = episodes.get(len(episodes) - 1), own.get(len(own) - 1)
    for key in ("instruction", "subtask", "reasoning"):
        assert last[key] == own_last[key]
    assert (last["images"][0] == own_last["images"][0]).all()
    assert qa.get(len(qa) - 1)["answer"] == own_qa.get(len(own_qa) - 1)["answer"]


def test_same_generation_twice_is_refused(dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    out = tmp_path / "out"
    with pytest.raises(MergeError, match="same --seed"):
        merge(MergeConfig(sources=(dataset, copy), output=out, progress=False))
    assert not out.exists()
