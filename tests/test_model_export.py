"""LIP-Net deploys: ONNX (run by onnxruntime), torch.export and torch.compile match eager."""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim

from lipnet_pl.models import LIPNet

SIZE = (64, 64)


@pytest.fixture(scope="module")
def net() -> LIPNet:
    torch.manual_seed(0)
    return LIPNet().eval()


def _eager(net, x):
    with torch.no_grad():
        return net(x)


@pytest.mark.slow
@pytest.mark.parametrize("image_pooling", ["input", "global"])
def test_onnx_export_runs_in_onnxruntime_like_eager(tmp_path, image_pooling):
    import onnxruntime as ort

    torch.manual_seed(0)
    net = LIPNet(image_pooling=image_pooling).eval()
    x = torch.randn(1, 3, *SIZE)
    path = tmp_path / "lipnet.onnx"
    # torch 2.15 exports through torch.export (dynamo=True is the default); H and W stay dynamic.
    torch.onnx.export(
        net,
        (x,),
        str(path),
        dynamo=True,
        opset_version=18,
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=({2: Dim.AUTO, 3: Dim.AUTO},),
        external_data=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in (SIZE, (65, 67)):
        xi = torch.randn(1, 3, *size)
        (out,) = session.run(None, {"image": xi.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), _eager(net, xi), atol=1e-4, rtol=1e-4)


def test_torch_export_with_dynamic_height_width_matches_eager(net):
    x = torch.randn(1, 3, *SIZE)
    program = torch.export.export(net, (x,), dynamic_shapes=({2: Dim.AUTO, 3: Dim.AUTO},))
    exported = program.module()
    for size in (SIZE, (97, 131), (33, 47)):
        xi = torch.randn(1, 3, *size)
        with torch.no_grad():
            out = exported(xi)
        assert out.shape == (1, 20, *size)
        torch.testing.assert_close(out, _eager(net, xi), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_torch_compile_fullgraph_matches_eager(net):
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)  # fullgraph: any graph break is an error
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        out = compiled(x)
    torch.testing.assert_close(out, _eager(net, x), atol=1e-4, rtol=1e-4)
