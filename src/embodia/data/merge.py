"""`embodia data merge A B ... --output C`: one dataset from several, videos kept as they are.

The LeRobot part (frames renumbered, videos copied whole, splits regrouped, exact statistics)
is :mod:`embodia.data.lerobot_v3.merge`; this module adds what embodia's data engine writes
beside it, so that a merged engine dataset trains and evaluates like a generated one:

* ``conversations/<split>.jsonl`` and the images they use. Engine episodes are named
  ``<split>-<task>-<number>``, so two datasets generated with different seeds share names; a
  source episode whose name is taken gets the next free number of its split and task, and its
  samples and image folder are renamed with it.
* ``engine.json``: the sources' generation settings, the ones that differ listed per source, and
  the usual summary. Its ``config`` is the first source's (``eval rollout`` takes the test
  layouts' seed and the image size from it), marked as a merge so that ``data generate`` never
  takes the merged dataset for one it generated.
* An honest-protocol check: a layout (task, start state) in two splits, or in two sources (the
  same ``--seed`` twice), is refused, so a test layout can never be trained on.

The merge is built beside ``--output`` and renamed into place only when complete.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from embodia.configs.data import MergeConfig
from embodia.data.lerobot_v3.merge import MergedEpisode, MergeError, merge_into
from embodia.utils.fs import atomic_dir

_ENGINE_KEY = re.compile(r"^(?P<prefix>.+)-(?P<number>\d+)$")


def merge(cfg: MergeConfig) -> Path:
    sources = [Path(p) for p in cfg.sources]
    out = Path(cfg.output)
    _check_arguments(sources, out, cfg.overwrite)
    with atomic_dir(out) as tmp:
        order = merge_into(sources, tmp, cfg.progress)
        _check_layouts(tmp, sources, order)
        with_conv = [(s / "conversations").is_dir() for s in sources]
        if any(with_conv):
            if not all(with_conv):
                lacking = [str(s) for s, yes in zip(sources, with_conv, strict=True) if not yes]
                raise MergeError(
                    f"{', '.join(lacking)} has no conversations/ (QA samples) and the other "
                    "sources have: a merged dataset would train QA on part of its episodes only"
                )
            counts = _merge_conversations(sources, tmp / "conversations")
        else:
            counts = {}
        engines = [_read_engine(s) for s in sources]
        if any(e is not None for e in engines):
            _write_engine(tmp, sources, engines, counts)
    return out


def _check_arguments(sources: list[Path], out: Path, overwrite: bool) -> None:
    if len(sources) < 2:
        raise MergeError(f"data merge needs two or more datasets, got {len(sources)}")
    seen: set[Path] = set()
    for src in sources:
        if not (src / "meta" / "info.json").is_file():
            raise FileNotFoundError(f"{src}: not a LeRobot v3 dataset (no meta/info.json)")
        if src.resolve() in seen:
            raise MergeError(f"{src} is given twice: its episodes would be in the merge twice")
        seen.add(src.resolve())
    if out.resolve() in seen:
        raise MergeError(f"--output {out} is one of the sources; write the merge elsewhere")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MergeError(f"--output {out} exists and is not empty; pass --overwrite to replace it")


def _check_layouts(root: Path, sources: list[Path], order: list[MergedEpisode]) -> None:
    """Engine episodes record their task and start state: none may be in two splits (a test
    layout trained on) or come from two sources (the same generation twice)."""
    from embodia.data.engine.splits import check_disjoint
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset

    episodes = LeRobotV3Dataset(root).episodes
    if not all({"env_name", "split", "layout"} <= set(ep) for ep in episodes):
        return  # not engine data: nothing records start states
    check_disjoint((ep["env_name"], ep["split"], np.asarray(ep["layout"])) for ep in episodes)
    first_source: dict[tuple[str, bytes], int] = {}
    for ep, m in zip(episodes, order, strict=True):
        key = (ep["env_name"], np.round(np.asarray(ep["layout"], np.float64) / 1e-9).tobytes())
        other = first_source.setdefault(key, m.source)
        if other != m.source:
            raise MergeError(
                f"{sources[m.source]} and {sources[other]} hold the same {ep['env_name']} "
                f"layout {list(ep['layout'])}: were they generated with the same --seed?"
            )


def _merge_conversations(sources: list[Path], dst: Path) -> dict[str, dict[str, int]]:
    """Each split's samples, source by source; episode names taken by an earlier source are
    renumbered (samples and images move with them). Only images a sample uses are copied."""
    taken: set[str] = set()
    files: dict[str, list[str]] = {}
    images: list[tuple[Path, Path]] = []
    for src in sources:
        conv = src / "conversations"
        samples = list(_read_samples(conv))
        own = {rel.split("/")[1] for _, _, sample in samples for rel in _image_fields(sample)}
        renamed = _rename(sorted(own), taken)
        for path, line_no, sample in samples:
            for field in ("image", "depth"):
                rel = sample.get(field)
                if not rel:
                    continue
                if not (conv / rel).is_file():
                    raise MergeError(f"{path}:{line_no}: {field} file {conv / rel} is missing")
                parts = rel.split("/")
                sample[field] = "/".join(["images", renamed[parts[1]], *parts[2:]])
                images.append((conv / rel, dst / sample[field]))
            if sample.get("episode") in renamed:
                sample["episode"] = renamed[sample["episode"]]
            files.setdefault(path.stem, []).append(json.dumps(sample))
        taken |= set(renamed.values())
    dst.mkdir(parents=True)
    (dst / "images").mkdir()
    counts: dict[str, dict[str, int]] = {}
    for split, lines in files.items():
        (dst / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))
        kinds = Counter(f"{s.get('task_type')}/{s.get('category')}" for s in map(json.loads, lines))
        counts[split] = dict(sorted(kinds.items()))
    for src, target in dict.fromkeys(images):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return counts


def _read_samples(conv: Path):
    """(file, line number, sample) of every conversation file of a source, in file order."""
    from embodia.data.conversations import read_conversations

    for path in sorted(conv.glob("*.jsonl")):
        for line_no, sample in read_conversations(path, required=()):
            for rel in _image_fields(sample):
                parts = rel.split("/")
                if len(parts) < 3 or parts[0] != "images":
                    raise MergeError(
                        f"{path}:{line_no}: image path {rel!r} is not images/<episode>/<file>"
                    )
            yield path, line_no, sample


def _image_fields(sample: dict[str, Any]) -> list[str]:
    return [sample[f] for f in ("image", "depth") if sample.get(f)]


def _rename(names: list[str], taken: set[str]) -> dict[str, str]:
    """Each of a source's episode names, kept if no earlier source used it, else given the
    next number of its prefix free in every source so far and in this one
    (``train-reach-00000`` -> ``train-reach-00003``)."""
    used = taken | set(names)
    renamed: dict[str, str] = {}
    for name in names:
        if name not in taken:
            renamed[name] = name
            continue
        match = _ENGINE_KEY.match(name)
        prefix, width = (match["prefix"], len(match["number"])) if match else (name, 5)
        number = 0
        while f"{prefix}-{number:0{width}d}" in used:
            number += 1
        renamed[name] = f"{prefix}-{number:0{width}d}"
        used.add(renamed[name])
    return renamed


def _read_engine(src: Path) -> dict[str, Any] | None:
    path = src / "engine.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MergeError(f"{path}: not valid JSON ({exc.msg})") from exc


def _write_engine(
    root: Path,
    sources: list[Path],
    engines: list[dict[str, Any] | None],
    counts: dict[str, dict[str, int]],
) -> None:
    from embodia.data.engine.generate import _versions
    from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
    from embodia.utils.fs import atomic_write_text

    configs = [(e or {}).get("config", {}) for e in engines]
    fields = list(dict.fromkeys(k for c in configs for k in c))
    differing = {
        k: [c.get(k) for c in configs]
        for k in fields
        if len({json.dumps(c.get(k)) for c in configs}) > 1
    }
    base = next(c for c in configs if c)
    ds = LeRobotV3Dataset(root)
    successes = [bool(ep["success"]) for ep in ds.episodes if "success" in ep]
    summary = {
        "config": {**base, "merged": True},
        "merge": {
            "sources": [
                {"path": str(src.resolve()), "config": (e or {}).get("config")}
                for src, e in zip(sources, engines, strict=True)
            ],
            "differing": differing,
        },
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "conversation_samples": counts,
        "expert_success_rate": float(np.mean(successes)) if successes else None,
        "versions": _versions(),
    }
    atomic_write_text(root / "engine.json", json.dumps(summary, indent=2))
