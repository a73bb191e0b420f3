"""Inference fast path: eval mode, batch norm folded into convolutions, channels_last, compile.

Used by ``predict``, ``export`` and ``bench`` so that all three measure and ship the same network.
Batch norm in eval mode is an affine map, so it can be folded into the preceding convolution
(one kernel instead of two, no extra memory pass); this must never change the outputs beyond
float rounding, which the tests check for LIP-Net and an smp peer.

The conv -> BN pairs are found on a ``torch.fx`` graph (a BN is folded only when its input is a
conv output with no other user, so residual branches stay correct) and folded in place with
``torch.nn.utils.fusion.fuse_conv_bn_eval``, keeping the model's own classes and attributes
(smp models read e.g. ``encoder.output_stride`` in ``forward``). Models whose ``forward`` cannot
be traced symbolically as a whole (e.g. padding computed from the input size) are handled by
recursing into their children and folding inside every traceable sub-module instead.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONV_FOR_BN = {nn.BatchNorm1d: nn.Conv1d, nn.BatchNorm2d: nn.Conv2d, nn.BatchNorm3d: nn.Conv3d}


def count_batchnorm(model: nn.Module) -> int:
    """Number of batch-norm modules left in ``model`` (0 after a complete fold)."""
    return sum(isinstance(m, _BN_TYPES) for m in model.modules())


def _conv_bn_pairs(module: nn.Module, prefix: str = "") -> list[tuple[str, str]]:
    """Qualified names of (conv, bn) pairs where bn consumes only that conv's output.

    Found on the fx graph of the largest symbolically traceable sub-modules; a conv or bn
    called more than once, or a conv output used elsewhere (residuals), is never paired.
    """
    if not any(isinstance(m, _BN_TYPES) for m in module.modules()):
        return []
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as err:  # not traceable as a whole: look inside its children
        log.debug("fx cannot trace %s (%s): folding its children", type(module).__name__, err)
        pairs = []
        for name, child in module.named_children():
            pairs += _conv_bn_pairs(child, f"{prefix}{name}.")
        return pairs
    modules = dict(module.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or calls[node.target] != 1 or not node.args:
            continue
        bn = modules.get(node.target)
        if type(bn) not in _CONV_FOR_BN or not bn.track_running_stats:
            continue  # exact types only: e.g. timm's BatchNormAct2d also applies an activation
        src = node.args[0]
        if not isinstance(src, torch.fx.Node) or src.op != "call_module":
            continue
        conv = modules.get(src.target)
        if (
            isinstance(conv, _CONV_FOR_BN[type(bn)])
            and calls[src.target] == 1
            and len(src.users) == 1
            and conv.out_channels == bn.num_features
        ):
            pairs.append((prefix + src.target, prefix + node.target))
    return pairs


def _set_submodule(root: nn.Module, qualname: str, new: nn.Module) -> None:
    parent_name, _, attr = qualname.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with conv -> batch-norm pairs folded into the convs.

    The structure (module names, attributes, ``forward``) is kept: each folded conv gets the
    fused weights and its batch norm becomes ``nn.Identity``. The input model is untouched.
    Batch norms that do not directly follow a convolution stay as they are.
    """
    folded = copy.deepcopy(model).eval()
    for conv_name, bn_name in _conv_bn_pairs(folded):
        fused = fuse_conv_bn_eval(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
        _set_submodule(folded, conv_name, fused)
        _set_submodule(folded, bn_name, nn.Identity())
    return folded


class ChannelsLast(nn.Module):
    """Feeds the wrapped network channels_last (NHWC) tensors; CPU oneDNN and tensor cores
    prefer that layout. Logits come back in standard (contiguous) layout."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last)).contiguous()


def make_fast(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
    dynamic: bool | None = None,
) -> nn.Module:
    """Build the inference fast path of ``model`` (a copy; the original is not modified).

    ``compile`` wraps the result in ``torch.compile`` (inductor; works on CPU with gcc).
    ``compile_mode="reduce-overhead"`` enables CUDA graphs on GPU. On CPU without a mode the
    inductor ``freezing`` option is used, which constant-folds the (folded) weights and pre-packs
    them for oneDNN.
    """
    if compile_mode not in (
        None,
        "default",
        "reduce-overhead",
        "max-autotune",
        "max-autotune-no-cudagraphs",
    ):
        raise ValueError(
            f"compile_mode={compile_mode!r} is not a torch.compile mode: use null, default, "
            "reduce-overhead, max-autotune or max-autotune-no-cudagraphs"
        )
    net = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    if channels_last:
        net = ChannelsLast(net)
    net = net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if compile:
        device_type = (
            next(iter(net.parameters())).device.type
            if any(True for _ in net.parameters())
            else "cpu"
        )
        if compile_mode is None and device_type == "cpu":
            net = torch.compile(net, dynamic=dynamic, options={"freezing": True})
        else:
            net = torch.compile(net, mode=compile_mode, dynamic=dynamic)
    return net
