"""`embodia eval rollout --backend ray`: environments as Ray actors give the same per-episode
results as local worker processes, and an actor killed mid-episode is replaced and replayed
without changing any result."""

from __future__ import annotations

import pytest

from embodia.configs.eval import RolloutConfig
from embodia.evaluation import rollout as rollout_module
from embodia.evaluation.rollout import rollout_episodes, summarize
from embodia.evaluation.setup import build_rollout
from embodia.evaluation.workers import RAY_RESTARTS, EnvWorkerError
from embodia.utils.cluster import connect_ray

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")
TASKS = ("reach", "drawer-open")


@pytest.fixture(scope="module")
def local_ray():
    connect_ray(None, workers=2)
    yield ray
    ray.shutdown()


def _episodes(policy: str, backend: str, wrap=None, **kw) -> tuple[list[dict], list]:
    """Per-episode results (minus wall-clock fields) and the slots the rollout used."""
    cfg = RolloutConfig(
        policy=policy,
        tasks=TASKS,
        episodes_per_task=2,
        workers=2,
        videos=0,
        backend=backend,
        **kw,
    )
    s = build_rollout(cfg)
    opened: list = []
    real_open = rollout_module.open_slots

    def recording_open(*args, **kwargs):
        opened.extend(real_open(*args, **kwargs))
        return opened

    policy_obj = wrap(s.policy, opened) if wrap else s.policy
    try:
        rollout_module.open_slots = recording_open
        results, _ = rollout_episodes(policy_obj, s.episodes, s.settings)
    finally:
        rollout_module.open_slots = real_open
    return summarize(results)["episodes"], opened


class _KillAfter:
    """Forwards to a policy; after ``calls`` predictions kills the first slot's actor ``times``
    times in a row (each replacement too), as a failing node would."""

    def __init__(self, policy, slots: list, calls: int, times: int = 1) -> None:
        self._policy, self._slots, self._calls, self._times = policy, slots, calls, times
        self.n = 0

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def predict(self, requests):
        self.n += 1
        if self.n == self._calls:
            ray.kill(self._slots[0]._actor, no_restart=True)
            if self._times > 1:
                original = self._slots[0]._actor_class.remote
                left = [self._times - 1]

                def dying(*args):
                    actor = original(*args)
                    if left[0] > 0:
                        left[0] -= 1
                        ray.kill(actor, no_restart=True)
                    return actor

                self._slots[0]._actor_class.remote = dying
        return self._policy.predict(requests)


def test_ray_actors_give_the_local_results(local_ray):
    local, _ = _episodes("random", "local", max_steps=40, execute_steps=4)
    remote, slots = _episodes("random", "ray", max_steps=40, execute_steps=4)
    assert remote == local
    assert all(slot.restarts == 0 for slot in slots)


def test_an_actor_killed_mid_episode_is_replayed_to_the_same_result(local_ray):
    local, _ = _episodes("expert", "local", max_steps=120)
    remote, slots = _episodes(
        "expert", "ray", wrap=lambda p, s: _KillAfter(p, s, calls=25), max_steps=120
    )
    assert slots[0].restarts == 1
    assert remote == local
    assert sum(e["success"] for e in remote) >= 3  # the expert, not an empty comparison


def test_an_actor_that_keeps_dying_is_an_error(local_ray):
    with pytest.raises(EnvWorkerError, match="environment actor died"):
        _episodes(
            "expert",
            "ray",
            wrap=lambda p, s: _KillAfter(p, s, calls=5, times=RAY_RESTARTS + 1),
            max_steps=60,
        )
