"""LIP-Net: a small dilated SE-ResNet with ASPP and a DeepLabv3+-style decoder.

Port of the network drawn in the LIP-Net paper (ICROSS 2020, ``lipnet_architecture.png``):
7x7 stem -> six stages S1..S6 of two "3x3, SER" rows each (dilations 1, 1, 2, 4, 8, 1, max-pooling
after S1..S4, output stride 16) -> ASPP (image pooling, 1x1, 3x3 at rates 6/12/18, concat, 1x1)
-> 4x upsample, concat with a 1x1-projected S3 feature (stride 4) -> 3x3 conv -> upsample to the
input size.

The original SE-ResNet block file was never published. The block used here, one SER row =
``3x3 conv -> BN -> ReLU -> SE -> + shortcut -> ReLU`` (1x1 conv + BN shortcut when the width
changes), with SE reduction 2, the original code's input-image pooling and depthwise-separable
ASPP (width 256) and a DeepLabv3+ decoder (48-channel skip, 256-wide 3x3 conv), gives 3,960,852
parameters at 20 classes: the paper's 3.97 M within 0.3 %. With SE reduction 4 or 16 the count
falls outside +-3 %. docs/architecture.md explains every choice and lists measured variants.

All constructor arguments are primitives (ints, lists, strings, bools) so a model round-trips
through Hydra YAML and checkpoint hyper-parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import SEModule, SeparableConv2d, create_conv2d, get_act_layer
from torch import nn

from lipnet_pl.models.summary import count_parameters

PAPER_DILATIONS = (1, 1, 2, 4, 8, 1)
IMAGE_POOLING_MODES = ("input", "global", "none")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _int_list(name: str, value, length: int | None = None, minimum: int = 1) -> tuple[int, ...]:
    """Validate a list of ints (YAML ListConfig included) and return it as a tuple."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    items = tuple(value)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in items):
        raise ValueError(f"{name} must contain only integers, got {list(items)!r}")
    if length is not None and len(items) != length:
        raise ValueError(
            f"{name} must have one entry per stage ({length} stages), got {len(items)}: {list(items)!r}"
        )
    if any(v < minimum for v in items):
        raise ValueError(f"{name} entries must be >= {minimum}, got {list(items)!r}")
    return items


def _resolve_act(act_layer: str | type[nn.Module]) -> type[nn.Module]:
    if isinstance(act_layer, str):
        try:
            return get_act_layer(act_layer)
        except KeyError:
            raise ValueError(
                f"act_layer {act_layer!r} is not a known activation "
                "(use a timm name such as 'relu', 'silu', 'gelu', 'hard_swish')"
            ) from None
    return act_layer


def _stage_layout(widths, dilations, units_per_stage, pool_after, skip_stage) -> tuple:
    """Validated per-stage widths, dilations, units and the sorted 1-based pooled stages."""
    widths = _int_list("widths", widths)
    if not widths:
        raise ValueError("widths must list at least one stage width, got []")
    n = len(widths)
    dilations = _int_list("dilations", dilations, length=n)
    if isinstance(units_per_stage, int) and not isinstance(units_per_stage, bool):
        units = (_positive_int("units_per_stage", units_per_stage),) * n
    else:
        units = _int_list("units_per_stage", units_per_stage, length=n)
    pool_after = _int_list("pool_after", pool_after)
    if any(p > n for p in pool_after) or len(set(pool_after)) != len(pool_after):
        raise ValueError(
            f"pool_after must list distinct 1-based stage numbers in 1..{n}, got {list(pool_after)!r}"
        )
    if _positive_int("skip_stage", skip_stage) > n:
        raise ValueError(f"skip_stage must be a stage number in 1..{n}, got {skip_stage!r}")
    return widths, dilations, units, tuple(sorted(pool_after))


class ConvBNAct(nn.Sequential):
    """conv -> plain BatchNorm2d -> activation (kept separate so SyncBatchNorm conversion keeps the act)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        separable: bool = False,
        padding: int | None = None,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        if separable:
            conv = SeparableConv2d(
                in_channels, out_channels, kernel_size, stride=stride, dilation=dilation
            )
        else:
            pad = {} if padding is None else {"padding": padding}  # None: timm's rule
            conv = create_conv2d(
                in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, **pad
            )
        super().__init__(conv, norm_layer(out_channels), act_layer())


class SEResUnit(nn.Module):
    """One "3x3, SER" row of the figure: dilated 3x3 conv-BN-act, squeeze-excitation, residual add.

    The shortcut is the identity when the width is unchanged, else a 1x1 conv + BN projection.
    ``se_channels`` is the SE bottleneck width (default: half the output width, LIP-Net's choice).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilation: int = 1,
        se_channels: int | None = None,
        *,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.conv = ConvBNAct(
            in_channels,
            out_channels,
            3,
            dilation=dilation,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )
        rd = se_channels if se_channels is not None else max(1, out_channels // 2)
        self.se = SEModule(out_channels, rd_channels=rd, act_layer=act_layer)
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                create_conv2d(in_channels, out_channels, 1), norm_layer(out_channels)
            )
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.conv(x)) + self.shortcut(x))


class Stage(nn.Sequential):
    """A stage S_i: ``units`` SER rows at one width and one dilation (pooling lives outside)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        units: int = 2,
        dilation: int = 1,
        se_reduction: int = 2,
        *,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        se_channels = max(1, out_channels // se_reduction)
        super().__init__(
            *(
                SEResUnit(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    dilation=dilation,
                    se_channels=se_channels,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                )
                for i in range(units)
            )
        )
        self.dilation = dilation
        self.out_channels = out_channels


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with a choice of image-pooling branch.

    ``image_pooling``:
      * ``"input"`` (original Keras code): max-pool the INPUT IMAGE down to the ASPP resolution
        (kernel = stride = the network's output stride, ceil mode, which matches the ceil-mode
        pools of the backbone exactly) and concatenate its raw channels;
      * ``"global"`` (DeepLabv3): global-average-pool the features, 1x1 conv-BN-act, broadcast;
      * ``"none"``: no pooling branch.
    ``separable`` makes the atrous 3x3 branches depthwise-separable (original code) instead of
    plain dilated convs. The 1x1 branch is a plain 1x1 conv either way (a separable 1x1 only adds
    a per-channel scale that BN already provides).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        image_pooling: str = "input",
        separable: bool = True,
        image_channels: int = 3,
        image_stride: int = 16,
        *,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        if image_pooling not in IMAGE_POOLING_MODES:
            raise ValueError(
                f"image_pooling must be one of {list(IMAGE_POOLING_MODES)}, got {image_pooling!r}"
            )
        rates = _int_list("aspp_rates", rates)
        if not rates:
            raise ValueError("aspp_rates must hold at least one atrous rate, got []")
        self.image_pooling = image_pooling
        self.rates = rates
        kw = dict(norm_layer=norm_layer, act_layer=act_layer)
        branches = [ConvBNAct(in_channels, out_channels, 1, **kw)]
        branches += [
            ConvBNAct(in_channels, out_channels, 3, dilation=r, separable=separable, **kw)
            for r in rates
        ]
        self.branches = nn.ModuleList(branches)
        concat = out_channels * len(branches)
        if image_pooling == "input":
            self.pool: nn.Module = nn.MaxPool2d(image_stride, image_stride, ceil_mode=True)
            concat += image_channels
        elif image_pooling == "global":
            self.pool = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), ConvBNAct(in_channels, out_channels, 1, **kw)
            )
            concat += out_channels
        else:
            self.pool = nn.Identity()
        self.project = ConvBNAct(concat, out_channels, 1, **kw)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.image_pooling == "input":
            outs.append(self.pool(image))
        elif self.image_pooling == "global":
            outs.append(self.pool(x).expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(outs, dim=1))


class Decoder(nn.Module):
    """Upsample ASPP output to the skip's actual size, concat the 1x1-projected skip, 3x3 conv."""

    def __init__(
        self,
        in_channels: int,
        skip_in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        kw = dict(norm_layer=norm_layer, act_layer=act_layer)
        self.skip = ConvBNAct(skip_in_channels, skip_channels, 1, **kw)
        self.fuse = ConvBNAct(in_channels + skip_channels, out_channels, 3, **kw)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.skip(skip)
        # size=..., never a fixed factor: ceil-mode pooling makes odd sizes round up.
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


_SCALARS = (
    "num_classes in_channels stem_channels stem_stride se_reduction aspp_channels skip_channels "
    "decoder_channels"
).split()


def _check_scalars(*values: int) -> None:
    """The :data:`_SCALARS` arguments, in that order, must be positive ints (ValueError names the
    argument and shows the bad value)."""
    for key, value in zip(_SCALARS, values, strict=True):
        _positive_int(key, value)


def _backbone(
    in_channels: int,
    widths: Sequence[int],
    dilations: Sequence[int],
    units: Sequence[int],
    pool_after: Sequence[int],
    se_reduction: int,
    **kw,
) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Stages S1..S6 and the 2x2 max-pool (or identity) after each."""
    stages, pools, prev = [], [], in_channels
    for i, (w, d, u) in enumerate(zip(widths, dilations, units, strict=True)):
        stages.append(Stage(prev, w, u, d, se_reduction, **kw))
        pooled = (i + 1) in pool_after
        pools.append(nn.MaxPool2d(2, 2, ceil_mode=True) if pooled else nn.Identity())
        prev = w
    return nn.ModuleList(stages), nn.ModuleList(pools)


class LIPNet(nn.Module):
    """LIP-Net for human parsing: [B, in_channels, H, W] -> logits [B, num_classes, H, W], any H, W.

    Defaults reproduce the paper's figure with 3.96 M parameters at 20 classes (paper: 3.97 M).

    Args:
        num_classes: output channels (LIP: 20).
        in_channels: image channels.
        stem_channels, stem_kernel, stem_stride: the "7x7, s=1" stem conv.
        widths: output channels per stage S1..Sn (the number of stages is ``len(widths)``).
        dilations: one dilation per stage (paper: 1, 1, 2, 4, 8, 1).
        units_per_stage: SER rows per stage, an int for all stages or one int per stage.
        pool_after: 1-based stages followed by a 2x2 max-pool (ceil mode; paper: 1, 2, 3, 4).
        se_reduction: SE bottleneck = stage width // se_reduction (at least 1).
        aspp_channels: width of every ASPP branch and of its 1x1 projection.
        aspp_rates: atrous rates of the 3x3 ASPP branches (any number >= 1).
        aspp_separable: depthwise-separable atrous branches (original code) or plain convs.
        image_pooling: "input" (pool the input image, original code), "global" (DeepLabv3) or "none".
        skip_stage: 1-based stage whose output feeds the decoder (paper: S3, stride 4).
        skip_channels: width of the 1x1 skip projection (DeepLabv3+: 48).
        decoder_channels: width of the decoder's 3x3 conv.
        act_layer: activation, a timm name ("relu", "silu", ...) or an nn.Module class.
    """

    def __init__(
        self,
        num_classes: int = 20,
        in_channels: int = 3,
        stem_channels: int = 16,
        stem_kernel: int = 7,
        stem_stride: int = 1,
        widths: Sequence[int] = (16, 32, 64, 128, 256, 256),
        dilations: Sequence[int] = PAPER_DILATIONS,
        units_per_stage: int | Sequence[int] = 2,
        pool_after: Sequence[int] = (1, 2, 3, 4),
        se_reduction: int = 2,
        aspp_channels: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        aspp_separable: bool = True,
        image_pooling: str = "input",
        skip_stage: int = 3,
        skip_channels: int = 48,
        decoder_channels: int = 256,
        act_layer: str | type[nn.Module] = "relu",
    ):
        super().__init__()
        scalars = (num_classes, in_channels, stem_channels, stem_stride, se_reduction)
        _check_scalars(*scalars, aspp_channels, skip_channels, decoder_channels)
        if _positive_int("stem_kernel", stem_kernel) % 2 == 0:
            raise ValueError(f"stem_kernel must be odd (symmetric padding), got {stem_kernel!r}")
        if not isinstance(aspp_separable, bool):
            raise ValueError(f"aspp_separable must be true or false, got {aspp_separable!r}")
        widths, dilations, units, pool_after = _stage_layout(
            widths, dilations, units_per_stage, pool_after, skip_stage
        )
        act = _resolve_act(act_layer)
        kw = dict(norm_layer=nn.BatchNorm2d, act_layer=act)

        self.num_classes = num_classes
        self.widths = widths
        self.dilations = dilations
        self.stem_stride = stem_stride
        self.pool_after = pool_after
        self.skip_index = skip_stage - 1
        self.output_stride = stem_stride * 2 ** len(pool_after)

        # pad (k - 1) / 2: output ceil(H / stride) at every stride, as the input pooling branch
        # assumes (timm's rule pads one more at stride 4, which broke the ASPP concat)
        self.stem = ConvBNAct(
            in_channels,
            stem_channels,
            stem_kernel,
            stride=stem_stride,
            padding=(stem_kernel - 1) // 2,
            **kw,
        )
        self.stages, self.pools = _backbone(
            stem_channels, widths, dilations, units, pool_after, se_reduction, **kw
        )
        self.aspp = ASPP(
            widths[-1],
            aspp_channels,
            aspp_rates,
            separable=aspp_separable,
            image_pooling=image_pooling,
            image_channels=in_channels,
            image_stride=self.output_stride,
            **kw,
        )
        skip = widths[self.skip_index]
        self.decoder = Decoder(aspp_channels, skip, skip_channels, decoder_channels, **kw)
        # 1x1 classifier at stride 4, then bilinear upsampling: identical to classifying after the
        # upsample (both linear, bilinear weights sum to 1) at a fraction of the cost.
        self.head = nn.Conv2d(decoder_channels, num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        image = x
        x = self.stem(x)
        skip = x
        for i, (stage, pool) in enumerate(zip(self.stages, self.pools, strict=True)):
            x = stage(x)
            if i == self.skip_index:
                skip = x
            x = pool(x)
        x = self.aspp(x, image)
        x = self.decoder(x, skip)
        x = self.head(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def stage_table(self, height: int = 473, width: int = 473) -> list[dict]:
        """Per-part rows (name, module, channels, dilation, stride, resolution, params) for HxW.

        ``module`` is the submodule's qualified name (None for the final upsample).

        Resolutions follow the ceil-mode arithmetic of the stem and pools, so they are exact for
        odd sizes too (tests check them against forward hooks).
        """

        def row(name, key, channels, dilation, stride, hw):
            params = count_parameters(self.get_submodule(key))
            keys = ("name", "module", "channels", "dilation", "stride", "resolution", "params")
            return dict(zip(keys, (name, key, channels, dilation, stride, hw, params), strict=True))

        hw = (math.ceil(height / self.stem_stride), math.ceil(width / self.stem_stride))
        stride = self.stem_stride
        rows = [row("stem", "stem", self.stem[1].num_features, 1, stride, hw)]
        skip = (stride, hw)
        for i, stage in enumerate(self.stages):
            rows.append(
                row(f"S{i + 1}", f"stages.{i}", stage.out_channels, stage.dilation, stride, hw)
            )
            if i == self.skip_index:
                skip = (stride, hw)
            if (i + 1) in self.pool_after:
                hw, stride = (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2)), stride * 2
        rates = ",".join(str(r) for r in self.aspp.rates)
        rows.append(
            row("aspp", "aspp", self.aspp.project[1].num_features, f"1,{rates}", stride, hw)
        )
        rows.append(row("decoder", "decoder", self.decoder.fuse[1].num_features, 1, *skip))
        rows.append(row("head", "head", self.num_classes, 1, *skip))
        rows.append(
            dict(
                name="output",
                module=None,
                channels=self.num_classes,
                dilation=1,
                stride=1,
                resolution=(height, width),
                params=0,
            )
        )
        return rows
