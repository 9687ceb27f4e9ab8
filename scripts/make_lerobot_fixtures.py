"""Write the small "your own robot" fixtures with LeRobot's own dataset writer.

These datasets are what a user brings: written by ``lerobot.datasets.LeRobotDataset`` (not by
embodia), with LeRobot's feature names, its video encoding and its metadata. The tests in
``tests/training/test_lerobot_fixtures.py`` train on them, reload the checkpoints and serve or
evaluate them. They are committed (a few hundred KB), so neither CI nor the test suite ever needs
LeRobot; run this again only to regenerate them:

    python3 -m venv /tmp/lerobot-venv
    /tmp/lerobot-venv/bin/pip install torch==2.13.0   # first: nothing below pulls another torch
    /tmp/lerobot-venv/bin/pip install lerobot==0.4.4 --no-deps
    /tmp/lerobot-venv/bin/pip install datasets av pillow packaging jsonlines accelerate draccus
    HF_HUB_OFFLINE=1 /tmp/lerobot-venv/bin/python scripts/make_lerobot_fixtures.py

Two datasets, each 3 episodes of smooth synthetic motion (seeded, so a rerun writes the same
frames):

* ``so100_joint``: an SO-100 arm in joint space, one video camera (``observation.images.front``),
  6 joint positions as state and 6 joint targets as action (``names`` as LeRobot's SO-100 uses).
* ``libero_panda``: LIBERO's LeRobot layout, a Franka Panda with 7-D end-effector delta actions
  and the 8-D state (eef xyz, axis-angle, 2 finger joints), a video agent-view camera
  (``observation.images.image``) and the wrist camera stored as PNG image frames
  (``observation.images.wrist_image``), so both frame storages are covered.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_lerobot_compat import ensure_torchvision

H = W = 64
FPS = 20
SO100_JOINTS = [
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
]


def _scene(t: int, n: int, seed: int, target: np.ndarray) -> np.ndarray:
    """A smooth image: a coloured disc (the object) on a gradient, moving with the robot."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([xx * 2 + 40, yy * 2 + 30 * seed, np.full_like(xx, 120)], -1)
    cx, cy = 16 + 32 * target[0], 16 + 32 * target[1]
    cx, cy = cx + (32 - cx) * t / n, cy + (32 - cy) * t / n
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < 36
    img[disc] = (220, 40, 40)
    return img.clip(0, 255).astype(np.uint8)


def so100(root: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.images.front": {
            "dtype": "video",
            "shape": (H, W, 3),
            "names": ["height", "width", "channels"],
        },
        "observation.state": {"dtype": "float32", "shape": (6,), "names": SO100_JOINTS},
        "action": {"dtype": "float32", "shape": (6,), "names": SO100_JOINTS},
    }
    ds = LeRobotDataset.create(
        "embodia/so100_joint", FPS, features, root=root, robot_type="so100", use_videos=True
    )
    for ep in range(3):
        rng = np.random.default_rng(ep)
        target = rng.uniform(0, 1, 2)
        start, goal = rng.uniform(-1, 1, 6), rng.uniform(-1, 1, 6)
        n = 24
        for t in range(n):
            q = start + (goal - start) * t / n
            ds.add_frame(
                {
                    "observation.images.front": _scene(t, n, ep, target),
                    "observation.state": q.astype(np.float32),
                    "action": (start + (goal - start) * (t + 1) / n).astype(np.float32),
                    "task": "pick up the red cube" if ep % 2 == 0 else "put the cube in the bin",
                }
            )
        ds.save_episode()
    ds.finalize()


def libero(root: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    image = {"shape": (H, W, 3), "names": ["height", "width", "channel"]}
    features = {
        "observation.images.image": {"dtype": "video", **image},
        "observation.images.wrist_image": {"dtype": "image", **image},
        "observation.state": {"dtype": "float32", "shape": (8,), "names": ["state"]},
        "action": {"dtype": "float32", "shape": (7,), "names": ["actions"]},
    }
    ds = LeRobotDataset.create(
        "embodia/libero_panda", FPS, features, root=root, robot_type="panda", use_videos=True
    )
    for ep in range(3):
        rng = np.random.default_rng(100 + ep)
        target = rng.uniform(0, 1, 2)
        eef = rng.uniform(-0.2, 0.2, 3) + np.array([0.0, 0.0, 1.0])
        n = 24
        for t in range(n):
            delta = np.clip((np.r_[target - 0.5, -0.3] - (eef - [0, 0, 1])) * 2.0, -1, 1)
            grip = -1.0 if t < n // 2 else 1.0
            state = np.r_[eef, 0.0, np.pi, 0.0, 0.04 * (grip < 0), -0.04 * (grip < 0)]
            ds.add_frame(
                {
                    "observation.images.image": _scene(t, n, ep, target),
                    "observation.images.wrist_image": _scene(n - t, n, ep + 1, target),
                    "observation.state": state.astype(np.float32),
                    "action": np.r_[delta, 0.0, 0.0, 0.0, grip].astype(np.float32),
                    "task": "put the bowl on the plate",
                }
            )
            eef = eef + 0.01 * delta
        ds.save_episode()
    ds.finalize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--output", type=Path, default=repo / "tests" / "fixtures" / "lerobot")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(ensure_torchvision(Path(tmp)))
        for name, write in (("so100_joint", so100), ("libero_panda", libero)):
            out = args.output / name
            staging = Path(tmp) / name  # LeRobot refuses an existing root: write, then move
            write(staging)
            if out.exists():
                shutil.rmtree(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(staging, out, ignore=shutil.ignore_patterns("images"))
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            print(f"wrote {out} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
