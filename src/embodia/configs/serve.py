"""Typed config for `embodia serve`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class ServeConfig:
    """Serve a checkpoint to robots over WebSocket (openpi's wire protocol: msgpack + numpy)."""

    checkpoint: Path | None = None
    """Checkpoint: a step directory, a run directory (``runs/x``), its ``checkpoints/`` or ``checkpoints/latest``."""
    robot: str | None = None
    """A run trained on several robots' datasets: the dataset (its name in the run) whose robot to
    serve, with its embodiment, cameras and statistics; default the first dataset's."""
    preset: str | None = None
    """Instead of a checkpoint: a model preset with random weights (e.g. tiny), for trying the loop."""
    cameras: tuple[str, ...] = ("corner", "gripperPOV")
    """With --preset only: the cameras the demo policy expects (a checkpoint names its own)."""
    host: str = "127.0.0.1"
    """Address to bind; loopback by default. Use 0.0.0.0 to accept other machines (set an API key)."""
    port: int = 8000
    """TCP port; 0 picks a free one (the log says which)."""
    api_key: str | None = None
    """Require this key ('Authorization: Api-Key <key>' or 'X-API-Key'); default: $EMBODIA_API_KEY."""
    max_message_mb: float = 32.0
    """Larger requests get an error reply; above twice this the connection is closed (1009)."""
    device: str = "cpu"
    """Torch device of the model (cpu, cuda, cuda:1, ...)."""
    threads: int | None = None
    """torch intra-op threads (default: torch's choice)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Logging level of the server (every refused request is logged at warning)."""


@dataclass
class ExportConfig:
    """Write a checkpoint for serving: the model and policy.json, no optimizer or trainer state.

    With --merge, LoRA adapters (``embodia train --lora``) are folded into the backbone's weights:
    the result is a plain checkpoint that ``embodia serve`` and ``embodia eval`` load, with the
    same actions as the adapted model."""

    checkpoint: Path
    """Checkpoint: a step directory, a run directory, its ``checkpoints/`` or ``latest``."""
    output: Path
    """Directory to write (refused if it exists, unless --overwrite)."""
    merge: bool = False
    """Fold LoRA adapters into the weights (the checkpoint must have adapters)."""
    overwrite: bool = False
