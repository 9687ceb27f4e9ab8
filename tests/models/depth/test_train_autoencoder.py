"""`embodia depth train-autoencoder` on the engine's depth: files, report, reuse by the model."""

from __future__ import annotations

import json

from embodia.cli import main
from embodia.configs.depth import CodecConfig, depth_preset
from embodia.configs.model import preset
from embodia.models.depth.autoencoder import CONFIG_FILE, WEIGHTS_FILE
from embodia.models.embodied import EmbodiedModel


def test_command_trains_saves_and_reports(engine_dataset, tmp_path, capsys):
    out = tmp_path / "ae"
    args = ["depth", "train-autoencoder", "--dataset", str(engine_dataset), "--output", str(out)]
    args += ["--steps", "30", "--batch-size", "4", "--frame-stride", "8", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "AbsRel" in printed and str(out) in printed
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert (out / WEIGHTS_FILE).is_file()
    assert meta["target"] == {
        "target": "depth",
        "encoding": "colormap",
        "normalization": "percentile",
        "near": 0.02,
        "far": 4.0,
    }
    assert meta["scaling_factor"] > 0 and 0 <= meta["report"]["abs_rel"] < 10
    assert not list(tmp_path.glob(".ae.tmp-*"))  # staged and renamed: nothing left behind
    cfg = preset("tiny")
    cfg.depth = depth_preset("tiny", codec=CodecConfig(path=str(out)))
    model = EmbodiedModel(cfg)
    assert model.aux_heads["depth"].codec.trained_for["encoding"] == "colormap"


def test_command_reports_a_bad_dataset(tmp_path, capsys):
    args = ["depth", "train-autoencoder", "--dataset", str(tmp_path / "missing")]
    assert main([*args, "--output", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "error" in capsys.readouterr().err
