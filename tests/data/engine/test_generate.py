"""End to end: `embodia data generate` writes a dataset the reader round-trips, resumes exactly after
an interrupt, rejects bad requests up front, and its grounding answers hit the objects' own pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from small_generation import SMALL, tree_digest

from embodia.cli import main as cli_main
from embodia.configs.data import GenerateConfig
from embodia.data.engine import generate as gen
from embodia.data.engine.episode import EpisodeRecorder
from embodia.data.engine.splits import plan_episodes
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset


def test_dataset_round_trips_through_the_reader(dataset):
    ds = LeRobotV3Dataset(dataset)
    assert ds.num_episodes == 6
    assert ds.fps == 80
    assert {ep["split"] for ep in ds.episodes} == {"train", "val", "test"}
    assert len(ds.episode_indices("train")) == 2
    for index in range(ds.num_episodes):
        ep = ds.load_episode(index)
        n = len(ep["task"])
        assert 1 <= n <= 30
        assert ep["observation.images.corner"].shape == (n, 48, 48, 3)
        depth = ep["observation.depth.gripperPOV"]
        assert depth.shape == (n, 48, 48) and depth.dtype == np.float32
        assert ep["action"].shape == (n, 4) and np.abs(ep["action"]).max() <= 1.0
        assert ep["observation.cameras.corner.intrinsics"].shape == (n, 9)
        assert len(ep["subtask"]) == n and all(ep["subtask"])
    # depth in the episode equals the lossless depth PNG saved with the QA sample of that frame
    first = json.loads((dataset / "conversations" / "train.jsonl").read_text().splitlines()[0])
    ep_index = next(i for i, e in enumerate(ds.episodes) if e["split"] == "train")
    episode = ds.load_episode(ep_index)
    png = (
        np.asarray(Image.open(dataset / "conversations" / first["depth"])).astype(np.float32) / 1000
    )
    stored = episode[f"observation.depth.{first['camera']}"][first["frame_index"]]
    np.testing.assert_allclose(stored, png, atol=1e-6)


def _offset_from_text(text: str, name: str) -> np.ndarray:
    """The (x, y, z) offset of ``name`` from the gripper, read back from a reasoning sentence."""
    import re

    sentence = re.search(rf"The {name} is [0-9.]+ m away: ([^.]*)\.", text).group(1)
    out = np.zeros(3)
    for cm, word in re.findall(r"(\d+) cm (right|left|ahead|behind|above|below)", sentence):
        axis, sign = {
            "right": (0, 1),
            "left": (0, -1),
            "ahead": (1, 1),
            "behind": (1, -1),
            "above": (2, 1),
            "below": (2, -1),
        }[word]
        out[axis] = sign * int(cm) / 100
    return out


def test_every_frame_carries_reasoning_true_of_that_frame(dataset):
    """Uni-CoT's reasoning level: per frame, the gripper state, the plan from the frame's own
    stage, and where the object is from the gripper as the simulator had it: before the grasp
    the puck rests, so the spoken offset plus the hand's position (observation.state[:3]) must
    name one fixed point: the puck's observed position, up to the hand-to-fingers offset."""
    from embodia.data.engine.tasks import TASKS

    ds = LeRobotV3Dataset(dataset)
    assert ds.reasoning is not None and len(ds.reasoning) == ds.num_frames
    resting = []
    for index in range(ds.num_episodes):
        ep = ds.load_episode(index)
        env = ds.episodes[index]["env_name"]
        phases = TASKS[env].phases
        points = []
        for t, text in enumerate(ep["reasoning"]):
            subtask = ep["subtask"][t]
            assert f"Now: {subtask}" in text, text
            done = phases[: phases.index(subtask)]
            assert f"Done: {'; '.join(done) or 'nothing yet'}." in text, text
            opening = ep["observation.state"][t][3]
            assert ("gripper is open" in text) == (opening > 0.8), (opening, text)
            if env == "pick-place-v3" and subtask == phases[0]:
                state = ep["observation.environment_state"][t]
                points.append(_offset_from_text(text, "puck") + state[0:3])
                # state[0:3] is the hand body, which rides 4.5 cm above the fingers' centre
                tcp_to_hand = np.array([0.0, 0.0, 0.045])
                assert np.linalg.norm(points[-1] - tcp_to_hand - state[4:7]) < 0.02
        if points:
            spread = np.abs(np.array(points) - points[0]).max()
            assert spread <= 0.015, spread  # 1 cm rounding per component
            resting.append(len(points))
    assert sum(resting) >= 5


def test_held_out_paraphrases_never_appear_in_the_data(dataset):
    """By default the last paraphrase of every task is kept out of every split (episodes and
    the instructions quoted in planning questions), for `eval rollout --instructions held-out`."""
    from embodia.data.engine.tasks import instructions

    ds = LeRobotV3Dataset(dataset)
    for index in range(ds.num_episodes):
        env = ds.episodes[index]["env_name"]
        (text,) = set(ds.load_episode(index, keys=["action"])["task"])
        assert text in instructions(env, 1, "seen") and text not in instructions(env, 1, "held-out")
    conv = (dataset / "conversations" / "train.jsonl").read_text()
    for env in ("reach-v3", "pick-place-v3"):
        assert not any(t in conv for t in instructions(env, 1, "held-out"))


def test_conversations_reference_existing_files_and_have_all_families(dataset):
    families, used = set(), set()
    for split in ("train", "val", "test"):
        for line in (dataset / "conversations" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            assert row["split"] == split
            assert (dataset / "conversations" / row["image"]).is_file()
            assert (dataset / "conversations" / row["depth"]).is_file()
            used |= {row["image"], row["depth"]}
            assert row["conversations"][0]["from"] == "human"
            assert row["conversations"][0]["value"].startswith("<image>\n")
            families.add(row["task_type"])
    assert families == {"grounding", "spatial", "planning"}
    images = dataset / "conversations" / "images"
    stored = {str(p.relative_to(images.parent)) for p in images.rglob("*.png")}
    assert stored == used  # no image that no kept question asks about
    engine = json.loads((dataset / "engine.json").read_text())
    assert engine["episodes"] == 6 and "metaworld" in engine["versions"]


def test_no_question_of_a_split_is_answered_by_its_prior(dataset):
    """Per task, category and subject, the most common answers of a split are tied (at most
    1/3 for a blind guess where three or more occur, 1/2 where two), and no question whose
    answer never varies is kept (plans excepted: they follow from the instruction)."""
    from collections import Counter

    from embodia.data.engine.qa import UNBALANCED, balance_group

    for split in ("train", "test"):
        groups: dict[tuple, Counter] = {}
        for line in (dataset / "conversations" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["category"] not in UNBALANCED:
                groups.setdefault(balance_group(row), Counter())[row["answer_class"]] += 1
        assert groups
        for key, counts in groups.items():
            top = sorted(counts.values(), reverse=True)
            assert len(top) >= 2, (split, key, counts)
            assert top[0] == top[min(3, len(top)) - 1], (split, key, counts)


def test_grounding_answers_match_the_segmentation_render():
    """Replay a recorded episode: every point lands on its object's own pixels and every box
    contains all of them (answers come from projected geometry, the check from segmentation)."""
    cfg = GenerateConfig(output=Path("unused"), **{**SMALL, "max_steps": 60})
    spec = plan_episodes(5, ["pick-place-v3"], {"train": 1})[0]
    recorder = EpisodeRecorder(cfg, "pick-place-v3")
    size = cfg.image_size
    try:
        episode = recorder.record(spec)
        by_frame: dict[int, list[dict]] = {}
        for s in episode.samples:
            if s["task_type"] == "grounding":
                by_frame.setdefault(s["frame_index"], []).append(s)
        recorder.scene.reset(spec.layout_seed)
        checked = {"point": 0, "box": 0}
        for t, action in enumerate(episode.frames["action"]):
            for s in by_frame.get(t, []):
                label = s["answer"]["label"]
                own = (
                    recorder.gripper_geoms
                    if label == "gripper"
                    else recorder.object_geoms.get(label)
                )
                if own is None:
                    continue  # target regions have no pixels of their own
                mask = np.isin(
                    recorder.renderer.segmentation(recorder.scene.data, s["camera"]), own
                )
                if "point_2d" in s["answer"]:
                    x, y = (np.array(s["answer"]["point_2d"]) * size / 1000).astype(int)
                    # rounding to the 0-1000 grid may move the point by up to one pixel
                    window = mask[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
                    assert window.any(), f"t={t} {label} point {s['answer']} misses its pixels"
                    checked["point"] += 1
                else:
                    x1, y1, x2, y2 = np.array(s["answer"]["bbox_2d"]) * size / 1000
                    ys, xs = np.nonzero(mask)
                    assert xs.min() >= x1 - 1.5 and xs.max() + 1 <= x2 + 1.5, (t, label)
                    assert ys.min() >= y1 - 1.5 and ys.max() + 1 <= y2 + 1.5, (t, label)
                    checked["box"] += 1
            recorder.scene.step(action)
        assert checked["point"] >= 2 and checked["box"] >= 2, checked
    finally:
        recorder.close()


def _interrupt_at_fourth_episode(cfg: GenerateConfig, monkeypatch) -> None:
    """Run ``cfg`` until Ctrl-C arrives as the fourth episode starts (one worker, in order)."""
    real = gen.record_and_stage
    calls = {"n": 0}

    def flaky(spec):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(spec)

    with monkeypatch.context() as patch:
        patch.setattr(gen, "record_and_stage", flaky)
        with pytest.raises(KeyboardInterrupt):
            gen.generate(cfg)


def test_interrupted_run_resumes_to_the_same_result(tmp_path, dataset, monkeypatch):
    out = tmp_path / "ds"
    cfg = GenerateConfig(output=out, **SMALL)
    _interrupt_at_fourth_episode(cfg, monkeypatch)
    assert not out.exists(), "nothing may appear at the output before the run is complete"
    from embodia.data.lerobot_v3.writer import staged_episode_keys

    assert len(staged_episode_keys(gen.staging_dir(cfg) / "episodes")) == 3
    gen.generate(cfg)
    assert not gen.staging_dir(cfg).exists()
    assert tree_digest(out) == tree_digest(dataset)


def test_resume_with_a_changed_config_is_refused(tmp_path):
    cfg = GenerateConfig(output=tmp_path / "ds", **SMALL)
    gen._check_resume(gen.staging_dir(cfg), cfg)
    changed = GenerateConfig(output=tmp_path / "ds", **{**SMALL, "image_size": 64})
    with pytest.raises(gen.GenerateError, match="image_size"):
        gen._check_resume(gen.staging_dir(changed), changed)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"tasks": ("pick-plcae",)}, "pick-plcae"),
        ({"cameras": ("corner", "wristcam")}, "wristcam"),
        ({"image_size": 4}, "image-size"),
        ({"held_out_instructions": 5}, "cannot hold out 5 of its 5"),
    ],
)
def test_bad_requests_are_refused_before_any_work(tmp_path, override, message):
    cfg = GenerateConfig(output=tmp_path / "ds", **{**SMALL, **override})
    with pytest.raises(gen.GenerateError, match=message):
        gen.generate(cfg)
    assert not (tmp_path / "ds").exists() and not gen.staging_dir(cfg).exists()


def test_bad_output_paths_are_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(gen.GenerateError, match="not a directory"):
        gen.validate(GenerateConfig(output=a_file, **SMALL))
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("precious")
    with pytest.raises(gen.GenerateError, match="--overwrite"):
        gen.validate(GenerateConfig(output=full, **SMALL))
    assert (full / "keep.txt").read_text() == "precious"


def test_cli_reports_errors_clearly(tmp_path, capsys):
    code = cli_main(["data", "generate", "--output", str(tmp_path / "x"), "--tasks", "not-a-task"])
    assert code == 2
    assert "not-a-task" in capsys.readouterr().err


def test_killed_multiworker_run_resumes_to_the_same_result(tmp_path, dataset):
    """SIGKILL a 2-worker CLI run mid-way, rerun the same command: same dataset as uninterrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from embodia.data.lerobot_v3.writer import staged_episode_keys

    out = tmp_path / "ds"
    args = [
        sys.executable,
        "-m",
        "embodia.cli",
        "data",
        "generate",
        "--output",
        str(out),
        "--tasks",
        *SMALL["tasks"],
        "--episodes-per-task",
        "1",
        "1",
        "1",
        "--image-size",
        str(SMALL["image_size"]),
        "--max-steps",
        str(SMALL["max_steps"]),
        "--qa-every",
        str(SMALL["qa_every"]),
        "--workers",
        "2",
        "--no-progress",
    ]
    stage = tmp_path / "ds.partial" / "episodes"
    proc = subprocess.Popen(
        args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if stage.exists() and len(staged_episode_keys(stage)) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if out.exists():
        pytest.skip("the run finished before it could be killed")
    assert 2 <= len(staged_episode_keys(stage)) < 6
    subprocess.run(args, check=True, capture_output=True)
    assert tree_digest(out) == tree_digest(dataset)


def test_shards_change_the_files_not_the_content(tmp_path, dataset, monkeypatch):
    """Two episodes per shard: three shards assembled while recording, merged at the end. The
    episodes, texts, statistics and conversations are those of the one-shard dataset; each shard
    keeps its own video file. An interrupted sharded run with another worker count resumes to
    the same bytes (shards are cut by plan position, never by worker)."""
    from embodia.data.lerobot_v3 import LeRobotV3Dataset

    sharded = tmp_path / "sharded"
    gen.generate(GenerateConfig(output=sharded, **{**SMALL, "shard_episodes": 2, "workers": 2}))
    ours, one = LeRobotV3Dataset(sharded), LeRobotV3Dataset(dataset)
    assert ours.num_episodes == one.num_episodes == 6
    for ep in range(one.num_episodes):
        a, b = ours.load_episode(ep), one.load_episode(ep)
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), (ep, key)
    for rel in ("meta/stats.json", "meta/tasks.parquet", "conversations/train.jsonl"):
        assert (sharded / rel).read_bytes() == (dataset / rel).read_bytes(), rel
    videos = sorted((sharded / "videos" / "observation.images.corner").rglob("*.mp4"))
    assert len(videos) == 3 and len(list((dataset / "videos").rglob("*.mp4"))) == 2

    resumed = tmp_path / "resumed"
    cfg = GenerateConfig(output=resumed, **{**SMALL, "shard_episodes": 2, "workers": 1})
    _interrupt_at_fourth_episode(cfg, monkeypatch)
    stage = gen.staging_dir(cfg)
    # recorded task by task (splits by name): pick-place test and train (shard 0), then val
    from embodia.data.lerobot_v3.writer import staged_episode_keys

    assert sorted(p.name for p in (stage / "shards").iterdir()) == ["shard-00000"]
    assert staged_episode_keys(stage / "episodes") == ["val-pick-place-v3-00000"]
    gen.generate(cfg)
    assert tree_digest(resumed) == tree_digest(sharded)
