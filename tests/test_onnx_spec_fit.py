"""An ONNX file whose graph disagrees with its own spec, or a parity check at a shape a static
export cannot take, is one line before anything runs (issue 28, item 8)."""

from __future__ import annotations

import pytest
import torch

from lipnet_pl.config import compose
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import write_spec
from lipnet_pl.errors import CheckpointError, UserError
from lipnet_pl.exporting.export import resolve_check_size
from lipnet_pl.models import build_model
from tiny import SHALLOW_LIPNET_KWARGS, TINY_NET_CONFIG

# The checks read only the graph's input and output sizes: a LIP-Net of three one-unit stages
# exports in about half the time of the tiny one (torch.export's cost grows with the node count).
SHALLOW_NET_CONFIG = {**TINY_NET_CONFIG, **SHALLOW_LIPNET_KWARGS}


def static_onnx(path, num_classes: int, size: tuple[int, int]):
    net = build_model(**{**SHALLOW_NET_CONFIG, "num_classes": num_classes}).eval()
    return export_onnx(net, torch.randn(1, 3, *size), path, dynamic=False, opset=18)


def test_a_static_onnx_at_another_size_than_its_spec_is_one_line(random_ckpt, tmp_path):
    spec = load_model(random_ckpt).spec  # input size 48x40
    path = write_spec(static_onnx(tmp_path / "m.onnx", 20, (64, 64)), spec)
    with pytest.raises(CheckpointError, match=r"takes fixed 64x64 inputs but its spec says input"):
        load_model(path)


def test_an_onnx_with_fewer_classes_than_its_spec_is_one_line(random_ckpt, tmp_path):
    spec = load_model(random_ckpt).spec
    path = write_spec(static_onnx(tmp_path / "m.onnx", 5, tuple(spec.input_size)), spec)
    with pytest.raises(CheckpointError, match=r"outputs 5 classes but its spec names 20"):
        load_model(path)
    write_spec(static_onnx(tmp_path / "ok.onnx", 20, tuple(spec.input_size)), spec)
    assert load_model(tmp_path / "ok.onnx").spec.num_classes == 20


def test_check_size_of_a_static_export_must_be_the_input_size(tmp_path):
    cfg = compose("export", [f"paths.output_dir={tmp_path}", "ckpt_path=x", "check_size=[64,96]"])
    with pytest.raises(UserError, match=r"check_size=\[64, 96\]: a static export"):
        resolve_check_size(cfg, (48, 40))
    dynamic = compose(
        "export",
        [f"paths.output_dir={tmp_path}", "ckpt_path=x", "check_size=[64,96]", "dynamic=true"],
    )
    assert resolve_check_size(dynamic, (48, 40)) == (64, 96)
