"""Shared helpers for the benchmarks: they run the same real stack as the tests."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hub import RunningHub, free_port  # noqa: E402,F401
from standin import start_standin  # noqa: E402,F401


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {1000 * percentile(values, 50):.1f} ms, p95 {1000 * percentile(values, 95):.1f} ms, "
        f"mean {1000 * statistics.mean(values):.1f} ms (n={len(values)})"
    )
