"""LeRobot v3 datasets: our own reader and writer for the exact on-disk layout LeRobot reads.

LeRobot itself cannot be installed beside our torch, so embodia implements the format: see
``writer.py`` for the layout, ``reader.py`` for how it is read back, ``stats.py`` for the
statistics and ``video.py`` for how pixels are stored.
"""

from .features import DatasetFormatError, Feature
from .reader import LeRobotV3Dataset
from .stats import aggregate_stats, compute_feature_stats
from .writer import consolidate, stage_episode, staged_episode_keys

__all__ = [
    "DatasetFormatError",
    "Feature",
    "LeRobotV3Dataset",
    "aggregate_stats",
    "compute_feature_stats",
    "consolidate",
    "stage_episode",
    "staged_episode_keys",
]
