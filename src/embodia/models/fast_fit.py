"""`embodia tokenizer fit`: fit a FAST tokenizer on a dataset's actions and report how well it does.

The chunks are cut exactly as a chunked policy sees them in training: ``horizon`` consecutive
actions starting every ``stride`` frames, the tail padded by repeating the episode's last action
(the robot holds still after the episode ends), normalised with the dataset's own q01/q99 by
:class:`~embodia.data.normalize.QuantileNormalizer`, the mapping training and serving use too.

Some episodes are held out of the fit so that the report's round-trip error and token counts
describe chunks the tokenizer has not seen, which is what the policy will produce at test time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from embodia.configs.tokenizer import FitConfig
from embodia.data.lerobot_v3.reader import LeRobotV3Dataset
from embodia.data.normalize import MissingStatsError, QuantileNormalizer
from embodia.models.fast_tokenizer import FastActionTokenizer
from embodia.utils.fs import atomic_write_text

REPORT_FILE = "fit_report.json"


def episode_chunks(actions: np.ndarray, horizon: int, stride: int) -> np.ndarray:
    """(T, D) -> (K, horizon, D): a chunk at every ``stride``-th frame, tail repeats the last."""
    actions = np.asarray(actions)
    if len(actions) == 0:
        return np.zeros((0, horizon, *actions.shape[1:]), dtype=actions.dtype)
    starts = np.arange(0, len(actions), stride)
    idx = np.minimum(starts[:, None] + np.arange(horizon)[None, :], len(actions) - 1)
    return actions[idx]


def _check(cfg: FitConfig) -> None:
    if cfg.horizon < 1 or cfg.stride < 1:
        raise ValueError(f"--horizon and --stride must be >= 1: {cfg.horizon}, {cfg.stride}")
    if not 0 <= cfg.holdout < 1:
        raise ValueError(f"--holdout must be in [0, 1): {cfg.holdout}")
    if cfg.max_chunks is not None and cfg.max_chunks < 1:
        raise ValueError(f"--max-chunks must be >= 1: {cfg.max_chunks}")


def _open(cfg: FitConfig) -> tuple[LeRobotV3Dataset, QuantileNormalizer, list[int]]:
    ds = LeRobotV3Dataset(cfg.dataset)
    numeric = [k for k, f in ds.features.items() if f.dtype not in ("video", "image", "depth")]
    if cfg.key not in numeric:
        what = "a visual feature" if cfg.key in ds.features else "no feature"
        raise ValueError(f"{cfg.dataset}: {what} {cfg.key!r}; numeric features: {numeric}")
    try:
        normalizer = QuantileNormalizer(ds.stats).subset([cfg.key])
        normalizer.normalize(cfg.key, np.zeros(ds.features[cfg.key].shape or (1,)))
    except MissingStatsError as exc:
        raise ValueError(f"{cfg.dataset}/meta/stats.json: {exc}") from exc
    try:
        indices = ds.episode_indices(None if cfg.split == "all" else cfg.split)
    except KeyError as exc:
        raise ValueError(f"{cfg.dataset}: {exc.args[0]} (or use --split all)") from exc
    if not indices:
        raise ValueError(f"{cfg.dataset}: split {cfg.split!r} has no episodes")
    return ds, normalizer, indices


def _split_episodes(indices: list[int], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit, held-out) episodes; at least one held out when there are two or more."""
    n_out = 0 if holdout == 0 or len(indices) < 2 else max(1, round(holdout * len(indices)))
    order = np.random.default_rng(seed).permutation(len(indices))
    out = sorted(indices[i] for i in order[:n_out])
    return [i for i in indices if i not in set(out)], out


def _load_chunks(
    ds: LeRobotV3Dataset, cfg: FitConfig, episodes: list[int]
) -> dict[int, np.ndarray]:
    """Raw chunks (K, H, D) float64 of each episode."""
    out: dict[int, np.ndarray] = {}
    for index in tqdm(episodes, desc="episodes", disable=not cfg.progress, leave=False):
        actions = np.asarray(ds.load_episode(index, keys=[cfg.key])[cfg.key], dtype=np.float64)
        out[index] = episode_chunks(actions.reshape(len(actions), -1), cfg.horizon, cfg.stride)
    return out


def _errors(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    err = np.abs(a - b)
    return {
        "max_abs": float(err.max()),
        "mean_abs": float(err.mean()),
        "max_abs_per_dim": err.reshape(-1, err.shape[-1]).max(axis=0).tolist(),
    }


def _clipped_fraction(normalizer: QuantileNormalizer, key: str, raw: np.ndarray) -> float:
    """Share of raw values outside [q01, q99], which normalisation clips.

    About 2% with exact quantiles; much more when the dataset's quantiles are averages of
    per-episode quantiles over unlike episodes (LeRobot's aggregation), worth seeing in the report.
    """
    low = np.asarray(normalizer.stats[key]["q01"], dtype=np.float64).reshape(-1)
    high = np.asarray(normalizer.stats[key]["q99"], dtype=np.float64).reshape(-1)
    return float(((raw < low) | (raw > high)).mean())


def evaluate(
    tok: FastActionTokenizer,
    normalizer: QuantileNormalizer,
    key: str,
    raw: np.ndarray,
    normed: np.ndarray,
) -> dict[str, Any]:
    """Token counts and round-trip errors of ``tok`` on chunks (normalised and raw units).

    The error in original units is measured against the *raw* actions, so it includes what the
    normaliser's q01/q99 clipping lost; ``clipped_fraction`` says how many values that touched.
    """
    ids = tok.encode_batch(normed)
    lengths = np.array([len(i) for i in ids])
    decoded = tok.decode_batch(ids)
    return {
        "chunks": len(normed),
        "mean_tokens_per_chunk": float(lengths.mean()),
        "max_tokens_per_chunk": int(lengths.max()),
        "compression_ratio": float(tok.config.num_coefficients / lengths.mean()),
        "roundtrip_normalized": _errors(decoded, normed),
        "roundtrip_original": _errors(normalizer.unnormalize(key, decoded), raw),
        "clipped_fraction": _clipped_fraction(normalizer, key, raw),
    }


def run_fit(cfg: FitConfig) -> Path:
    """Fit, save the tokenizer and ``fit_report.json`` under ``cfg.output``; returns that dir."""
    _check(cfg)
    ds, normalizer, indices = _open(cfg)
    fit_eps, held_eps = _split_episodes(indices, cfg.holdout, cfg.seed)
    per_episode = _load_chunks(ds, cfg, indices)
    fit_raw = np.concatenate([per_episode[i] for i in fit_eps])
    fit_norm = normalizer.normalize(cfg.key, fit_raw)
    held_raw = np.concatenate([per_episode[i] for i in held_eps] or [fit_raw[:0]])
    held_norm = normalizer.normalize(cfg.key, held_raw)
    tok = FastActionTokenizer.fit(
        fit_norm,
        scale=cfg.scale,
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        seed=cfg.seed,
        max_chunks=cfg.max_chunks,
    )
    # With nothing held out (one episode, or --holdout 0) the report is on the fit chunks.
    eval_raw, eval_norm = (held_raw, held_norm) if len(held_norm) else (fit_raw, fit_norm)
    report = {
        "dataset": str(cfg.dataset),
        "key": cfg.key,
        "split": cfg.split,
        "horizon": cfg.horizon,
        "stride": cfg.stride,
        "action_dim": tok.config.action_dim,
        "scale": cfg.scale,
        "vocab_size": cfg.vocab_size,
        "ids_used": tok.num_ids,
        "coefficient_range": list(tok.coefficient_range),
        "episodes_fit": len(fit_eps),
        "episodes_heldout": len(held_eps),
        "chunks_used": min(len(fit_norm), cfg.max_chunks or len(fit_norm)),
        "evaluated_on": "heldout" if len(held_norm) else "fit",
        "eval": evaluate(tok, normalizer, cfg.key, eval_raw, eval_norm),
        "normalizer": normalizer.to_dict(),
    }
    out = Path(cfg.output)
    tok.save(out)
    atomic_write_text(out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    _print_summary(report, out)
    return out


def _print_summary(report: dict[str, Any], out: Path) -> None:
    ev = report["eval"]
    print(
        f"FAST tokenizer -> {out}\n"
        f"  fit on {report['chunks_used']} chunks from {report['episodes_fit']} episodes "
        f"(H={report['horizon']}, D={report['action_dim']}, scale={report['scale']}, "
        f"{report['ids_used']}/{report['vocab_size']} ids)\n"
        f"  {report['evaluated_on']} ({ev['chunks']} chunks): {ev['mean_tokens_per_chunk']:.1f} "
        f"tokens/chunk (max {ev['max_tokens_per_chunk']}), compression x{ev['compression_ratio']:.1f}\n"
        f"  round trip max/mean abs error: normalised "
        f"{ev['roundtrip_normalized']['max_abs']:.4f}/{ev['roundtrip_normalized']['mean_abs']:.4f}, "
        f"original units {ev['roundtrip_original']['max_abs']:.4f}/"
        f"{ev['roundtrip_original']['mean_abs']:.4f} "
        f"(normaliser clipped {100 * ev['clipped_fraction']:.1f}% of values)"
    )
