"""``embodia eval depth``: generated depth against the simulator's ground truth.

Images are the distinct views referenced by a dataset's held-out conversation split (each comes
with its metric depth PNG, uint16 millimetres, 0 = invalid). The model generates depth from the RGB
alone (no ground truth enters generation); the prediction is resized to the ground truth's
resolution (bilinear) and scored on valid pixels with the shared metrics
(:func:`embodia.models.depth.metrics.depth_metrics`: AbsRel and delta < 1.25, per image, then
averaged). Also reported: the same after per-image median scaling (scale-invariant, as relative
depth is usually compared) and the mean-depth baseline, which knows each image's scale but no
structure. The protocol records where the model's metres come from (``scale``): a predicted
scale or a fixed range is metric; GEM's relative encoding without a scale head is not, and only
its median-scaled figures mean anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from embodia.configs.eval import DepthConfig
from embodia.data.images import resize_prediction
from embodia.data.lerobot_v3.video import mm_to_depth
from embodia.evaluation.qa import load_rows
from embodia.models.depth.metrics import depth_metrics, mean_depth_baseline


def depth_items(dataset: Path, split: str, limit: int) -> list[dict[str, Any]]:
    """Distinct (image, depth, camera) triples of the split, in file order."""
    seen: dict[str, dict[str, Any]] = {}
    for row in load_rows(dataset, split):
        if row.get("depth") and row["image"] not in seen:
            seen[row["image"]] = {
                "image": row["image"],
                "depth": row["depth"],
                "camera": row.get("camera", "image"),
            }
        if len(seen) >= limit:
            break
    if not seen:
        raise ValueError(f"{dataset}: split {split!r} has no images with ground-truth depth")
    return list(seen.values())


def median_scaled(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    valid = gt > 0
    if not valid.any():
        return pred
    med_p = float(np.median(pred[valid]))
    return pred * (float(np.median(gt[valid])) / med_p) if med_p > 0 else pred


def score_depths(preds: list[np.ndarray], gts: list[np.ndarray], cameras: list[str]) -> dict:
    """Metrics overall, per camera, median-scaled, and the mean-depth baseline."""
    p, g = np.stack(preds), np.stack(gts)
    out = {
        "metrics": depth_metrics(p, g),
        "median_scaled": depth_metrics(
            np.stack([median_scaled(a, b) for a, b in zip(p, g, strict=True)]), g
        ),
        "mean_depth_baseline": mean_depth_baseline(g),
        "per_camera": {},
    }
    for cam in dict.fromkeys(cameras):
        idx = [i for i, c in enumerate(cameras) if c == cam]
        out["per_camera"][cam] = depth_metrics(p[idx], g[idx])
    out["per_image"] = [
        {"camera": c, **depth_metrics(a, b)} for a, b, c in zip(p, g, cameras, strict=True)
    ]
    return out


def run_depth(cfg: DepthConfig) -> Path:
    from embodia.evaluation.answerer import Answerer
    from embodia.evaluation.protocol import checkpoint_info, config_dict, write_results
    from embodia.evaluation.report import depth_grid, depth_report

    model = Answerer(cfg.checkpoint, cfg.device)
    if not model.has_depth:
        from embodia.evaluation.answerer import NoDepthGenerator

        raise NoDepthGenerator(
            f"{model.checkpoint}: this checkpoint has no depth generator (GEM's generative depth "
            "head); depth evaluation needs a checkpoint trained with one (e.g. --curriculum gem)"
        )
    items = depth_items(cfg.dataset, cfg.split, cfg.limit)
    conv = Path(cfg.dataset) / "conversations"
    rgbs, preds, gts = [], [], []
    t0 = time.perf_counter()
    for it in items:
        rgb = np.asarray(Image.open(conv / it["image"]).convert("RGB"))
        gt = mm_to_depth(np.asarray(Image.open(conv / it["depth"])))
        pred = resize_prediction(model.depth(rgb, it["camera"]), gt.shape)
        rgbs.append(rgb)
        preds.append(pred)
        gts.append(gt.astype(np.float32))
    cams = [it["camera"] for it in items]
    summary = score_depths(preds, gts, cams)
    summary["timing"] = {"wall_s": time.perf_counter() - t0, "images": len(items)}
    for rec, it in zip(summary["per_image"], items, strict=True):
        rec["image"] = it["image"]
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    protocol = {
        "config": config_dict(cfg),
        "checkpoint": checkpoint_info(model.checkpoint),
        "dataset": str(cfg.dataset),
        "split": cfg.split,
        "images": len(items),
        "ground_truth": "simulator metric depth (uint16 mm PNG), 0 = invalid, ignored",
        "resize": "prediction -> ground-truth size, bilinear",
        "metrics": "embodia.models.depth.metrics.depth_metrics (per image, then mean)",
        "generation": "RGB only; no ground-truth scale alignment (median_scaled is reported apart)",
        "scale": model.depth_scale,
    }
    write_results(out, "depth", protocol, summary)
    grid = None
    if cfg.grid > 0:
        k = min(cfg.grid, len(items))
        grid = depth_grid(
            out / "depth_grid.png",
            [
                {
                    "name": items[i]["image"],
                    "rgb": rgbs[i],
                    "gt": gts[i],
                    "pred": preds[i],
                    "abs_rel": summary["per_image"][i]["abs_rel"],
                }
                for i in range(k)
            ],
        )
    depth_report(out, protocol, summary, grid)
    m, ms, base = summary["metrics"], summary["median_scaled"], summary["mean_depth_baseline"]
    print(
        f"depth from RGB alone (scale: {protocol['scale']}): AbsRel {m['abs_rel']:.4f}, "
        f"delta<1.25 {m['delta1']:.1%} on {m['images']} images; median-scaled AbsRel "
        f"{ms['abs_rel']:.4f} (delta<1.25 {ms['delta1']:.1%}); mean-depth baseline (knows each "
        f"image's scale) AbsRel {base['abs_rel']:.4f}; wrote {out / 'results.json'} and "
        f"{out / 'report.md'}"
    )
    return out
