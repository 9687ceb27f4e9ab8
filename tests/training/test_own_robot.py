"""Bringing your own robot: embodiments as data (built in or from a file), datasets whose keys are
not embodia's mapped by a dataset config, statistics computed for a dataset that lacks them, and a
refusal, naming the dataset, key and what was found, for every way the mapping can be wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embodia.configs.data import StatsConfig
from embodia.configs.train import DatasetSpec, TrainConfig, dataset_specs
from embodia.data.compute_stats import run_stats
from embodia.data.lerobot_v3 import Feature, consolidate, stage_episode
from embodia.models.action_space import (
    ALOHA,
    EMBODIMENTS,
    LIBERO_PANDA,
    SO100,
    TEMPLATE,
    Embodiment,
    EmbodimentError,
    load_embodiment,
)
from embodia.policy_config import PolicyConfig, PolicyConfigError
from embodia.training.data import DataError, EpisodeSource

H = W = 32
FPS = 30
#: An SO-100-like recording with LeRobot's usual names: two cameras (one video, one PNG frames),
#: 6 joint positions as state and 6 joint targets as action, no depth, no subtasks.
FEATURES = {
    "observation.images.front": Feature("video", (H, W, 3)),
    "observation.images.wrist": Feature("image", (H, W, 3)),
    "observation.state": Feature("float32", (6,)),
    "action": Feature("float32", (6,)),
}


def _episode(seed: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    joints = np.cumsum(rng.normal(0, 0.05, (length, 6)), axis=0).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = [
        np.stack([xx * 4 + 9 * t, yy * 4 + 40 * seed, np.full_like(xx, 90)], -1)
        for t in range(length)
    ]  # video codecs keep smooth images (unlike noise) nearly as is
    return {
        "observation.images.front": np.stack(smooth).astype(np.uint8),
        "observation.images.wrist": rng.integers(0, 256, (length, H, W, 3), dtype=np.uint8),
        "observation.state": joints,
        "action": np.roll(joints, -1, axis=0),
    }


@pytest.fixture(scope="module")
def so100_dataset(tmp_path_factory) -> Path:
    staging = tmp_path_factory.mktemp("stage")
    keys = [f"ep{i}" for i in range(3)]
    for i, key in enumerate(keys):
        frames = _episode(i, 12 + i)
        stage_episode(
            staging, key, frames, ["pick up the cube"] * len(frames["action"]), FEATURES, FPS
        )
    out = tmp_path_factory.mktemp("so100") / "ds"
    consolidate(staging, out, FEATURES, FPS, "so100", keys, splits={"train": keys}, progress=False)
    return out


def _source(spec: DatasetSpec, tmp_path: Path, **kw) -> EpisodeSource:
    return EpisodeSource(
        spec, horizon=4, image_size=32, cache_root=tmp_path / "cache", progress=False, **kw
    )


# ---------------------------------------------------------------- embodiments


def test_the_built_in_robots_have_their_action_and_state_widths():
    assert {"metaworld-sawyer", "libero-panda", "so100", "aloha"} <= set(EMBODIMENTS)
    assert (len(LIBERO_PANDA.slots), LIBERO_PANDA.state_width) == (7, 8)
    assert (len(SO100.slots), SO100.state_width) == (6, 6)
    assert (len(ALOHA.slots), ALOHA.state_width) == (14, 14)
    # state and action map onto the template separately: LIBERO's 2 finger positions
    state = LIBERO_PANDA.state_to_template(np.arange(8, dtype=np.float32))
    assert state[TEMPLATE.index("right_gripper")] == 7
    assert LIBERO_PANDA.to_template(np.ones(7))[TEMPLATE.index("right_gripper")] == 0


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_users_embodiment_file_defines_a_robot(tmp_path, suffix):
    spec = {
        "name": "my-arm",
        "action": ["left_ee_x", "left_ee_y", "left_gripper"],
        "state": ["left_ee_x", "left_ee_y", "left_ee_z", "left_gripper"],
    }
    path = tmp_path / f"arm{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(spec))
    else:
        import yaml

        path.write_text(yaml.safe_dump(spec))
    emb = load_embodiment(path)
    assert emb.slots == ("left_ee_x", "left_ee_y", "left_gripper") and emb.state_width == 4
    assert Embodiment.from_dict(emb.to_dict()) == emb


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "x", "action": ["left_elbow"]}, "left_elbow.*not in the template"),
        ({"name": "x", "action": ["left_ee_x", "left_ee_x"]}, "repeat"),
        ({"name": "x"}, "missing field 'action'"),
        ({"name": "x", "action": ["left_ee_x"], "joints": 3}, "unknown field.*joints"),
        ({"name": "x", "action": "left_ee_x"}, "must be a list"),
    ],
)
def test_a_malformed_embodiment_file_is_refused_naming_the_field(tmp_path, spec, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(EmbodimentError, match=message) as info:
        load_embodiment(path)
    assert str(path) in str(info.value)


def test_an_unknown_embodiment_name_lists_the_known_ones():
    with pytest.raises(EmbodimentError, match="so100"):
        load_embodiment("so-100")
    with pytest.raises(EmbodimentError, match="does not exist"):
        load_embodiment("nowhere/arm.yaml")


def test_a_checkpoint_of_a_users_robot_loads_without_its_file(so100_dataset):
    own = Embodiment("my-so100", SO100.slots)
    cfg = PolicyConfig.from_dataset(
        so100_dataset, ("front", "wrist"), own.name, embodiment_spec=own.to_dict()
    )
    loaded = PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert loaded.embodiment_obj() == own
    with pytest.raises(PolicyConfigError, match="unknown embodiment 'my-so100'"):
        PolicyConfig.from_dataset(so100_dataset, ("front",), own.name)


# ---------------------------------------------------------------- datasets with their own keys


def test_a_lerobot_dataset_of_another_robot_trains_without_edits(so100_dataset, tmp_path):
    spec = DatasetSpec(
        path=so100_dataset,
        embodiment="so100",
        cameras=("observation.images.wrist", "observation.images.front"),
    )
    src = _source(spec, tmp_path, with_depth=True)  # no depth in it: masked, not refused
    assert src.depth_keys is None
    src.open_frames()
    item = src.get(5)
    assert [im.shape for im in item["images"]] == [(32, 32, 3)] * 2
    assert item["chunk"].shape == (4, 6) and item["instruction"] == "pick up the cube"
    assert item["subtask"] is None and item["depths"] is None


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"cameras": ("observation.images.top",)},
            r"no feature 'observation.images.top' for the "
            r"camera \(it has \[",
        ),
        ({"cameras": ("observation.state",)}, "camera 'observation.state' is a 'float32' feature"),
        ({"state_key": "observation.joints"}, "no feature 'observation.joints' for the state"),
        ({"action_key": "actions"}, "no feature 'actions' for the action"),
        (
            {"embodiment": "metaworld-sawyer"},
            r"state feature 'observation.state' has 6 dims, but "
            r"embodiment 'metaworld-sawyer' takes 4 dims",
        ),
        (
            {"embodiment": "metaworld-sawyer", "state_key": "observation.state4"},
            "no feature 'observation.state4'",
        ),
        ({"embodiment": "aloha"}, "state feature 'observation.state' has 6 dims.*'aloha' takes 14"),
        ({"embodiment": "libero-panda"}, "'libero-panda' takes 8 dims"),
        ({"embodiment": "ur5"}, "unknown embodiment 'ur5'"),
        ({"split": "test"}, "split 'test' not in"),
        ({"camera_names": ("a", "a")}, r"camera_names \['a', 'a'\] must name each of the 2"),
        (
            {"aliases": {"observation/image": "images/top"}},
            r"alias 'observation/image' -> 'images/top' names no camera or state",
        ),
        (
            {"depth_keys": ("observation.depth.front", "observation.depth.wrist")},
            "no depth feature 'observation.depth.front'",
        ),
    ],
)
def test_each_wrong_mapping_is_refused_naming_dataset_and_key(
    so100_dataset, tmp_path, change, message
):
    spec = DatasetSpec(path=so100_dataset, **{"embodiment": "so100", **change})
    with pytest.raises(DataError, match=message) as info:
        _source(spec, tmp_path, with_depth=True)
    assert str(so100_dataset) in str(info.value)
    assert not (tmp_path / "cache").exists()  # refused before any frame was decoded


def test_a_dataset_without_statistics_is_refused_until_data_stats_computes_them(
    so100_dataset, tmp_path
):
    ds = tmp_path / "nostats"
    shutil.copytree(so100_dataset, ds)
    reference = json.loads((ds / "meta/stats.json").read_text())
    (ds / "meta/stats.json").unlink()
    spec = DatasetSpec(path=ds, embodiment="so100")
    with pytest.raises(DataError, match=r"stats\.json.*embodia data stats"):
        _source(spec, tmp_path)
    run_stats(StatsConfig(dataset=ds, progress=False))
    computed = json.loads((ds / "meta/stats.json").read_text())
    for key, atol in (
        ("observation.state", 1e-6),
        ("action", 1e-6),
        # decoded (lossy AV1) video vs the raw frames: a constant colour channel's 1st / 99th
        # percentiles move by ~5-6 grey levels (0.020 with PyAV 17's codecs, 0.022 with 18's)
        ("observation.images.front", 0.03),
    ):
        for stat in ("mean", "std", "q01", "q99"):
            np.testing.assert_allclose(computed[key][stat], reference[key][stat], atol=atol)
    _source(spec, tmp_path)  # now it trains


def test_data_stats_keeps_what_exists_and_refuses_unknown_features(so100_dataset, tmp_path):
    ds = tmp_path / "partial"
    shutil.copytree(so100_dataset, ds)
    stats = json.loads((ds / "meta/stats.json").read_text())
    stats["observation.state"]["mean"] = [9.0] * 6  # a value the user set on purpose
    del stats["action"]
    (ds / "meta/stats.json").write_text(json.dumps(stats))
    run_stats(StatsConfig(dataset=ds, visual=False, progress=False))
    after = json.loads((ds / "meta/stats.json").read_text())
    assert after["observation.state"]["mean"] == [9.0] * 6 and "action" in after
    with pytest.raises(ValueError, match=r"no feature.*'effort'"):
        run_stats(StatsConfig(dataset=ds, features=("effort",), progress=False))


# ---------------------------------------------------------------- dataset configs


def test_a_dataset_config_maps_roles_for_every_dataset_or_lists_its_own(tmp_path):
    cfg_file = tmp_path / "robot.yaml"
    cfg_file.write_text(
        "embodiment: so100\ncameras: [observation.images.wrist]\naction_key: action.joints\n"
    )
    base = TrainConfig(
        datasets=(tmp_path / "a", tmp_path / "b"),
        dataset_config=cfg_file,
        state_key="observation.joints",
    )
    specs = dataset_specs(base)
    assert [s.path for s in specs] == [tmp_path / "a", tmp_path / "b"]
    assert {(s.embodiment, s.cameras, s.action_key, s.state_key) for s in specs} == {
        ("so100", ("observation.images.wrist",), "action.joints", "observation.joints")
    }
    listing = tmp_path / "mix.json"
    listing.write_text(
        json.dumps(
            {
                "datasets": [
                    {"path": "so100_data", "embodiment": "so100"},
                    {"path": "/abs/libero", "embodiment": "libero-panda", "name": "libero"},
                ]
            }
        )
    )
    specs = dataset_specs(TrainConfig(dataset_config=listing))
    assert [(s.path, s.embodiment, s.label) for s in specs] == [
        (tmp_path / "so100_data", "so100", "so100_data"),
        (Path("/abs/libero"), "libero-panda", "libero"),
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"camera": ["x"]}, r"unknown field\(s\) \['camera'\]"),
        ({"cameras": "observation.images.front"}, "'cameras' must be a list"),
        ({"aliases": ["observation/image"]}, "'aliases' must map flat request keys"),
        (
            {"datasets": [{"embodiment": "so100"}]},
            r"datasets\[0\]: must be a mapping with a 'path'",
        ),
        ({"datasets": [], "embodiment": "so100"}, "'datasets' must be a non-empty list"),
    ],
)
def test_a_bad_dataset_config_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        dataset_specs(TrainConfig(datasets=(tmp_path,), dataset_config=path))
    assert str(path) in str(info.value)


def test_an_action_wider_than_the_embodiment_is_refused(so100_dataset, tmp_path):
    arm = tmp_path / "arm.json"  # the state fits (6 slots), the 6-D action does not (4 slots)
    arm.write_text(
        json.dumps(
            {
                "name": "four",
                "action": [*list(TEMPLATE[:3]), "left_gripper"],
                "state": list(SO100.slots),
            }
        )
    )
    with pytest.raises(
        DataError,
        match=r"action feature 'action' has 6 dims, but embodiment "
        r"'four' takes 4 dims",
    ):
        _source(DatasetSpec(path=so100_dataset, embodiment=str(arm)), tmp_path)


def test_train_serve_a_users_robot_from_its_dataset_config(
    so100_dataset, tmp_path, flow_stage_file
):
    """A user's robot end to end: its own embodiment file and dataset config -> a few training
    steps -> a checkpoint that loads without those files and answers in the robot's units."""
    from embodia.policy import Policy
    from embodia.training.trainer import train

    arm = tmp_path / "my_arm.yaml"
    arm.write_text(
        "name: my-arm\naction: [left_ee_x, left_ee_y, left_ee_z, left_rot_x, "
        "left_rot_y, left_gripper]\n"
    )
    config = tmp_path / "robot.yaml"
    config.write_text(
        f"datasets:\n  - path: {so100_dataset}\n    embodiment: {arm}\n"
        "    cameras: [observation.images.wrist, observation.images.front]\n"
        "    camera_names: [gripper, scene]\n"
    )
    stages = flow_stage_file(2)
    last = train(
        TrainConfig(
            dataset_config=config,
            output=tmp_path / "run",
            batch_size=2,
            workers=0,
            curriculum_file=stages,
            horizon=4,
            log_with="none",
            progress=False,
            frame_cache=tmp_path / "cache",
        )
    )
    arm.unlink()  # the checkpoint carries the definition
    policy = Policy.load(tmp_path / "run")
    meta = policy.metadata()
    assert (meta["embodiment"], meta["cameras"], meta["state_dim"], meta["action_shape"]) == (
        "my-arm",
        ["gripper", "scene"],
        6,
        [4, 6],
    )
    obs = {
        "images": {
            "gripper": np.zeros((48, 40, 3), np.uint8),
            "scene": np.zeros((32, 32, 3), np.uint8),
        },
        "state": np.zeros(6, np.float32),
        "prompt": "pick up the cube",
    }
    out = policy.infer(obs)
    assert out["actions"].shape == (4, 6) and np.isfinite(out["actions"]).all()
    assert last is not None
