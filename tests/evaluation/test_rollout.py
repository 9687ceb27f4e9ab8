"""The rollout harness on Meta-World, validated by the reference policies.

The scripted expert must score near 100% and a random policy near 0% through the same loop,
chunk executor and environment workers the model uses; episodes never share an initial state.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from embodia.cli import main
from embodia.configs.eval import RolloutConfig
from embodia.evaluation.metaworld_env import metaworld_episodes
from embodia.evaluation.rollout import DuplicateInitialState, rollout_episodes, summarize
from embodia.evaluation.setup import build_rollout

pytestmark = pytest.mark.slow
TASKS = ("reach", "button-press-topdown", "drawer-open")


def _run(policy: str, workers: int = 0, **kw):
    cfg = RolloutConfig(
        policy=policy, tasks=TASKS, episodes_per_task=2, workers=workers, videos=0, **kw
    )
    s = build_rollout(cfg)
    results, timing = rollout_episodes(s.policy, s.episodes, s.settings)
    return summarize(results), timing


def test_expert_near_100_percent_in_worker_processes():
    summary, timing = _run("expert", workers=2)
    assert summary["overall"]["rate"] >= 5 / 6, summary["per_task"]
    assert timing["queries"] == timing["steps"]  # horizon 1: one query per step


def test_random_near_0_percent():
    summary, timing = _run("random", max_steps=150, random_horizon=8, execute_steps=4)
    assert summary["overall"]["rate"] <= 1 / 6, summary["per_task"]
    assert all(e["length"] == 150 for e in summary["episodes"] if not e["success"])
    assert timing["queries"] == pytest.approx(timing["steps"] / 4, rel=0.05)


def test_episodes_never_share_an_initial_state():
    eps = metaworld_episodes(("reach", "push"), "test", 5, seed=0)
    seeds = [(e["task"], e["seed"]) for e in eps]
    assert len(set(seeds)) == len(seeds) == 10
    # and the layouts the environments actually reset to differ too
    s = build_rollout(
        RolloutConfig(
            policy="random", tasks=("reach",), episodes_per_task=4, workers=0, videos=0, max_steps=1
        )
    )
    results, _ = rollout_episodes(s.policy, s.episodes, s.settings)
    layouts = {tuple(np.round(r.layout, 9)) for r in results}
    assert len(layouts) == 4
    # held out: the test split's seeds are not the train split's
    train = {e["seed"] for e in metaworld_episodes(("reach",), "train", 50, seed=0)}
    assert not train & {e["seed"] for e in eps}


def test_held_out_instructions_phrase_the_same_layouts_differently():
    from embodia.data.engine.tasks import instructions

    seen = metaworld_episodes(("reach", "push"), "test", 6, seed=0, held_out=1)
    held = metaworld_episodes(("reach", "push"), "test", 6, seed=0, held_out=1, which="held-out")
    assert [e["seed"] for e in seen] == [e["seed"] for e in held]
    for a, b in zip(seen, held, strict=True):
        assert a["instruction"] in instructions(a["task"], 1, "seen")
        assert b["instruction"] in instructions(b["task"], 1, "held-out")
    with pytest.raises(ValueError, match="held out no paraphrase"):
        metaworld_episodes(("reach",), "test", 1, seed=0, held_out=0, which="held-out")
    # the protocol (and so the report) says which phrasings were scored
    setup = build_rollout(
        RolloutConfig(policy="random", tasks=("reach",), episodes_per_task=1, workers=0, videos=0)
    )
    assert setup.protocol["instructions"] == "seen"


def test_a_repeated_initial_state_is_refused():
    s = build_rollout(
        RolloutConfig(
            policy="random", tasks=("reach",), episodes_per_task=2, workers=0, videos=0, max_steps=1
        )
    )
    s.episodes[1]["seed"] = s.episodes[0]["seed"]
    with pytest.raises(DuplicateInitialState):
        rollout_episodes(s.policy, s.episodes, s.settings)


def test_cli_writes_results_report_and_video(tmp_path):
    out = tmp_path / "expert"
    rc = main(
        [
            "eval",
            "rollout",
            "--policy",
            "expert",
            "--tasks",
            "reach",
            "--episodes-per-task",
            "2",
            "--workers",
            "0",
            "--videos",
            "1",
            "--image-size",
            "64",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    proto = doc["protocol"]
    for key in (
        "tasks",
        "split",
        "episodes_per_task",
        "root_seed",
        "executed_steps_per_chunk",
        "temporal_ensembling",
        "cameras",
        "image_size",
        "max_steps",
    ):
        assert key in proto, key
    assert proto["split"] == "test" and proto["cameras"] == ["corner", "gripperPOV"]
    assert doc["versions"]["mujoco"] and doc["versions"]["metaworld"]
    res = doc["results"]
    assert res["per_task"]["reach-v3"]["successes"] == 2
    assert len(res["per_task"]["reach-v3"]["seeds"]) == 2
    lo, hi = res["overall"]["ci95"]
    assert 0 < lo < 1 and hi == 1
    assert (out / "success_per_task.png").stat().st_size > 1000
    assert "reach-v3" in (out / "report.md").read_text()
    video = [e["video"] for e in res["episodes"] if e["video"]]
    assert len(video) == 1
    with av.open(video[0]) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert n == res["episodes"][0]["length"] + 1  # the first observation plus one per step


def test_model_policy_end_to_end(tiny_checkpoint, tmp_path):
    """A (random-weights) checkpoint through Policy: cameras, normalisation, chunks, subtasks."""
    out = tmp_path / "model"
    rc = main(
        [
            "eval",
            "rollout",
            "--checkpoint",
            str(tiny_checkpoint),
            "--tasks",
            "reach",
            "--episodes-per-task",
            "1",
            "--max-steps",
            "4",
            "--execute-steps",
            "2",
            "--workers",
            "0",
            "--videos",
            "1",
            "--image-size",
            "64",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    ep = doc["results"]["episodes"][0]
    assert ep["length"] == 4 and ep["queries"] == 2
    assert doc["protocol"]["checkpoint"]["weights_sha256"]
    assert doc["protocol"]["policy"]["kind"] == "model"
    assert doc["protocol"]["executed_steps_per_chunk"] == 2


def test_bad_settings_fail_clearly(tiny_checkpoint):
    with pytest.raises(ValueError, match="needs --checkpoint"):
        build_rollout(RolloutConfig(policy="model"))
    with pytest.raises(ValueError, match="cameras"):
        build_rollout(RolloutConfig(checkpoint=tiny_checkpoint, cameras=("topview",)))
    with pytest.raises(ValueError, match="actions"):
        build_rollout(RolloutConfig(policy="random", levels=("subtask",)))


def test_a_dead_environment_worker_is_an_error_not_a_hang():
    import os
    import signal

    from embodia.evaluation.workers import EnvWorkerError, Slot

    slot = Slot("metaworld", ("corner",), 64, process=True)
    try:
        os.kill(slot._proc.pid, signal.SIGKILL)
        slot.send("info", "reach-v3")
        with pytest.raises(EnvWorkerError, match="killed by signal 9"):
            slot.recv()
    finally:
        slot.close()


def test_a_script_without_a_main_guard_is_told_how_to_fix_it(tmp_path):
    """Workers are spawned and import the main script again; one that starts rollouts at module
    level makes every worker fail on start-up: the error says so instead of blaming MuJoCo."""
    import subprocess
    import sys

    script = tmp_path / "my_eval.py"
    script.write_text(
        "from embodia.evaluation.workers import Slot\n"
        "slot = Slot('metaworld', ('corner',), 32, process=True)\n"
        "slot.send('info', 'reach-v3')\n"
        "slot.recv()\n"
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "if __name__ == '__main__':" in res.stderr, res.stderr[-2000:]
    assert "MuJoCo" not in res.stderr.splitlines()[-1]


def test_a_terminated_evaluation_says_why(tmp_path):
    """SIGTERM mid-run: the command unwinds (workers closed) and prints why, exit status 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "embodia.cli",
            "eval",
            "rollout",
            "--policy",
            "random",
            "--tasks",
            "reach",
            "--episodes-per-task",
            "50",
            "--output",
            str(tmp_path / "out"),
        ],
        stderr=subprocess.PIPE,
    )
    # Signal once episodes are running (a slow machine may still be importing after 8 s).
    seen, deadline = b"", time.monotonic() + 180
    while b"episodes" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += os.read(proc.stderr.fileno(), 4096)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    err = (seen + rest).decode(errors="replace")
    assert proc.returncode == 130, err[-2000:]
    assert "stopped (signal SIGTERM)" in err


def test_model_chunks_are_seeded_by_episode_and_chunk_index(tiny_checkpoint):
    """Evaluation draws chunk k's flow noise from (layout seed, k): replaying an episode gives the
    same chunks whatever slot or batch it runs in, so re-evaluating a checkpoint repeats its score."""
    from embodia.evaluation.policies import ModelChunkPolicy, Request
    from embodia.policy import Policy

    policy = Policy.load(tiny_checkpoint)
    cams = policy.config.cameras
    rng = np.random.default_rng(0)
    size = int(policy.model.cfg.image_size)
    obs = {
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cams},
        "state": np.zeros(policy.state_dim, np.float32),
    }
    episode = {"seed": 123, "instruction": "reach the goal", "task": "reach"}
    other = {"seed": 456, "instruction": "reach the goal", "task": "reach"}

    def chunks(slot_episodes, slot):
        runner = ModelChunkPolicy(policy, None, ("actions",))
        for s, ep in slot_episodes.items():
            runner.begin_episode(s, ep)
        reqs = [Request(s, 0, ep, obs) for s, ep in slot_episodes.items()]
        first = runner.predict(reqs)
        second = runner.predict(reqs)
        index = list(slot_episodes).index(slot)
        return first[index].actions, second[index].actions

    a1, a2 = chunks({0: episode}, 0)
    b1, b2 = chunks({0: other, 3: episode}, 3)  # another slot, batched with another episode
    np.testing.assert_allclose(a1, b1, atol=1e-5)
    np.testing.assert_allclose(a2, b2, atol=1e-5)
    assert np.abs(a1 - a2).max() > 1e-3  # chunk 1 has its own noise
