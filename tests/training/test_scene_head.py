"""The scene-state objective (``--scene-key``): its target is the frame's own normalised object
positions, its gradient reaches the vision tower, a run trains it and the policy never needs it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from small_dataset import generate_small

from embodia.configs.model import preset
from embodia.configs.train import DatasetSpec, TrainConfig
from embodia.models.action_space import SAWYER
from embodia.models.attention import ACTION
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample
from embodia.training.data import DataError, EpisodeSource
from embodia.training.report import read_metrics
from embodia.training.trainer import TrainingError, train

ENV = "observation.environment_state"
OBJECTS_AND_GOAL = (4, 5, 6, 11, 12, 13, 36, 37, 38)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_small(tmp_path_factory.mktemp("data") / "ds")


def test_the_target_is_the_frames_own_normalised_scene_elements(dataset, tmp_path):
    spec = DatasetSpec(path=dataset, scene_key=ENV, scene_dims=OBJECTS_AND_GOAL)
    src = EpisodeSource(spec, horizon=8, image_size=64, cache_root=tmp_path, progress=False)
    src.open_frames()
    raw = src.ds.load_episode(src.episodes[1], keys=[ENV])[ENV]
    for i in (0, len(src) - 1):
        ep, t = src.index[i]
        if ep != src.episodes[1]:
            continue
        want = src.normalizer.normalize(ENV, np.asarray(raw[t], np.float32))[list(OBJECTS_AND_GOAL)]
        np.testing.assert_allclose(src.get(i)["scene"], want, atol=1e-6)
    # the objects move between frames of an episode (pick-place carries the puck): not a constant
    ep = src.episodes[1]
    first = src.index.index((ep, 0))
    last = first + int(src.ds.episodes[ep]["length"]) - 1
    assert not np.allclose(src.get(first)["scene"], src.get(last)["scene"])
    assert (
        EpisodeSource(replace(spec, scene_key="", scene_dims=()), 8, 64, tmp_path, False).scene_dims
        is None
    )


def test_bad_scene_settings_name_the_file_and_the_value(dataset, tmp_path):
    with pytest.raises(DataError, match=r"info\.json.*scene_dims \[39\].*has 39 elements"):
        EpisodeSource(DatasetSpec(path=dataset, scene_key=ENV, scene_dims=(3, 39)), 8, 64)
    with pytest.raises(DataError, match=r"no feature 'observation.nope' for the scene"):
        EpisodeSource(DatasetSpec(path=dataset, scene_key="observation.nope"), 8, 64)
    with pytest.raises(DataError, match=r"scene_dims .* without a scene_key"):
        EpisodeSource(DatasetSpec(path=dataset, scene_dims=(1,)), 8, 64)


def _samples(rng, scene: bool) -> list[EmbodiedSample]:
    return [
        EmbodiedSample(
            images=[rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)],
            instruction="open the window",
            state=SAWYER.to_template(rng.normal(size=4)),
            dof_mask=SAWYER.dof_mask,
            actions=SAWYER.to_template(rng.normal(size=(preset("tiny").action.horizon, 4))),
            scene=rng.uniform(-1, 1, 3).astype(np.float32) if scene else None,
        )
        for _ in range(3)
    ]


@pytest.mark.parametrize("readout", ["actions", "propri"])
def test_the_scene_loss_reaches_the_vision_tower_and_only_where_a_target_is(readout):
    torch.manual_seed(0)
    cfg = preset("tiny")
    cfg.scene_dims, cfg.scene_readout = 3, readout
    model = EmbodiedModel(cfg)
    rng = np.random.default_rng(0)
    mixed = _samples(rng, True)[:2] + _samples(rng, False)[:1]
    losses = model.compute_loss(model.collate(mixed))
    model.zero_grad()
    losses["scene"].backward()
    visual = [p for n, p in model.named_parameters() if ".visual." in n]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in visual)
    # the loss is over the two samples with a target only, read where the readout says
    batch = model.collate(mixed)
    hidden = model.hidden_states(batch)
    head = model.aux_heads["scene"]
    if readout == "propri":
        states = hidden[batch["input_ids"] == model.special.propri][:2]
    else:
        states = hidden[:2][batch["kinds"][:2] == ACTION].reshape(2, -1, hidden.shape[-1]).mean(1)
    want = torch.nn.functional.mse_loss(head(states), batch["scene"][:2])
    torch.testing.assert_close(head.compute_loss(model, batch, hidden)["scene"], want)
    assert "scene" not in model.compute_loss(model.collate(_samples(rng, False)))


def test_a_scene_run_learns_its_target_and_serves_without_it(dataset, tmp_path):
    stage = tmp_path / "stage.json"
    stage.write_text(
        '[{"name": "a", "steps": 40, "trainable": ["all"], "loss_weights": {"flow": 1.0, '
        '"scene": 1.0}, "mixture": {"episodes": 1.0}, "action_modes": {"flow": 1.0}, '
        '"lr": 0.001, "warmup": 0.0, "level_drop": {"reasoning": 1.0, "subtask": 1.0}}]'
    )
    common = dict(
        datasets=(dataset,),
        batch_size=8,
        workers=0,
        log_every=1,
        log_with="none",
        progress=False,
        horizon=8,
        checkpoint_every=100,
        frame_cache=tmp_path / "cache",
        curriculum_file=stage,
    )
    # the prefix readout learns fastest, so 40 steps show it (the action readout: see above)
    cfg = TrainConfig(
        output=tmp_path / "run",
        scene_key=ENV,
        scene_dims=OBJECTS_AND_GOAL,
        scene_readout="propri",
        **common,
    )
    last = train(cfg)
    rows = [r for r in read_metrics(cfg.output / "metrics.jsonl") if "scene" in r]
    assert len(rows) == 40
    first, end = np.mean([r["scene"] for r in rows[:3]]), np.mean([r["scene"] for r in rows[-5:]])
    assert end < 0.5 * first, (first, end)
    model = EmbodiedModel.from_pretrained(last)
    assert model.cfg.scene_dims == len(OBJECTS_AND_GOAL) and model.cfg.scene_readout == "propri"
    assert model.aux_heads["scene"].readout == "propri"
    # the policy samples actions from images + proprioception alone
    from embodia.policy import Policy

    policy = Policy.load(cfg.output)
    obs = {
        "images": {c: np.zeros((64, 64, 3), np.uint8) for c in policy.metadata()["cameras"]},
        "state": np.zeros(4, np.float32),
        "prompt": "reach the goal",
    }
    assert policy.infer(obs)["actions"].shape == (8, 4)
    # a stage that weighs the scene term without a scene target is refused before any work
    with pytest.raises(TrainingError, match=r"asks for loss 'scene'.*pass --scene-key"):
        train(TrainConfig(output=tmp_path / "none", **common))
