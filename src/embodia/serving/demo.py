"""A random-weights policy for a preset: the whole serving loop without a trained checkpoint.

`embodia serve --preset tiny`, the tests, the load benchmark and the Meta-World example use it.
The normaliser is what a real checkpoint's would be shaped like for Meta-World's Sawyer, with
ranges from Meta-World itself instead of a dataset's quantiles: the end-effector workspace
(``hand_low`` / ``hand_high`` of the Sawyer environments), a gripper opening in [0, 1] and actions
in [-1, 1]. The actions are meaningless (random weights) but correctly shaped and in range.
"""

from __future__ import annotations

from pathlib import Path

from embodia.data.normalize import QuantileNormalizer
from embodia.models.action_space import SAWYER
from embodia.policy import Policy
from embodia.policy_config import PolicyConfig

SAWYER_STATS = {
    "observation.state": {"q01": [-0.525, 0.348, -0.0525, 0.0], "q99": [0.525, 1.025, 0.7, 1.0]},
    "action": {"q01": [-1.0, -1.0, -1.0, -1.0], "q99": [1.0, 1.0, 1.0, 1.0]},
}
DEMO_CAMERAS = ("corner", "gripperPOV")


def demo_config(cameras: tuple[str, ...] = DEMO_CAMERAS) -> PolicyConfig:
    norm = QuantileNormalizer.from_stats_json(SAWYER_STATS)
    return PolicyConfig(SAWYER.name, tuple(cameras), norm.to_dict())


def demo_policy(
    preset: str = "tiny", cameras: tuple[str, ...] = DEMO_CAMERAS, seed: int = 0
) -> Policy:
    import torch

    from embodia.models.embodied import EmbodiedModel

    torch.manual_seed(seed)  # the same random weights every time, so runs are comparable
    return Policy(EmbodiedModel.from_preset(preset).eval(), demo_config(cameras))


def write_demo_checkpoint(
    directory: str | Path, preset: str = "tiny", cameras: tuple[str, ...] = DEMO_CAMERAS
) -> Path:
    """A complete checkpoint directory (model + policy.json) loadable with ``Policy.load``."""
    return demo_policy(preset, cameras).save(directory)
