"""Streaming training (--stream-shard-episodes): shards dealt to processes without overlap every
epoch, samples drawn from the process's current window only, the same samples for the same seed,
shard caches kept within their budget, and a training run that streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from small_dataset import generate_small

from embodia.configs.train import DatasetSpec, StageConfig
from embodia.training.data import DataError, Mixture, StageDataset, build_sources
from embodia.training.streaming import (
    Position,
    ShardSchedule,
    StreamConfig,
    StreamError,
    cut_shards,
)

SIZE = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "ds"
    return generate_small(out, episodes_per_task=(2, 0, 1), image_size=48, max_steps=20)


def _episodes_source(dataset: Path, cache: Path, stream: StreamConfig | None):
    spec = DatasetSpec(path=dataset)
    return build_sources([spec], 4, SIZE, cache_root=cache, progress=False, stream=stream)[0]


def test_every_epoch_deals_each_shard_to_exactly_one_process() -> None:
    world, shards = 3, 7
    ranks = [ShardSchedule(shards, 2, 0, 0, "ds", r, world) for r in range(world)]
    orders = []
    for epoch in range(4):
        dealt = [r.epoch(epoch) for r in ranks]
        flat = [s for d in dealt for s in d]
        assert sorted(flat) == list(range(shards))  # all shards, none twice
        orders.append(flat)
    assert len({tuple(o) for o in orders}) > 1  # reshuffled between epochs
    # windows walk each rank's epochs in order, crossing epoch boundaries
    r0 = ranks[0]
    walk = [s for w in range(4) for s in r0.shards(w)]
    assert walk == (r0.epoch(0) + r0.epoch(1) + r0.epoch(2) + r0.epoch(3))[: len(walk)]
    again = ShardSchedule(shards, 2, 0, 0, "ds", 0, world)
    assert [again.shards(w) for w in range(4)] == [r0.shards(w) for w in range(4)]
    other_seed = ShardSchedule(shards, 2, 1, 0, "ds", 0, world)
    assert [other_seed.epoch(e) for e in range(4)] != [r0.epoch(e) for e in range(4)]
    with pytest.raises(StreamError, match="2 shard"):
        ShardSchedule(2, 1, 0, 0, "ds", 0, world)


def test_shards_sample_the_whole_split_whatever_its_recording_order() -> None:
    # 4 tasks recorded one after another, 10 episodes each (as the engine and most LeRobot
    # datasets are): consecutive shards of 10 would each hold a single task
    episodes = list(range(100, 140))
    shards = cut_shards(episodes, 10)
    assert sorted(e for s in shards for e in s) == episodes  # a partition: each episode once
    assert [len(s) for s in shards] == [10, 10, 10, 10]
    assert all(list(s) == sorted(s) for s in shards)  # dataset order within a shard
    assert all(len({(e - 100) // 10 for e in s}) >= 3 for s in shards), shards
    assert cut_shards(episodes, 10) == shards  # the same cut every run (cache entries reused)
    assert [len(s) for s in cut_shards(episodes, 16)] == [16, 16, 8]


def test_samples_come_from_the_window_and_equal_the_cached_frames(dataset, tmp_path) -> None:
    whole = _episodes_source(dataset, tmp_path / "whole", None)
    streamed = _episodes_source(dataset, tmp_path / "shards", StreamConfig(1, 1, 1.0))
    assert sorted(streamed.shards) == [(0,), (1,), (2,), (3,)]
    frames = {(ep, t): whole._item(whole.frames, ep, t)["images"][0] for ep, t in whole.index}
    stage = StageConfig(name="s", steps=10, trainable=("all",), loss_weights={"flow": 1.0})
    global_batch, world = 4, 2
    data = StageDataset(
        Mixture.for_stage([streamed], stage), 0, 0, 10**6, None, 0, Position(global_batch, world)
    )
    schedule, window_steps = data._schedule(0, 0)
    assert window_steps >= 1
    for step in range(3 * window_steps):
        window = schedule.shards(step // window_steps)
        for j in range(global_batch // world):  # rank 0's samples of this step
            n = step * global_batch + j
            sample, seed = data[n]
            image = sample.images[0]
            found = [k for k, v in frames.items() if np.array_equal(v, image)]
            window_episodes = {ep for shard in window for ep in streamed.shards[shard]}
            assert found and {ep for ep, _ in found} <= window_episodes, (step, found, window)
            again, seed2 = data[n]
            assert seed2 == seed and np.array_equal(again.images[0], image)
            assert np.array_equal(again.actions, sample.actions)
    streamed.caches.wait()


def test_shard_caches_stay_within_their_budget(dataset, tmp_path) -> None:
    probe = _episodes_source(dataset, tmp_path / "probe", StreamConfig(1, 1, 1.0))
    first = probe.caches.get(0, protect=set())
    entry = sum(p.stat().st_size for p in first.directory.glob("*.npy"))
    budget = 2.5 * entry / 2**30  # two entries of this size, not three
    cache = tmp_path / "cache"
    source = _episodes_source(dataset, cache, StreamConfig(1, 1, budget))
    rng = np.random.default_rng(0)
    seen = {}
    for window in [0, 1, 2, 3, 0, 2]:
        item = source.get_streamed([window], [(window + 1) % 4], rng)
        source.caches.wait()
        entries = [p for p in cache.rglob("manifest.json")]
        assert len(entries) <= 3, entries  # the window, the next one, at most one more
        seen.setdefault(window, []).append(item["state"])
    assert len(source.caches.open) <= 2
    # an evicted shard is rebuilt when needed again, with the same frames
    assert source.caches.get(0, protect=set()).lengths == first.lengths


def test_a_budget_below_two_windows_is_refused(dataset, tmp_path) -> None:
    with pytest.raises(DataError, match="frame-cache-budget-gb"):
        _episodes_source(dataset, tmp_path, StreamConfig(2, 1, 1e-6))


def test_a_run_streams_its_dataset(dataset, tmp_path) -> None:
    from embodia.configs.train import TrainConfig
    from embodia.training.report import read_metrics
    from embodia.training.trainer import TrainingError, train

    base = dict(
        datasets=(dataset,),
        output=tmp_path / "run",
        batch_size=4,
        workers=0,
        curriculum="actions",
        steps_per_stage=3,
        log_every=1,
        log_with="none",
        progress=False,
        horizon=8,
        image_size=SIZE,
        frame_cache=tmp_path / "cache",
    )
    train(TrainConfig(**base, stream_shard_episodes=1, stream_window=1))
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert rows and all(np.isfinite(r["loss"]) for r in rows)
    assert len(list((tmp_path / "cache").rglob("manifest.json"))) >= 2  # shard entries, not one
    with pytest.raises(TrainingError, match="stream-window"):
        train(
            TrainConfig(
                **{**base, "output": tmp_path / "bad"}, stream_shard_episodes=1, stream_window=0
            )
        )


def test_two_processes_stream_disjoint_shards(dataset, tmp_path) -> None:
    """A real 2-process run (torchrun, gloo on CPU): both ranks train, and each caches its own
    shards: 4 shards of one episode, windows of one, each rank reads its window and prefetches
    its next, so 4 distinct shard entries, where ranks reading the same shards would make 2."""
    import os
    import subprocess
    import sys

    from embodia.training.report import read_metrics

    run, cache = tmp_path / "run", tmp_path / "cache"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(29500 + os.getpid() % 1000),
        "-m", "embodia.cli", "train", "--datasets", str(dataset), "--output", str(run),
        "--batch-size", "4", "--workers", "0", "--curriculum", "actions",
        "--steps-per-stage", "2", "--log-every", "1", "--log-with", "none", "--no-progress",
        "--horizon", "8", "--image-size", str(SIZE), "--frame-cache", str(cache),
        "--stream-shard-episodes", "1", "--stream-window", "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = read_metrics(run / "metrics.jsonl")
    assert rows and all(np.isfinite(r["loss"]) for r in rows)
    entries = {p.parent for p in cache.rglob("manifest.json")}
    assert len(entries) == 4, entries
