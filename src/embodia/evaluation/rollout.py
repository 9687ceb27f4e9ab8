"""Closed-loop rollouts: N episodes per task, each from its own initial state, in parallel slots.

The loop keeps every slot busy with one episode. Each iteration: slots whose chunk is used up send
their observation to the policy (answered together), every slot executes its next action, then all
slots step at the same time (worker processes) and report back. Images are rendered only when the
policy will read them (a new chunk is due) or the episode is being filmed, which is most of the
saving of a reference-policy run and of a large ``execute_steps``.

An episode ends at the first success, when a rival task's goal holds (from a shared start: the
robot did the other thing), at the benchmark's truncation, or at ``max_steps``; its length is the
number of actions executed. Its ``outcome`` names the task whose goal it reached, if any; where the
environment labels the expert's subtask for each state, every predicted subtask is scored
against it (``subtask_matches`` of ``subtask_queries``). Two episodes of one task with the same initial state
abort the evaluation: N copies of one layout are not N samples (a pitfall users report).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodia.configs.eval import RolloutConfig
from embodia.evaluation.chunking import ChunkExecutor
from embodia.evaluation.policies import ChunkPolicy, Request
from embodia.evaluation.stats import rate_summary
from embodia.evaluation.workers import open_slots
from embodia.utils.cluster import Backend


class DuplicateInitialState(RuntimeError):
    """Two episodes of one task started from the same initial state."""


@dataclass
class EpisodeResult:
    task: str
    number: int
    seed: int
    instruction: str
    success: bool
    length: int
    queries: int
    subtasks: list[str] = field(default_factory=list)  # distinct predicted subtasks, in order
    video: str | None = None
    layout: list[float] = field(default_factory=list)  # the initial state's object/goal vector
    outcome: str | None = None  # the task whose goal the episode reached (None: no goal held)
    subtask_queries: int = 0  # policy answers that named a subtask, where a reference exists
    subtask_matches: int = 0  # ... that named the expert's subtask for the state


@dataclass
class RolloutSettings:
    benchmark: str
    cameras: tuple[str, ...]
    image_size: int
    max_steps: int
    execute_steps: int | None = None
    ensemble: float | None = None
    workers: int = 2
    backend: Backend = "local"
    address: str | None = None
    action_dim: int = 4
    fps: int = 20


@dataclass
class _Active:
    episode: dict[str, Any]
    executor: ChunkExecutor
    obs: dict[str, Any]
    t: int = 0
    subtask: str = ""
    subtasks: list[str] = field(default_factory=list)
    frames: list[np.ndarray] | None = None
    success: bool = False
    outcome: str | None = None
    layout: list[float] = field(default_factory=list)
    subtask_queries: int = 0
    subtask_matches: int = 0


def rollout_episodes(
    policy: ChunkPolicy,
    episodes: list[dict[str, Any]],
    settings: RolloutSettings,
    film: set[int] | None = None,
    video_dir: Path | None = None,
    progress: bool = False,
) -> tuple[list[EpisodeResult], dict[str, float]]:
    """Run every episode; returns per-episode results (in ``episodes`` order) and timings.

    ``film`` holds indices into ``episodes`` to write as MP4 under ``video_dir``.
    """
    from embodia.evaluation.video import compose_frame, write_video

    film = film or set()
    n_slots = max(1, min(settings.workers, len(episodes)))
    t0 = time.perf_counter()
    slots = open_slots(
        settings.benchmark,
        settings.cameras,
        settings.image_size,
        n_slots,
        settings.workers,
        settings.backend,
        settings.address,
    )
    # episodes grouped by task, handed out task by task so a worker rarely rebuilds a scene
    queues: OrderedDict[str, deque[int]] = OrderedDict()
    for i, ep in enumerate(episodes):
        queues.setdefault(ep["task"], deque()).append(i)
    slot_task: dict[int, str] = {}
    active: dict[int, tuple[int, _Active]] = {}
    results: dict[int, EpisodeResult] = {}
    layouts: dict[str, dict[bytes, int]] = {}
    timing = {"policy_s": 0.0, "env_s": 0.0, "steps": 0, "queries": 0, "policy_calls": 0}
    bar = _progress(len(episodes)) if progress else None

    def next_episode(s: int) -> int | None:
        task = slot_task.get(s)
        if queues.get(task):
            return queues[task].popleft()
        busy = {slot_task.get(o) for o in active}
        for name in sorted(queues, key=lambda k: (k in busy, list(queues).index(k))):
            if queues[name]:
                slot_task[s] = name
                return queues[name].popleft()
        return None

    try:
        while True:
            # 1. start episodes on free slots
            starting = []
            for s in range(n_slots):
                if s in active:
                    continue
                i = next_episode(s)
                if i is None:
                    continue
                ep = episodes[i]
                policy.begin_episode(s, ep)
                render = policy.needs_images or i in film
                slots[s].send("reset", (ep, render))
                starting.append((s, i))
            tic = time.perf_counter()
            for s, i in starting:
                obs = slots[s].recv()
                layout = obs.pop("layout")
                _check_new_layout(layouts, episodes[i], layout, i, episodes)
                run = _Active(
                    episodes[i], ChunkExecutor(settings.execute_steps, settings.ensemble), obs
                )
                run.layout = [float(v) for v in np.asarray(layout, dtype=np.float64).ravel()]
                if i in film:
                    run.frames = [
                        compose_frame(obs["images"], episodes[i]["instruction"], "", 0, False)
                    ]
                active[s] = (i, run)
            timing["env_s"] += time.perf_counter() - tic
            if not active:
                break
            # 2. new chunks where due, answered together
            due = [s for s, (_, run) in active.items() if run.executor.needs_query()]
            if due:
                tic = time.perf_counter()
                reqs = [
                    Request(s, active[s][1].t, active[s][1].episode, active[s][1].obs) for s in due
                ]
                preds = policy.predict(reqs)
                timing["policy_s"] += time.perf_counter() - tic
                timing["queries"] += len(due)
                timing["policy_calls"] += 1  # the due slots' requests, answered in one batch
                for s, pred in zip(due, preds, strict=True):
                    run = active[s][1]
                    chunk = np.asarray(pred.actions, dtype=np.float64)
                    if chunk.ndim != 2 or chunk.shape[1] != settings.action_dim:
                        raise ValueError(
                            f"policy returned actions of shape {chunk.shape}; "
                            f"{settings.benchmark} takes (H, {settings.action_dim})"
                        )
                    run.executor.add(run.t, chunk)
                    reference = run.obs.get("subtask")
                    if pred.scored_subtask is not None and reference:
                        run.subtask_queries += 1
                        run.subtask_matches += _same_subtask(pred.scored_subtask, reference)
                    if pred.subtask:
                        run.subtask = pred.subtask
                        if not run.subtasks or run.subtasks[-1] != pred.subtask:
                            run.subtasks.append(pred.subtask)
            # 3. every active slot executes its next action, all slots step at once
            tic = time.perf_counter()
            for s, (_, run) in active.items():
                action = run.executor.action(run.t)
                render = run.frames is not None or (
                    policy.needs_images and run.executor.needs_query()
                )
                slots[s].send("step", (action, render))
            finished = []
            for s, (_, run) in active.items():
                out = slots[s].recv()
                run.t += 1
                run.success = run.success or out["success"]
                run.outcome = run.outcome or out.get("outcome")
                run.obs = out
                if run.frames is not None:
                    run.frames.append(
                        compose_frame(
                            out["images"],
                            run.episode["instruction"],
                            run.subtask,
                            run.t,
                            run.success,
                        )
                    )
                if (
                    run.success
                    or run.outcome is not None
                    or out["truncated"]
                    or run.t >= run.episode.get("max_steps", settings.max_steps)
                ):
                    finished.append(s)
            timing["env_s"] += time.perf_counter() - tic
            timing["steps"] += len(active)
            # 4. close finished episodes
            for s in finished:
                i, run = active.pop(s)
                ep = run.episode
                video = None
                if run.frames is not None and video_dir is not None:
                    name = f"{ep['task'].replace('/', '_')}-{ep['number']:03d}.mp4"
                    video = str(write_video(video_dir / name, run.frames, settings.fps))
                results[i] = EpisodeResult(
                    ep["task"],
                    int(ep["number"]),
                    int(ep["seed"]),
                    ep["instruction"],
                    bool(run.success),
                    run.t,
                    run.executor.queries,
                    run.subtasks,
                    video,
                    run.layout,
                    run.outcome,
                    run.subtask_queries,
                    run.subtask_matches,
                )
                if bar is not None:
                    bar.update(1)
    finally:
        for slot in slots:
            slot.close()
        if bar is not None:
            bar.close()
    timing["wall_s"] = time.perf_counter() - t0
    timing["steps_per_s"] = timing["steps"] / timing["wall_s"] if timing["wall_s"] else 0.0
    return [results[i] for i in range(len(episodes))], timing


def _same_subtask(predicted: str, reference: str) -> bool:
    """Equal up to case, surrounding space and final punctuation ("Open the drawer." = "open
    the drawer"): the planning answers capitalise what the chain of thought writes plainly."""

    def norm(text: str) -> str:
        return " ".join(text.casefold().strip().rstrip(".!").split())

    return norm(predicted) == norm(reference)


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="episodes", unit="ep")


def _check_new_layout(
    seen: dict[str, dict[bytes, int]], ep: dict, layout: Any, i: int, episodes: list[dict]
) -> None:
    key = np.round(np.asarray(layout, dtype=np.float64), 9).tobytes()
    other = seen.setdefault(ep["task"], {}).setdefault(key, i)
    if other != i:
        raise DuplicateInitialState(
            f"{ep['task']}: episodes {episodes[other]['number']} and {ep['number']} start from the "
            f"same initial state (seeds {episodes[other]['seed']}, {ep['seed']}); N copies of one "
            "layout are not N samples"
        )


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """Per-task and overall success with Wilson 95% intervals, lengths and seeds."""
    per_task: dict[str, Any] = {}
    for task in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == task]
        lengths = [r.length for r in rs]
        succ_len = [r.length for r in rs if r.success]
        per_task[task] = {
            **rate_summary(sum(r.success for r in rs), len(rs)),
            "mean_length": float(np.mean(lengths)),
            "mean_success_length": float(np.mean(succ_len)) if succ_len else None,
            "lengths": lengths,
            "seeds": [r.seed for r in rs],
            # what the episodes did: the goal each reached ("none": no goal held at the end)
            "outcomes": dict(Counter(r.outcome or "none" for r in rs)),
            **_subtask_summary(rs),
        }
    rates = [v["rate"] for v in per_task.values()]
    overall = {
        **rate_summary(sum(r.success for r in results), len(results)),
        "mean_task_rate": float(np.mean(rates)) if rates else float("nan"),
        "mean_length": float(np.mean([r.length for r in results])) if results else float("nan"),
        **_subtask_summary(results),
    }
    return {
        "overall": overall,
        "per_task": per_task,
        "episodes": [asdict(r) for r in results],
    }


def _subtask_summary(results: list[EpisodeResult]) -> dict[str, Any]:
    """Subtask accuracy over every scored policy answer (absent where none was scored)."""
    queries = sum(r.subtask_queries for r in results)
    if not queries:
        return {}
    matches = sum(r.subtask_matches for r in results)
    return {"subtask_accuracy": rate_summary(matches, queries)}


def run_rollouts(cfg: RolloutConfig) -> Path:
    """``embodia eval rollout``: resolve the protocol, run, write results.json + report.md."""
    from embodia.evaluation.protocol import checkpoint_info, config_dict, write_results
    from embodia.evaluation.report import rollout_report
    from embodia.evaluation.setup import build_rollout

    setup = build_rollout(cfg)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    results, timing = rollout_episodes(
        setup.policy,
        setup.episodes,
        setup.settings,
        film=setup.film,
        video_dir=out / "videos",
        progress=True,
    )
    summary = summarize(results)
    summary["timing"] = timing
    protocol = {
        "config": config_dict(cfg),
        "checkpoint": checkpoint_info(setup.checkpoint),
        "policy": setup.policy.describe(),
        **setup.protocol,
    }
    write_results(out, "rollout", protocol, summary)
    rollout_report(out, protocol, summary)
    ov = summary["overall"]
    print(
        f"success {ov['successes']}/{ov['episodes']} = {ov['rate']:.1%} "
        f"(95% CI {ov['ci95'][0]:.1%}-{ov['ci95'][1]:.1%}); {timing['wall_s']:.1f} s; "
        f"wrote {out / 'results.json'} and {out / 'report.md'}"
    )
    return out
