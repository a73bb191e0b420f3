"""``precision=auto``: the fastest mixed precision the device runs natively.

bf16 on GPUs that have it in hardware (Ampere and later); fp16 (with Lightning's GradScaler in
training) on older ones such as V100 and T4, which emulate bf16 slowly or not at all; fp32 on
the CPU. Used by ``trainer=gpu``/``trainer=ddp`` (``trainer.precision: auto``), ``make bench``
and ``make gpu-check`` (``dtypes: [fp32, auto]``).
"""

from __future__ import annotations

import torch

from lipnet_pl.hydra_runtime import trainer_uses_gpu

LIGHTNING = {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}


def auto_dtype(device: str | torch.device) -> str:
    """``bf16``, ``fp16`` or ``fp32`` (the name, as in bench rows) for ``device``."""
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    with torch.cuda.device(device):
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    return "bf16" if native else "fp16"


def trainer_precision(precision: str | int | None, accelerator: str | None) -> str | int | None:
    """Lightning's ``precision`` for ``trainer.precision``; ``auto`` chosen by
    :func:`auto_dtype` on the accelerator (GPU when ``gpu``/``cuda``, or ``auto`` with CUDA)."""
    if str(precision) != "auto":
        return precision
    gpu = trainer_uses_gpu({"accelerator": accelerator})
    return LIGHTNING[auto_dtype("cuda" if gpu else "cpu")]
