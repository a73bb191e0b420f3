"""A normal (non-editable) install works from any folder: the configs ship inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel and installed (without dependencies) into a fresh folder."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(work / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next((work / "dist").glob("lipnet_pl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "lipnet_pl/conf/train.yaml" in names
    assert "lipnet_pl/conf/model/dilations/paper.yaml" in names
    assert "lipnet_pl/training/train.py" in names
    assert "lipnet_pl/conf/hydra/launcher/slurm.yaml" in names  # the sweep launchers
    assert "hydra_plugins/lipnet_pl_launchers.py" in names  # Hydra finds launchers only there
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_installed_wheel_runs_the_commands_outside_the_checkout(installed, tmp_path):
    where = run_installed(
        installed, tmp_path, "-c", "import lipnet_pl.config as c; print(c.__file__, c.config_dir())"
    )
    assert where.returncode == 0, where.stderr
    assert str(installed) in where.stdout and str(REPO) not in where.stdout  # not the checkout

    # every `python -m` tool has a console script too (pip writes them into the target's bin/);
    # lipnet-models runs `python -m lipnet_pl.models`'s main (its __main__ module)
    script = run_installed(installed, tmp_path, str(installed / "bin" / "lipnet-models"), "lipnet")
    assert script.returncode == 0 and "3.961 M" in script.stdout, script.stderr
    for name in ("lipnet-data", "lipnet-gpu-check"):
        helped = run_installed(installed, tmp_path, str(installed / "bin" / name), "--help")
        assert helped.returncode == 0 and "usage:" in helped.stdout, (name, helped.stderr)

    # the demo recipe as documented, on a smaller synthetic set (generated all the same): its
    # 500 images took 5 s of the run
    small = ["data.synthetic.train=2", "data.synthetic.val=1", "data.synthetic.test=1"]
    train = run_installed(
        installed, tmp_path, "-m", "lipnet_pl.train", "experiment=demo", "debug=fdr", *small
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (tmp_path / "data" / "synthetic_lip").is_dir()  # generated where the user runs it
    summaries = list((tmp_path / "outputs" / "debug" / "runs").glob("*/run_summary.json"))
    assert len(summaries) == 1
    console = train.stdout + train.stderr
    for noise in ("💡", "litlogger", "litmodels", "Total FLOPs", "v_num"):
        assert noise not in console, noise
