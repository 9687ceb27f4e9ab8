"""An evaluation finds the checkpoint's training data (seed, image size, held-out paraphrases)
also when the run recorded the dataset relative to another working directory."""

from __future__ import annotations

import json
from pathlib import Path

from embodia.evaluation.policies import training_data_config


def _run(root: Path, recorded: str) -> Path:
    (root / "outputs/q/data").mkdir(parents=True)
    engine = {"config": {"seed": 7, "image_size": 96, "held_out_instructions": 1}}
    (root / "outputs/q/data/engine.json").write_text(json.dumps(engine))
    step = root / "outputs/q/run/checkpoints/step-0000010"
    step.mkdir(parents=True)
    state = {"run_config": {"datasets": [recorded]}}
    (step / "trainer_state.json").write_text(json.dumps(state))
    return step


def test_a_relative_dataset_is_found_from_another_directory(tmp_path, monkeypatch):
    step = _run(tmp_path / "project", "outputs/q/data")
    monkeypatch.chdir(tmp_path)  # not the directory training ran in
    cfg = training_data_config(step)
    assert (cfg["seed"], cfg["image_size"], cfg["held_out_instructions"]) == (7, 96, 1)
    assert cfg["dataset"] == str(tmp_path / "project/outputs/q/data")


def test_an_unknown_dataset_gives_nothing(tmp_path, monkeypatch):
    step = _run(tmp_path / "project", "elsewhere/data")
    monkeypatch.chdir(tmp_path)
    assert training_data_config(step) == {}
