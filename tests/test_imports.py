"""Public modules import on their own in a fresh interpreter (catches import cycles that an
earlier import in the same test process would hide, e.g. inference.loader <-> data)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST_IMPORTS = [  # every layer, plus the commands that enter them through the command layer
    "lipnet_pl.data",
    "lipnet_pl.models",
    "lipnet_pl.core.loader",
    "lipnet_pl.evaluation",
    "lipnet_pl.benchmark.suite",
    "lipnet_pl.train",
    "lipnet_pl.predict",
    "lipnet_pl.demo",
]


@pytest.mark.slow
def test_each_module_imports_first_in_a_fresh_interpreter():
    procs = {
        m: subprocess.Popen(
            [sys.executable, "-c", f"import {m}"], stderr=subprocess.PIPE, text=True
        )
        for m in FIRST_IMPORTS
    }
    failures = {}
    for module, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        if proc.returncode != 0:
            failures[module] = err.strip().splitlines()[-1:]
    assert not failures, f"modules that fail when imported first: {failures}"
