"""Sizes that keep tests fast on two CPU cores: the paper's LIP-Net layout at a fraction of its
widths (same code paths) and helpers shared by several test modules."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

import prefork

TINY_LIPNET_KWARGS = dict(
    stem_channels=8,
    widths=[8, 8, 16, 16, 32, 32],
    aspp_channels=32,
    decoder_channels=32,
    skip_channels=8,
)
"""``build_model("lipnet", **TINY_LIPNET_KWARGS)``: a narrow LIP-Net."""

TINY_NET_CONFIG = dict(name="lipnet", num_classes=20, **TINY_LIPNET_KWARGS)
"""The tiny LIP-Net as a ``model.net`` config / ``ModelSpec.net``."""

TINY_NET = [
    f"model.net.{key}={str(value).replace(' ', '')}" for key, value in TINY_LIPNET_KWARGS.items()
]
"""Hydra overrides giving the tiny LIP-Net."""


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics, so folding has something to fold (fresh BN is identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


def tiny_train_overrides(root: Path, out: Path | None = None, *extra: str) -> list[str]:
    """``conf/train.yaml`` shrunk: the tiny LIP-Net, 64x64 crops, batch 2, CPU, no logger."""
    return [
        "data=lip",
        f"data.root={root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",
        "logger=none",
        "callbacks.progress_bar=null",
        *([f"paths.output_dir={out}"] if out is not None else []),
        *TINY_NET,
        *extra,
    ]


def run_command(
    command: str, args: Sequence[str], cwd: Path, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    """``python -m lipnet_pl.<command> args`` as a user runs it (offline, no stdin), in a child
    of the preloaded interpreter (:mod:`prefork`: the same process contract without 3-5 s of
    imports per command)."""
    environment = {**os.environ, "WANDB_MODE": "offline", **env}
    return prefork.run(f"lipnet_pl.{command}", list(args), cwd, environment, timeout)


def run_main(command: str, args: list[str], tmp_path: Path, monkeypatch, capsys):
    """``python -m lipnet_pl.<command> args`` in this process (capsys sees its output): the
    exit status, stdout and stderr."""
    import importlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [command, *args, f"hydra.run.dir={tmp_path / 'run'}"])
    main = importlib.import_module(f"lipnet_pl.{command}").main
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err
