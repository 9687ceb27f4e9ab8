"""Datasets written by LeRobot's own writer (``scripts/make_lerobot_fixtures.py``, committed under
``tests/fixtures/lerobot``): each trains a few steps without edits, is saved, reloaded and then
served (SO-100, joint space, one camera) or evaluated in LIBERO (Panda, 7-D, two cameras)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embodia.configs.train import TrainConfig
from embodia.policy import Policy
from embodia.training.trainer import train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot"


def _train(tmp_path: Path, config_text: str, flow_stage_file) -> Path:
    config = tmp_path / "dataset.yaml"
    config.write_text(config_text)
    stages = flow_stage_file(3)
    train(
        TrainConfig(
            dataset_config=config,
            output=tmp_path / "run",
            batch_size=2,
            workers=0,
            curriculum_file=stages,
            horizon=8,
            log_with="none",
            progress=False,
            frame_cache=tmp_path / "cache",
        )
    )
    return tmp_path / "run"


def test_an_so100_dataset_written_by_lerobot_trains_and_serves(tmp_path, flow_stage_file):
    from embodia.serving.client import PolicyClient
    from embodia.serving.server import PolicyServer
    from embodia.serving.thread import ServerThread

    config = (
        f"datasets:\n  - path: {FIXTURES / 'so100_joint'}\n    embodiment: so100\n"
        "    aliases: {observation/image: images/front, observation/state: state}\n"
    )
    run = _train(tmp_path, config, flow_stage_file)
    policy = Policy.load(run)
    meta = policy.metadata()
    assert (meta["embodiment"], meta["cameras"], meta["state_dim"], meta["action_shape"]) == (
        "so100",
        ["front"],
        6,
        [8, 6],
    )
    obs = {
        "images": {"front": np.zeros((64, 64, 3), np.uint8)},
        "state": np.zeros(6, np.float32),
        "prompt": "pick up the red cube",
        "seed": 0,
    }
    want = policy.infer(obs)["actions"]
    with (
        ServerThread(PolicyServer(policy, host="127.0.0.1", port=0)) as server,
        PolicyClient("127.0.0.1", server.port, timeout=60) as client,
    ):
        assert client.metadata["cameras"] == ["front"] and client.metadata["state_dim"] == 6
        got = client.infer(obs)["actions"]
        flat = {  # an openpi-style client's own keys, mapped by the dataset config's aliases
            "observation/image": obs["images"]["front"],
            "observation/state": obs["state"],
            "prompt": obs["prompt"],
            "seed": 0,
        }
        got_flat = client.infer(flat)["actions"]
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got_flat, want, atol=1e-6)


def _libero_config() -> str:
    return (
        f"datasets:\n  - path: {FIXTURES / 'libero_panda'}\n    embodiment: libero-panda\n"
        "    cameras: [observation.images.image, observation.images.wrist_image]\n"
        "    camera_names: [agentview, wrist]\n"
    )


def test_a_libero_dataset_written_by_lerobot_trains_with_video_and_image_frames(
    tmp_path, flow_stage_file
):
    policy = Policy.load(_train(tmp_path, _libero_config(), flow_stage_file))
    meta = policy.metadata()
    assert (meta["cameras"], meta["state_dim"], meta["action_shape"]) == (
        ["agentview", "wrist"],
        8,
        [8, 7],
    )
    obs = {
        "images": {
            "agentview": np.zeros((64, 64, 3), np.uint8),
            "wrist": np.zeros((64, 64, 3), np.uint8),
        },
        "state": np.zeros(8, np.float32),
        "prompt": "put the bowl on the plate",
    }
    assert policy.infer(obs)["actions"].shape == (8, 7)


def test_data_stats_restores_what_lerobot_wrote(tmp_path):
    from embodia.configs.data import StatsConfig
    from embodia.data.compute_stats import run_stats

    ds = tmp_path / "so100"
    shutil.copytree(FIXTURES / "so100_joint", ds)
    reference = json.loads((ds / "meta/stats.json").read_text())
    (ds / "meta/stats.json").unlink()
    run_stats(StatsConfig(dataset=ds, visual=False, progress=False))
    computed = json.loads((ds / "meta/stats.json").read_text())
    for key in ("observation.state", "action"):
        for stat in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(computed[key][stat], reference[key][stat], rtol=1e-5)


@pytest.mark.slow
def test_a_libero_checkpoint_evaluates_in_libero(tmp_path, flow_stage_file):
    pytest.importorskip("libero.libero", reason="optional extra: pip install -e '.[libero]'")
    from embodia.configs.eval import RolloutConfig
    from embodia.evaluation.rollout import run_rollouts

    run = _train(tmp_path, _libero_config(), flow_stage_file)
    out = run_rollouts(
        RolloutConfig(
            checkpoint=run,
            benchmark="libero",
            tasks=("libero_spatial",),
            episodes_per_task=1,
            max_steps=4,
            workers=0,
            videos=0,
            output=tmp_path / "eval",
        )
    )
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["overall"]["episodes"] == 10  # 10 tasks x 1 fixed initial state
    assert results["protocol"]["policy"]["embodiment"] == "libero-panda"


def test_one_run_on_two_robots_serves_each_with_its_own_statistics(tmp_path, flow_stage_file):
    from embodia.policy_config import PolicyConfigError

    arm_entry = f"  - path: {FIXTURES / 'so100_joint'}\n    embodiment: so100\n    name: arm\n"
    run = _train(tmp_path, _libero_config() + arm_entry, flow_stage_file)
    panda, arm = Policy.load(run), Policy.load(run, robot="arm")
    assert (panda.config.embodiment, panda.dof, panda.config.cameras) == (
        "libero-panda",
        7,
        ("agentview", "wrist"),
    )
    assert (arm.config.embodiment, arm.dof, arm.config.cameras) == ("so100", 6, ("front",))
    so100_stats = json.loads((FIXTURES / "so100_joint/meta/stats.json").read_text())
    np.testing.assert_allclose(
        arm.normalizer.stats["action"]["q99"], so100_stats["action"]["q99"], rtol=1e-6
    )
    out = arm.infer(
        {
            "images": {"front": np.zeros((64, 64, 3), np.uint8)},
            "state": np.zeros(6, np.float32),
            "prompt": "pick up the red cube",
        }
    )
    assert out["actions"].shape == (8, 6)
    with pytest.raises(PolicyConfigError, match=r"no robot 'ur5'.*\['arm'\]"):
        Policy.load(run, robot="ur5")
    from embodia.configs.serve import ExportConfig
    from embodia.export import export

    export(ExportConfig(checkpoint=run, output=tmp_path / "served"))
    assert Policy.load(tmp_path / "served", robot="arm").config.embodiment == "so100"


def test_two_datasets_of_one_name_are_refused(tmp_path, flow_stage_file):
    from embodia.training.trainer import TrainingError

    config = f"datasets:\n  - path: {FIXTURES / 'so100_joint'}\n    embodiment: so100\n"
    config += f"  - path: {FIXTURES / 'so100_joint'}\n    embodiment: so100\n"
    with pytest.raises(TrainingError, match=r"both called 'so100_joint'.*'name'"):
        _train(tmp_path, config, flow_stage_file)
