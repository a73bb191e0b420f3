"""LIP-Net deploys: torch.export with dynamic H/W and torch.compile(fullgraph) match eager
(ONNX Runtime parity of every model is in test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim

from lipnet_pl.models import LIPNet
from tiny import SHALLOW_LIPNET_KWARGS

SIZE = (64, 64)


@pytest.fixture(scope="module")
def net() -> LIPNet:
    """LIP-Net's code paths in three one-unit stages: Inductor compiles a C++ kernel per fused
    layer (~0.7 s each on 2 cores), and the paper's 12 units add kernels, not code paths."""
    torch.manual_seed(0)
    return LIPNet(**SHALLOW_LIPNET_KWARGS).eval()


def _eager(net, x):
    with torch.no_grad():
        return net(x)


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
