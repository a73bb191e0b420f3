"""ONNX / TorchScript export: folded batch norm, round trip parity, the CLI's own 473x473 check."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lipnet_pl import export as export_mod
from lipnet_pl.export import (
    check_parity,
    export_onnx,
    export_torchscript,
    main,
    parse_args,
)
from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import count_batchnorm, fold_batchnorm
from tiny import TINY_LIPNET_KWARGS

TINY_NET = dict(name="lipnet", num_classes=20, **TINY_LIPNET_KWARGS)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(**TINY_NET)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    net = tiny_model()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save(
        {
            "hyper_parameters": {
                "net": TINY_NET,
                "classes": {},
                "input_size": [64, 64],
                "normalize": {},
            },
            "state_dict": {"net." + k: v for k, v in net.state_dict().items()},
        },
        path,
    )
    return path


@pytest.mark.slow
def test_onnx_round_trip_is_folded_and_matches_pytorch(tmp_path):
    net = tiny_model()
    folded = fold_batchnorm(net)
    assert count_batchnorm(folded) == 0
    path = export_onnx(
        folded, torch.randn(1, 3, 64, 64), tmp_path / "m.onnx", dynamic=True, opset=18
    )
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert check_parity(net, path, "onnx", (1, 3, 64, 64)) < 1e-4
    assert check_parity(net, path, "onnx", (2, 3, 48, 80)) < 1e-4  # dynamic axes really are free


@pytest.mark.slow
def test_torchscript_round_trip_matches_pytorch(tmp_path):
    net = tiny_model()
    path = export_torchscript(fold_batchnorm(net), torch.randn(1, 3, 64, 64), tmp_path / "m.pt")
    assert check_parity(net, path, "torchscript", (1, 3, 64, 64)) < 1e-4
    assert check_parity(net, path, "torchscript", (2, 3, 40, 56)) < 1e-4


def test_onnx_opset_below_17_is_refused(tmp_path):
    with pytest.raises(ValueError, match="opset=13"):
        export_onnx(
            tiny_model(), torch.randn(1, 3, 32, 32), tmp_path / "m.onnx", dynamic=False, opset=13
        )


@pytest.mark.slow
def test_cli_exports_and_checks_at_473(ckpt, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main([f"ckpt_path={ckpt}", "format=onnx", f"output={out}"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file()
    assert "parity onnx vs PyTorch on input [1, 3, 473, 473]: max abs diff" in printed
    assert "batch norm folded: 22 of 22" in printed


def test_cli_fails_when_the_exported_model_differs(ckpt, tmp_path, monkeypatch, capsys):
    real = export_mod.run_exported

    def perturbed(path, fmt, x):
        return real(path, fmt, x) + np.float32(0.01)

    monkeypatch.setattr(export_mod, "run_exported", perturbed)
    code = main(
        [
            f"ckpt_path={ckpt}",
            "format=torchscript",
            f"output={tmp_path / 'm.pt'}",
            "check_size=[64,64]",
        ]
    )
    assert code == 1
    assert re.search(
        r"differs from PyTorch by 1\.0\d\de-02 > tolerance 0.001", capsys.readouterr().out
    )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="format='tflite'"):
        export_mod.export(parse_args(["ckpt_path=x.ckpt", "format=tflite"]))
    with pytest.raises(ValueError, match="colour"):
        parse_args(["colour=red"])
    with pytest.raises(ValueError, match="key=value"):
        parse_args(["onnx"])
    with pytest.raises(ValueError, match="ckpt_path= is required"):
        export_mod.export(parse_args(["format=onnx"]))


def test_missing_checkpoint_exits_non_zero(tmp_path, capsys):
    assert main([f"ckpt_path={tmp_path / 'nope.ckpt'}"]) == 1
    assert "nope.ckpt does not exist" in capsys.readouterr().out
