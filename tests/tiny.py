"""Sizes that keep tests fast on two CPU cores: the paper's LIP-Net layout at a fraction of its
widths (same code paths) and helpers shared by several test modules."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
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

SHALLOW_LIPNET_KWARGS = dict(
    TINY_LIPNET_KWARGS,
    widths=[8, 8, 16],
    dilations=[1, 1, 2],
    units_per_stage=1,
    pool_after=[1, 2],
    skip_stage=2,
    aspp_rates=[2],
)
"""LIP-Net's code paths (stem, SE units, pools, ASPP with image pooling, decoder with its skip,
head) in three one-unit stages: for tests whose cost grows with the layer count (torch.export,
ONNX export, Inductor's C++ kernels, ~0.7 s each on 2 cores), not with the widths."""

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


class Started:
    """A command started by :func:`start_command`, as ``subprocess.Popen`` gives it: ``pid``,
    ``poll()``, ``wait(timeout)``, ``send_signal(sig)``, ``kill()``, ``returncode`` and
    ``communicate(timeout)`` (its stdout and stderr, text, once it ended). A context manager:
    killed on exit if still running."""

    def __init__(self, module: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.args = [sys.executable, "-m", module, *args]
        self.returncode: int | None = None
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self._popen: subprocess.Popen | None = None
        if prefork.FRESH_PYTHON:
            self._popen = subprocess.Popen(
                self.args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=self._out, stderr=self._err,
            )  # fmt: skip
            self.pid = self._popen.pid
            return
        path = prefork.server_path()
        request = dict(module=module, args=list(args), cwd=str(cwd), env=dict(env))
        payload = json.dumps({**request, "new_session": False}).encode()
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(path)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            fds = [null, self._out.fileno(), self._err.fileno()]
            socket.send_fds(self._conn, [len(payload).to_bytes(8, "little") + payload], fds)
        finally:
            os.close(null)
        self._reply = b""
        self.pid = int(self._line(None))

    def _line(self, timeout: float | None) -> str | None:
        """The server's next line (the pid, then the exit status); None if none within timeout."""
        while b"\n" not in self._reply:
            if not select.select([self._conn], [], [], timeout)[0]:
                return None
            data = self._conn.recv(64)
            if not data:
                raise RuntimeError("the prefork server closed the connection")
            self._reply += data
        line, self._reply = self._reply.split(b"\n", 1)
        return line.decode()

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if self._popen is not None:
                self.returncode = self._popen.wait(timeout)
            else:
                line = self._line(timeout)
                if line is None:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                self.returncode = int(line)
                self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(9)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        outputs = []
        for f in (self._out, self._err):
            f.seek(0)
            outputs.append(f.read().decode(errors="replace"))
        return outputs[0], outputs[1]

    def __enter__(self) -> Started:
        return self

    def __exit__(self, *exc) -> None:
        if self.poll() is None:
            self.kill()
            self.wait()
        self._out.close()
        self._err.close()


def start_command(command: str, args: Sequence[str], cwd: Path, **env: str) -> Started:
    """:func:`run_command` without waiting: ``python -m lipnet_pl.<command> args`` started in a
    child of the preloaded interpreter (:mod:`prefork`), for tests that signal or kill it while
    it runs."""
    environment = {**os.environ, "WANDB_MODE": "offline", **env}
    return Started(f"lipnet_pl.{command}", list(args), cwd, environment)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``<basetemp>/<name>`` after ``build(folder)`` filled it, once per test run:
    under pytest-xdist a module-scoped fixture runs once in every worker that runs one of the
    module's tests, so the first worker builds and the others wait and read its files."""
    from filelock import FileLock  # a dependency of torch

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-<n>/: this run's, shared by its workers
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / ".built").exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            (folder / ".built").touch()
    return folder


def same_label_share(a: Path, b: Path) -> float:
    """The share of equal pixels over the label PNGs in folder ``a`` and their namesakes in
    ``b`` (0.0 when ``a`` holds none): two backends' saved predictions compared."""
    import numpy as np
    from PIL import Image

    same = total = 0
    for png in a.glob("*.png"):
        x, y = np.asarray(Image.open(png)), np.asarray(Image.open(b / png.name))
        same, total = same + int((x == y).sum()), total + x.size
    return same / total if total else 0.0
