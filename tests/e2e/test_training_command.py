"""The real train command, as a user starts it without LIP on disk."""

from __future__ import annotations

import time


def test_train_without_lip_fails_fast_with_pointer(cli):
    start = time.perf_counter()
    proc = cli("train", ["experiment=lip_base"], LIPNET_ROOT=".")  # no data/LIP in tmp_path
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert time.perf_counter() - start < 60
    for pointer in ("data/README.md", "make demo", "data.root"):
        assert pointer in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
