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


class ConfigFileError(ValueError):
    """A user's JSON / YAML file is missing or does not parse; the message names it."""


def read_config_file(path: Path) -> object:
    """The content of a JSON or YAML file (chosen by suffix); errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigFileError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc})") from exc
    if path.suffix.lower() == ".json":
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigFileError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigFileError(f"{path}: not valid YAML ({exc})") from exc
    raise ConfigFileError(f"{path}: expected a .json, .yaml or .yml file")
