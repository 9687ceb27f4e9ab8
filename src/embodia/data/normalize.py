"""Quantile normalisation: the one mapping between raw feature values and model space.

Training, evaluation and serving must use the *same* statistics and the *same* formula, or a
policy's outputs land in the wrong units on the robot. This module is that single definition:

    y = (x - q01) / (q99 - q01) * 2 - 1,   clipped to [-1, 1]
    x = (y + 1) / 2 * (q99 - q01) + q01     (no clipping)

Quantiles rather than min/max (as in pi0 / WALL-OSS / LeRobot's QUANTILES mode) because one
outlier frame would otherwise squash every ordinary value towards 0. The result is clipped because
the consumers are bounded: the FAST tokenizer's alphabet covers coefficients of chunks in
[-1, 1] and the flow-matching head's targets should not carry the 1% tails at full weight. A
dimension with ``q99 == q01`` (a constant, e.g. an unused gripper) carries no information; it maps
to 0 and back to that constant instead of dividing by zero.

Statistics use LeRobot's ``stats.json`` layout (``{key: {"q01": [...], "q99": [...], ...}}``, see
:mod:`embodia.data.lerobot_v3.stats`). A missing key or statistic is an error, never a silent
pass-through: an un-normalised action fed to a policy looks plausible and is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data.lerobot_v3.stats import stats_from_json, stats_to_json

LOW, HIGH = "q01", "q99"
KIND = "quantile"
# Ranges narrower than this are treated as constant: dividing by them would amplify float noise.
_EPS = 1e-8


class MissingStatsError(KeyError):
    """A feature key or one of its statistics is absent; the message names both and what exists."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and escapes included
        return str(self.args[0]) if self.args else ""


@dataclass
class QuantileNormalizer:
    """Maps each feature to [-1, 1] with its q01/q99; see the module docstring for the formula."""

    stats: dict[str, dict[str, np.ndarray]]
    _bounds: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_stats_json(cls, path_or_dict: Path | str | Mapping[str, Any]) -> QuantileNormalizer:
        """From a LeRobot ``stats.json`` file or its already-parsed content."""
        if isinstance(path_or_dict, Mapping):
            return cls(_parse_stats(path_or_dict, "stats"))
        path = Path(path_or_dict)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: stats file does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        return cls(_parse_stats(data, str(path)))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (lists of floats) so a checkpoint can embed its normaliser."""
        return {"kind": KIND, "stats": stats_to_json(self.stats)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantileNormalizer:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or data.get("kind") != KIND or "stats" not in data:
            raise ValueError(
                f"normaliser dict must be {{'kind': {KIND!r}, 'stats': ...}}, got keys "
                f"{sorted(data) if isinstance(data, Mapping) else type(data).__name__}"
            )
        return cls(_parse_stats(data["stats"], "normaliser 'stats'"))

    def subset(self, keys: Iterable[str]) -> QuantileNormalizer:
        """Only ``keys`` (each must exist): what a checkpoint needs, without e.g. image stats."""
        keys = list(keys)
        for key in keys:
            self._require_key(key)
        return QuantileNormalizer({k: dict(self.stats[k]) for k in keys})

    # ------------------------------------------------------------------ mapping

    def normalize(self, key: str, x: np.ndarray) -> np.ndarray:
        """Raw values ``(..., D)`` -> [-1, 1] (float64); constant dimensions -> 0."""
        low, span, const = self._get_bounds(key)
        x = self._check_shape(key, x, low)
        y = (x - low) / np.where(const, 1.0, span) * 2.0 - 1.0
        return np.where(const, 0.0, np.clip(y, -1.0, 1.0))

    def unnormalize(self, key: str, y: np.ndarray) -> np.ndarray:
        """Model-space values ``(..., D)`` -> raw units (float64); not clipped, so it is exact."""
        low, span, const = self._get_bounds(key)
        y = self._check_shape(key, y, low)
        return np.where(const, low, (y + 1.0) / 2.0 * span + low)

    # ------------------------------------------------------------------ helpers

    def _require_key(self, key: str) -> dict[str, np.ndarray]:
        if key not in self.stats:
            raise MissingStatsError(
                f"no normalisation stats for key {key!r}; keys present: {sorted(self.stats)}"
            )
        return self.stats[key]

    def _get_bounds(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if key in self._bounds:
            return self._bounds[key]
        entry = self._require_key(key)
        for stat in (LOW, HIGH):
            if stat not in entry:
                raise MissingStatsError(
                    f"stats for key {key!r} lack {stat!r} (quantile normalisation needs "
                    f"{LOW} and {HIGH}); stats present: {sorted(entry)}"
                )
        try:
            low = np.asarray(entry[LOW], dtype=np.float64).reshape(-1)
            high = np.asarray(entry[HIGH], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"stats for key {key!r}: {LOW}/{HIGH} are not numeric ({exc})"
            ) from exc
        if low.shape != high.shape:
            raise ValueError(f"stats for key {key!r}: {LOW} {low.shape} and {HIGH} {high.shape}")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(f"stats for key {key!r}: {LOW}/{HIGH} contain NaN or inf")
        if (high < low).any():
            dims = np.flatnonzero(high < low).tolist()
            raise ValueError(f"stats for key {key!r}: {HIGH} < {LOW} in dims {dims}")
        span = high - low
        self._bounds[key] = (low, span, span <= _EPS)
        return self._bounds[key]

    @staticmethod
    def _check_shape(key: str, x: np.ndarray, low: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        # Scalar features have stats of shape (1,) and come back from the reader as 0-d or (T,):
        # let those broadcast. Vectors must end in exactly the stats' dimension.
        if len(low) == 1:
            return x
        if x.ndim == 0 or x.shape[-1] != len(low):
            raise ValueError(
                f"key {key!r}: values of shape {x.shape} do not end in the stats' dimension "
                f"{len(low)}"
            )
        return x


def _parse_stats(data: Any, where: str) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise ValueError(f"{where}: must map feature keys to objects of statistics")
    try:
        return stats_from_json(dict(data))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: statistics are not numeric arrays ({exc})") from exc
