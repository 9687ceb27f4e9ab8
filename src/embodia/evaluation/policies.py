"""Chunk policies the rollout loop drives: the trained model and two reference policies.

All three answer the same call, ``predict(requests) -> [Prediction]`` with one (H, dof) chunk in
robot units per request, and all go through the same :class:`~embodia.evaluation.chunking.
ChunkExecutor`, so the scripted expert (near 100%) and the random policy (near 0%) validate the
very code path the model's number comes from.

The model runs through :class:`embodia.policy.Policy`, the transform shared with serving: the
checkpoint's cameras in training order, q01/q99 state and action normalisation from the saved
statistics, the embodiment's template layout. Nothing here re-implements any of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

#: The dataset feature holding Meta-World's 39-D observation (the evaluation env's ``env_state``).
ENV_STATE_KEY = "observation.environment_state"


@dataclass
class Prediction:
    actions: np.ndarray  # (H, dof) robot units
    subtask: str = ""  # predicted subtask (Uni-CoT) or the expert's phase; drawn on videos
    text: str = ""
    scored_subtask: str | None = None
    """The subtask the policy committed to when it was asked for one ('' = asked, none came:
    a miss); None = the policy does not predict subtasks (nothing to score)."""


@dataclass
class Request:
    slot: int
    step: int
    episode: dict[str, Any]
    obs: dict[str, Any]  # {"images", "state", "env_state"?}


class ChunkPolicy(Protocol):
    name: str
    needs_images: bool

    def begin_episode(self, slot: int, episode: dict[str, Any]) -> None: ...

    def predict(self, requests: list[Request]) -> list[Prediction]: ...

    def describe(self) -> dict[str, Any]: ...


class ModelChunkPolicy:
    """A checkpoint through :class:`embodia.policy.Policy` (one ``infer`` per request)."""

    name = "model"
    needs_images = True

    def __init__(self, policy: Any, mode: str | None, levels: tuple[str, ...]) -> None:
        self.policy = policy
        self.mode = mode or policy.config.mode
        self.levels = tuple(levels)
        self._episode_seed: dict[int, int] = {}  # slot -> its episode's layout seed
        self._chunks: dict[int, int] = {}  # slot -> chunks requested this episode

    def begin_episode(self, slot: int, episode: dict[str, Any]) -> None:
        self._episode_seed[slot] = int(episode["seed"])
        self._chunks[slot] = 0

    def _noise_seed(self, slot: int) -> int:
        """Chunk k of an episode draws its flow noise from (layout seed, k): the same checkpoint
        on the same layouts gives the same result, whatever the workers or batching."""
        k = self._chunks[slot]
        self._chunks[slot] = k + 1
        entropy = np.random.SeedSequence([self._episode_seed[slot], k]).generate_state(1)
        return int(entropy[0])

    def predict(self, requests: list[Request]) -> list[Prediction]:
        # The checkpoint's state feature: the robot's proprioception, or (the privileged-state
        # control) the simulator's whole observation.
        key = "env_state" if self.policy.config.state_key == ENV_STATE_KEY else "state"
        obs = [
            {
                "images": r.obs["images"],
                "state": r.obs[key],
                "prompt": r.episode["instruction"],
                "mode": self.mode,
                "levels": list(self.levels),
                "seed": self._noise_seed(r.slot),
            }
            for r in requests
        ]
        # One batched model call for all slots when the Policy offers it (measured on the tiny
        # preset: 2 observations in one call cost 1.15x one, not 2x); else one infer each.
        batch = getattr(self.policy, "infer_batch", None)
        replies = batch(obs) if callable(batch) else [self.policy.infer(o) for o in obs]
        asked = "subtask" in self.levels
        out = []
        for res in replies:
            out.append(
                Prediction(
                    np.asarray(res["actions"], dtype=np.float64),
                    # the subtask line, else whatever chain of thought came (shown on videos)
                    res.get("subtask", "") or res.get("text", "") or "",
                    res.get("text", "") or "",
                    scored_subtask=(res.get("subtask") or "") if asked else None,
                )
            )
        return out

    def describe(self) -> dict[str, Any]:
        cfg = self.policy.config
        return {
            "kind": "model",
            "mode": self.mode,
            "levels": list(self.levels),
            "horizon": self.policy.horizon,
            "flow_steps": cfg.flow_steps,
            "flow_noise_scale": cfg.flow_noise_scale,
            "embodiment": cfg.embodiment,
            "cameras": list(cfg.cameras),
            "state_key": cfg.state_key,
            "action_key": cfg.action_key,
        }


class ExpertChunkPolicy:
    """Meta-World's scripted expert (the data engine's), one action per chunk: it is closed-loop
    by design and reads the simulator state (``env_state``), which the model never sees."""

    name = "expert"
    needs_images = False

    def __init__(self) -> None:
        self._experts: dict[tuple[int, str], Any] = {}  # (slot, task): experts keep state
        self._slot_task: dict[int, str] = {}

    def begin_episode(self, slot: int, episode: dict[str, Any]) -> None:
        from embodia.data.engine.phases import ExpertWithPhases

        key = (slot, episode["task"])
        if key not in self._experts:
            self._experts[key] = ExpertWithPhases(episode["task"])
        self._experts[key].reset()
        self._slot_task[slot] = episode["task"]

    def predict(self, requests: list[Request]) -> list[Prediction]:
        from embodia.data.engine.tasks import TASKS

        out = []
        for r in requests:
            if "env_state" not in r.obs:
                raise ValueError("the expert policy needs the simulator state (Meta-World only)")
            expert = self._experts[(r.slot, self._slot_task[r.slot])]
            action, phase = expert.act(r.obs["env_state"])
            subtask = TASKS[r.episode["task"]].phases[phase]
            actions = np.clip(action, -1, 1)[None, :].astype(np.float64)
            out.append(Prediction(actions, subtask, scored_subtask=subtask))
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "expert", "horizon": 1, "source": "metaworld.policies via ExpertWithPhases"}


class RandomChunkPolicy:
    """Uniform actions in [-1, 1]^dof, a chunk of ``horizon`` at a time; seeded per episode from
    its layout seed so a random baseline is reproducible too."""

    name = "random"
    needs_images = False

    def __init__(self, horizon: int, dof: int, seed: int = 0) -> None:
        self.horizon, self.dof, self.seed = horizon, dof, seed
        self._rngs: dict[int, np.random.Generator] = {}

    def begin_episode(self, slot: int, episode: dict[str, Any]) -> None:
        self._rngs[slot] = np.random.default_rng([self.seed, int(episode["seed"])])

    def predict(self, requests: list[Request]) -> list[Prediction]:
        return [
            Prediction(self._rngs[r.slot].uniform(-1.0, 1.0, size=(self.horizon, self.dof)))
            for r in requests
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "random", "horizon": self.horizon, "dof": self.dof, "low": -1, "high": 1}


# ---------------------------------------------------------------------- checkpoints


def training_data_config(checkpoint: Path) -> dict[str, Any]:
    """The data-engine config of the checkpoint's first training dataset (seed, image size,
    cameras, held-out paraphrases), read from ``trainer_state.json`` -> dataset -> ``engine.json``;
    {} if unknown.

    The run records the dataset path as it was given, often relative to where training ran
    (``outputs/quickstart/data``); evaluated from another directory, it is looked up again under
    each directory above the checkpoint, so the evaluation renders and phrases as training did.
    """
    state = Path(checkpoint) / "trainer_state.json"
    try:
        recorded = Path(json.loads(state.read_text())["run_config"]["datasets"][0])
    except (OSError, KeyError, IndexError, TypeError, json.JSONDecodeError):
        return {}
    bases = [] if recorded.is_absolute() else list(Path(checkpoint).resolve().parents)
    for dataset in [recorded, *(base / recorded for base in bases)]:
        try:
            cfg = json.loads((dataset / "engine.json").read_text())["config"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            continue
        return {"dataset": str(dataset), **cfg}
    return {}


def load_policy(checkpoint: Path, device: str = "cpu"):
    from embodia.policy import Policy

    return Policy.load(checkpoint, device=device)
