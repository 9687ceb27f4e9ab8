"""`embodia data info`: what is in a dataset, read back through the project's own reader."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table


def summary(dataset: Path) -> dict:
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

    ds = LeRobotV3Dataset(dataset)
    by_split: dict[str, Counter] = {}
    for ep in ds.episodes:
        c = by_split.setdefault(str(ep.get("split", "all")), Counter())
        c["episodes"] += 1
        c["frames"] += int(ep["length"])
        c["successes"] += int(bool(ep.get("success", False)))
    conv: dict[str, int] = {}
    for path in sorted((Path(dataset) / "conversations").glob("*.jsonl")):
        with open(path) as fh:
            conv[path.stem] = sum(1 for _ in fh)
    return {
        "path": str(dataset),
        "fps": ds.fps,
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "tasks": len({ep.get("env_name") for ep in ds.episodes}),
        "instructions": len(ds.tasks),
        "splits": {k: dict(v) for k, v in by_split.items()},
        "conversations": conv,
        "features": {k: f"{f.dtype}{list(f.shape)}" for k, f in ds.features.items()},
    }


def print_summary(dataset: Path) -> None:
    info = summary(Path(dataset))
    console = Console()
    console.print(
        f"[bold]{info['path']}[/bold]: {info['episodes']} episodes, {info['frames']} frames "
        f"at {info['fps']} fps, {info['tasks']} tasks, {info['instructions']} instructions"
    )
    table = Table("split", "episodes", "frames", "expert successes", "QA samples")
    for split, c in info["splits"].items():
        table.add_row(
            split,
            str(c["episodes"]),
            str(c["frames"]),
            str(c["successes"]),
            str(info["conversations"].get(split, 0)),
        )
    console.print(table)
    console.print("features: " + json.dumps(info["features"]))
