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


class _LocalSlurm:
    """The local SLURM this process started (if any), stopped after its last SLURM test."""

    started_here = False
    stopping: subprocess.Popen | None = None

    @classmethod
    def wait_stopped(cls) -> None:
        if cls.stopping is not None:
            out, _ = cls.stopping.communicate(timeout=120)
            failed, cls.stopping = cls.stopping.returncode != 0, None
            if failed:
                raise RuntimeError(f"{SLURM_SCRIPT} stop failed: {out[-2000:]}")


@pytest.fixture
def slurm():
    """SLURM up (installed and started by scripts/slurm_local.sh as root when not running). One
    this process started is stopped after its last SLURM test, in the background, so its
    daemons' 2-3 s of shutting down overlap the tests that follow."""
    _LocalSlurm.wait_stopped()
    running = subprocess.run([SLURM_SCRIPT, "status"], capture_output=True).returncode == 0
    if not running:
        if os.geteuid() != 0:
            pytest.skip("a local SLURM needs root to install and start (scripts/slurm_local.sh)")
        subprocess.run([SLURM_SCRIPT, "start"], check=True, timeout=900)
        _LocalSlurm.started_here = True
    yield


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item, nextitem):
    last = nextitem is None or not nextitem.get_closest_marker("slurm")
    if item.get_closest_marker("slurm") and last and _LocalSlurm.started_here:
        _LocalSlurm.started_here = False
        _LocalSlurm.stopping = subprocess.Popen(
            [SLURM_SCRIPT, "stop"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )


def pytest_sessionfinish(session):
    """The SLURM stop started after the last SLURM test has ended before the session does."""
    _LocalSlurm.wait_stopped()
