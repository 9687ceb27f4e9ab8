"""The main job: a recipe end to end -- generate -> (fit FAST) -> train -> evaluate -> report.

``embodia quickstart`` runs the ``quickstart`` recipe; ``embodia recipe --name mt10`` any other.
Every step is the same code as its own command (``data generate``, ``tokenizer fit``, ``train``,
``eval rollout``, ``eval qa``) with the recipe's settings, so the report's figures are exactly what
those commands would give. Layout of ``<output>``::

    data/                 the dataset (reused when it exists with the same settings)
    fast/                 the FAST tokenizer (only when the recipe trains FAST actions)
    run/                  the training run (checkpoints, metrics.jsonl, loss_curves.png)
    eval/rollout, eval/qa results.json + report.md of each evaluation
    report.md             one page: timings, success per task with CIs, QA per category,
                          loss curves, contact sheet, rollout frames
    summary.json          the same figures for programs
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from embodia.configs.recipes import Recipe, recipe
from embodia.utils.fs import atomic_write_text


@dataclass
class RecipeRunConfig:
    """Run a recipe end to end: generate data, train, evaluate closed loop and QA, write a report."""

    name: str = "quickstart"
    """Recipe (``embodia.configs.recipes``): quickstart | mt10 | micro."""
    output: Path | None = None
    """Where everything goes; default outputs/<recipe>."""
    workers: int = 2
    """Processes for data generation, loader workers and evaluation environments."""
    steps: int | None = None
    """Override the recipe's training steps (each stage); None = the recipe's."""
    train_seed: int | None = None
    """Training seed (initialisation, sample order, noise); None = the recipe's. The data and the
    test layouts stay the recipe's, so runs with different training seeds measure the spread."""
    progress: bool = True


def run_recipe(cfg: RecipeRunConfig) -> dict[str, Any]:
    from embodia.configs.data import ShowConfig
    from embodia.configs.eval import QAConfig
    from embodia.configs.train import TrainConfig
    from embodia.data.engine.generate import already_generated, generate
    from embodia.data.show import contact_sheet
    from embodia.evaluation.qa import run_qa
    from embodia.evaluation.rollout import run_rollouts
    from embodia.training.trainer import train

    rec = recipe(cfg.name)
    train_seed = rec.seed if cfg.train_seed is None else cfg.train_seed
    if cfg.steps is not None:
        rec.stages = [replace(s, steps=cfg.steps) for s in rec.stages]
    out = Path(cfg.output or Path("outputs") / rec.name)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    @contextlib.contextmanager
    def step(title: str, key: str):
        """Print the step's banner and record its wall time as ``timings[key]``."""
        print(f"\n== {title} ==", flush=True)
        tic = time.perf_counter()
        yield
        timings[key] = time.perf_counter() - tic

    with step(
        f"1/5 data: {len(rec.tasks)} task set(s), {rec.episodes_per_task} episodes/task", "data_s"
    ):
        gen = recipe_data_config(rec, out / "data", cfg.workers, progress=cfg.progress)
        if already_generated(gen):
            print(f"reusing {gen.output} (generated with the same settings)")
        else:
            generate(gen)
        sheet = contact_sheet(ShowConfig(dataset=gen.output, output=out / "contact_sheet.png"))

    fast_dir = None
    if any(s.action_modes.get("fast", 0) > 0 for s in rec.stages):
        from embodia.configs.tokenizer import FitConfig
        from embodia.models.fast_fit import run_fit

        with step("FAST tokenizer", "fast_s"):
            fast_dir = run_fit(FitConfig(dataset=gen.output, output=out / "fast", progress=False))

    with step(
        f"2/5 train: {rec.preset}, {sum(s.steps for s in rec.stages)} steps x {rec.batch_size}",
        "train_s",
    ):
        run_dir = out / "run"
        if run_dir.exists():  # the recipe's own previous run: a rerun starts fresh
            shutil.rmtree(run_dir)
        stages_file = out / "stages.json"
        atomic_write_text(stages_file, json.dumps([_stage_dict(s) for s in rec.stages], indent=2))
        train(
            TrainConfig(
                datasets=(gen.output,),
                output=run_dir,
                preset=rec.preset,
                curriculum_file=stages_file,
                batch_size=rec.batch_size,
                seed=train_seed,
                workers=cfg.workers,
                fast_tokenizer=fast_dir,
                checkpoint_every=10**9,
                log_with="none",
                progress=cfg.progress,
                **recipe_train_settings(rec),
            )
        )

    # the recipe's closed-loop protocol; only the phrasing, the videos and the output differ
    test_rollout = recipe_rollout_config(rec, run_dir, out / "eval" / "rollout", cfg.workers)
    with step(f"3/5 closed loop: {rec.eval.episodes_per_task} test layouts per task", "rollout_s"):
        rollout_dir = run_rollouts(test_rollout)

    heldout_dir = None
    if rec.eval.held_out_paraphrases:
        with step("3/5 closed loop, the same layouts in held-out paraphrases", "rollout_heldout_s"):
            heldout_dir = run_rollouts(
                replace(
                    test_rollout,
                    instructions="held-out",
                    videos=0,
                    output=out / "eval" / "rollout_heldout",
                )
            )

    with step(f"4/5 embodied QA: {rec.eval.qa_questions} test questions", "qa_s"):
        qa_dir = run_qa(
            QAConfig(
                checkpoint=run_dir,
                dataset=gen.output,
                limit=rec.eval.qa_questions,
                output=out / "eval" / "qa",
            )
        )

    print("\n== 5/5 report ==", flush=True)
    timings["total_s"] = time.perf_counter() - t_all
    summary = _summary(rec, out, rollout_dir, heldout_dir, qa_dir, timings)
    summary["train_seed"] = train_seed
    report = _write_report(rec, out, summary, sheet)
    _print_summary(summary, report)
    return summary


def recipe_train_settings(rec: Recipe) -> dict:
    """The ``TrainConfig`` fields a recipe sets beyond its data, preset, stages and batch."""
    return {"ema": rec.ema, "horizon": rec.horizon, "flow_noise_scale": rec.flow_noise_scale}


def recipe_data_config(
    rec: Recipe,
    output: Path,
    workers: int,
    progress: bool = True,
):
    """``data generate`` with the recipe's settings. A recipe that differs only in episodes per
    task or cameras keeps the same test layouts: they depend only on the seed, the task and the
    episode's index."""
    from embodia.configs.data import GenerateConfig

    return GenerateConfig(
        output=output,
        tasks=rec.tasks,
        episodes_per_task=rec.episodes_per_task,
        cameras=rec.cameras,
        image_size=rec.image_size,
        seed=rec.seed,
        held_out_instructions=rec.held_out_instructions,
        workers=workers,
        progress=progress,
        overwrite=True,
    )


def recipe_rollout_config(rec: Recipe, checkpoint: Path, output: Path, workers: int):
    """``eval rollout`` on the recipe's test layouts with its closed-loop protocol."""
    from embodia.configs.eval import RolloutConfig

    return RolloutConfig(
        checkpoint=checkpoint,
        split="test",
        tasks=rec.tasks,
        episodes_per_task=rec.eval.episodes_per_task,
        execute_steps=rec.eval.execute_steps,
        max_steps=rec.eval.max_steps,
        levels=rec.eval.levels,
        workers=workers,
        videos=rec.eval.videos,
        output=output,
    )


def _stage_dict(stage) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(stage)
    d["trainable"] = list(stage.trainable)
    return d


def _results(path: Path) -> dict[str, Any]:
    return json.loads((path / "results.json").read_text())["results"]


def _rollout_figures(results_dir: Path) -> dict[str, Any]:
    r = _results(results_dir)
    return {
        "overall": r["overall"],
        "per_task": {
            t: {k: v[k] for k in ("successes", "episodes", "rate", "ci95")}
            for t, v in r["per_task"].items()
        },
    }


def _summary(
    rec: Recipe, out: Path, rollout: Path, heldout: Path | None, qa: Path, timings: dict
) -> dict[str, Any]:
    q = _results(qa)
    summary = {
        "recipe": rec.name,
        "description": rec.description,
        "output": str(out),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "rollout": _rollout_figures(rollout),
        "qa": {"overall": q["overall"], "per_category": q.get("per_category", {})},
        "rollout_dir": str(rollout),
        "qa_dir": str(qa),
    }
    if heldout is not None:
        summary["rollout_heldout"] = _rollout_figures(heldout)
        summary["rollout_heldout_dir"] = str(heldout)
    return summary


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rate_line(b: dict[str, Any]) -> str:
    lo, hi = b["ci95"]
    return f"{b['successes']}/{b['episodes']} = {_pct(b['rate'])} (95% CI {_pct(lo)}-{_pct(hi)})"


def _blind_cells(b: dict[str, Any]) -> str:
    """The blind baseline's accuracy and whether the model beats it (see
    :mod:`embodia.evaluation.blind`), as two table cells."""
    if "blind" not in b:
        return "- | -"
    return f"{_pct(b['blind']['rate'])} | {'yes' if b['evidence'] else 'no'}"


def _write_report(rec: Recipe, out: Path, summary: dict[str, Any], sheet: Path) -> Path:
    from embodia.evaluation.video import video_strip

    rollout, qa = Path(summary["rollout_dir"]), Path(summary["qa_dir"])
    t = summary["timings_s"]
    lines = [
        f"# embodia recipe `{rec.name}`",
        "",
        rec.description + ".",
        "",
        f"**Closed-loop success on held-out layouts: {_rate_line(summary['rollout']['overall'])}**"
        f"  ·  embodied QA: {_rate_line(summary['qa']['overall'])}",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k.removesuffix('_s')} | {v:.0f} |" for k, v in t.items()],
        "",
        "## Success per task (test-split layouts, never seen in training)",
        "",
        *_task_table(summary),
        "",
        f"![success per task]({(rollout / 'success_per_task.png').relative_to(out)})",
        "",
    ]
    strips = []
    for video in sorted((rollout / "videos").glob("*.mp4")):
        strips.append(video_strip(video, out / "frames" / f"{video.stem}.png"))
    if strips:
        lines += ["## Rollouts (frames with the instruction and predicted subtask)", ""]
        for s in strips:
            lines += [f"![{s.stem}]({s.relative_to(out)})", ""]
    lines += [
        "## Embodied QA per category",
        "",
        "| category | accuracy | blind baseline | evidence of seeing |",
        "|---|---|---|---|",
    ]
    for cat, b in summary["qa"]["per_category"].items():
        lines.append(f"| {cat} | {_rate_line(b)} | {_blind_cells(b)} |")
    lines += [
        "",
        f"Details: [rollout report]({(rollout / 'report.md').relative_to(out)}), "
        f"[QA report]({(qa / 'report.md').relative_to(out)}).",
        "",
        "## Training",
        "",
        "![loss curves](run/loss_curves.png)",
        "",
        f"Stages: [stages.json](stages.json); preset `{rec.preset}`, batch {rec.batch_size}.",
        "",
        "## Data",
        "",
        f"![contact sheet]({sheet.relative_to(out)})",
        "",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return path


def _task_table(summary: dict[str, Any]) -> list[str]:
    """Success per task; with held-out paraphrases, a second column on the same layouts."""
    seen, held = summary["rollout"], summary.get("rollout_heldout")
    if held is None:
        rows = [f"| {k} | {_rate_line(v)} |" for k, v in seen["per_task"].items()]
        return [
            "| task | success |",
            "|---|---|",
            *rows,
            f"| overall | {_rate_line(seen['overall'])} |",
        ]
    rows = [
        f"| {k} | {_rate_line(v)} | {_rate_line(held['per_task'][k])} |"
        for k, v in seen["per_task"].items()
    ]
    return [
        "| task | instructions seen in training | held-out paraphrases |",
        "|---|---|---|",
        *rows,
        f"| overall | {_rate_line(seen['overall'])} | {_rate_line(held['overall'])} |",
    ]


def _print_summary(summary: dict[str, Any], report: Path) -> None:
    print(f"\nrecipe {summary['recipe']}: {summary['timings_s']['total_s'] / 60:.1f} min in all")
    print("closed-loop success on held-out layouts:")
    for task, b in summary["rollout"]["per_task"].items():
        print(f"  {task:<28} {_rate_line(b)}")
    print(f"  {'overall':<28} {_rate_line(summary['rollout']['overall'])}")
    if "rollout_heldout" in summary:
        print(
            f"  {'held-out paraphrases':<28} {_rate_line(summary['rollout_heldout']['overall'])}"
            "  (the same layouts)"
        )
    print("embodied QA accuracy (blind baseline: the training answers alone, no image):")
    for cat, b in summary["qa"]["per_category"].items():
        blind, evidence = _blind_cells(b).split(" | ")
        print(f"  {cat:<28} {_rate_line(b)}  blind {blind}, beats it: {evidence}")
    print(f"  {'overall':<28} {_rate_line(summary['qa']['overall'])}")
    print(f"report: {report.resolve()}")
