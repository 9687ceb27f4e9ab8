"""``embodia data stats DIR``: give a LeRobot v3 dataset the statistics training needs.

Datasets recorded elsewhere (a robot's own logger, a converter, an old LeRobot version) often
come without ``meta/stats.json`` or without some features' entries; training refuses them, naming
the key. This computes what is missing and writes the file in one atomic step, so a stopped run
leaves the old file (or none) in place, never half of a new one.
"""

from __future__ import annotations

import json
from pathlib import Path

from embodia.configs.data import StatsConfig
from embodia.data.lerobot_v3.features import STATS_PATH
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
from embodia.data.lerobot_v3.stats import dataset_stats, stats_to_json
from embodia.utils.fs import atomic_write_text


def features_to_compute(ds: LeRobotV3Dataset, cfg: StatsConfig) -> list[str]:
    """The requested features (every one by default) less those that have statistics already
    (unless ``--overwrite``); depth maps are never included (their training does not read
    statistics), images and videos only with ``--visual``."""
    if cfg.features:
        unknown = [k for k in cfg.features if k not in ds.features]
        if unknown:
            raise ValueError(
                f"{Path(ds.root) / 'meta/info.json'}: no feature(s) {unknown} "
                f"(it has {sorted(ds.features)})"
            )
        keys = list(cfg.features)
    else:
        keys = [
            k
            for k, f in ds.features.items()
            if f.dtype != "depth" and (cfg.visual or f.dtype not in ("video", "image"))
        ]
    if not cfg.overwrite:
        keys = [k for k in keys if k not in ds.stats]
    return keys


def run_stats(cfg: StatsConfig) -> Path:
    ds = LeRobotV3Dataset(cfg.dataset)
    keys = features_to_compute(ds, cfg)
    path = Path(cfg.dataset) / STATS_PATH
    if not keys:
        print(f"{path}: every requested feature has statistics already (--overwrite recomputes)")
        return path
    stats = {k: v for k, v in ds.stats.items() if k not in keys}
    stats.update(dataset_stats(ds, keys, cfg.progress))
    atomic_write_text(path, json.dumps(stats_to_json(stats), indent=2) + "\n")
    print(f"wrote {path}: statistics of {len(keys)} feature(s) ({', '.join(keys)})")
    return path
