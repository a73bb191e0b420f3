"""PyTorch's own x86 int8 path as a bench variant, next to ONNX Runtime int8.

torchao's pt2e flow: ``torch.export`` the eval network, insert observers with the
``X86InductorQuantizer`` (int8 per-channel weights, uint8 per-tensor activations: the same scheme
as our ONNX Runtime QDQ files), calibrate, convert, then ``torch.compile`` with inductor weight
freezing, which lowers the quantized convolutions to oneDNN's int8 (VNNI) kernels. Needs
``pip install 'lipnet_pl[x86int8]'`` (torchao); ``torch.ao.quantization``'s own copy of pt2e is
gone from recent torch. Without torchao the row says so and the bench goes on.

Why ONNX Runtime stays the int8 default (``export quantize=int8``): measured interleaved on
lipnet_rt, 473x473, batch 1, 2-core AVX512-VNNI CPU, torch 2.14.1 + torchao 0.18: pt2e int8
compiled 32.3 ms, ONNX Runtime int8 21.9 ms, PyTorch eager fp32 (LIP-Net) 302 ms; pt2e also
needs a compile of tens of seconds per input shape. ``make bench`` measures it again each run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch._inductor.config as inductor_config
from torch import nn

EXTRA = "pip install 'lipnet_pl[x86int8]' (torchao)"


def _torchao_pt2e():
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as err:
        if isinstance(err, ModuleNotFoundError) and err.name == "torchao":
            raise RuntimeError(f"torchao is not installed: {EXTRA}") from err
        raise RuntimeError(  # e.g. torchao 0.18 with torch 2.7: ScalingType missing
            f"torchao does not import with torch {torch.__version__} ({err}): install the "
            "torchao release made for this torch"
        ) from err
    return x86, prepare_pt2e, convert_pt2e


def quantize_x86_int8(
    model: nn.Module, example: torch.Tensor, calibration: Sequence[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` (eval, CPU) as a compiled int8 network for inputs shaped like ``example``
    (call it under ``torch.no_grad``).

    Compilation happens on the first call (tens of seconds on two cores).
    """
    if not calibration:
        raise ValueError("calibration must hold at least one input batch")
    x86, prepare_pt2e, convert_pt2e = _torchao_pt2e()
    with torch.no_grad():
        exported = torch.export.export(model.eval(), (example,)).module()
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for batch in calibration:
            prepared(batch)
        converted = convert_pt2e(prepared)
    compiled = torch.compile(converted, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        # freezing (constant-fold + prepack the int8 weights for oneDNN) as a config patch: the
        # options={"freezing": True} of torch.compile fails on the prepack op
        # (UnsupportedOperatorException: onednn.qconv_prepack) with torch 2.14
        with inductor_config.patch(freezing=True):
            return compiled(x)

    return run


def lazy_x86_int8(model: nn.Module, example: torch.Tensor, calibration_batches: int = 4):
    """A zero-argument call running the int8 network on ``example``; quantization and
    compilation happen in the first call (the bench's warm-up), so a failure (torchao missing,
    an export error) lands in that variant's row."""
    net: list = []

    def call():
        if not net:
            shape = tuple(example.shape)
            calib = [torch.randn(shape) for _ in range(calibration_batches)]
            net.append(quantize_x86_int8(model, example, calib))
        # no_grad, not inference_mode: inductor cannot freeze oneDNN's int8 weight prepacking
        # on inference tensors (UnsupportedOperatorException: onednn.qconv_prepack)
        with torch.no_grad():
            return net[0](example)

    return call
