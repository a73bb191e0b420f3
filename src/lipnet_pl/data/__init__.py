"""LIP data layer: layouts, decoding, joint transforms with left/right swap, LIPDataModule.

``lipnet_pl.data.synthetic`` writes a synthetic LIP-format set; ``python -m lipnet_pl.data``
offers ``prepare`` (official zips -> flat layout), ``check`` and ``bench``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lipnet_pl.data.classes import IGNORE_INDEX, LIP, ClassInfo
    from lipnet_pl.data.datamodule import LIPDataModule, resolve_classes
    from lipnet_pl.data.dataset import DataFileError, LIPDataset, decode_image, decode_label
    from lipnet_pl.data.layout import SplitFiles, find_layout
    from lipnet_pl.data.transforms import (
        EvalTransform,
        JitterNormalize,
        RandomHorizontalFlipSwap,
        RandomScaleRotateCrop,
        TrainTransform,
        collate_eval,
        preprocess,
    )

# name -> submodule, imported on first access (PEP 562): ``python -m lipnet_pl.data --help`` and
# the light submodules load without torch, torchvision and Lightning
_HOMES = {
    **dict.fromkeys(["IGNORE_INDEX", "LIP", "ClassInfo"], "classes"),
    **dict.fromkeys(["LIPDataModule", "resolve_classes"], "datamodule"),
    **dict.fromkeys(["DataFileError", "LIPDataset", "decode_image", "decode_label"], "dataset"),
    **dict.fromkeys(["SplitFiles", "find_layout"], "layout"),
    **dict.fromkeys(
        [
            "EvalTransform",
            "JitterNormalize",
            "RandomHorizontalFlipSwap",
            "RandomScaleRotateCrop",
            "TrainTransform",
            "collate_eval",
            "preprocess",
        ],
        "transforms",
    ),
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "IGNORE_INDEX",
    "LIP",
    "ClassInfo",
    "DataFileError",
    "EvalTransform",
    "JitterNormalize",
    "LIPDataModule",
    "LIPDataset",
    "RandomHorizontalFlipSwap",
    "RandomScaleRotateCrop",
    "SplitFiles",
    "TrainTransform",
    "collate_eval",
    "decode_image",
    "decode_label",
    "preprocess",
    "find_layout",
    "resolve_classes",
]


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
