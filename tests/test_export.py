"""Export: ONNX / TorchScript with batch norm folded and parity checks; the command writes files
that carry their spec and never replaces a good file with a failed export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import lipnet_pl.core.model_export as model_export
import lipnet_pl.exporting.export as export_mod
from lipnet_pl.config import compose
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.model_export import check_parity, export_onnx, export_torchscript
from lipnet_pl.errors import UserError
from lipnet_pl.exporting.export import export
from lipnet_pl.models.fastpath import count_batchnorm, fold_batchnorm


def export_cfg(tmp_path, **overrides):
    args = [f"{k}={v}" for k, v in overrides.items()]
    return compose("export", [f"paths.output_dir={tmp_path / 'run'}", *args])


@pytest.fixture(scope="module")
def net(random_ckpt):
    return load_model(random_ckpt).net


@pytest.mark.slow
def test_onnx_round_trip_is_folded_and_matches_pytorch(net, tmp_path):
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
def test_torchscript_round_trip_matches_pytorch(net, tmp_path):
    path = export_torchscript(fold_batchnorm(net), torch.randn(1, 3, 64, 64), tmp_path / "m.pt")
    assert check_parity(net, path, "torchscript", (1, 3, 64, 64)) < 1e-4
    assert check_parity(net, path, "torchscript", (2, 3, 40, 56)) < 1e-4


@pytest.mark.slow
def test_export_command_checks_at_the_model_input_size_and_embeds_the_spec(
    random_ckpt, tmp_path, capsys
):
    from lipnet_pl.core.onnx_runtime import read_spec

    out = tmp_path / "model.onnx"
    path, diffs = export(export_cfg(tmp_path, ckpt_path=random_ckpt, output=out))
    printed = capsys.readouterr().out
    assert path == out and out.is_file() and max(diffs) < 1e-3
    assert "parity onnx vs PyTorch on input [1, 3, 48, 40]: max abs diff" in printed
    assert "batch norm folded: 22 of 22" in printed
    spec = read_spec(out)
    assert spec == load_model(random_ckpt).spec  # classes, input size, normalisation, network
    assert not list(tmp_path.glob(".*partial*"))


def test_failed_parity_check_keeps_the_previous_file(random_ckpt, tmp_path, monkeypatch):
    out = tmp_path / "m.torchscript.pt"
    out.write_bytes(b"a good model from yesterday")
    real = model_export.run_exported
    monkeypatch.setattr(
        model_export, "run_exported", lambda p, f, x: real(p, f, x) + np.float32(0.01)
    )
    cfg = export_cfg(tmp_path, ckpt_path=random_ckpt, format="torchscript", output=out)
    with pytest.raises(UserError, match=r"differs from PyTorch by 1\.0\d\de-02 > tolerance 0.001"):
        export(cfg)
    assert out.read_bytes() == b"a good model from yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left


def test_an_onnx_file_is_not_exported_again(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match="m.onnx"):
        export(export_cfg(tmp_path, ckpt_path=tmp_path / "m.onnx"))


def test_pretrained_folder_from_a_checkpoint_loads_like_the_checkpoint(random_ckpt, tmp_path):
    out = tmp_path / "parser"
    path, _ = export(export_cfg(tmp_path, ckpt_path=random_ckpt, format="pretrained", output=out))
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    original, shared = load_model(random_ckpt), load_model(path)
    assert shared.format == "pretrained" and shared.spec == original.spec
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        assert torch.equal(shared.net(x), original.net(x))


@pytest.mark.slow
def test_export_command_quantize_int8_calibrates_at_the_model_input_and_keeps_the_spec(
    random_ckpt, lip_root, tmp_path, monkeypatch
):
    from lipnet_pl.core.onnx_runtime import read_spec

    seen = []
    real = export_mod.quantize_onnx_int8

    def spy(fp32, out, batches, **kw):
        seen.extend(batches)
        return real(fp32, out, batches, **kw)

    monkeypatch.setattr(export_mod, "quantize_onnx_int8", spy)  # where export looks it up
    out = tmp_path / "model.onnx"
    cfg = export_cfg(
        tmp_path,
        ckpt_path=random_ckpt,
        output=out,
        quantize="int8",
        **{"calibration.data_root": lip_root, "calibration.images": 3},
    )
    export(cfg)
    int8 = tmp_path / "model.int8.onnx"
    spec = load_model(random_ckpt).spec
    assert int8.is_file() and read_spec(int8) == spec
    assert [b.shape for b in seen] == [(1, 3, *spec.input_size)] * 3  # eval-preprocessed, 3 images
    loaded = load_model(int8)
    x = torch.randn(2, 3, *spec.input_size)
    assert loaded.net(x).shape == (2, 20, *spec.input_size)
