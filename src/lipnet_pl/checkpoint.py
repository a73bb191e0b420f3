"""Rebuild a network from a lipnet_pl training checkpoint without Lightning or Hydra.

The checkpoint contract (written by :class:`lipnet_pl.module.SegmentationModule`):

* ``checkpoint["hyper_parameters"]`` holds primitives only (so ``weights_only=True`` loads it):
  ``net`` (a dict: ``build_model(**net)`` rebuilds the network, it includes ``name`` and
  ``num_classes``), ``classes`` (``names``, ``palette``, ``flip_pairs``, ``ignore_index``),
  ``input_size`` (``[H, W]`` the network was trained/evaluated at) and ``normalize``
  (``mean``/``std`` as 0..1 floats).
* ``checkpoint["state_dict"]`` holds the network's parameters under the prefix ``net.``
  (never ``_orig_mod.``: compiled models are saved uncompiled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from lipnet_pl.data.classes import ClassInfo

IMAGENET_MEAN = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD = tuple(IMAGENET_DEFAULT_STD)


@dataclass
class LoadedModel:
    net: nn.Module
    classes: ClassInfo
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    hparams: dict


def load_model_from_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> LoadedModel:
    """Load ``path`` (a ``.ckpt`` from training) into a plain ``nn.Module`` in eval mode."""
    from lipnet_pl.models import build_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist: pass ckpt_path=<run dir>/checkpoints/last.ckpt "
            "(train one with `python -m lipnet_pl.train`)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt, truncated or not a torch file
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from err
    hp = ckpt.get("hyper_parameters") or {}
    if "net" not in hp or "state_dict" not in ckpt:
        raise ValueError(
            f"checkpoint {path} was not written by lipnet_pl training "
            "(no hyper_parameters['net'] or state_dict)"
        )
    net_cfg = dict(hp["net"])
    net = build_model(**net_cfg)
    state = {
        k[len("net.") :].replace("_orig_mod.", ""): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("net.")
    }
    net.load_state_dict(state)
    net.eval()
    norm = hp.get("normalize") or {}
    size = hp.get("input_size") or (473, 473)
    return LoadedModel(
        net=net,
        classes=ClassInfo.from_config(hp.get("classes")),
        input_size=(int(size[0]), int(size[1])),
        mean=tuple(norm.get("mean", IMAGENET_MEAN)),
        std=tuple(norm.get("std", IMAGENET_STD)),
        hparams=hp,
    )
