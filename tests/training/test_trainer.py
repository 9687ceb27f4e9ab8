"""`embodia train`: stages train exactly their groups, resume reproduces the losses, 2-process DDP
matches 1 process, bad data and impossible stages are refused up front, NaN stops the run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from small_dataset import generate_small

from embodia.configs.train import TrainConfig
from embodia.models.embodied import EmbodiedModel
from embodia.training import state as ckpt
from embodia.training.groups import resolve
from embodia.training.report import read_metrics
from embodia.training.trainer import TrainingError, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_small(tmp_path_factory.mktemp("data") / "ds")


@pytest.fixture(scope="module")
def init_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg_path = tmp_path_factory.mktemp("init") / "tiny"
    from embodia.configs.model import preset

    mcfg = preset("tiny")
    mcfg.action.horizon = 8
    EmbodiedModel(mcfg).save_pretrained(cfg_path)
    return cfg_path


def config(dataset, tmp_path, **kw) -> TrainConfig:
    base = dict(
        datasets=(dataset,),
        output=tmp_path / "run",
        batch_size=4,
        workers=0,
        steps_per_stage=2,
        checkpoint_every=100,
        log_every=1,
        log_with="none",
        progress=False,
        horizon=8,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_each_wall_oss_stage_trains_exactly_its_groups(dataset, init_ckpt, tmp_path, stage):
    cfg = config(
        dataset,
        tmp_path,
        init=init_ckpt,
        horizon=None,
        curriculum="wall-oss",
        stages=str(stage),
        steps_per_stage=1,
    )
    last = train(cfg)
    before, after = _weights(init_ckpt), _weights(last)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    from embodia.configs.train import CURRICULA

    groups = CURRICULA["wall-oss"](1)[stage - 1].trainable
    model = EmbodiedModel.from_pretrained(init_ckpt)
    allowed = {p for ps in resolve(model, groups).values() for p in ps}
    # tied weights: the checkpoint keeps the lm_head name of the shared embedding matrix
    tied = {"backbone.hf.lm_head.weight": "backbone.hf.model.language_model.embed_tokens.weight"}
    changed = {tied.get(k, k) for k in changed}
    assert changed, "the stage changed nothing"
    assert changed <= allowed, sorted(changed - allowed)[:5]


def gem_init(depth_codec: Path, directory: Path, dit: bool) -> Path:
    """A tiny GEM model with a depth head (and GEM-VLA's DiT action expert when ``dit``)."""
    from embodia.configs.depth import CodecConfig, depth_preset, gem_action_dit
    from embodia.configs.model import preset

    mcfg = preset("tiny")
    mcfg.action.horizon = 8
    mcfg.depth = depth_preset("tiny", codec=CodecConfig(path=str(depth_codec)))
    if dit:
        mcfg.action.expert, mcfg.action.dit = "gem-dit", gem_action_dit("tiny")
    torch.manual_seed(0)
    EmbodiedModel(mcfg).save_pretrained(directory)
    return directory


def variant_kwargs(
    variant: str, tmp_path: Path, depth_codec: Path, steps: int, flow_stage_file
) -> dict:
    """Training settings of a test variant: the in-backbone flow expert alone, with GEM's depth
    head (depth loss 0.1), or GEM-VLA's DiT expert with the depth head."""
    if variant == "flow":
        return {"curriculum_file": flow_stage_file(steps=steps)}
    init = gem_init(depth_codec, tmp_path / f"init-{variant}", dit=variant == "gem-dit")
    return {
        "init": init,
        "horizon": None,
        "curriculum_file": flow_stage_file(steps=steps, depth=0.1),
    }


@pytest.mark.parametrize(
    ("variant", "ema"), [("flow", 0.0), ("flow", 0.9), ("gem", 0.0), ("gem-dit", 0.0)]
)
def test_resume_after_interrupt_reproduces_the_losses(
    dataset, depth_codec, tmp_path, monkeypatch, variant, ema, flow_stage_file
):
    """Every random number of a step (flow time and noise, the depth generator's noise level,
    noise and condition dropout, the DiT expert's time and noise) is drawn from the sample's own
    stream, so a resumed run computes exactly the uninterrupted run's losses. With EMA on, resume
    also continues the optimizer's own weights and the average."""
    kw = variant_kwargs(variant, tmp_path, depth_codec, 6, flow_stage_file)
    full = config(dataset, tmp_path / "a", checkpoint_every=3, ema=ema, **kw)
    train(full)
    terms = ("flow", "depth") if variant != "flow" else ("flow",)
    expected = [[r[t] for t in terms] for r in read_metrics(full.output / "metrics.jsonl")]

    interrupted = config(dataset, tmp_path / "b", checkpoint_every=3, ema=ema, **kw)
    real_save = ckpt.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the step-3 checkpoint

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert ckpt.load_trainer_state(ckpt.latest_checkpoint(interrupted.output)).stage_step == 3
    torch.manual_seed(1234)  # the global RNG is not what it was: nothing may depend on it
    train(config(dataset, tmp_path / "b", checkpoint_every=3, resume=True, ema=ema, **kw))
    rows = read_metrics(interrupted.output / "metrics.jsonl")
    got = {r["global_step"]: [r[t] for t in terms] for r in rows}
    assert sorted(got) == list(range(1, 7))
    np.testing.assert_allclose([got[s] for s in range(1, 7)], expected, rtol=1e-5, atol=1e-6)
    served_full = _weights(ckpt.latest_checkpoint(full.output))
    served_resumed = _weights(ckpt.latest_checkpoint(interrupted.output))
    for name, w in served_full.items():
        torch.testing.assert_close(served_resumed[name], w, rtol=1e-5, atol=1e-6)


def test_an_ema_checkpoint_serves_the_average_of_the_weights(dataset, tmp_path, flow_stage_file):
    from safetensors.torch import load_file

    from embodia.training.ema import TRAINING_WEIGHTS, ema_decay

    stages = flow_stage_file(steps=2)
    last = train(config(dataset, tmp_path / "e", curriculum_file=stages, ema=0.9))
    served, own = _weights(last), load_file(str(last / TRAINING_WEIGHTS))
    moved = [k for k in own if not torch.equal(own[k], served[k])]
    assert moved, "the served weights are the optimizer's own, not their average"
    # two steps from w0: avg = w0 + (1-d1)(w1-w0) ... so it lies strictly between w0 and w2
    assert ema_decay(0.9, 1) == pytest.approx(2 / 11) and ema_decay(0.9, 10**6) == 0.9
    model = EmbodiedModel.from_pretrained(last)  # eval / serve load the average as plain weights
    name = moved[0]
    torch.testing.assert_close(model.state_dict()[name], served[name])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli_train(args: list[str], nproc: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "embodia.cli", "train", *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            f"--master_port={_free_port()}",
            "-m",
            "embodia.cli",
            "train",
            *args,
        ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("variant", ["flow", "gem", "gem-dit"])
def test_two_process_ddp_matches_one_process(
    dataset, init_ckpt, depth_codec, tmp_path, variant, flow_stage_file
):
    """Same global batch: per-sample data and every random number (models/noise.py) do not
    depend on the world size, and each loss has the same number of terms per sample, so the
    per-step losses agree. Ranks seeded alike but drawing from a global RNG would give both ranks
    the same noise for different samples, and these losses would differ."""
    kw = variant_kwargs(variant, tmp_path, depth_codec, 3, flow_stage_file)
    init = kw.get("init", init_ckpt)
    terms = ("flow", "depth") if variant != "flow" else ("flow",)
    runs = {}
    for nproc in (1, 2):
        out = tmp_path / f"w{nproc}"
        _cli_train(
            [
                "--datasets",
                str(dataset),
                "--output",
                str(out),
                "--init",
                str(init),
                "--curriculum-file",
                str(kw["curriculum_file"]),
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--log-every",
                "1",
                "--log-with",
                "none",
                "--no-progress",
            ],
            nproc,
        )
        runs[nproc] = [[r[t] for t in terms] for r in read_metrics(out / "metrics.jsonl")]
    assert len(runs[1]) == 3
    np.testing.assert_allclose(runs[2], runs[1], rtol=1e-4, atol=1e-5)


def test_missing_normalisation_stats_fail_loudly(dataset, tmp_path):
    broken = tmp_path / "nostats"
    shutil.copytree(dataset, broken)
    stats_path = broken / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text())
    del stats["action"]
    stats_path.write_text(json.dumps(stats))
    with pytest.raises(TrainingError, match="action"):
        train(config(broken, tmp_path, curriculum="actions"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_corrupt_data_fails_with_file_and_field(dataset, tmp_path):
    broken = tmp_path / "badqa"
    shutil.copytree(dataset, broken)
    conv = broken / "conversations" / "train.jsonl"
    lines = conv.read_text().splitlines()
    lines[2] = '{"image": "x.png", "conversations": "oops"}'
    conv.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainingError, match=r"train\.jsonl:3.*conversations"):
        train(config(broken, tmp_path, curriculum="actions"))
    with pytest.raises(TrainingError, match=r"no such dataset|does not exist|info\.json"):
        train(config(tmp_path / "nowhere", tmp_path, curriculum="actions"))


def test_impossible_stage_is_refused_before_any_work(dataset, tmp_path, flow_stage_file):
    with pytest.raises(TrainingError, match="depth"):
        train(config(dataset, tmp_path, curriculum="gem"))
    bad = flow_stage_file(steps=2, trainable=("no_such_group",))
    with pytest.raises(ValueError, match="no_such_group"):
        train(config(dataset, tmp_path, curriculum_file=bad))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    dataset, tmp_path, monkeypatch, flow_stage_file
):
    real = EmbodiedModel.compute_loss
    calls = {"n": 0}

    def flaky(self, batch, generator=None):
        calls["n"] += 1
        out = real(self, batch, generator)
        if calls["n"] == 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(EmbodiedModel, "compute_loss", flaky)
    cfg = config(dataset, tmp_path, curriculum_file=flow_stage_file(steps=6), checkpoint_every=2)
    with pytest.raises(TrainingError, match=r"non-finite loss.*step 4"):
        train(cfg)
    latest = ckpt.latest_checkpoint(cfg.output)
    assert ckpt.load_trainer_state(latest).global_step == 2
    EmbodiedModel.from_pretrained(latest)  # still loadable


def test_a_short_run_learns_and_saves_a_loadable_checkpoint(dataset, tmp_path):
    cfg = config(dataset, tmp_path, curriculum="actions", steps_per_stage=60, batch_size=8)
    last = train(cfg)
    rows = read_metrics(cfg.output / "metrics.jsonl")
    for term in ("flow", "fast", "text"):
        first = np.mean([r[term] for r in rows[:3] if term in r])
        end = np.mean([r[term] for r in rows[-5:] if term in r])
        assert end < 0.7 * first, (term, first, end)
    model = EmbodiedModel.from_pretrained(last)
    assert model.fast_tokenizer is not None
    assert (cfg.output / "loss_curves.png").exists()
    assert json.loads((last / ckpt.NORMALIZERS).read_text())


def test_the_served_flow_noise_scale_is_written_to_policy_json(dataset, tmp_path, flow_stage_file):
    """``--flow-noise-scale`` travels into policy.json (what eval and serve then sample with); a
    negative one is refused before any work, not when policy.json is written at the end."""
    from embodia.policy_config import PolicyConfig

    stages = flow_stage_file(steps=1)
    last = train(config(dataset, tmp_path / "a", curriculum_file=stages, flow_noise_scale=0.0))
    assert PolicyConfig.load(last).flow_noise_scale == 0.0
    with pytest.raises(TrainingError, match="flow-noise-scale"):
        train(config(dataset, tmp_path / "b", curriculum_file=stages, flow_noise_scale=-1.0))
    assert not (tmp_path / "b" / "checkpoints").exists()


def test_image_size_sets_the_model_resolution_and_bad_sizes_are_refused(
    dataset, tmp_path, flow_stage_file
):
    stages = flow_stage_file(steps=1)
    last = train(config(dataset, tmp_path, curriculum_file=stages, image_size=96))
    assert EmbodiedModel.from_pretrained(last).cfg.image_size == 96
    with pytest.raises(TrainingError, match=r"--image-size 72.*multiple of patch x merge = 16"):
        train(config(dataset, tmp_path / "bad", curriculum_file=stages, image_size=72))
    assert not (tmp_path / "bad" / "run" / "checkpoints").exists()


@pytest.fixture(scope="module")
def depth_codec(dataset, tmp_path_factory) -> Path:
    """A (barely) trained depth autoencoder: its quality does not matter for these tests."""
    from embodia.cli import main as cli_main

    out = tmp_path_factory.mktemp("ae") / "ae"
    code = cli_main(
        [
            "depth",
            "train-autoencoder",
            "--dataset",
            str(dataset),
            "--output",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--image-size",
            "64",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_each_gem_stage_trains_exactly_its_groups_and_never_the_codec(
    dataset, depth_codec, tmp_path, stage
):
    from embodia.configs.train import CURRICULA

    cfg = config(
        dataset,
        tmp_path,
        curriculum="gem",
        stages=str(stage),
        steps_per_stage=1,
        depth_codec=depth_codec,
        checkpoint_every=1,
    )
    init = tmp_path / "init"
    model = trainer_build_model(cfg)
    model.save_pretrained(init)
    last = train(
        config(
            dataset,
            tmp_path,
            curriculum="gem",
            stages=str(stage),
            steps_per_stage=1,
            init=init,
            horizon=None,
        )
    )
    before, after = _weights(init), _weights(last)
    tied = {"backbone.hf.lm_head.weight": "backbone.hf.model.language_model.embed_tokens.weight"}
    changed = {tied.get(k, k) for k in before if not torch.equal(before[k], after[k])}
    allowed = {
        p for ps in resolve(model, CURRICULA["gem"](1)[stage - 1].trainable).values() for p in ps
    }
    assert changed and changed <= allowed, sorted(changed - allowed)[:5]
    if stage == 2:  # the depth warm-up trains the generator and its metric scale (range head)
        assert any(".range_head." in k for k in changed), "the range head was not trained"
    assert not any(".codec." in k for k in changed)
    losses = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    assert "depth" in losses


def trainer_build_model(cfg: TrainConfig) -> EmbodiedModel:
    from embodia.training.trainer import _build_model

    return _build_model(cfg, None)


def test_the_depth_objective_picks_the_auxiliary_head(dataset, depth_codec, tmp_path):
    """`--depth-objective` is the GEM ablation switch: each objective builds its own head, and
    a codec trained on other targets, or none where one is needed, is refused by name."""
    regression = trainer_build_model(config(dataset, tmp_path, depth_objective="regression"))
    assert regression.aux_heads["depth"].regressor is not None
    assert regression.aux_heads["depth"].dit is None
    generated = trainer_build_model(config(dataset, tmp_path, depth_codec=depth_codec))
    assert generated.cfg.depth.objective == "depth" and generated.aux_heads["depth"].dit
    assert "depth" not in trainer_build_model(config(dataset, tmp_path)).aux_heads
    with pytest.raises(TrainingError, match="pass --depth-codec"):
        trainer_build_model(config(dataset, tmp_path, depth_objective="depth"))
    with pytest.raises(TrainingError, match="trained on 'depth' targets, not 'rgb'"):
        trainer_build_model(
            config(dataset, tmp_path, depth_objective="rgb", depth_codec=depth_codec)
        )


def test_an_init_checkpoint_gains_the_depth_head(dataset, depth_codec, tmp_path):
    """GEM starts from a pretrained VLM: --init with --depth-objective adds the head to it and
    keeps every pretrained weight."""
    init = tmp_path / "init"
    base = trainer_build_model(config(dataset, tmp_path))
    base.save_pretrained(init)
    model = trainer_build_model(
        config(dataset, tmp_path, init=init, horizon=None, depth_codec=depth_codec)
    )
    assert "depth" in model.aux_heads and model.cfg.depth.objective == "depth"
    before = base.state_dict()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(TrainingError, match="already has a depth head"):
        model.save_pretrained(tmp_path / "with-head")
        trainer_build_model(
            config(dataset, tmp_path, init=tmp_path / "with-head", horizon=None,
                   depth_objective="regression")
        )  # fmt: skip
