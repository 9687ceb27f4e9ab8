"""``embodia reproduce ... --dry-run``: check a recipe without data, weights or a GPU.

Every arm's model is built on the meta device at the recipe's preset (its published shapes, no
memory allocated), with the auxiliary head its objective needs; each stage's parameter groups
are resolved and its loss terms checked against the heads, as the trainer would before its first
step. It prints the plan (arms, stages, steps, trainable parameters) and a memory estimate: bf16
weights plus fp32 gradients and AdamW moments of the trainable ones, activations not included.
"""

from __future__ import annotations

from typing import Any

from embodia.configs.reproduce import ReproduceRecipe

#: Bytes per parameter: bf16 weights; fp32 gradient + two AdamW moments per trainable one.
WEIGHT_BYTES, TRAINABLE_BYTES = 2, 12


def dry_run(recipe: ReproduceRecipe) -> dict[str, Any]:
    import torch

    from embodia.configs.depth import CodecConfig, depth_preset
    from embodia.configs.model import preset
    from embodia.models.embodied import EmbodiedModel
    from embodia.training.groups import resolve

    recipe.validate()
    plan: dict[str, Any] = {"recipe": recipe.name, "budget": recipe.budget, "arms": {}}
    print(
        f"recipe {recipe.name} (budget {recipe.budget}, preset {recipe.preset}, "
        f"seeds {list(recipe.seeds)}), built on the meta device:"
    )
    for arm in recipe.arms:
        mcfg = preset(recipe.preset)
        if arm.depth_objective != "none":
            # the run trains embodia's autoencoder for the codec arms (no path: fresh shapes)
            mcfg.depth = depth_preset(
                recipe.preset, objective=arm.depth_objective, codec=CodecConfig()
            )
        with torch.device("meta"):
            model = EmbodiedModel(mcfg)
        total = sum(p.numel() for p in model.parameters())
        heads = {"text", "flow", "fast", *model.aux_heads}
        stages = []
        for stage in arm.stages:
            try:
                groups = resolve(model, stage.trainable)
            except ValueError as exc:
                raise ValueError(f"arm {arm.name!r}, stage {stage.name!r}: {exc}") from exc
            missing = [t for t, w in stage.loss_weights.items() if w and t not in heads]
            if missing:
                raise ValueError(
                    f"arm {arm.name!r}, stage {stage.name!r}: loss {missing} but the model has "
                    f"heads {sorted(heads)}"
                )
            names = {n for ns in groups.values() for n in ns}
            trainable = sum(p.numel() for n, p in model.named_parameters() if n in names)
            gib = (WEIGHT_BYTES * total + TRAINABLE_BYTES * trainable) / 2**30
            stages.append(
                {
                    "stage": stage.name,
                    "steps": stage.steps,
                    "trainable": trainable,
                    "est_gib": round(gib, 2),
                }
            )
        plan["arms"][arm.name] = {"parameters": total, "stages": stages}
        print(f"  {arm.name} ({arm.depth_objective}): {total / 1e6:.1f} M parameters")
        for s in stages:
            print(
                f"    {s['stage']:<14} {s['steps']:>6} steps x {recipe.batch_size}, trainable "
                f"{s['trainable'] / 1e6:.1f} M, est. {s['est_gib']} GiB without activations"
            )
    runs = len(recipe.arms) * len(recipe.seeds)
    print(
        f"{runs} training runs; evaluations: "
        + ", ".join(f"{e.key} after {e.after or 'the last stage'}" for e in recipe.evaluations)
    )
    return plan
