"""Run a reproduction recipe arm by arm: the same data, seeds and evaluations for every arm.

Layout of ``<output>``::

    recipe.json                 the recipe as run (a rerun must match it, or it refuses)
    data/                       the dataset (or --data: one generated with the same settings)
    codecs/<target>/            the frozen autoencoder of the codec arms (depth, rgb), once
    fast/                       the FAST tokenizer, fitted once where an arm trains on FAST
    arms/<arm>/seed-<s>/        stages.json, run/ (training), eval/<key>/ (results.json ...)
        arm.json                written last: the arm's figures, items and checkpoint hashes;
                                its presence marks the arm done
    results.json                every number of every arm and claim, the protocol, seeds,
                                commits, package versions and checkpoint hashes
    timings.json                wall times (apart, so a resumed run's results.json is identical)
    report.md, plots/           one table per claim, with plots

Resumable: a killed run continues where it stopped. A finished arm (its ``arm.json``) is kept; an
unfinished one is started again from scratch, so what a resumed run reports is what an
uninterrupted one would.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from embodia.configs.reproduce import ArmConfig, Budget, EvaluationConfig, ReproduceRecipe
from embodia.utils.fs import atomic_write_text

#: Objectives whose head generates in a codec's latent space (the codec's training target).
CODEC_OBJECTIVES = ("depth", "rgb")
#: Objectives whose checkpoint produces depth maps (``eval depth``).
DEPTH_OUTPUT = ("depth", "regression")


@dataclass
class ReproduceConfig:
    """Reproduce a paper's claims at small scale: every arm through the same data, steps, seeds
    and evaluations; resumable arm by arm; results.json + report.md with one table per claim."""

    PAPER: ClassVar[str] = ""

    budget: Budget = "cpu"
    """``cpu``: this 2-core machine in at most 3 hours (tiny preset); ``gpu``: one 80 GB GPU
    with the full-size preset (pass --init with a local Qwen-VL checkpoint)."""
    seeds: int = 3
    """Training seeds per arm (0 .. seeds-1)."""
    output: Path | None = None
    """Default ``outputs/reproduce/<paper>-<budget>``; a rerun there continues the run."""
    recipe_file: Path | None = None
    """Run this recipe.json instead of the built-in one (e.g. an edited copy of a run's)."""
    data: Path | None = None
    """Use this dataset (generated with the recipe's data settings) instead of generating one."""
    init: Path | None = None
    """A local Hugging Face Qwen-VL directory every arm starts from (the gpu budget)."""
    workers: int = 2
    """Processes for data generation, loader workers and evaluation environments."""
    dry_run: bool = False
    """Check the recipe and build every arm's model on the meta device (no weights, no data):
    parameter counts, memory estimate, the plan; then stop."""
    progress: bool = True


@dataclass
class ReproduceGemConfig(ReproduceConfig):
    """GEM: depth generation vs no auxiliary objective vs RGB reconstruction vs depth regression,
    and progressive stages vs direct co-training (QA, depth quality, closed loop)."""

    PAPER: ClassVar[str] = "gem"


@dataclass
class ReproduceWallOssConfig(ReproduceConfig):
    """WALL-OSS: action-only training vs the WALL-OSS curriculum (embodied VQA + Uni-CoT
    co-training), scored on following instructions from starts that admit several (closed-loop
    success per instruction, the confusion between them, held-out paraphrases, subtask match)."""

    PAPER: ClassVar[str] = "wall-oss"


def builtin_recipe(paper: str, budget: Budget, seeds: int) -> ReproduceRecipe:
    from embodia.configs import reproduce as rp

    builders = {"gem": rp.gem_recipe, "wall-oss": rp.wall_oss_recipe}
    if paper not in builders:
        raise ValueError(f"no built-in reproduction of {paper!r}; choose from {sorted(builders)}")
    return builders[paper](budget, seeds)


def run_reproduce(cfg: ReproduceConfig) -> dict[str, Any]:
    """Run (or continue) the recipe to the end and write its results and report."""
    from embodia.reproduce.analysis import analyse
    from embodia.reproduce.report import write_report

    recipe = _recipe(cfg)
    out = Path(cfg.output or Path("outputs") / "reproduce" / recipe.name)
    if cfg.dry_run:
        from embodia.reproduce.dry_run import dry_run

        return dry_run(recipe)
    out.mkdir(parents=True, exist_ok=True)
    _pin_recipe(out / "recipe.json", recipe)
    timings = _read_json(out / "timings.json") or {}
    data = _dataset(recipe, out, cfg, timings)
    codecs = _codecs(recipe, out, data, timings, cfg.progress)
    fast = _fast_tokenizer(recipe, out, data, timings)
    _save_timings(out, timings)
    arms: list[dict[str, Any]] = []
    total = len(recipe.seeds) * len(recipe.arms)
    # seed-major: after each seed every arm has been measured once, so a stopped run already
    # holds a complete comparison at fewer seeds
    for seed in recipe.seeds:
        for arm in recipe.arms:
            n = len(arms) + 1
            print(f"\n== arm {n}/{total}: {arm.name}, seed {seed} ==", flush=True)
            arms.append(run_arm(recipe, arm, seed, out, data, codecs, fast, cfg, timings))
            _save_timings(out, timings)
    results = analyse(recipe, arms, out, data)
    report = write_report(recipe, results, out)
    _print_claims(results, report)
    return results


def _recipe(cfg: ReproduceConfig) -> ReproduceRecipe:
    if cfg.recipe_file is not None:
        try:
            data = json.loads(Path(cfg.recipe_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--recipe-file {cfg.recipe_file}: {exc}") from exc
        recipe = ReproduceRecipe.from_dict(data, where=str(cfg.recipe_file))
    else:
        recipe = builtin_recipe(cfg.PAPER, cfg.budget, cfg.seeds)
    if cfg.init is not None:
        recipe.init = str(cfg.init)
    if recipe.budget == "gpu" and recipe.init is None and not cfg.dry_run:
        raise ValueError(
            f"recipe {recipe.name}: the gpu budget starts from a local Qwen-VL checkpoint; "
            "pass --init DIR"
        )
    return recipe


def _pin_recipe(path: Path, recipe: ReproduceRecipe) -> None:
    """The output holds one recipe: continuing a run with another would mix two protocols."""
    text = json.dumps(recipe.to_dict(), indent=2) + "\n"
    if path.exists() and path.read_text() != text:
        # read back through the recipe type: a field added since, at its default, is no change
        old = ReproduceRecipe.from_dict(json.loads(path.read_text()), where=str(path)).to_dict()
        new = recipe.to_dict()
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if not diff:
            return  # the same recipe, written by an older embodia: keep the file as it was
        raise ValueError(
            f"{path.parent} holds a run of a different recipe (field {diff[0]!r} differs); "
            "continue it with --recipe-file pointing at its recipe.json, or choose another "
            "--output"
        )
    atomic_write_text(path, text)


def _dataset(recipe: ReproduceRecipe, out: Path, cfg: ReproduceConfig, timings: dict) -> Path:
    from embodia.data.engine.generate import already_generated, generate
    from embodia.pipeline import recipe_data_config

    if cfg.data is not None:
        gen = recipe_data_config(recipe, Path(cfg.data), max(1, cfg.workers), cfg.progress)
        if not already_generated(gen):
            raise ValueError(
                f"--data {cfg.data}: not a dataset generated with the recipe's settings (tasks "
                f"{recipe.tasks}, episodes {recipe.episodes_per_task}, cameras {recipe.cameras}, "
                f"{recipe.image_size} px, seed {recipe.seed}, {recipe.held_out_instructions} "
                "held-out paraphrase(s); see its engine.json)"
            )
        return Path(cfg.data)
    gen = recipe_data_config(recipe, out / "data", max(1, cfg.workers), cfg.progress)
    if not already_generated(gen):
        from embodia.data.engine.tasks import resolve_tasks

        tasks = resolve_tasks(recipe.tasks)  # set names ("ambiguous") count as their tasks
        print(f"\n== data: {len(tasks)} tasks, {recipe.episodes_per_task} ==", flush=True)
        tic = time.perf_counter()
        generate(gen)
        timings["data_s"] = round(time.perf_counter() - tic, 1)
    return gen.output


def _codecs(
    recipe: ReproduceRecipe, out: Path, data: Path, timings: dict, progress: bool
) -> dict[str, Path]:
    """One frozen autoencoder per codec target the arms need, trained on the recipe's data."""
    from embodia.configs.depth import TrainAutoencoderConfig
    from embodia.models.depth.autoencoder import is_autoencoder_dir
    from embodia.models.depth.train_autoencoder import train_autoencoder

    codecs = {}
    for target in sorted({a.depth_objective for a in recipe.arms} & set(CODEC_OBJECTIVES)):
        path = out / "codecs" / target
        if not is_autoencoder_dir(path):  # written atomically: present means finished
            print(f"\n== codec: an autoencoder of {target} ==", flush=True)
            tic = time.perf_counter()
            train_autoencoder(
                TrainAutoencoderConfig(
                    dataset=data,
                    output=path,
                    target=target,
                    image_size=model_image_size(recipe),
                    steps=recipe.codec.steps,
                    batch_size=recipe.codec.batch_size,
                    seed=recipe.seed,
                    progress=progress,
                )
            )
            timings[f"codec_{target}_s"] = round(time.perf_counter() - tic, 1)
        codecs[target] = path
    return codecs


def _fast_tokenizer(recipe: ReproduceRecipe, out: Path, data: Path, timings: dict) -> Path | None:
    """The FAST tokenizer fitted on the recipe's data, once, where any arm trains on FAST."""
    from embodia.configs.tokenizer import FitConfig
    from embodia.models.fast_fit import REPORT_FILE, run_fit

    if not any(s.action_modes.get("fast", 0) > 0 for a in recipe.arms for s in a.stages):
        return None
    path = out / "fast"
    if not (path / REPORT_FILE).exists():  # written last: present means finished
        print("\n== FAST tokenizer ==", flush=True)
        tic = time.perf_counter()
        run_fit(FitConfig(dataset=data, output=path, progress=False))
        timings["fast_s"] = round(time.perf_counter() - tic, 1)
    return path


def model_image_size(recipe: ReproduceRecipe) -> int:
    """The resolution the model reads (the codec and the depth maps are made at it)."""
    if recipe.init is not None:
        from transformers import AutoConfig

        from embodia.models.checkpoint import config_from_hf

        hf = AutoConfig.from_pretrained(recipe.init, local_files_only=True)
        return config_from_hf(hf).image_size
    from embodia.configs.model import preset

    return preset(recipe.preset).image_size


def arm_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "arms" / arm / f"seed-{seed}"


def run_arm(
    recipe: ReproduceRecipe,
    arm: ArmConfig,
    seed: int,
    out: Path,
    data: Path,
    codecs: dict[str, Path],
    fast: Path | None,
    cfg: ReproduceConfig,
    timings: dict,
) -> dict[str, Any]:
    """Train one arm at one seed and run every evaluation; returns (and writes) its arm.json."""
    from embodia.configs.train import TrainConfig
    from embodia.pipeline import _stage_dict
    from embodia.training.trainer import train

    where = arm_dir(out, arm.name, seed)
    done = where / "arm.json"
    if done.exists():
        print(f"done before: {done}")
        return json.loads(done.read_text())
    if where.exists():  # stopped part-way: start this arm again
        shutil.rmtree(where)
    where.mkdir(parents=True)
    key = f"{arm.name}/seed-{seed}"
    tic = time.perf_counter()
    stages_file = where / "stages.json"
    atomic_write_text(stages_file, json.dumps([_stage_dict(s) for s in arm.stages], indent=2))
    run = where / "run"
    train(
        TrainConfig(
            datasets=(data,),
            output=run,
            preset=recipe.preset,
            init=Path(recipe.init) if recipe.init else None,
            curriculum_file=stages_file,
            batch_size=recipe.batch_size,
            seed=seed,
            workers=cfg.workers,
            depth_objective=arm.depth_objective,
            depth_codec=codecs.get(arm.depth_objective),
            fast_tokenizer=fast,
            checkpoint_every=10**9,
            keep_checkpoints=len(arm.stages),
            log_with="none",
            mixed_precision=recipe.mixed_precision,
            gradient_checkpointing=recipe.gradient_checkpointing,
            progress=cfg.progress,
        )
    )
    timings[f"{key}/train_s"] = round(time.perf_counter() - tic, 1)
    checkpoints = stage_checkpoints(run, arm)
    record: dict[str, Any] = {
        "arm": arm.name,
        "seed": seed,
        "depth_objective": arm.depth_objective,
        "checkpoints": {},
        "evaluations": {},
    }
    from embodia.evaluation.protocol import checkpoint_info, package_versions

    versions = package_versions()
    record["commit"] = versions["embodia_git"]
    # arms trained on different CPU types differ as different seeds do (float kernels)
    record["machine"] = f"{versions['cpu']} ({versions['torch_cpu_capability']})"
    for stage, path in checkpoints.items():
        info = checkpoint_info(path)
        record["checkpoints"][stage] = {
            "step": path.name,
            "weights_sha256": info["weights_sha256"],
        }
    for ev in recipe.evaluations:
        stage = ev.after or arm.stages[-1].name
        if ev.kind == "depth" and arm.depth_objective not in DEPTH_OUTPUT:
            continue  # no depth maps to score (no head, or one that generates RGB)
        tic = time.perf_counter()
        result = _evaluate(recipe, arm, ev, checkpoints[stage], data, where / "eval" / ev.key, cfg)
        timings[f"{key}/{ev.key}_s"] = round(time.perf_counter() - tic, 1)
        record["evaluations"][ev.key] = {"after": stage, **result}
    atomic_write_text(done, json.dumps(record, indent=1) + "\n")
    # the run's optimizer states are not needed once evaluated; the weights stay
    for step in run.glob("checkpoints/*/optimizer*.pt"):
        step.unlink()
    return record


def stage_checkpoints(run: Path, arm: ArmConfig) -> dict[str, Path]:
    """The checkpoint at the end of each stage (the trainer saves one there, named by the
    global step)."""
    out, step = {}, 0
    for stage in arm.stages:
        step += stage.steps
        path = run / "checkpoints" / f"step-{step:07d}"
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: the checkpoint at the end of stage {stage.name!r}")
        out[stage.name] = path
    return out


def _evaluate(
    recipe: ReproduceRecipe,
    arm: ArmConfig,
    ev: EvaluationConfig,
    checkpoint: Path,
    data: Path,
    output: Path,
    cfg,
) -> dict[str, Any]:
    """Run one evaluation and return its figures and per-item outcomes (for paired tests)."""
    kind = ev.kind
    if kind == "qa":
        from embodia.configs.eval import QAConfig
        from embodia.evaluation.qa import run_qa

        d = run_qa(
            QAConfig(
                checkpoint=checkpoint,
                dataset=data,
                limit=recipe.eval.qa_questions,
                output=output,
                device=recipe.device,
            )
        )
        rows = [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines()]
        items = [
            {
                "id": f"{r['image']}|{r['question']}",
                "category": r["category"],
                "correct": r["status"] == "correct",
            }
            for r in rows
        ]
        return {"results": _figures(d), "items": items}
    if kind == "depth":
        from embodia.configs.eval import DepthConfig
        from embodia.evaluation.depth import run_depth

        d = run_depth(
            DepthConfig(
                checkpoint=checkpoint,
                dataset=data,
                limit=recipe.depth_images,
                output=output,
                device=recipe.device,
            )
        )
        res = _figures(d)
        items = [
            {"id": r["image"], "abs_rel": r["abs_rel"], "delta1": r["delta1"]}
            for r in res.pop("per_image")
        ]
        return {"results": res, "items": items}
    if kind == "rollout":
        from embodia.evaluation.rollout import run_rollouts
        from embodia.pipeline import recipe_rollout_config

        rollout = recipe_rollout_config(recipe, checkpoint, output, cfg.workers)
        levels = arm.eval_levels or recipe.eval.levels
        d = run_rollouts(
            replace(rollout, device=recipe.device, levels=levels, instructions=ev.instructions)
        )
        res = _figures(d)
        items = [
            {
                "id": f"{e['task']}/{e['number']}",
                "task": e["task"],
                "success": bool(e["success"]),
                "outcome": e.get("outcome"),
                "subtask_queries": e.get("subtask_queries", 0),
                "subtask_matches": e.get("subtask_matches", 0),
            }
            for e in res.pop("episodes")
        ]
        return {"results": res, "items": items}
    raise ValueError(f"unknown evaluation {kind!r}")


def _figures(results_dir: Path) -> dict[str, Any]:
    """An evaluation's results without its wall times (they go to timings.json)."""
    res = json.loads((results_dir / "results.json").read_text())["results"]
    res.pop("timing", None)
    return res


def _save_timings(out: Path, timings: dict) -> None:
    """Wall times so far, kept across a stop and a resume (they never enter results.json)."""
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=2) + "\n")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _print_claims(results: dict[str, Any], report: Path) -> None:
    print(f"\n{results['recipe']['name']}: {len(results['recipe']['seeds'])} seed(s)")
    for claim in results["claims"]:
        print(f"  {claim['name']}: {claim['verdict']}")
        print(f"    {claim['summary']}")
    print(f"report: {report.resolve()}")
