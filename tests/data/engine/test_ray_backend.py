"""`embodia data generate --backend ray`: the same seeds give the same dataset as local workers, a
Ray worker killed mid-episode loses and duplicates nothing, and a missing Ray says how to get it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from small_generation import SMALL, tree_digest

from embodia.configs.data import GenerateConfig
from embodia.data.engine import generate as gen
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
from embodia.utils.cluster import BackendError, connect_ray

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


def test_missing_ray_says_how_to_install_it(monkeypatch):
    if ray.is_initialized():  # connect_ray keeps a running Ray; the import is what is tested
        pytest.skip("needs a process where Ray is not yet initialised")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendError, match=r"pip install -e '\.\[ray\]'"):
        connect_ray(None, workers=1)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; started the way the CLI starts it."""
    connect_ray(None, workers=2)
    yield ray
    ray.shutdown()


def _same_dataset(a: Path, b: Path) -> None:
    """Byte for byte, videos included, and the reader sees every episode once."""
    assert tree_digest(a) == tree_digest(b)
    assert LeRobotV3Dataset(a).num_episodes == LeRobotV3Dataset(b).num_episodes == 6


def test_ray_backend_writes_the_local_dataset(local_ray, tmp_path, dataset):
    out = tmp_path / "ds"
    gen.generate(GenerateConfig(output=out, **{**SMALL, "backend": "ray", "workers": 2}))
    assert not gen.staging_dir(GenerateConfig(output=out)).exists()
    _same_dataset(out, dataset)


def _ray_task_pids(name: str) -> list[int]:
    """Processes whose title is Ray's ``ray::<name>`` (a worker running that task now)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(f"ray::{name}".encode()):
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(sys.platform != "linux", reason="finds Ray workers through /proc")
def test_a_worker_killed_mid_episode_loses_and_duplicates_nothing(local_ray, tmp_path, dataset):
    out = tmp_path / "ds"
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for pid in _ray_task_pids("record_packed"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    assassin = threading.Thread(target=kill_one_worker, daemon=True)
    assassin.start()
    gen.generate(GenerateConfig(output=out, **{**SMALL, "backend": "ray", "workers": 2}))
    assassin.join(timeout=5)
    assert killed, "no Ray worker was seen recording an episode"
    _same_dataset(out, dataset)
