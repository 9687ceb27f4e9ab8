"""How well a scene-supervised checkpoint locates the objects on layouts it never saw.

    python benchmarks/probe_scene.py --checkpoint outputs/ablations/scene/s0/run \
        --data outputs/qs/data --frames 200

A checkpoint trained with ``--scene-key`` carries the training-only scene head (models/scene_head.py).
This reads its prediction (where the head reads: the ``<|propri|>`` token, or the action tokens as
at the first step of sampling, pure noise at t = 0) for frames of the dataset's ``--split`` (default test: held-out layouts),
converts it back to metres and prints, per task, the mean distance between the predicted and true
position of the first object (the handle, button or puck) and of the goal, in centimetres, beside
a blind reference: the training split's mean position for that task (what knowing the task but not
seeing the scene gives). A head that beats the reference has learnt to see where things are; the
window-open policies of docs/learning.md missed the handle by about 10 cm.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from embodia.configs.train import DatasetSpec
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import EmbodiedSample
from embodia.training.data import EpisodeSource

PARTS = {"object": slice(0, 3), "goal": slice(6, 9)}  # of the 9 Meta-World scene values


def _source(data: Path, split: str, run_config: dict) -> EpisodeSource:
    spec = DatasetSpec(
        path=data,
        split=split,
        cameras=tuple(run_config["cameras"]),
        scene_key=run_config["scene_key"],
        scene_dims=tuple(run_config["scene_dims"]),
    )
    return EpisodeSource(spec, horizon=1, image_size=run_config["image_size"], progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a run or checkpoint directory")
    ap.add_argument("--data", type=Path, required=True, help="the run's dataset")
    ap.add_argument("--split", default="test")
    ap.add_argument("--frames", type=int, default=200, help="frames drawn per task")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    model = EmbodiedModel.from_pretrained(args.checkpoint).eval()
    if "scene" not in model.aux_heads:
        raise SystemExit(f"{args.checkpoint}: no scene head (train with --scene-key)")
    from embodia.models.checkpoint import resolve_checkpoint
    from embodia.training import state as ckpt

    step_dir = resolve_checkpoint(args.checkpoint)
    run = ckpt.load_trainer_state(step_dir).run_config
    first = json.loads((step_dir / "policy.json").read_text())
    settings = {
        "cameras": [f"observation.images.{c}" for c in first["cameras"]],
        "scene_key": run["scene_key"],
        "scene_dims": run["scene_dims"],
        "image_size": model.cfg.image_size,
    }
    test, train = _source(args.data, args.split, settings), _source(args.data, "train", settings)
    test.open_frames()
    train.open_frames()
    key, dims = settings["scene_key"], list(settings["scene_dims"])
    norm = train.normalizer  # the statistics training normalised with (the whole dataset's)

    def metres(y: np.ndarray) -> np.ndarray:
        full = np.zeros((*y.shape[:-1], train.ds.features[key].shape[0]), np.float64)
        full[..., dims] = y
        return norm.unnormalize(key, full)[..., dims]

    def by_task(src: EpisodeSource) -> dict[str, list[int]]:
        out = defaultdict(list)
        for i, (ep, _) in enumerate(src.index):
            out[src.ds.episodes[ep]["env_name"]].append(i)
        return out

    reference = {
        task: metres(np.mean([train.get(i)["scene"] for i in rows], axis=0))
        for task, rows in by_task(train).items()
    }
    rng = np.random.default_rng(args.seed)
    emb = test.embodiment
    print(f"| task | frames | {' | '.join(f'{p} error, cm (blind)' for p in PARTS)} |")
    print(f"|---|---|{'---|' * len(PARTS)}")
    for task, rows in sorted(by_task(test).items()):
        picked = rng.choice(rows, size=min(args.frames, len(rows)), replace=False)
        items = [test.get(int(i)) for i in picked]
        preds = []
        for start in range(0, len(items), 32):
            batch_items = items[start : start + 32]
            samples = [
                EmbodiedSample(
                    images=it["images"],
                    instruction=it["instruction"],
                    state=emb.state_to_template(it["state"]),
                    dof_mask=emb.dof_mask,
                    actions=emb.to_template(it["chunk"]),
                )
                for it in batch_items
            ]
            with torch.no_grad():
                batch = model.collate(samples)
                # the action tokens as at the first Euler step of sampling: pure noise, t = 0
                g = torch.Generator().manual_seed(args.seed + start)
                noise = torch.randn(batch["actions"].shape, generator=g)
                t = torch.zeros(len(samples))
                hidden = model.hidden_states(batch, noise, t)
                head = model.aux_heads["scene"]
                _, states = head.states(model, batch, hidden)
                preds.append(head(states).float().numpy())
        pred = metres(np.concatenate(preds))
        true = metres(np.stack([it["scene"] for it in items]))
        ref = reference.get(task)
        cells = []
        for sl in PARTS.values():
            err = 100 * np.linalg.norm(pred[:, sl] - true[:, sl], axis=1).mean()
            blind = (
                float("nan")
                if ref is None
                else 100 * np.linalg.norm(ref[sl] - true[:, sl], axis=1).mean()
            )
            cells.append(f"{err:.1f} ({blind:.1f})")
        print(f"| {task} | {len(items)} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
