"""One contract for every model name of ``build_model``: any input size, a usable backward,
the inference fast path and ONNX Runtime give the eager model's outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lipnet_pl.models import MODEL_NAMES, build_model
from lipnet_pl.models.fastpath import make_fast
from tiny import TINY_LIPNET_KWARGS, randomise_batchnorm

SMALL = {"lipnet": TINY_LIPNET_KWARGS}  # everything else at its default size
ODD_SIZES = [(65, 67), (33, 47)]


@pytest.fixture(scope="module", params=MODEL_NAMES)
def model(request) -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(
        build_model(request.param, num_classes=20, **SMALL.get(request.param, {}))
    )


class TestEveryModel:
    @pytest.mark.parametrize("size", ODD_SIZES)
    def test_logits_keep_any_input_size(self, model, size):
        with torch.no_grad():
            out = model(torch.randn(2, 3, *size))
        assert out.shape == (2, 20, *size) and torch.isfinite(out).all()

    def test_backward_gives_finite_gradients_down_to_the_first_layer(self, model):
        model.train()
        try:
            out = model(torch.randn(2, 3, 64, 64))
            nn.functional.cross_entropy(out, torch.randint(0, 20, (2, 64, 64))).backward()
            # (smp's PSPNet leaves its deepest encoder stage unused: those grads stay None)
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert all(torch.isfinite(g).all() for g in grads)
            first = next(p for p in model.parameters() if p.ndim == 4)  # the stem convolution
            assert first.grad is not None and float(first.grad.abs().sum()) > 0
        finally:
            model.zero_grad(set_to_none=True)
            model.eval()

    def test_fast_path_matches_eager(self, model):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = torch.randn(2, 3, 64, 72)  # not a multiple of the peers' stride: padding path too
        with torch.inference_mode():
            expected, got = model(x), make_fast(model)(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched

    @pytest.mark.slow
    def test_onnx_runtime_matches_eager(self, model, tmp_path):
        """Exported at an odd size; LIP-Net models also with free batch/height/width (smp peers
        compute their padding from the input size, which the exporter fixes at export time)."""
        from lipnet_pl.core.model_export import export_onnx
        from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet
        from lipnet_pl.models import LIPNet
        from lipnet_pl.models.fastpath import fold_batchnorm

        dynamic = isinstance(model, LIPNet)
        example = torch.randn(1, 3, 65, 67)
        path = export_onnx(fold_batchnorm(model), example, tmp_path / "m.onnx", dynamic, 18)
        session = OnnxRuntimeNet(path)
        sizes = [(1, 65, 67), (2, 64, 64), (1, 33, 47)] if dynamic else [(1, 65, 67)]
        for batch, h, w in sizes:
            x = torch.randn(batch, 3, h, w)
            with torch.no_grad():
                torch.testing.assert_close(session(x), model(x), atol=1e-4, rtol=1e-4)
