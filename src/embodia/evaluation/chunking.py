"""Executing action chunks in a closed loop: receding horizon or temporal ensembling.

A chunk policy predicts H actions from one observation. Two ways to turn that into one action per
control step, both recorded in the protocol because they change success rates:

- receding horizon (openpi, LeRobot): execute the first ``execute_steps`` actions of a chunk, then
  ask again from the newest observation;
- temporal ensembling (ACT): ask every ``execute_steps`` steps (usually every step) and execute, at
  step t, the weighted mean of every chunk's prediction for t, weights exp(-m * i) with i = 0 the
  *oldest* prediction (ACT's choice: older predictions are trusted more, which smooths motion).

Every policy, the scripted expert and the random one included, goes through this class, so the
harness itself is what the reference policies validate.
"""

from __future__ import annotations

import numpy as np


class ChunkExecutor:
    """Per-episode state: which chunk is active and which action comes next."""

    def __init__(self, execute_steps: int | None = None, ensemble: float | None = None) -> None:
        if execute_steps is not None and execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {execute_steps}")
        if ensemble is not None and ensemble < 0:
            raise ValueError(f"the ensembling coefficient must be >= 0, got {ensemble}")
        self.execute_steps = execute_steps
        self.ensemble = ensemble
        self.reset()

    def reset(self) -> None:
        self._chunks: list[tuple[int, np.ndarray]] = []  # (step it was predicted at, (H, dof))
        self._since_query: int | None = None  # steps executed since the last chunk arrived
        self.queries = 0

    def _stride(self, horizon: int) -> int:
        if self.execute_steps is None:
            return 1 if self.ensemble is not None else horizon
        return min(self.execute_steps, horizon)

    def needs_query(self) -> bool:
        """True when the next action needs a new chunk (from the current observation)."""
        if not self._chunks or self._since_query is None:
            return True
        horizon = len(self._chunks[-1][1])
        return self._since_query >= self._stride(horizon)

    def add(self, step: int, chunk: np.ndarray) -> None:
        """A chunk predicted from the observation at ``step``."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or len(chunk) == 0:
            raise ValueError(f"a chunk must have shape (H, dof) with H >= 1, got {chunk.shape}")
        if self.ensemble is None:
            self._chunks = [(step, chunk)]
        else:  # keep every chunk that still covers a future step
            self._chunks = [(s, c) for s, c in self._chunks if s + len(c) > step]
            self._chunks.append((step, chunk))
        self._since_query = 0
        self.queries += 1

    def action(self, step: int) -> np.ndarray:
        """The action to execute at ``step`` (consumes it)."""
        if not self._chunks:
            raise RuntimeError("no chunk: call add() when needs_query() is true")
        if self.ensemble is None:
            start, chunk = self._chunks[-1]
            i = step - start
            if not 0 <= i < len(chunk):
                raise RuntimeError(f"step {step} is outside the chunk predicted at step {start}")
            out = chunk[i]
        else:
            preds = [c[step - s] for s, c in self._chunks if 0 <= step - s < len(c)]
            if not preds:
                raise RuntimeError(f"no chunk covers step {step}")
            w = np.exp(-self.ensemble * np.arange(len(preds)))  # oldest first, as ACT
            out = (w[:, None] * np.stack(preds)).sum(0) / w.sum()
        self._since_query = (self._since_query or 0) + 1
        return np.array(out, dtype=np.float64)
