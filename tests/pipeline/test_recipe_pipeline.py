"""The main job at test size: the micro recipe runs generate -> train -> closed loop -> QA ->
report, and the report shows what a person needs (success per task, QA per category, images)."""

from __future__ import annotations

import json

from embodia.cli import main
from embodia.configs.recipes import RECIPES, recipe


def test_micro_recipe_runs_the_whole_pipeline(tmp_path, capsys):
    out = tmp_path / "micro"
    assert (
        main(["recipe", "--name", "micro", "--output", str(out), "--workers", "1", "--no-progress"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "closed-loop success on held-out layouts" in printed
    assert f"report: {(out / 'report.md').resolve()}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["rollout"]["per_task"]) == {"reach-v3"}
    assert summary["rollout"]["overall"]["episodes"] == 1
    assert summary["qa"]["overall"]["episodes"] == 4
    # the same test layout, phrased with the paraphrase held out of training
    held = json.loads((out / "eval" / "rollout_heldout" / "results.json").read_text())
    assert held["protocol"]["instructions"] == "held-out"
    assert summary["rollout_heldout"]["overall"]["episodes"] == 1
    assert "held-out paraphrases" in printed
    report = (out / "report.md").read_text()
    for image in ("run/loss_curves.png", "contact_sheet.png", "eval/rollout/success_per_task.png"):
        assert f"]({image})" in report and (out / image).is_file(), image
    assert list((out / "frames").glob("*.png"))  # rollout frames, with the instruction drawn
    stages = json.loads((out / "stages.json").read_text())
    assert stages[0]["steps"] == recipe("micro").stages[0].steps
    # a rerun reuses the dataset (same settings) and replaces the run
    assert (
        main(["recipe", "--name", "micro", "--output", str(out), "--workers", "1", "--no-progress"])
        == 0
    )
    assert "reusing" in capsys.readouterr().out


def test_every_recipe_is_complete():
    for name in RECIPES:
        rec = recipe(name)
        assert rec.tasks and rec.stages and rec.episodes_per_task[2] >= 1, name
        assert rec.eval.episodes_per_task <= rec.episodes_per_task[2], name
