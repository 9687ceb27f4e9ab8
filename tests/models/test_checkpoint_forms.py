"""Every command takes a checkpoint in the same four forms (step dir, run dir, checkpoints/, the
``latest`` pointer file), through one resolver used by Policy.load and EmbodiedModel.from_pretrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embodia.data.normalize import QuantileNormalizer
from embodia.models.checkpoint import resolve_checkpoint
from embodia.models.embodied import EmbodiedModel
from embodia.policy import Policy
from embodia.policy_config import PolicyConfig


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("forms") / "run"
    step = run / "checkpoints" / "step-0000002"
    norm = QuantileNormalizer(
        {
            k: {"q01": np.full(4, -1.0), "q99": np.full(4, 1.0)}
            for k in ("observation.state", "action")
        }
    )
    policy = Policy(
        EmbodiedModel.from_preset("tiny"),
        PolicyConfig("metaworld-sawyer", ("corner",), norm.to_dict()),
    )
    policy.save(step)
    (run / "checkpoints" / "step-0000001").mkdir()  # an older step: never chosen
    (run / "checkpoints" / "latest").write_text("step-0000002\n")
    return run


def test_all_forms_resolve_to_the_latest_step(run):
    step = run / "checkpoints" / "step-0000002"
    for form in (step, run, run / "checkpoints", run / "checkpoints" / "latest"):
        assert resolve_checkpoint(form) == step, form


def test_policy_and_model_load_from_the_pointer_file(run):
    latest = run / "checkpoints" / "latest"
    assert Policy.load(latest).config.cameras == ("corner",)
    assert EmbodiedModel.from_pretrained(latest).cfg.name == "tiny"


def test_bad_forms_name_the_path(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope")
    other = tmp_path / "weights.bin"
    other.write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        resolve_checkpoint(other)
    dangling = tmp_path / "r" / "checkpoints"
    dangling.mkdir(parents=True)
    (dangling / "latest").write_text("step-9")
    with pytest.raises(FileNotFoundError, match="names step-9"):
        resolve_checkpoint(tmp_path / "r")
