"""``scontrol requeue`` from the training process (lipnet_pl.engine.requeue): SLURM's requeue
SIGTERMs every process of the job, the scontrol that asked for it too when it has not exited by
then. Seen on the real SLURM (tests/e2e/test_slurm_recipe.py, once in five suite runs here):
scontrol died of it and the run printed "scontrol requeue failed" and "error: terminated" for a
requeue that had happened. Here a stand-in ``scontrol`` on PATH does what SLURM does to it."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest

from lipnet_pl.engine import requeue

SCONTROL = textwrap.dedent(
    f"""\
    #!{sys.executable}
    import os, signal, sys
    if sys.argv[1] == "requeue":
        os.kill(os.getpid(), signal.SIG{{how}})  # the requeue reaches scontrol before it exits
        sys.exit(0)
    print("JobId=42 JobName=lipnet Restarts={{restarts}} BatchFlag=1")  # scontrol show job 42
    """
)


@pytest.fixture
def scontrol(tmp_path, monkeypatch):
    def install(how: str, restarts: int) -> None:
        path = tmp_path / "scontrol"
        path.write_text(SCONTROL.format(how=how, restarts=restarts))
        path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("SLURM_RESTART_COUNT", "0")

    return install


def test_a_requeue_that_signals_scontrol_itself_is_a_requeue(scontrol):
    scontrol("TERM", restarts=0)  # scontrol outlives the SIGTERM and exits 0
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert requeue._ask_requeue("42")
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before  # the mask is restored


def test_a_scontrol_killed_anyway_counts_when_the_job_restarts(scontrol, caplog):
    scontrol("KILL", restarts=1)  # SIGKILL cannot be blocked; SLURM counted the requeue
    assert requeue._ask_requeue("42")
    scontrol("KILL", restarts=0)  # ... and here it did not: a failed requeue, said once
    assert not requeue._ask_requeue("42")
    assert f"scontrol requeue 42 failed ({-signal.SIGKILL})" in caplog.text
