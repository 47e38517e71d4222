"""Shared helpers for the benchmarks: they run the same real stack as the tests."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hub import RunningHub, free_port  # noqa: E402,F401
from standin import start_standin  # noqa: E402,F401

# the ELN's request shapes (JupyterUtil.js): form-typed POSTs, names concatenated unencoded
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["print(1)"]}],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 2,
}


def eln(hub, token, folder, name, test):
    return f"{hub.url}/services/openbis/?token={token}&folder={folder}&filename={name}&test={test}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {1000 * percentile(values, 50):.1f} ms, p95 {1000 * percentile(values, 95):.1f} ms, "
        f"mean {1000 * statistics.mean(values):.1f} ms (n={len(values)})"
    )
