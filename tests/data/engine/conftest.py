"""Data-engine fixtures: one small generated dataset, shared by the modules that compare against it
(resume, kill, the Ray backend: each must reproduce it exactly)."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_generation import SMALL

from embodia.configs.data import GenerateConfig
from embodia.data.engine import generate as gen


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "ds"
    gen.generate(GenerateConfig(output=out, **SMALL))
    return out
