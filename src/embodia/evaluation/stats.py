"""Binomial confidence intervals for success rates.

Wilson's score interval, not the normal approximation: with 10 episodes and 10 successes the
normal interval is [1, 1], which claims a certainty ten coin flips cannot give; Wilson's is
[0.72, 1].
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there is no trial."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no 1e-17 residue
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def rate_summary(successes: int, n: int) -> dict[str, float | int | list[float]]:
    """``{"successes", "episodes", "rate", "ci95"}``, the block every report uses."""
    lo, hi = wilson_interval(successes, n)
    return {
        "successes": int(successes),
        "episodes": int(n),
        "rate": successes / n if n else float("nan"),
        "ci95": [lo, hi],
    }
