"""Public modules import on their own in a fresh interpreter (catches import cycles that an
earlier import in the same test process would hide, e.g. inference.loader <-> data)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FIRST_IMPORTS = [  # every layer, plus the commands that enter them through the command layer
    "lipnet_pl.hydra_runtime",
    "lipnet_pl.data",
    "lipnet_pl.models",
    "lipnet_pl.core.loader",
    "lipnet_pl.evaluation",
    "lipnet_pl.exporting.export",
    "lipnet_pl.benchmark.suite",
    "lipnet_pl.train",
    "lipnet_pl.predict",
    "lipnet_pl.export",
    "lipnet_pl.demo",
]

# One interpreter loads the third-party libraries once (no lipnet_pl module), then forks a child
# per module: each child's first lipnet_pl import is that module, as in a fresh interpreter, at
# a fraction of the cost of importing torch and Lightning again for every module.
FORK_EACH = textwrap.dedent(
    """
    import os, sys, traceback
    import torch, torchvision, lightning, hydra, omegaconf, timm, onnx, onnxruntime, numpy, PIL
    import segmentation_models_pytorch, matplotlib, rich
    assert not [m for m in sys.modules if m.startswith("lipnet_pl")], "preloaded lipnet_pl"
    failed = 0
    for module in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:
            try:
                __import__(module)
            except BaseException:
                print(module, traceback.format_exc().strip().splitlines()[-1], file=sys.stderr)
                os._exit(1)
            os._exit(0)
        failed += os.waitpid(pid, 0)[1] != 0
    sys.exit(1 if failed else 0)
    """
)


SENTINEL = "lipnet_pl.no_such_module"  # must be reported: the check itself can fail


@pytest.mark.slow
def test_each_module_imports_first_in_a_fresh_interpreter():
    proc = subprocess.run(
        [sys.executable, "-c", FORK_EACH, *FIRST_IMPORTS, SENTINEL],
        capture_output=True,
        text=True,
        timeout=300,
    )
    failed = [line.split()[0] for line in proc.stderr.splitlines() if line.startswith("lipnet_pl")]
    assert failed == [SENTINEL], f"modules that fail when imported first: {proc.stderr[-3000:]}"
    assert proc.returncode == 1


HELP_WITHOUT = ("lightning", "torchvision", "timm", "segmentation_models_pytorch")
HELP = textwrap.dedent(
    """
    import sys
    from {module} import run
    try:
        run(["--help"])
    except SystemExit as done:
        assert done.code == 0, done.code
    print(sorted(m for m in {heavy!r} if m in sys.modules))
    """
)


@pytest.mark.parametrize("module", ["lipnet_pl.data.__main__", "lipnet_pl.workflows.gpu_check"])
def test_help_of_a_tool_loads_none_of_the_heavy_libraries(module):
    """``lipnet-data --help`` and ``lipnet-gpu-check --help`` answer before Lightning,
    torchvision, timm and smp load (each tool imports its work once chosen): seconds sooner."""
    proc = subprocess.run(
        [sys.executable, "-c", HELP.format(module=module, heavy=HELP_WITHOUT)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-500:]
