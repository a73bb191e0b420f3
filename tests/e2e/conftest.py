"""End-to-end fixtures: a real one-node SLURM shared by every SLURM test of the session."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SLURM_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm_local.sh"


def pytest_runtest_setup(item):
    """Under ``--dist loadgroup`` a SLURM test runs only in the worker of the ``slurm`` group
    (tests/conftest.py): two workers would start and stop the one local SLURM under each other,
    and their jobs would queue behind each other's. pytest-xdist drops a group silently (a mark
    added after its collection hook read the marks; pytest 9.2, pytest-xdist#1386), so the test
    fails instead."""
    if (
        item.get_closest_marker("slurm")
        and getattr(item.config.option, "loadgroup", False)
        and not item.nodeid.endswith("@slurm")
    ):
        pytest.fail(f"{item.nodeid}: not in the xdist group 'slurm' (see tests/conftest.py)")


@pytest.fixture(scope="session")
def slurm():
    """SLURM up for the session (installed and started by scripts/slurm_local.sh as root),
    stopped at the end when this fixture started it."""
    running = subprocess.run([SLURM_SCRIPT, "status"], capture_output=True).returncode == 0
    if not running:
        if os.geteuid() != 0:
            pytest.skip("a local SLURM needs root to install and start (scripts/slurm_local.sh)")
        subprocess.run([SLURM_SCRIPT, "start"], check=True, timeout=900)
    yield
    if not running:
        subprocess.run([SLURM_SCRIPT, "stop"], check=True, timeout=120)
