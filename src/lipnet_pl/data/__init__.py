"""LIP data layer: layouts, decoding, joint transforms with left/right swap, LIPDataModule.

``lipnet_pl.data.synthetic`` writes a synthetic LIP-format set; ``python -m lipnet_pl.data``
offers ``prepare`` (official zips -> flat layout), ``check`` and ``bench``.
"""

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
