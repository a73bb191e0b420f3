"""Shared setup: tiny synthetic LIP data, a tiny training config, a trained tiny checkpoint and a
way to run the real commands, so every test module reads like a specification."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

E2E = Path(__file__).parent / "e2e"

# The heavy imports (torch, Lightning, the project) happen in the processes that run tests, not at
# the top of this file: under pytest-xdist the controller process runs none, and the ~5 s it
# spent importing torch and Lightning delayed every worker's start.


def _runs_no_tests(config) -> bool:
    """The pytest-xdist controller (``-n N``, N > 0): its workers run the tests."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", 0))


def pytest_configure(config):
    """Torch threads per pytest-xdist worker, and Lightning imported before any test's capture.

    Each worker of ``make test`` (TEST_WORKERS processes), and every command it starts, gets its
    share of the cores, as torch/OpenMP threads and as Inductor's compile workers: two workers of
    two threads each on two cores spent much of their CPU time in OpenMP's spin-waits for
    descheduled threads (the suite took 1.45x as long).

    Lightning binds a logging.StreamHandler to sys.stderr when first imported. Imported here, that
    is pytest's session-long capture; first imported inside a test under capsys, it would be that
    test's stream, closed afterwards ("--- Logging error --- I/O operation on closed file").
    """
    if _runs_no_tests(config):
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = None
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(threads))
    import lightning.pytorch  # noqa: F401
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Tests under ``tests/e2e/`` are end-to-end by folder (marker ``e2e``), never by hand.

    With pytest-xdist (``make test`` runs two workers), the SLURM tests share one worker: they
    share one local SLURM (tests/e2e/conftest.py), which two workers must not start twice.
    """
    for item in items:
        if E2E in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
    # modules with slow tests first (each module's tests stay together, in their order):
    # pytest-xdist hands out tests in this order, so the workers end on quick ones, together
    slow = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow)


@pytest.fixture(scope="session")
def synthetic_lip_root(tmp_path_factory) -> Path:
    """Synthetic LIP in the OFFICIAL layout: 8 train / 4 val / 2 test images of 64..128 px.

    Shared by the whole session: treat it as read-only (copy it before corrupting files).
    """
    from lipnet_pl.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic_lip") / "LIP"
    return generate(
        root,
        seed=0,
        layout="official",
        style="simple",
        train=8,
        val=4,
        test=2,
        min_size=64,
        max_size=128,
    )


@pytest.fixture(scope="session")
def lip_root(tmp_path_factory) -> Path:
    """A smaller synthetic LIP for training runs: 8 train / 5 val (odd: DDP pads) / 2 test,
    48..96 px images. Read-only."""
    from lipnet_pl.data.synthetic import generate

    root = tmp_path_factory.mktemp("lip") / "LIP"
    return generate(root, seed=3, style="simple", train=8, val=5, test=2, min_size=48, max_size=96)


@pytest.fixture
def train_cfg(lip_root, tmp_path) -> Callable[..., object]:
    """``train_cfg(*extra)``: the composed tiny training config writing into ``tmp_path``."""
    from lipnet_pl.config import compose
    from tiny import tiny_train_overrides

    return lambda *extra: compose("train", tiny_train_overrides(lip_root, tmp_path, *extra))


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory, lip_root) -> Path:
    """``last.ckpt`` of a real 2-step training run of the tiny LIP-Net (read-only)."""
    from lipnet_pl.config import compose
    from lipnet_pl.training.train import train
    from tiny import tiny_train_overrides

    out = tmp_path_factory.mktemp("trained")
    summary = train(compose("train", tiny_train_overrides(lip_root, out)))
    return Path(summary["last_ckpt"])


@pytest.fixture(scope="session")
def random_ckpt(tmp_path_factory) -> Path:
    """A checkpoint following the contract with seeded random weights and non-trivial BN
    statistics (so folding batch norm is really exercised); input size 48x40."""
    import torch

    from lipnet_pl.models import build_model
    from tiny import TINY_NET_CONFIG

    torch.manual_seed(0)
    net = build_model(**TINY_NET_CONFIG)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save(
        {
            "hyper_parameters": {
                "net": TINY_NET_CONFIG,
                "classes": {},
                "input_size": [48, 40],
                "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            },
            "state_dict": {"net." + k: v for k, v in net.state_dict().items()},
        },
        path,
    )
    return path


@pytest.fixture
def smaller_lipnet(monkeypatch) -> dict:
    """The bench's ``lipnet`` (``models=[lipnet]``) in three one-unit stages: its code paths,
    fewer layers (``tiny.SHALLOW_LIPNET_KWARGS``). The pt2e row compiles a C++ kernel per fused
    layer (~0.7 s each on 2 cores), and every other row exports, quantizes or trains it.
    Returns its config."""
    from lipnet_pl.benchmark import suite
    from tiny import SHALLOW_LIPNET_KWARGS

    real = suite.model_config

    def model_config(name, num_classes=20, **kwargs):
        net = real(name, num_classes, **kwargs)
        return {**net, **SHALLOW_LIPNET_KWARGS} if name == "lipnet" else net

    monkeypatch.setattr(suite, "model_config", model_config)
    return model_config("lipnet")


@pytest.fixture
def cli(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """``cli("train", [...])`` runs a command in ``tmp_path`` and returns the finished process."""
    from tiny import run_command

    return lambda command, args, **kw: run_command(command, args, kw.pop("cwd", tmp_path), **kw)
