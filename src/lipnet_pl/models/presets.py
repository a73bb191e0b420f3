"""Named LIP-Net configurations: ``build_model(name)`` = ``LIPNet(**preset, **overrides)``.

The numbers live in ``conf/model/<name>.yaml`` (read here, so ``build_model(name)`` and
``model=<name>`` cannot disagree). ``lipnet`` is the paper's figure
(3.96 M parameters, 32.8 GFLOPs at 473x473).

``lipnet_rt`` is the real-time variant (issues 10 and 27): the same SE-ResNet stages, ASPP and
decoder with the same parameter budget (3.97 M at 20 classes) at 1/7 of the FLOPs (4.64 GFLOPs):

* ``stem_stride=4, pool_after=[2, 3, 4]`` (issue 27): the 7x7 stem goes straight to stride 4, S1
  and S2 both run there, one 2x2 pool fewer, so the backbone still ends at output stride 32 and
  S3..S6 run one octave coarser than the paper net. ``lipnet_rt_s2`` keeps the issue-10 stem
  (stride 2, S1 alone at stride 2, pools after S1-S4; 5.23 GFLOPs): on 5 seeds the stride-4 stem
  was not worse (43.10 +- 0.80 vs 42.93 +- 1.20 demo mIoU) and 1.25x faster in ONNX Runtime int8
  (docs/architecture.md).
* ``dilations=[1, 1, 1, 2, 4, 1]`` and ``aspp_rates=[3, 6, 9]``: half the paper's values, so that
  every atrous tap lands at the same distance *in input pixels* as in the paper net (stride x
  dilation unchanged). The paper's rates would be mostly dead at stride 32: on the 15x15 grid of
  a 473x473 image a rate-12 or rate-18 tap falls into the zero padding for almost every position.
* ``skip_stage=3``: the S3 feature (now at stride 8) feeds the decoder, so the logits come out at
  stride 8 (as PSPNet / CE2P-style parsers) rather than 4; a stride-4 skip (S2) with any useful
  decoder width costs 8.5-15 GFLOPs, over the budget of a quarter of the paper net (8.2).
* ``decoder_channels=64`` (the original Keras code's decoder width) and ``aspp_channels=384``:
  the decoder's 3x3 conv was 61 % of the paper net's FLOPs; the parameters it gives up move into
  the ASPP, which runs on the coarsest grid (15x15) where a parameter costs 16x fewer FLOPs.

Candidates measured for issue 10 (all with the stride-2 stem), 20 classes, 473x473, batch 1
(latency: one process, interleaved, 1 thread, median of 20 on a shared 2-core EPYC under load ~8,
so only the ratios mean something):

| candidate (besides stem_stride=2)               | params  | GFLOPs | onnxruntime | fast path |
|-------------------------------------------------|---------|--------|-------------|-----------|
| **aspp 384, decoder 64, skip S3** (lipnet_rt)   | 3.965 M | 5.23   | 1.00        | 1.67      |
| aspp 384, decoder 48, skip S3                   | 3.903 M | 4.78   | 0.91        | 1.60      |
| aspp 320, decoder 128, skip S3                  | 3.895 M | 6.39   | 1.16        | 1.74      |
| output stride 16 (pools after S1-S3), aspp 256, | 3.869 M | 8.16   | 1.35        | 2.24      |
|   decoder 64, SE r=1, global image pooling      |         |        |             |           |

An output-stride-16 variant only reaches the parameter budget by spending it on FLOP-free SE and
image-pooling weights and is the slowest; any stride-4 decoder skip costs 8.5-21 GFLOPs.
The 48-wide decoder saves ~9 % latency for 1.6 % fewer parameters; the 64-wide one is kept for
boundary detail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from lipnet_pl.config import model_config

PRESET_NAMES = ("lipnet", "lipnet_rt", "lipnet_rt_s2")


@cache
def _load_preset(name: str) -> Mapping[str, Any]:
    """LIPNet arguments of ``conf/model/<name>.yaml`` as ``model=<name>`` composes it (Hydra
    applies its defaults, e.g. the ``model/dilations`` preset): the config is the one source of
    each preset's numbers, and :func:`lipnet_pl.config.model_config` its one reader."""
    args = {k: v for k, v in model_config(name).items() if k not in ("name", "num_classes")}
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})


class _Presets(Mapping):
    """Preset name -> LIPNet keyword arguments, read from the packaged configs on first use."""

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        if name not in PRESET_NAMES:
            raise KeyError(name)
        return _load_preset(name)

    def __iter__(self) -> Iterator[str]:
        return iter(PRESET_NAMES)

    def __len__(self) -> int:
        return len(PRESET_NAMES)


LIPNET_PRESETS: Mapping[str, Mapping[str, Any]] = _Presets()
