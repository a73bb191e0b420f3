"""Config slips that ended in tracebacks (issue 28, items 7 and 9): each is ONE line
``error: ...`` naming the key, exit status 2, from the real commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny import TINY_NET

pytestmark = pytest.mark.slow


def train_args(lip_root: Path, *extra: str) -> list[str]:
    return [
        "data=lip",
        f"data.root={lip_root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "callbacks.progress_bar=null",
        "logger=none",
        *TINY_NET,
        *extra,
    ]


def one_line(done, fragment: str) -> None:
    """Exit 2, one ``error:`` line (library warnings aside, e.g. Lightning's srun hint where
    SLURM is installed), no traceback from any process."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert fragment in lines[0], lines[0]


SLIPS = {
    "lr_negative": (["module.optimizer.lr=-1"], "module.optimizer"),
    "lr_nan": (["module.optimizer.lr=nan"], "lr=nan must be a finite number > 0"),
    "seed_text": (["seed=abc"], "seed=abc: use a whole number"),
    "gpu_without_cuda": (["trainer=gpu"], "needs a CUDA GPU"),
    "three_cpu_processes": (["trainer.devices=3"], "must be divisible by the 3 processes"),
}


@pytest.mark.parametrize("case", list(SLIPS))
def test_train_config_slips_are_one_line(case, lip_root, tmp_path, cli):
    extra, fragment = SLIPS[case]
    if case == "gpu_without_cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: trainer=gpu is valid here")
    done = cli("train", [*train_args(lip_root, *extra), f"hydra.run.dir={tmp_path / 'run'}"])
    one_line(done, fragment)


def test_eval_on_gpu_without_cuda_is_one_line(trained_ckpt, lip_root, tmp_path, cli):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: trainer=gpu is valid here")
    args = [f"ckpt_path={trained_ckpt}", f"data.root={lip_root}", "trainer=gpu"]
    one_line(cli("eval", [*args, f"hydra.run.dir={tmp_path / 'run'}"]), "needs a CUDA GPU")


def test_resuming_after_changing_the_network_is_one_line(lip_root, tmp_path, cli):
    run = f"hydra.run.dir={tmp_path / 'run'}"
    first = cli("train", [*train_args(lip_root), run])
    assert first.returncode == 0, first.stderr[-3000:]
    wider = "model.net.decoder_channels=48"  # the tiny net has 32
    one_line(cli("train", [*train_args(lip_root, wider), run]), "holds another network")
    one_line(cli("train", [*train_args(lip_root, wider, "ckpt_path=last"), run]), "holds another")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("size=-1", "must be >= 1 pixel"),
        ("cpu.max_rounds=0", "cpu.min_rounds=10, cpu.max_rounds=0"),
    ],
)
def test_bench_limits_that_measure_nothing_are_one_line(override, fragment, tmp_path, cli):
    done = cli("bench", ["only=[lipnet]", override, f"hydra.run.dir={tmp_path / 'run'}"])
    one_line(done, fragment)
