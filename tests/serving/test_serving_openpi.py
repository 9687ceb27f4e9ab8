"""The real openpi-client (PyPI) against an embodia server, run in its own venv (numpy<2).

`scripts/setup_openpi_client_venv.sh` builds `.cache/openpi-client-venv` (CI runs it before the
tests); without it this test skips and says so rather than reaching for the network itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from serving_helpers import API_KEY

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = (
    Path(os.environ.get("OPENPI_CLIENT_VENV", ROOT / ".cache/openpi-client-venv")) / "bin/python"
)
SCRIPT = Path(__file__).with_name("openpi_client_script.py")

pytestmark = pytest.mark.skipif(
    not VENV_PY.exists(),
    reason=f"no openpi-client venv at {VENV_PY.parent.parent}; "
    "run scripts/setup_openpi_client_venv.sh (needs PyPI once)",
)


def run_client(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_PY), str(SCRIPT), "127.0.0.1", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ""},  # never embodia's packages, only the venv's
    )


def test_openpi_websocket_client_policy(keyed_server):
    proc = run_client(keyed_server.port, API_KEY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["numpy"].startswith("1.")  # really the numpy<2 client side
    meta = out["metadata"]
    assert meta["server"] == "embodia" and meta["action_shape"] == [32, 4]
    assert meta["cameras"] == ["corner", "gripperPOV"]
    assert out["actions_shape"] == [32, 4] and out["actions_dtype"] == "float32"
    assert out["actions_finite"] is True
    assert out["server_timing"] == ["decode_ms", "infer_ms", "queue_ms"]
    # openpi's client raises on an error reply; the connection then serves the next request
    assert "invalid_observation" in out["nan_error"] and "NaN" in out["nan_error"]
    assert out["after_error_shape"] == [32, 4]
    # openpi's own ActionChunkBroker (dm-tree) slices our chunks step by step
    assert out["broker_step_shapes"] == [[4], [4], [4]]


def test_openpi_client_with_a_wrong_key_is_refused(keyed_server):
    proc = run_client(keyed_server.port, "wrong-key")
    assert proc.returncode != 0 and "HTTP 401" in proc.stderr
