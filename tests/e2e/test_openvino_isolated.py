"""OpenVINO's bench rows, tested in a pytest process of their own (``openvino_child.py``): once
``openvino`` is imported, a later test that captures output in the same process loses
``sys.stderr`` and the whole session dies ('lost sys.stderr'). A user's ``make bench`` is one
process that never captures, so this concerns the test harness only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).with_name("openvino_child.py")


def test_openvino_rows_in_a_process_of_their_own(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(CHILD), "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path}", "-o", "addopts="],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\b8 passed\b", summary) and "skipped" not in summary, summary
