"""Check that LeRobot's own loader reads datasets written by embodia's LeRobot v3 writer.

LeRobot cannot be installed beside embodia's torch, so this runs in a throwaway venv and is
never imported by the test suite. Setup (CPU machine, as used for the recorded check)::

    python3 -m venv /tmp/lerobot-venv && . /tmp/lerobot-venv/bin/activate
    pip install torch==2.13.0            # first, so nothing below pulls another torch
    pip install lerobot --no-deps        # checked with lerobot 0.4.4
    pip install datasets av pillow packaging jsonlines accelerate draccus
    HF_HUB_OFFLINE=1 python scripts/check_lerobot_compat.py

torchvision has no CPU build for this torch here. If it cannot be imported, this script puts a
minimal stand-in on ``sys.path`` that mirrors the two pieces LeRobot's dataset code uses:
``transforms.ToTensor`` (same dtype rules as torchvision: uint8 -> float/255, 16-bit -> int16)
and the PyAV-backed ``io.VideoReader`` (keyframe seek, frames as uint8 CHW with pts in seconds).
With a real torchvision installed the stand-in is not used.

Exit status 0 means every check passed; each check prints one line.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

_TORCHVISION_STUB = {
    "__init__.py": """
        from . import io, transforms

        def set_video_backend(backend):
            if backend != "pyav":
                raise ValueError(f"stub torchvision only supports pyav, not {backend}")
    """,
    "transforms/__init__.py": """
        import sys
        import numpy as np
        import torch

        class ToTensor:
            def __call__(self, pic):
                nptype = {"I": np.int32, "I;16" if sys.byteorder == "little" else "I;16B": np.int16,
                          "F": np.float32}.get(pic.mode, np.uint8)
                img = torch.from_numpy(np.array(pic, nptype, copy=True))
                if pic.mode == "1":
                    img = 255 * img
                img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
                img = img.permute((2, 0, 1)).contiguous()
                if img.dtype == torch.uint8:
                    return img.to(dtype=torch.get_default_dtype()).div(255)
                return img
    """,
    "io/__init__.py": """
        import av
        import torch

        class VideoReader:
            def __init__(self, path, stream="video"):
                self.container = av.open(path)
                self._stream = self.container.streams.video[0]
                self._iter = None

            def seek(self, time_s, keyframes_only=False):
                tb = self._stream.time_base
                self.container.seek(int(time_s / tb), stream=self._stream, backward=True,
                                    any_frame=not keyframes_only)
                self._iter = None
                return self

            def __iter__(self):
                return self

            def __next__(self):
                if self._iter is None:
                    self._iter = self.container.decode(self._stream)
                frame = next(self._iter)
                data = torch.from_numpy(frame.to_rgb().to_ndarray()).permute(2, 0, 1)
                return {"data": data, "pts": float(frame.pts * self._stream.time_base)}
    """,
}


def ensure_torchvision(tmp: Path) -> str:
    if importlib.util.find_spec("torchvision") is not None:
        return "real torchvision"
    for rel, text in _TORCHVISION_STUB.items():
        path = tmp / "torchvision_stub" / "torchvision" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp / "torchvision_stub"))
    return "stub torchvision (pyav VideoReader + ToTensor)"


def _write_dataset(tmp: Path, seed: int = 0) -> tuple[Path, dict]:
    """Three episodes (ep0, ep2 train, ep1 val) over two data and two video files; ``seed``
    varies the content. Returns the root and episode index -> the frames that were staged."""
    from embodia.data.lerobot_v3 import Feature, consolidate, stage_episode

    h, w, fps = 32, 48, 10
    features = {
        "observation.images.front": Feature("video", (h, w, 3)),
        "observation.images.wrist": Feature("video", (h, w, 3)),
        "observation.depth": Feature("depth", (h, w)),
        "observation.images.overview": Feature("image", (h, w, 3)),
        "observation.state": Feature("float32", (4,), ["x", "y", "z", "g"]),
        "action": Feature("float32", (3,)),
        "next.success": Feature("bool", (1,)),
        "phase": Feature("int64", (1,)),
    }
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    episodes = {}
    for i, length in enumerate([6, 11, 8]):
        rgb = np.stack(
            [
                np.stack(
                    [xx * 4 + t * 3, yy * 6 + i * 20, np.full_like(xx, 60 + 40 * i + 7 * seed)], -1
                )
                for t in range(length)
            ]
        ).astype(np.uint8)
        depth = rng.uniform(0.2, 9.0, (length, h, w)).astype(np.float32)
        depth[:, 0, 0] = np.nan
        depth[:, 1, 1] = 0.0
        frames = {
            "observation.images.front": rgb,
            "observation.images.wrist": rgb[:, ::-1].copy(),
            "observation.depth": depth,
            "observation.images.overview": rgb[..., ::-1].copy(),
            "observation.state": rng.normal(size=(length, 4)).astype(np.float32),
            "action": rng.normal(size=(length, 3)).astype(np.float32),
            "next.success": np.arange(length) == length - 1,
            "phase": np.arange(length) // 4,
        }
        key = f"ep{i}"
        episodes[key] = frames
        stage_episode(
            tmp / "staging",
            key,
            frames,
            [f"pick cube {i % 2}"] * length,
            features,
            fps,
            extra={"env_name": "toy", "seed": i, "success": bool(i % 2)},
            subtasks=["reach" if t < length // 2 else "grasp" for t in range(length)],
        )
    order = ["ep0", "ep1", "ep2"]

    # Limits that put the first two episodes of the final order (ep0, ep2) in one file and the
    # last in another, so both concatenation and file switching are exercised.
    def limit(name: str) -> float:
        paths = [tmp / "staging" / k / name for k in ("ep0", "ep2")]
        return sum(p.stat().st_size for p in paths) * 1.01 / 2**20

    consolidate(
        tmp / "staging",
        tmp / "dataset",
        features,
        fps,
        "toy_arm",
        order,
        splits={"train": ["ep0", "ep2"], "val": ["ep1"]},
        progress=False,
        data_files_size_in_mb=limit("frames.parquet"),
        video_files_size_in_mb=limit("videos/observation.images.front.mp4"),
    )
    # episode index -> staged frames (train split first: ep0, ep2, then ep1)
    return tmp / "dataset", {0: episodes["ep0"], 1: episodes["ep2"], 2: episodes["ep1"]}


def _check_frames(ds, ours, source: dict, check, label: str = "") -> None:
    """Every frame LeRobot's loader returns equals our reader's and the staged source."""
    bad: dict[str, int] = {"values": 0, "depth": 0, "image": 0}
    worst_video = 0.0
    worst_vs_source = 0.0
    for ep_idx in range(ours.num_episodes):
        ep = ours.load_episode(ep_idx)
        src = source[ep_idx]
        start = ours.episodes[ep_idx]["dataset_from_index"]
        for t in range(len(ep["index"])):
            item = ds[start + t]
            same = (
                int(item["episode_index"]) == ep_idx
                and int(item["frame_index"]) == t
                and int(item["index"]) == start + t
                and item["task"] == ep["task"][t]
                and item.get("subtask") == ep["subtask"][t]
                and np.array_equal(item["observation.state"].numpy(), src["observation.state"][t])
                and np.array_equal(item["action"].numpy(), src["action"][t])
                and bool(item["next.success"]) == bool(src["next.success"][t])
                and int(item["phase"]) == int(src["phase"][t])
            )
            if not same:
                bad["values"] += 1
                print(f"  ep {ep_idx} frame {t}: {repr(item)[:400]}")
            depth = item["observation.depth"]
            mm = np.round(ep["observation.depth"][t] * 1000).astype(np.int64)
            if tuple(depth.shape) != (1, *mm.shape) or not np.array_equal(
                depth[0].numpy().astype(np.int64), mm
            ):
                bad["depth"] += 1
                print(f"  ep {ep_idx} frame {t} depth: {depth.dtype} {tuple(depth.shape)}")
            img = item["observation.images.overview"]
            if not np.allclose(
                img.permute(1, 2, 0).numpy() * 255,
                src["observation.images.overview"][t],
                atol=1e-3,
            ):
                bad["image"] += 1
            for key in ("observation.images.front", "observation.images.wrist"):
                frame = (item[key].permute(1, 2, 0).numpy() * 255).round()
                worst_video = max(worst_video, float(np.abs(frame - ep[key][t]).max()))
                err = np.abs(frame - src[key][t]).mean()
                worst_vs_source = max(worst_vs_source, float(err))
    check(label + "per-frame state, action, bool, int, task, subtask, indices", not bad["values"])
    check(label + "depth image = our millimetres (int16 via ToTensor)", not bad["depth"])
    check(label + "PNG image exact", not bad["image"])
    check(label + "video frames equal our reader's", worst_video <= 1.0, f"max abs {worst_video}")
    check(
        label + "video close to source",
        worst_vs_source < 6.0,
        f"worst mean abs {worst_vs_source:.2f}",
    )


def _check_reverse(tmp: Path, check) -> None:
    """The other direction: a dataset recorded by LeRobot itself, read by embodia's reader."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from embodia.data.lerobot_v3 import LeRobotV3Dataset

    shape = (32, 48, 3)
    names = ["height", "width", "channels"]
    features = {
        "observation.images.cam": {"dtype": "video", "shape": shape, "names": names},
        "observation.images.png": {"dtype": "image", "shape": shape, "names": names},
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["a", "b", "c"]},
    }
    lr = LeRobotDataset.create("local/recorded", fps=10, features=features, root=tmp / "lr")
    rng = np.random.default_rng(1)
    source = []
    for ep in range(2):
        frames = []
        for t in range(7 + ep):
            img = np.full(shape, 40 + 10 * t, np.uint8)
            img[..., 1] = 100 + 50 * ep
            state = rng.normal(size=3).astype(np.float32)
            frame = {
                "observation.images.cam": img,
                "observation.images.png": img,
                "observation.state": state,
                "task": f"task {ep}",
            }
            lr.add_frame(frame)
            frames.append(frame)
        lr.save_episode()
        source.append(frames)
    lr.finalize()
    ours = LeRobotV3Dataset(tmp / "lr")
    ok = ours.num_episodes == 2 and ours.tasks == ["task 0", "task 1"]
    worst = 0.0
    for ep, frames in enumerate(source):
        out = ours.load_episode(ep)
        imgs = np.stack([f["observation.images.cam"] for f in frames])
        ok &= np.array_equal(
            out["observation.state"], np.stack([f["observation.state"] for f in frames])
        )
        ok &= np.array_equal(out["observation.images.png"], imgs)
        ok &= out["task"] == [f"task {ep}"] * len(frames)
        worst = max(worst, float(np.abs(out["observation.images.cam"].astype(int) - imgs).mean()))
    check(
        "embodia reads a LeRobot-recorded dataset",
        ok and worst < 4.0,
        f"video mean abs {worst:.2f}",
    )

    # two LeRobot-recorded datasets merged by embodia (a copy stands in for a second recording),
    # read back by LeRobot: each merged frame is the recorded one, the videos unchanged
    import shutil

    from embodia.data.lerobot_v3.merge import merge_into

    shutil.copytree(tmp / "lr", tmp / "lr2")
    (tmp / "lr-merged").mkdir()
    merge_into([tmp / "lr", tmp / "lr2"], tmp / "lr-merged", progress=False)
    merged = LeRobotDataset("local/merged", root=tmp / "lr-merged", video_backend="pyav")
    recorded = LeRobotDataset("local/recorded", root=tmp / "lr", video_backend="pyav")
    n = len(recorded)
    same = len(merged) == 2 * n and merged.meta.total_episodes == 4
    for i in range(len(merged)):
        a, b = merged[i], recorded[i % n]
        same &= all(
            bool((a[k] == b[k]).all())
            for k in ("observation.state", "observation.images.png", "observation.images.cam")
        )
        same &= a["task"] == b["task"] and int(a["index"]) == i
        same &= int(a["episode_index"]) == int(b["episode_index"]) + 2 * (i >= n)
    check("LeRobot reads two LeRobot-recorded datasets merged by embodia", same)


def main() -> int:
    import lerobot
    import torch

    failures = 0

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}")

    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        tv = ensure_torchvision(tmp)
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
        from lerobot.datasets.utils import dataset_to_policy_features

        from embodia.data.lerobot_v3 import LeRobotV3Dataset

        version = getattr(lerobot, "__version__", None)
        if version is None:
            from importlib.metadata import version as _v

            version = _v("lerobot")
        print(f"lerobot {version}, torch {torch.__version__}, {tv}")
        root, source = _write_dataset(tmp)
        ours = LeRobotV3Dataset(root)
        ds = LeRobotDataset(repo_id="local/test", root=root, video_backend="pyav")
        check("LeRobotDataset opens", True, f"{ds.num_episodes} episodes, {len(ds)} frames")
        check("frame count", len(ds) == ours.num_frames, f"{len(ds)} vs {ours.num_frames}")
        check("episode count", ds.meta.total_episodes == ours.num_episodes)
        check("splits", ds.meta.info["splits"] == {"train": "0:2", "val": "2:3"})
        check("stats loaded", ds.meta.stats is not None and "observation.state" in ds.meta.stats)
        q = ds.meta.stats["observation.images.front"]["q99"]
        check("image stats shape (3,1,1)", np.asarray(q).shape == (3, 1, 1))
        pf = dataset_to_policy_features(ds.meta.features)
        check("policy features", "observation.depth" in pf, str(pf["observation.depth"]))
        n_files = len(list((root / "data").glob("*/*.parquet")))
        n_vid = len(list((root / "videos" / "observation.images.front").glob("*/*.mp4")))
        check("several data/video files", n_files > 1 and n_vid > 1, f"{n_files} data, {n_vid} mp4")

        _check_frames(ds, ours, source, check)

        dts = LeRobotDataset(
            repo_id="local/test",
            root=root,
            video_backend="pyav",
            delta_timestamps={"observation.images.front": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]},
        )
        last = ours.episodes[0]["dataset_to_index"] - 1
        item = dts[last]
        pad = item["action_is_pad"].tolist()
        check("delta_timestamps padding at episode end", pad == [False, True, True], str(pad))
        first_of_ep1 = ours.episodes[1]["dataset_from_index"]
        item = dts[first_of_ep1]
        ep1 = ours.load_episode(1)
        frames = (item["observation.images.front"].permute(0, 2, 3, 1).numpy() * 255).round()
        ok = (
            frames.shape[0] == 2
            and np.abs(frames[1] - ep1["observation.images.front"][0]).max() <= 1
        )
        check("delta_timestamps video query across file boundary", ok)

        # merged datasets (embodia data merge): two sources, read back by LeRobot's loader
        from embodia.data.lerobot_v3.merge import merge_into

        (tmp / "merged").mkdir()
        (a, source_a), (b, source_b) = (
            _write_dataset(tmp / n, seed) for n, seed in (("a", 1), ("b", 2))
        )
        merge_into([a, b], tmp / "merged", progress=False)
        merged = LeRobotDataset(repo_id="local/merged", root=tmp / "merged", video_backend="pyav")
        ours_merged = LeRobotV3Dataset(tmp / "merged")
        check(
            "merged: LeRobotDataset opens",
            True,
            f"{merged.num_episodes} episodes, {len(merged)} frames",
        )
        check("merged: splits", merged.meta.info["splits"] == {"train": "0:4", "val": "4:6"})
        # train of a, train of b, then val of a, val of b
        order = [source_a[0], source_a[1], source_b[0], source_b[1], source_a[2], source_b[2]]
        _check_frames(merged, ours_merged, dict(enumerate(order)), check, "merged: ")

        _check_reverse(tmp, check)

    print("ALL OK" if failures == 0 else f"{failures} check(s) failed")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
