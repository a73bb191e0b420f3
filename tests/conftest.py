"""Shared fixtures: a small synthetic LIP-format dataset every test module can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipnet_pl.data.synthetic import generate

SYNTHETIC_COUNTS = {"train": 8, "val": 4, "test": 2}
SYNTHETIC_SIZES = {"min_size": 64, "max_size": 128}


@pytest.fixture(scope="session")
def synthetic_lip_root(tmp_path_factory) -> Path:
    """Root of a synthetic LIP set in the OFFICIAL layout: 8 train / 4 val / 2 test, 64..128 px.

    Session-scoped and shared: treat it as read-only (copy it before corrupting files).
    """
    root = tmp_path_factory.mktemp("synthetic_lip") / "LIP"
    return generate(root, seed=0, layout="official", **SYNTHETIC_COUNTS, **SYNTHETIC_SIZES)
