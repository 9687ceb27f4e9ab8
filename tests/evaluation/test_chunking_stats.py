"""Chunk execution (receding horizon, temporal ensembling) and Wilson intervals, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.evaluation.chunking import ChunkExecutor
from embodia.evaluation.stats import rate_summary, wilson_interval


def test_receding_horizon_executes_k_then_asks():
    ex = ChunkExecutor(execute_steps=2)
    chunk = np.arange(8, dtype=float).reshape(4, 2)
    assert ex.needs_query()
    ex.add(0, chunk)
    assert not ex.needs_query()
    np.testing.assert_array_equal(ex.action(0), [0, 1])
    np.testing.assert_array_equal(ex.action(1), [2, 3])
    assert ex.needs_query()  # 2 executed: ask from the newest observation
    ex.add(2, chunk + 10)
    np.testing.assert_array_equal(ex.action(2), [10, 11])


def test_whole_chunk_by_default_and_short_chunks():
    ex = ChunkExecutor()
    ex.add(0, np.zeros((3, 1)))
    for t in range(3):
        assert not ex.needs_query()
        ex.action(t)
    assert ex.needs_query()
    ex = ChunkExecutor(execute_steps=5)  # longer than the chunk: capped at its length
    ex.add(0, np.zeros((1, 4)))
    ex.action(0)
    assert ex.needs_query()


def test_temporal_ensembling_weights_oldest_first():
    m = 0.5
    ex = ChunkExecutor(ensemble=m)
    ex.add(0, np.array([[0.0], [10.0], [20.0]]))
    assert ex.action(0)[0] == 0.0
    assert ex.needs_query()  # every step by default
    ex.add(1, np.array([[4.0], [6.0], [8.0]]))
    w = np.exp(-m * np.arange(2))  # [1, e^-0.5]: the older chunk weighs more
    assert ex.action(1)[0] == pytest.approx((w[0] * 10 + w[1] * 4) / w.sum())
    ex.add(2, np.array([[1.0], [1.0], [1.0]]))
    w = np.exp(-m * np.arange(3))
    assert ex.action(2)[0] == pytest.approx((w[0] * 20 + w[1] * 6 + w[2] * 1) / w.sum())


def test_bad_chunks_are_refused():
    with pytest.raises(ValueError):
        ChunkExecutor(execute_steps=0)
    with pytest.raises(ValueError):
        ChunkExecutor().add(0, np.zeros(4))
    with pytest.raises(RuntimeError):
        ChunkExecutor().action(0)


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == 1.0
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert rate_summary(3, 4)["rate"] == 0.75
    assert wilson_interval(0, 0) == (0.0, 1.0)
