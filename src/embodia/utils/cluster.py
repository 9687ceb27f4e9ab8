"""Where episode work runs: this machine's process pool (the default) or a Ray cluster.

Data generation and closed-loop evaluation are embarrassingly parallel over episodes, and each
episode is a pure function of its spec (seeded layout, seeded flow noise), so the backend only
decides *where* an episode runs, never what it produces: the same seeds give the same dataset
bytes and the same results.json on either backend with any number of workers.

Ray is an optional extra (``pip install -e .[ray]``); nothing imports it unless ``--backend ray``
is asked for. Without ``--address`` a local Ray instance is started for this process (sized to
the requested workers) and shut down with it; with an address (``ray://head:10001`` or
``auto`` inside a cluster job) the existing cluster runs the work, and every node needs embodia
and its simulators installed.
"""

from __future__ import annotations

import os
from typing import Any, Literal

Backend = Literal["local", "ray"]

#: Ray tasks / actors ask for one CPU each: one episode renders and steps on one core.
CPUS_PER_EPISODE = 1


class BackendError(RuntimeError):
    """The requested backend cannot be used (Ray missing, or the cluster unreachable)."""


def connect_ray(address: str | None, workers: int) -> Any:
    """The ``ray`` module, connected: to ``address``, or to a local instance with ``workers``
    CPUs when ``address`` is None. An already initialised Ray (a driver script, a test) is kept."""
    try:
        import ray
    except ImportError as exc:
        raise BackendError(
            "--backend ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.10')"
        ) from exc
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": "WARNING",
        "log_to_driver": False,
        # workers import embodia from the same environment as this process (an editable
        # install or PYTHONPATH); MUJOCO_GL must reach them before MuJoCo loads
        "runtime_env": {"env_vars": _worker_env()},
    }
    if address is None:
        options["num_cpus"] = max(1, workers) * CPUS_PER_EPISODE
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except Exception as exc:  # ConnectionError, a version mismatch, a bad address ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        hint = (
            ""
            if address
            else " (Ray's start-up has fixed timeouts that a machine busy on every core can "
            "miss: retry when it is quieter, or run `ray start --head` once and pass "
            "--address auto)"
        )
        raise BackendError(f"--backend ray: could not connect to {where}: {exc}{hint}") from exc
    return ray


def _worker_env() -> dict[str, str]:
    keep = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ}
