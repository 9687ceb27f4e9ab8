"""`embodia serve` as a user runs it: a real process, health check, clean exit on SIGINT/SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
from serving_helpers import make_obs

from embodia.cli import main
from embodia.serving.client import PolicyClient


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "embodia.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "EMBODIA_API_KEY": "from-env"},
    )


def wait_for_port(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, list[str]]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"on ws://127\.0\.0\.1:(\d+)", line)
        if m and line.startswith("embodia serve:"):
            return int(m.group(1)), lines
    raise AssertionError("server did not start:\n" + "".join(lines))


def test_serve_checkpoint_until_signal(checkpoint):
    proc = start("--checkpoint", checkpoint, "--port", "0", "--threads", "1")
    try:
        port, _ = wait_for_port(proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
        with PolicyClient("127.0.0.1", port, api_key="from-env", timeout=30) as c:  # key from env
            actions = c.infer(make_obs())["actions"]
        assert actions.shape == (32, 4) and np.isfinite(actions).all()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "shutting down" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_bad_sources(tmp_path, capsys):
    """In-process: the same argument parsing and error path as the command, no import cost."""
    for args in ([], ["--preset", "tiny", "--checkpoint", str(tmp_path)]):
        assert main(["serve", *args]) == 2
        assert "exactly one of --checkpoint" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path)]) == 2  # a directory without policy.json
    assert "no policy.json" in capsys.readouterr().err
