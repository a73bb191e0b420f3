"""OpenVINO's bench rows, tested in a pytest process of their own (``openvino_child.py``): once
``openvino`` is imported, a later test that captures output in the same process loses
``sys.stderr`` and the whole session dies ('lost sys.stderr'). A user's ``make bench`` is one
process that never captures, so this concerns the test harness only."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import prefork

CHILD = Path(__file__).with_name("openvino_child.py")


@pytest.mark.slow
def test_openvino_rows_in_a_process_of_their_own(tmp_path):
    """The child pytest runs in a process forked from the preloaded interpreter (tests/prefork.py:
    ``python -m pytest`` without its ~5 s of torch and Lightning imports)."""
    args = [str(CHILD), "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path}", "-o", "addopts="]
    proc = prefork.run("pytest", args, CHILD.parents[2], dict(os.environ), timeout=900)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\b8 passed\b", summary) and "skipped" not in summary, summary
