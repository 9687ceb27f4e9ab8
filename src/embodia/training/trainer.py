"""`embodia train`: run curriculum stages with Accelerate (1 CPU process up to DDP / FSDP on GPUs).

Per stage: freeze everything but the stage's parameter groups, set its loss weights, build a
seeded mixture of its data, and step an AdamW optimizer under a warm-up + cosine schedule. Every
loss term is logged separately (TensorBoard by default, W&B on request, and metrics.jsonl), a
progress bar shows loss, samples/s and ETA, checkpoints are written atomically, and a non-finite
loss stops the run with a message while the last good checkpoint stays. Everything that can be
checked is checked before the first step: stage names and groups, loss terms the data and model can
produce, dataset fields and normalisation statistics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from embodia.configs.model import preset
from embodia.configs.train import (
    CURRICULA,
    StageConfig,
    TrainConfig,
    dataset_specs,
    load_curriculum_file,
    select_stages,
)
from embodia.models.action_space import TEMPLATE_DIM
from embodia.models.embodied import EmbodiedModel
from embodia.models.sequence import DropConfig
from embodia.policy_config import check_flow_noise_scale
from embodia.training import ema
from embodia.training import state as ckpt
from embodia.training.data import (
    Collator,
    DataError,
    EpisodeSource,
    Mixture,
    StageDataset,
    StepSampler,
    build_sources,
)
from embodia.training.groups import UnknownGroupError, resolve, set_trainable
from embodia.training.streaming import Position, StreamConfig, StreamError

LOSS_TERMS = ("loss", "text", "fast", "flow", "depth", "scene")
#: Settings that may change between a run and its --resume: they do not change what is computed.
RESUME_FREE = ("resume", "progress", "workers", "frame_cache", "frame_cache_budget_gb")


class TrainingError(ValueError):
    """The run cannot start or must stop (bad config, diverged loss); the message says why."""


def _json_config(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _stages(cfg: TrainConfig) -> list[tuple[int, StageConfig]]:
    if cfg.curriculum_file is not None:
        stages = load_curriculum_file(cfg.curriculum_file)
    elif cfg.curriculum in CURRICULA:
        stages = CURRICULA[cfg.curriculum](cfg.steps_per_stage)
    else:
        raise TrainingError(
            f"--curriculum {cfg.curriculum!r}: choose from {sorted(CURRICULA)} or pass --curriculum-file"
        )
    return select_stages(stages, cfg.stages)


def _build_model(cfg: TrainConfig, resume_from: Path | None) -> EmbodiedModel:
    torch.manual_seed(cfg.seed)
    if resume_from is not None:
        return EmbodiedModel.from_pretrained(resume_from)  # adapters, if any, come with it
    model = _initial_model(cfg)
    if cfg.lora:
        from embodia.configs.model import LoraSettings
        from embodia.models.lora import inject

        if model.cfg.lora is not None:
            raise TrainingError(
                f"--lora {cfg.lora}: the --init checkpoint already carries LoRA adapters "
                "(merge them first: embodia export --merge)"
            )
        try:
            settings = LoraSettings(
                rank=cfg.lora,
                alpha=cfg.lora_alpha if cfg.lora_alpha is not None else 2.0 * cfg.lora,
                dropout=cfg.lora_dropout,
            )
            inject(model, settings)
        except ValueError as exc:
            raise TrainingError(f"--lora {cfg.lora}: {exc}") from exc
        model.cfg.lora = settings
    return model


def _initial_model(cfg: TrainConfig) -> EmbodiedModel:
    if cfg.init is not None:
        model = EmbodiedModel.from_pretrained(cfg.init)
        depth = _depth_config(cfg)
        if depth is not None:  # GEM: a pretrained VLM gains the depth head
            try:
                model.add_depth_head(depth)
            except ValueError as exc:
                raise TrainingError(f"--depth-objective with --init {cfg.init}: {exc}") from exc
        if cfg.horizon and cfg.horizon != model.cfg.action.horizon:
            raise TrainingError("--horizon cannot change the chunk length of an --init checkpoint")
        if cfg.image_size and cfg.image_size != model.cfg.image_size:
            raise TrainingError(
                f"--image-size {cfg.image_size}: an --init checkpoint keeps its own "
                f"({model.cfg.image_size})"
            )
        return model
    mcfg = preset(cfg.preset)
    if cfg.horizon:
        mcfg.action.horizon = cfg.horizon
    if cfg.image_size:
        mcfg.image_size = cfg.image_size
        try:
            mcfg.validate()
        except ValueError as exc:
            raise TrainingError(f"--image-size {cfg.image_size}: {exc}") from exc
    mcfg.depth = _depth_config(cfg)
    try:
        return EmbodiedModel(mcfg)
    except ValueError as exc:  # e.g. a codec trained on other targets than the objective's
        if mcfg.depth is None:
            raise
        raise TrainingError(f"--depth-objective {mcfg.depth.objective}: {exc}") from exc


def _depth_config(cfg: TrainConfig):
    """The auxiliary head's config from --depth-objective / --depth-codec (None = no head)."""
    from embodia.configs.depth import CodecConfig, depth_preset

    objective = cfg.depth_objective or ("depth" if cfg.depth_codec is not None else "none")
    if objective == "none":
        if cfg.depth_codec is not None:
            raise TrainingError("--depth-codec is given but --depth-objective is 'none'")
        return None
    if objective == "regression":
        return depth_preset(cfg.preset, objective="regression")
    if cfg.depth_codec is None:
        raise TrainingError(
            f"--depth-objective {objective} generates in a codec's latent space: pass "
            f"--depth-codec (`embodia depth train-autoencoder --target {objective}`)"
        )
    if not Path(cfg.depth_codec).is_dir():
        raise TrainingError(
            f"--depth-codec: {cfg.depth_codec} is not a directory "
            "(train one with `embodia depth train-autoencoder`)"
        )
    return depth_preset(
        cfg.preset, objective=objective, codec=CodecConfig(path=str(cfg.depth_codec))
    )


def _add_scene_head(model: EmbodiedModel, cfg: TrainConfig) -> None:
    """The scene head when a dataset names a scene target (``--scene-key``), sized by it: every
    such dataset must give the same number of values. Missing keys are reported by the data
    sources, which check every feature with its file's name."""
    try:
        specs = dataset_specs(cfg)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    widths = {}
    for spec in specs:
        if spec.kind != "episodes" or not spec.scene_key:
            continue
        if spec.scene_dims:
            widths[spec.label] = len(spec.scene_dims)
            continue
        try:
            info = json.loads((Path(spec.path) / "meta/info.json").read_text())
            widths[spec.label] = int(info["features"][spec.scene_key]["shape"][0])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    if not widths:
        return
    if len(set(widths.values())) > 1:
        raise TrainingError(
            f"scene targets of different sizes {widths}: choose --scene-dims (or each dataset's "
            "scene_dims) so that every dataset gives the same values"
        )
    try:
        model.add_scene_head(next(iter(widths.values())), cfg.scene_readout)
    except ValueError as exc:
        raise TrainingError(f"--scene-key: {exc}") from exc


def _check_stage(model: EmbodiedModel, stage: StageConfig, mixture: Mixture, fast_ok: bool) -> None:
    try:
        resolve(model, stage.trainable)  # checks only: _train_stage sets requires_grad
    except UnknownGroupError as exc:
        raise TrainingError(f"stage {stage.name!r}: {exc}") from exc
    kinds = mixture.kinds_used()
    producible = {"text"}
    if "episodes" in kinds:
        modes = {m for m, w in zip(mixture.modes, mixture.mode_weights, strict=True) if w > 0}
        producible |= modes & {"flow", "fast"}
    producible |= set(model.aux_heads)
    for term, weight in stage.loss_weights.items():
        if weight and term not in producible:
            why = (
                f"the model has no {term} head (enable it in the model config)"
                if term == "depth"
                else "no dataset names a scene target (pass --scene-key)"
                if term == "scene"
                else f"its data mixture {stage.mixture} / action modes "
                f"{stage.action_modes} produce no {term!r} targets"
            )
            raise TrainingError(f"stage {stage.name!r} asks for loss {term!r}, but {why}")
        if term not in LOSS_TERMS and term not in model.aux_heads:
            raise TrainingError(f"stage {stage.name!r}: unknown loss term {term!r}")
    uses_fast = (
        "episodes" in kinds
        and dict(zip(mixture.modes, mixture.mode_weights, strict=True)).get("fast", 0) > 0
    )
    if uses_fast and not fast_ok:
        raise TrainingError(
            f"stage {stage.name!r} uses FAST actions but no FAST tokenizer could be made"
        )
    if stage.steps < 1:
        raise TrainingError(f"stage {stage.name!r}: steps must be at least 1")
    levels = {f.name for f in dataclasses.fields(DropConfig)}
    for level, p in stage.level_drop.items():
        if level not in levels or not 0.0 <= p <= 1.0:
            raise TrainingError(
                f"stage {stage.name!r}: level_drop {{{level!r}: {p}}} must name one of "
                f"{sorted(levels)} with a probability in [0, 1]"
            )


def _stream_config(cfg: TrainConfig) -> StreamConfig | None:
    if not cfg.stream_shard_episodes:
        return None
    try:
        return StreamConfig(cfg.stream_shard_episodes, cfg.stream_window, cfg.frame_cache_budget_gb)
    except StreamError as exc:
        raise TrainingError(str(exc)) from exc


def _fit_fast(source: EpisodeSource, horizon: int, vocab: int):
    from embodia.models.fast_fit import episode_chunks
    from embodia.models.fast_tokenizer import FastActionTokenizer

    key = source.spec.action_key
    chunks = []
    for ep in source.episodes:
        actions = source.actions(ep)
        chunks.append(episode_chunks(source.normalizer.normalize(key, actions), horizon, 4))
    return FastActionTokenizer.fit(np.concatenate(chunks), vocab_size=vocab, max_chunks=20_000)


def _optimizer(model: EmbodiedModel, stage: StageConfig):
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": stage.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=stage.lr,
        betas=(0.9, 0.95),
    )
    warm = max(1, int(stage.warmup * stage.steps)) if stage.warmup > 0 else 0

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if stage.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, stage.steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        from accelerate import Accelerator, DistributedDataParallelKwargs

        self.cfg = cfg
        self.run = Path(cfg.output)
        log_with = None if cfg.log_with == "none" else cfg.log_with
        if log_with == "wandb":
            try:
                import wandb  # noqa: F401
            except ImportError as exc:
                raise TrainingError(
                    "--log-with wandb needs the wandb package (pip install wandb)"
                ) from exc
        mixed = cfg.mixed_precision if torch.cuda.is_available() else "no"
        self.acc = Accelerator(
            # without a GPU, cpu=True is what lets torchrun / accelerate launch form a gloo group
            cpu=not torch.cuda.is_available(),
            gradient_accumulation_steps=cfg.grad_accum,
            mixed_precision=mixed,
            log_with=log_with,
            project_dir=str(self.run / "logs"),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        if (
            cfg.batch_size % cfg.grad_accum
            or (cfg.batch_size // cfg.grad_accum) % self.acc.num_processes
        ):
            raise TrainingError(
                f"--batch-size {cfg.batch_size} must split into --grad-accum "
                f"{cfg.grad_accum} x {self.acc.num_processes} processes"
            )
        # checked now, not when policy.json is written at the end of the run
        check_flow_noise_scale(cfg.flow_noise_scale, TrainingError, "--flow-noise-scale")

    # ------------------------------------------------------------------ set-up (no work yet)

    def prepare(self) -> None:
        cfg = self.cfg
        self.stages = _stages(cfg)
        resume_from = None
        self.start = (self.stages[0][0], 0, 0)  # stage index, stage step, global step
        if cfg.resume:
            resume_from = ckpt.latest_checkpoint(self.run)
            if resume_from is None:
                raise TrainingError(f"--resume: {self.run} has no checkpoint to resume from")
            st = ckpt.load_trainer_state(resume_from)
            old = {k: v for k, v in st.run_config.items() if k not in RESUME_FREE}
            new = {k: v for k, v in _json_config(cfg).items() if k not in RESUME_FREE}
            # a setting added since the run was made counts as its default there
            default = _json_config(TrainConfig())
            diff = [k for k in new if old.get(k, default.get(k)) != new[k]]
            if diff:
                raise TrainingError(
                    f"--resume: setting {diff[0]!r} differs from the run in {self.run} "
                    f"({old.get(diff[0], default.get(diff[0]))!r} there, {new[diff[0]]!r} now)"
                )
            self.start = (st.stage_index, st.stage_step, st.global_step)
        elif ckpt.latest_checkpoint(self.run) is not None:
            raise TrainingError(
                f"{self.run} already holds a run; pass --resume to continue it or "
                "choose another --output"
            )
        self.resume_from = resume_from
        self.model = _build_model(cfg, resume_from)
        _add_scene_head(self.model, cfg)
        self.average = None
        if cfg.ema:
            try:
                self.average = (
                    ema.resume(self.model, resume_from, cfg.ema)
                    if resume_from is not None
                    else ema.WeightAverage(self.model, cfg.ema)
                )
            except (ValueError, FileNotFoundError) as exc:
                raise TrainingError(f"--ema {cfg.ema}: {exc}") from exc
        horizon = self.model.cfg.action.horizon
        try:
            specs = dataset_specs(cfg)
        except ValueError as exc:
            raise TrainingError(str(exc)) from exc
        with_depth = "depth" in self.model.aux_heads
        try:
            self.sources = build_sources(
                specs,
                horizon,
                self.model.cfg.image_size,
                with_depth,
                cfg.frame_cache,
                cfg.progress and self.acc.is_main_process,
                _stream_config(cfg),
            )
        except (DataError, KeyError) as exc:
            raise TrainingError(str(exc).strip('"')) from exc
        episodes = [s for s in self.sources if isinstance(s, EpisodeSource)]
        self.mixtures = {}
        for idx, stage in self.stages:
            try:
                self.mixtures[idx] = Mixture.for_stage(self.sources, stage)
            except DataError as exc:
                raise TrainingError(str(exc)) from exc
        needs_fast = any("fast" in s.action_modes for _, s in self.stages)
        if needs_fast and self.model.fast_tokenizer is None and episodes:
            from embodia.models.fast_tokenizer import FastActionTokenizer

            if cfg.fast_tokenizer is not None:
                self.model.fast_tokenizer = FastActionTokenizer.load(cfg.fast_tokenizer)
            else:
                self.model.fast_tokenizer = _fit_fast(
                    episodes[0], horizon, self.model.special.num_fast
                )
        if episodes:
            self.model.fast_slots = episodes[0].embodiment.indices.tolist()
        for idx, stage in self.stages:
            _check_stage(
                self.model, stage, self.mixtures[idx], self.model.fast_tokenizer is not None
            )
        self.normalizers = {s.name: s.normalizer.to_dict() for s in episodes}
        if cfg.gradient_checkpointing:
            self.model.backbone.hf.activation_checkpointing_enable()

    def _policy_configs(self) -> dict:
        """policy.json of each episodes dataset, the first one's first (it is the default one
        served); a run on conversations only has none."""
        from embodia.policy_config import PolicyConfig

        return {
            src.name: PolicyConfig(
                embodiment=src.embodiment.name,
                embodiment_spec=src.embodiment.to_dict(),
                cameras=src.camera_names,
                state_key=src.spec.state_key,
                action_key=src.spec.action_key,
                normalizer=src.normalizer.to_dict(),
                aliases=src.spec.aliases,
                flow_noise_scale=self.cfg.flow_noise_scale,
            )
            for src in self.sources
            if src.kind == "episodes"
        }

    # ------------------------------------------------------------------ the loop

    def train(self) -> Path:
        self.prepare()
        cfg, acc = self.cfg, self.acc
        if acc.is_main_process:
            self.run.mkdir(parents=True, exist_ok=True)
            (self.run / "run.json").write_text(json.dumps(_json_config(cfg), indent=2))
        if acc.log_with:
            flat = {
                k: (v if isinstance(v, int | float | str | bool) else str(v))
                for k, v in _json_config(cfg).items()
            }
            acc.init_trackers(self.run.name, config=flat)
        first_stage, first_step, global_step = self.start
        last = None
        for idx, stage in self.stages:
            if idx < first_stage:
                continue
            start_step = first_step if idx == first_stage else 0
            if start_step >= stage.steps:
                continue
            global_step, last = self._train_stage(idx, stage, start_step, global_step)
        acc.wait_for_everyone()
        if acc.is_main_process:
            from embodia.training.report import write_loss_curves

            write_loss_curves(self.run / "metrics.jsonl", self.run / "loss_curves.png")
        acc.end_training()
        return last

    def stage_loader(self, idx: int, stage: StageConfig, start_step: int):
        """This process's batches for steps [start_step, stage.steps) of a stage (after
        :meth:`prepare`); the benchmarks time exactly this loader."""
        cfg, acc, model = self.cfg, self.acc, self.model
        micro = cfg.batch_size // cfg.grad_accum
        mcfg = model.cfg.action
        dataset = StageDataset(
            self.mixtures[idx],
            cfg.seed,
            idx,
            2**62,
            model.fast_tokenizer,
            stage.image_shift,
            Position(micro, acc.num_processes),
        )
        collator = Collator(
            model.builder,
            model.image_processor,
            model.cfg.image_size,
            TEMPLATE_DIM,
            mcfg.horizon,
            model.special.pad,
            DropConfig(**stage.level_drop),
            mcfg.time_beta_alpha,
            mcfg.time_beta_beta,
        )
        sampler = StepSampler(
            start_step * cfg.grad_accum,
            stage.steps * cfg.grad_accum,
            micro,
            acc.process_index,
            acc.num_processes,
        )
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=micro // acc.num_processes,
            sampler=sampler,
            collate_fn=collator,
            num_workers=cfg.workers,
            persistent_workers=False,
            multiprocessing_context="fork" if cfg.workers and os.name == "posix" else None,
        )

    def _train_stage(self, idx: int, stage: StageConfig, start_step: int, global_step: int):
        cfg, acc = self.cfg, self.acc
        model = self.model
        set_trainable(model, stage.trainable)
        model.cfg.loss_weights = {
            k: float(stage.loss_weights.get(k, 0.0))
            for k in {*LOSS_TERMS, *stage.loss_weights} - {"loss"}
        }
        opt, sched = _optimizer(model, stage)
        if self.resume_from is not None and start_step > 0:
            ckpt.load_optimizer_state(self.resume_from, opt, sched)
        wrapped, opt = acc.prepare(model, opt)
        loader = self.stage_loader(idx, stage, start_step)
        bar = tqdm(
            total=stage.steps,
            initial=start_step,
            desc=f"stage {idx} {stage.name}",
            disable=not (cfg.progress and acc.is_main_process),
            unit="step",
        )
        step, seen, t0, last = start_step, 0, time.perf_counter(), None
        wrapped.train()
        for batch in loader:
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            with acc.accumulate(wrapped):
                losses = wrapped(batch)
                finite = torch.tensor(
                    float(all(torch.isfinite(v).all() for v in losses.values())), device=acc.device
                )
                if acc.reduce(finite, reduction="sum").item() < acc.num_processes:
                    bad = {k: float(v.detach()) for k, v in losses.items()}
                    bar.close()
                    raise TrainingError(
                        f"non-finite loss at stage {stage.name!r} step {step + 1} (global {global_step + 1}): "
                        f"{bad}; stopped. The last good checkpoint is {ckpt.latest_checkpoint(self.run)}"
                    )
                acc.backward(losses["loss"])
                if acc.sync_gradients and cfg.max_grad_norm:
                    acc.clip_grad_norm_(
                        [p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm
                    )
                opt.step()
                opt.zero_grad(set_to_none=True)
            seen += batch["input_ids"].shape[0] * acc.num_processes
            if not acc.sync_gradients:
                continue
            sched.step()
            step += 1
            global_step += 1
            if self.average is not None:
                self.average.update(model, global_step)
            terms = self._reduce(losses)
            rate = seen / max(1e-9, time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.4f}", samples_s=f"{rate:.1f}")
            if step % cfg.log_every == 0 or step == stage.steps or step == start_step + 1:
                self._log(idx, stage, step, global_step, terms, sched.get_last_lr()[0], rate)
            if step % cfg.checkpoint_every == 0 or step == stage.steps:
                last = self._save(idx, step, global_step, opt, sched)
        bar.close()
        acc.free_memory()
        self.model = acc.unwrap_model(wrapped)
        return global_step, last

    def _reduce(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Mean of each loss term over processes (a term missing on a process is left out)."""
        keys = sorted({*LOSS_TERMS, *self.model.aux_heads})
        vals = torch.tensor(
            [float(losses[k].detach()) if k in losses else 0.0 for k in keys],
            device=self.acc.device,
        )
        cnt = torch.tensor([1.0 if k in losses else 0.0 for k in keys], device=self.acc.device)
        vals, cnt = self.acc.reduce(vals, reduction="sum"), self.acc.reduce(cnt, reduction="sum")
        return {k: float(v / c) for k, v, c in zip(keys, vals, cnt, strict=True) if c > 0}

    def _log(self, idx, stage, step, global_step, terms, lr, rate) -> None:
        row = {
            "global_step": global_step,
            "stage": idx,
            "stage_name": stage.name,
            "step": step,
            "lr": lr,
            "samples_per_s": rate,
            **terms,
        }
        if self.acc.log_with:
            self.acc.log(
                {f"train/{k}": v for k, v in terms.items()}
                | {"train/lr": lr, "train/samples_per_s": rate},
                step=global_step,
            )
        if self.acc.is_main_process:
            with open(self.run / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def _save(self, idx, step, global_step, opt, sched) -> Path | None:
        self.acc.wait_for_everyone()
        path = None
        if self.acc.is_main_process:
            state = ckpt.TrainerState(idx, step, global_step, _json_config(self.cfg))
            path = ckpt.save_checkpoint(
                self.run,
                f"step-{global_step:07d}",
                self.acc.unwrap_model(self.model),
                opt.optimizer if hasattr(opt, "optimizer") else opt,
                sched,
                state,
                self.normalizers,
                self._policy_configs(),
                keep=self.cfg.keep_checkpoints,
                average=self.average,
            )
        self.acc.wait_for_everyone()
        return path


def train(cfg: TrainConfig) -> Path:
    return Trainer(cfg).train()
