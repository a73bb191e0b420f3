"""What a trained network expects and what its outputs mean, apart from its weights.

A :class:`ModelSpec` travels with every saved model (training checkpoint hyper-parameters, ONNX
metadata, ``save_pretrained`` folders), so that evaluation, prediction, export and benchmarks
rebuild the same network and feed it the same preprocessing, whatever file they were given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from lipnet_pl.data.classes import ClassInfo

SPEC_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """``net`` rebuilds the network (``build_model(**net)``); the rest describes its input/output.

    * ``classes``: names, palette, left/right flip pairs and ignore index of the output channels;
    * ``input_size``: ``(H, W)`` images are resized (stretched) to before the network;
    * ``mean`` / ``std``: per-channel normalisation of 0..1 RGB input.
    """

    net: dict[str, Any]
    classes: ClassInfo = field(default_factory=ClassInfo)
    input_size: tuple[int, int] = (473, 473)
    mean: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
    std: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)

    def __post_init__(self) -> None:
        if not isinstance(self.net, Mapping) or "name" not in self.net:
            raise ValueError(f"ModelSpec.net must be a dict with a 'name', got {self.net!r}")
        size = tuple(int(s) for s in self.input_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"input_size must be [H, W] of positive ints, got {list(size)}")
        for key in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, key))
            if len(value) != 3:
                raise ValueError(f"{key} must hold 3 values (R, G, B), got {list(value)}")
            object.__setattr__(self, key, value)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {list(self.std)}")
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "net", dict(self.net))

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def name(self) -> str:
        return str(self.net["name"])

    def to_dict(self) -> dict[str, Any]:
        """Primitives only (checkpoint ``weights_only`` loading, JSON, ONNX metadata)."""
        return {
            "spec_version": SPEC_VERSION,
            "net": dict(self.net),
            "classes": self.classes.to_dict(),
            "input_size": list(self.input_size),
            "normalize": {"mean": list(self.mean), "std": list(self.std)},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; also reads a training checkpoint's hyper-parameters."""
        norm = dict(data.get("normalize") or {})
        return cls(
            net=dict(data["net"]),
            classes=ClassInfo.from_config(data.get("classes")),
            input_size=tuple(data.get("input_size") or (473, 473)),
            mean=tuple(norm.get("mean", IMAGENET_DEFAULT_MEAN)),
            std=tuple(norm.get("std", IMAGENET_DEFAULT_STD)),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls.from_dict(json.loads(text))
