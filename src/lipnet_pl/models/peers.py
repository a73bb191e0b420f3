"""segmentation_models_pytorch peers for comparison, wrapped to accept any input size.

smp models need H and W divisible by their encoder's output stride (32 for Unet/FPN, 16 for
DeepLabV3+, 8 for PSPNet); LIP is trained and evaluated at 473x473. :class:`PadToMultiple` pads the
input up to the next multiple (bottom/right, zeros or reflection) and crops the logits back, so
every peer maps [B, 3, H, W] -> [B, num_classes, H, W] like LIP-Net. Weights default to None so
nothing is downloaded.
"""

from __future__ import annotations

import copy

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

PEER_ARCHITECTURES = {
    "deeplabv3plus": smp.DeepLabV3Plus,
    "unet": smp.Unet,
    "pspnet": smp.PSPNet,
    "fpn": smp.FPN,
}
PAD_MODES = ("constant", "reflect", "replicate")


class PadToMultiple(nn.Module):
    """Pad the input to a multiple of ``divisor``, run ``model``, crop the output back to H x W."""

    def __init__(self, model: nn.Module, divisor: int, pad_mode: str = "constant"):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {list(PAD_MODES)}, got {pad_mode!r}")
        if divisor < 1:
            raise ValueError(f"divisor must be >= 1, got {divisor!r}")
        self.model = model
        self.divisor = int(divisor)
        self.pad_mode = pad_mode

    @property
    def output_stride(self) -> int:
        return self.divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h = (self.divisor - h % self.divisor) % self.divisor
        pad_w = (self.divisor - w % self.divisor) % self.divisor
        if self.pad_mode == "reflect" and (pad_h >= h or pad_w >= w):
            raise ValueError(
                f"pad_mode='reflect' cannot pad a {h}x{w} input by ({pad_h}, {pad_w}) to a multiple "
                f"of {self.divisor}: use pad_mode='constant' or 'replicate' for inputs this small"
            )
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=self.pad_mode)
        return self.model(x)[..., :h, :w]


def build_peer(
    name: str,
    num_classes: int = 20,
    encoder_name: str = "resnet18",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    pad_mode: str = "constant",
    **kwargs,
) -> PadToMultiple:
    """Build smp ``name`` (deeplabv3plus, unet, pspnet, fpn) wrapped in :class:`PadToMultiple`.

    ``encoder_name`` is any smp encoder ("resnet18", "mobilenet_v2", ...) or timm universal encoder
    ("tu-mobilenetv3_small_100"); extra ``kwargs`` go to the smp constructor.
    """
    if name not in PEER_ARCHITECTURES:
        raise ValueError(f"unknown peer model {name!r}; valid: {sorted(PEER_ARCHITECTURES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    try:
        model = PEER_ARCHITECTURES[name](
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            **kwargs,
        )
    except (KeyError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "Unknown model" not in str(err):
            raise
        raise ValueError(
            f"unknown encoder_name {encoder_name!r} for {name}: use an smp encoder "
            "(resnet18, mobilenet_v2, ...) or a timm one prefixed with 'tu-' "
            "(tu-mobilenetv3_small_100)"
        ) from err
    if getattr(model.encoder, "_depth", 5) < 5:
        drop_unused_encoder_stages(model, in_channels)
    return PadToMultiple(model, model.encoder.output_stride, pad_mode=pad_mode)


def unused_parameters(model: nn.Module, in_channels: int = 3, size: int = 64) -> set[str]:
    """Names of the parameters one training step leaves without a gradient (on a copy, so the
    model's BN statistics and gradients are untouched)."""
    probe = copy.deepcopy(model).train()
    probe(torch.zeros(2, in_channels, size, size)).float().sum().backward()
    return {name for name, p in probe.named_parameters() if p.grad is None}


def drop_unused_encoder_stages(model: nn.Module, in_channels: int = 3) -> None:
    """Replace the encoder stages a shallow ``encoder_depth`` never uses (smp keeps them: PSPNet's
    depth 3 leaves ResNet's layer3 and layer4) with ``nn.Identity``.

    DDP without ``find_unused_parameters`` fails at the first backward on parameters that get no
    gradient, and they inflate the parameter count. A stage that runs but feeds nothing (smp's
    MobileNet runs one stage past its depth) becomes an identity too; a module that cannot be
    replaced is frozen instead (``requires_grad=False``: DDP skips it)."""
    unused = unused_parameters(model, in_channels)
    for name, module in list(model.encoder.named_modules()):
        params = {f"encoder.{name}.{p}" for p, _ in module.named_parameters()}
        if not name or not params or not params <= unused:  # also: inside a replaced stage
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.encoder.get_submodule(parent_name)
        original = getattr(parent, child)
        setattr(parent, child, nn.Identity())
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(1, in_channels, 64, 64))
        except (RuntimeError, ValueError, TypeError):
            setattr(parent, child, original.requires_grad_(False))
        unused -= set(params)
    model.train()
    for name, p in model.named_parameters():
        if name in unused:
            p.requires_grad_(False)
