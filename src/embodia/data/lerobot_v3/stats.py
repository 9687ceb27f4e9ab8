"""Normalisation statistics in LeRobot's ``stats.json`` layout.

Every feature gets ``mean, std, min, max, count`` and the quantiles ``q01, q10, q50, q90, q99``
(LeRobot's current set; its quantile normalisers read q01/q99). Shapes follow LeRobot so its
loaders and normalisers accept them unchanged:

* vector features ``(D,)`` -> each stat ``(D,)``; scalar features -> ``(1,)``;
* RGB images and videos -> per channel ``(3, 1, 1)`` on the ``[0, 1]`` scale;
* depth (our extension) -> ``(1, 1, 1)`` in metres over valid (non-zero) pixels only;
* ``count`` is always ``(1,)``: frames for numeric features, sampled frames for visual ones.

Per-episode numeric stats are exact. Visual stats use a deterministic subsample (evenly spaced
frames, LeRobot's count heuristic, spatial striding to ~32 px) because exact pixel
quantiles over whole episodes would dominate the cost of staging an episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS = ("mean", "std", "min", "max", "count", *QUANTILES)
_MAX_QUANTILE_SAMPLES = 200_000
_STATS_SIDE = 32


def _num_sampled_frames(n: int) -> int:
    """LeRobot's heuristic: all frames up to 100, then ~n**0.75, at most 10k."""
    if n < 100:
        return n
    return max(100, min(int(n**0.75), 10_000))


def _sample_frames(values: np.ndarray) -> np.ndarray:
    n = len(values)
    idx = np.round(np.linspace(0, n - 1, _num_sampled_frames(n))).astype(int)
    frames = values[idx]
    # Intensity statistics do not need every pixel: stride frames down to ~32 px a side. Exact
    # per-pixel stats cost more than rendering the episode did.
    h, w = frames.shape[1:3]
    step = max(1, -(-max(h, w) // _STATS_SIDE))
    return frames[:, ::step, ::step]


def _strided(x: np.ndarray, limit: int = _MAX_QUANTILE_SAMPLES) -> np.ndarray:
    step = max(1, -(-len(x) // limit))
    return x[::step]


def _column_stats(x: np.ndarray, count: int, quantile_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over axis 0 of a (N, C) float64 array; quantiles from ``quantile_rows``."""
    out = {
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "count": np.array([count], dtype=np.int64),
    }
    qs = np.quantile(quantile_rows, list(QUANTILES.values()), axis=0)
    for name, row in zip(QUANTILES, qs, strict=True):
        out[name] = row
    return out


def compute_feature_stats(values: np.ndarray, dtype: str = "float32") -> dict[str, np.ndarray]:
    """Stats of one feature over one episode.

    ``values`` has a leading time axis: numeric ``(T,)``/``(T, D)``, "video"/"image" uint8
    ``(T, H, W, 3)``, "depth" float32 metres ``(T, H, W)`` with 0 meaning invalid.
    """
    values = np.asarray(values)
    if len(values) == 0:
        raise ValueError("cannot compute stats of an empty episode")
    if dtype in ("video", "image"):
        frames = _sample_frames(values)
        px = frames.reshape(-1, frames.shape[-1]).astype(np.float64) / 255.0
        stats = _column_stats(px, len(frames), _strided(px))
        return {k: v if k == "count" else v.reshape(-1, 1, 1) for k, v in stats.items()}
    if dtype == "depth":
        frames = _sample_frames(values)
        px = frames.reshape(-1).astype(np.float64)
        px = px[px > 0][:, None]
        if len(px) == 0:  # no valid pixel at all: report zeros rather than NaN
            px = np.zeros((1, 1))
        stats = _column_stats(px, len(frames), _strided(px))
        return {k: v if k == "count" else v.reshape(1, 1, 1) for k, v in stats.items()}
    x = values.astype(np.float64)
    x = x.reshape(len(x), -1)
    return _column_stats(x, len(x), x)


def aggregate_stats(
    per_episode: list[dict[str, dict[str, Any]]],
) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode stats into dataset stats.

    min/max/mean/std/count are exact (std via the parallel-variance formula). Quantiles are
    approximated, as LeRobot does, by the count-weighted mean of the per-episode quantiles: exact
    when episodes share a distribution, and always within [min, max].
    """
    keys: list[str] = []
    for ep in per_episode:
        keys.extend(k for k in ep if k not in keys)
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        items = [
            {s: np.asarray(v, dtype=np.float64) for s, v in ep[key].items()}
            for ep in per_episode
            if key in ep
        ]
        counts = np.array([float(it["count"].reshape(-1)[0]) for it in items])
        total = counts.sum()
        w = (counts / total).reshape(-1, *([1] * items[0]["mean"].ndim))
        means = np.stack([it["mean"] for it in items])
        mean = (w * means).sum(axis=0)
        var = (w * (np.stack([it["std"] for it in items]) ** 2 + (means - mean) ** 2)).sum(axis=0)
        agg = {
            "mean": mean,
            "std": np.sqrt(var),
            "min": np.min(np.stack([it["min"] for it in items]), axis=0),
            "max": np.max(np.stack([it["max"] for it in items]), axis=0),
            "count": np.array([int(total)], dtype=np.int64),
        }
        for q in QUANTILES:
            if all(q in it for it in items):
                agg[q] = (w * np.stack([it[q] for it in items])).sum(axis=0)
        out[key] = agg
    return out


def stats_to_json(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Nested lists of plain Python numbers, key order fixed, so JSON output is deterministic."""
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(stats):
        ordered = [s for s in STAT_KEYS if s in stats[key]]
        ordered += sorted(s for s in stats[key] if s not in STAT_KEYS)
        out[key] = {s: np.asarray(stats[key][s]).tolist() for s in ordered}
    return out


def stats_from_json(data: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in data.items()}


def set_exact_quantiles(entry: dict[str, np.ndarray], values: np.ndarray) -> None:
    """Replace a numeric feature's averaged per-episode quantiles by the exact dataset ones.

    Averaging per-episode quantiles (LeRobot's approximation) is badly wrong when episodes differ,
    as in a multi-task mixture: on MT10 it put the action q01/q99 well inside the data, so 27-79%
    of values would be clipped by quantile normalisation. Numeric columns are small, so the exact
    quantiles cost little; images keep the approximation.
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    exact = np.quantile(values, list(QUANTILES.values()), axis=0)
    for name, row in zip(QUANTILES, exact, strict=True):
        entry[name] = row.reshape(np.shape(entry[name]))


def dataset_stats(ds, keys: list[str], progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of ``keys`` over every episode of a :class:`LeRobotV3Dataset`, as the writer
    computes them: exact for numeric features, subsampled for images and videos (one episode
    decoded at a time)."""
    from tqdm import tqdm

    from .features import NUMERIC_DTYPES

    numeric = [k for k in keys if ds.features[k].dtype in NUMERIC_DTYPES]
    per_episode, columns = [], {k: [] for k in numeric}
    for ep in tqdm(range(ds.num_episodes), desc="stats", unit="ep", disable=not progress):
        frames = ds.load_episode(ep, keys)
        per_episode.append(
            {k: compute_feature_stats(np.asarray(frames[k]), ds.features[k].dtype) for k in keys}
        )
        for k in numeric:
            columns[k].append(np.asarray(frames[k]).reshape(len(frames[k]), -1))
    stats = aggregate_stats(per_episode)
    for k in numeric:
        set_exact_quantiles(stats[k], np.concatenate(columns[k]))
    return stats
