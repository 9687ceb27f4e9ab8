"""Atomic file-system steps: readers see the old thing or the new one, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write beside the target, then rename over it (a rename is atomic on one file system)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(new: Path, final: Path) -> None:
    """Move the finished directory ``new`` to ``final``, replacing what is there.

    An existing ``final`` is first renamed aside and deleted only once ``new`` is in place, so at
    every instant ``final`` is either the complete old directory or the complete new one.
    """
    new, final = Path(new), Path(final)
    if not final.exists():
        os.rename(new, final)
        return
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Build a directory in a temporary sibling; it replaces ``final`` only if the block succeeds.

    with atomic_dir(out) as tmp:
        write files into tmp
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
