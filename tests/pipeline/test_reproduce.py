"""`embodia reproduce` at test size: every arm, stage and evaluation of the GEM and WALL-OSS
recipes runs, the claims are reported with paired tests, and a run killed between arms resumes
to the same results.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embodia.configs.reproduce import ClaimConfig, ReproduceRecipe, gem_recipe, wall_oss_recipe
from embodia.reproduce.analysis import over_seeds, paired_test, verdict
from embodia.reproduce.runner import ReproduceGemConfig, ReproduceWallOssConfig, run_reproduce


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory) -> Path:
    """The micro recipe's dataset, shared by the runs below (its path enters results.json)."""
    from embodia.data.engine.generate import generate
    from embodia.pipeline import recipe_data_config

    out = tmp_path_factory.mktemp("reproduce") / "data"
    generate(recipe_data_config(gem_recipe("micro"), out, 1, progress=False))
    return out


def _config(output: Path, data: Path, **kw) -> ReproduceGemConfig:
    return ReproduceGemConfig(
        budget="micro", seeds=1, output=output, data=data, workers=0, progress=False, **kw
    )


@pytest.fixture(scope="module")
def uninterrupted(micro_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reproduce") / "run"
    run_reproduce(_config(out, micro_data))
    return out


def test_the_gem_recipe_runs_every_arm_and_reports_every_claim(uninterrupted):
    results = json.loads((uninterrupted / "results.json").read_text())
    recipe = gem_recipe("micro", seeds=1)
    assert list(results["arms"]) == [a.name for a in recipe.arms]
    for name, arm in results["arms"].items():
        assert {"rollout", "qa", "qa:spatial"} <= set(arm["metrics"]), name
        # depth maps are scored only where the head makes them (not RGB, not no head)
        has_depth = recipe.arm(name).depth_objective in ("depth", "regression")
        assert ("depth:abs_rel" in arm["metrics"]) == has_depth, name
        seed0 = arm["per_seed"]["0"]
        # QA and depth score the VLM (after the joint stage), the closed loop the VLA
        assert set(seed0["checkpoints"]) == {s.name for s in recipe.arm(name).stages}
        assert all(len(c["weights_sha256"]) == 64 for c in seed0["checkpoints"].values())
    assert [c["name"] for c in results["claims"]] == [c.name for c in recipe.claims]
    assert all(c["verdict"] for c in results["claims"])
    assert results["commits"] and results["versions"]["torch"]
    report = (uninterrupted / "report.md").read_text()
    for claim in recipe.claims:
        assert f"### {claim.name}" in report
        assert claim.paper in report
    for plot in (uninterrupted / "plots").glob("*.png"):
        assert f"]({plot.relative_to(uninterrupted)})" in report
    assert list((uninterrupted / "plots").glob("*.png"))
    # the arm without an auxiliary objective skips the warm-ups that train only the head
    stages = json.loads((uninterrupted / "arms/no-aux/seed-0/stages.json").read_text())
    assert [s["name"] for s in stages] == ["joint", "action"]
    assert all("depth" not in s["loss_weights"] for s in stages)


def test_a_run_killed_between_arms_resumes_to_the_same_results(micro_data, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable, "-m", "embodia.cli", "reproduce", "gem", "--budget", "micro",
        "--seeds", "1", "--output", str(out), "--data", str(micro_data), "--workers", "0",
        "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "arms" / "gem" / "seed-0" / "arm.json"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up runs: the next arm is left half done
    proc.wait()
    assert first.exists() and not (out / "results.json").exists()
    done_before = first.read_text()
    run_reproduce(_config(out, micro_data))
    assert first.read_text() == done_before  # the finished arm was kept, not redone
    assert (out / "results.json").read_text() == (uninterrupted / "results.json").read_text()


def test_a_run_refuses_to_continue_with_another_recipe(uninterrupted, micro_data):
    with pytest.raises(ValueError, match=r"different recipe.*'seeds'"):
        run_reproduce(ReproduceGemConfig(
            budget="micro", seeds=2, output=uninterrupted, data=micro_data, workers=0,
            progress=False,
        ))  # fmt: skip


def test_the_recipe_file_is_the_run(uninterrupted, micro_data, tmp_path):
    saved = json.loads((uninterrupted / "recipe.json").read_text())
    assert ReproduceRecipe.from_dict(saved).to_dict() == saved
    bad = {**saved, "arms": [{**saved["arms"][0], "stages": [{"name": "x", "stepz": 1}]}]}
    with pytest.raises(ValueError, match="unknown field"):
        ReproduceRecipe.from_dict(bad)
    with pytest.raises(ValueError, match="no arm 'nope'"):
        ReproduceRecipe.from_dict({**saved, "claims": [{**saved["claims"][0], "arm": "nope"}]})
    wrong_data = tmp_path / "empty"
    wrong_data.mkdir()
    with pytest.raises(ValueError, match="not a dataset generated with the recipe's settings"):
        run_reproduce(_config(tmp_path / "other", wrong_data))


def test_a_recipe_file_from_before_a_new_field_still_continues(uninterrupted, micro_data):
    """A field added later at its default is the same recipe: the run continues."""
    path = uninterrupted / "recipe.json"
    saved = path.read_text()
    older = json.loads(saved)
    del older["held_out_instructions"]
    for arm in older["arms"]:
        del arm["eval_levels"]
    path.write_text(json.dumps(older, indent=2) + "\n")
    try:
        results = run_reproduce(_config(uninterrupted, micro_data))
        assert results["recipe"]["name"] == "gem-micro"
    finally:
        path.write_text(saved)


def test_the_wall_oss_recipe_scores_instruction_following(tmp_path):
    """Both arms train on starts that admit two instructions and are scored in seen and
    held-out phrasings; the chain-of-thought arm's subtasks are checked against the expert's."""
    out = tmp_path / "wall-oss"
    results = run_reproduce(
        ReproduceWallOssConfig(budget="micro", seeds=1, output=out, workers=0, progress=False)
    )
    recipe = wall_oss_recipe("micro", seeds=1)
    assert list(results["arms"]) == ["action-only", "wall-oss"]
    tasks = ["drawer-half-open-v3", "drawer-half-close-v3"]
    for name, arm in results["arms"].items():
        assert {"rollout", "rollout@held-out"} <= set(arm["metrics"]), name
        assert {f"rollout:{t}" for t in tasks} <= set(arm["metrics"]), name
        following = arm["instruction_following"]["rollout"]
        assert list(following["confusion"]) == tasks
        assert sum(sum(row.values()) for row in following["confusion"].values()) == 2
        # only the arm that generates its subtask before acting has its subtasks scored
        assert ("subtask_accuracy" in following) == (name == "wall-oss"), name
    stages = json.loads((out / "arms/wall-oss/seed-0/stages.json").read_text())
    assert [s["name"] for s in stages] == ["inspiration", "integration"]
    assert stages[0]["mixture"]["conversations"] > 0 and stages[0]["level_drop"]["subtask"] < 1
    only = json.loads((out / "arms/action-only/seed-0/stages.json").read_text())
    assert only[0]["mixture"] == {"episodes": 1.0} and only[0]["level_drop"]["subtask"] == 1.0
    assert (out / "fast" / "fit_report.json").exists()  # Inspiration trains FAST actions
    # the held-out phrasings are the data engine's held-out paraphrases, on the same layouts
    seen = json.loads((out / "arms/wall-oss/seed-0/eval/rollout/results.json").read_text())
    held = json.loads((out / "arms/wall-oss/seed-0/eval/rollout@held-out/results.json").read_text())
    pairs = zip(seen["results"]["episodes"], held["results"]["episodes"], strict=True)
    for a, b in pairs:
        assert a["seed"] == b["seed"] and a["instruction"] != b["instruction"]
    report = (out / "report.md").read_text()
    assert "## Instruction following" in report and "Subtask accuracy" in report
    for claim in recipe.claims:
        assert f"### {claim.name}" in report


def test_the_gpu_recipe_dry_runs_on_the_meta_device(capsys):
    plan = run_reproduce(ReproduceGemConfig(budget="gpu", dry_run=True))
    assert set(plan["arms"]) == {a.name for a in gem_recipe("gpu").arms}
    assert plan["arms"]["gem"]["parameters"] > 2e9
    # the warm-ups train the depth head only: far fewer parameters than the joint stage
    stages = {s["stage"]: s for s in plan["arms"]["gem"]["stages"]}
    assert stages["connector"]["trainable"] < stages["joint"]["trainable"] / 100
    assert "15 training runs" in capsys.readouterr().out


# ---------------------------------------------------------------------- the statistics


def test_mcnemar_counts_only_the_discordant_pairs():
    a = [{str(i): 1.0 for i in range(10)} | {"x": 0.0}]
    b = [{str(i): float(i >= 8) for i in range(10)} | {"x": 1.0}]
    test = paired_test(a, b, "qa")
    assert (test["only_arm"], test["only_baseline"], test["pairs"]) == (8, 1, 11)
    assert test["p_value"] == pytest.approx(0.0390625)  # two-sided binomial, 9 discordant pairs
    assert paired_test(a, a, "qa")["p_value"] == 1.0


def test_the_interval_over_seeds_is_student_t():
    m = over_seeds([0.5, 0.6, 0.7])
    assert m["mean"] == pytest.approx(0.6)
    assert m["ci95"][1] - m["mean"] == pytest.approx(4.302653 * 0.1 / 3**0.5, rel=1e-5)
    assert over_seeds([0.4])["ci95"] is None


@pytest.mark.parametrize(
    ("difference", "p", "lower_better", "expected"),
    [
        (0.1, 0.01, False, "reproduces"),
        (0.1, 0.2, False, "not significant, same direction as the paper"),
        (-0.1, 0.01, False, "reversed: the baseline is better"),
        (-0.1, 0.01, True, "reproduces"),  # a lower depth error is better
        (0.0, 1.0, False, "no difference"),
    ],
)
def test_verdicts(difference, p, lower_better, expected):
    assert verdict(difference, p, lower_better) == expected


def test_a_claim_on_a_metric_no_evaluation_measures_is_refused():
    recipe = gem_recipe("micro")
    recipe.claims.append(ClaimConfig("x", "y", "rollout", "gem", "no-aux"))
    recipe.evaluations = [e for e in recipe.evaluations if e.kind != "rollout"]
    with pytest.raises(ValueError, match="needs the 'rollout' evaluation"):
        recipe.validate()
