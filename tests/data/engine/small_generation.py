"""The small generation every engine test compares against, and how datasets are compared."""

from __future__ import annotations

import hashlib
from pathlib import Path

SMALL = dict(
    tasks=("reach", "pick-place"),
    episodes_per_task=(1, 1, 1),
    image_size=48,
    max_steps=30,
    qa_every=10,
    workers=1,
    progress=False,
)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path, videos included: rendering and encoding
    are deterministic, so the same seeds must give the same bytes whichever process records them."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
