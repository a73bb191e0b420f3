"""A saved pretrained folder loads in a fresh process with the hub offline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lipnet_pl.core.pretrained import (
    save_pretrained,
)
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.models import build_model
from tiny import TINY_LIPNET_KWARGS


def _spec() -> ModelSpec:
    classes = ClassInfo.from_config(
        {"names": ["bg", "left", "right", "head"], "flip_pairs": [[1, 2]]}
    )
    net = {"name": "lipnet", "num_classes": classes.num_classes, **TINY_LIPNET_KWARGS}
    return ModelSpec(
        net=net, classes=classes, input_size=(96, 64), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)
    )


def _trained(spec: ModelSpec) -> torch.nn.Module:
    """A network whose weights and BN statistics differ from a fresh build."""
    torch.manual_seed(0)
    net = build_model(**spec.net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.1)
    return net.eval()


@pytest.fixture
def saved(tmp_path):
    spec = _spec()
    net = _trained(spec)
    folder = save_pretrained(net, spec, tmp_path / "parser")
    return folder, net, spec


@pytest.mark.slow
def test_loading_works_with_hf_hub_offline(saved, tmp_path):
    """HF_HUB_OFFLINE=1 is read when huggingface_hub is imported: check in a fresh interpreter.

    A local folder loads; a hub id absent from the (empty) cache is one clear line, no download.
    """
    folder, net, _ = saved
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
    torch.save(x, folder.parent / "x.pt")
    code = (
        "import sys, torch\n"
        "from huggingface_hub import constants\n"
        "assert constants.HF_HUB_OFFLINE\n"
        "from lipnet_pl.core.pretrained import load_pretrained\n"
        "net, spec = load_pretrained(sys.argv[1])\n"
        "x = torch.load(sys.argv[2], weights_only=True)\n"
        "with torch.no_grad():\n"
        "    torch.save(net(x), sys.argv[3])\n"
        "try:\n"
        "    load_pretrained('lipnet-pl-tests/absent')\n"
        "except FileNotFoundError as err:\n"
        "    print(err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    out = folder.parent / "y.pt"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(folder.parent / "x.pt"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cannot load 'lipnet-pl-tests/absent'" in proc.stdout
    assert "HF_HUB_OFFLINE is set" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1
    torch.testing.assert_close(torch.load(out, weights_only=True), expected, rtol=0, atol=0)
