"""Optimiser and learning-rate schedule builders for ``module.optimizer`` / ``module.scheduler``.

Optimisers come from timm's registry (``timm.optim.create_optimizer_v2``), which also keeps
norms and biases out of weight decay. The schedule is a per-iteration factor for ``LambdaLR``:
linear warm-up, then poly (power 0.9, the LIP recipe), cosine or constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from timm.optim import create_optimizer_v2, list_optimizers
from torch import nn

DEFAULT_OPTIMIZER = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}
DEFAULT_SCHEDULER = {
    "name": "poly",
    "power": 0.9,
    "warmup_steps": 0,
    "warmup_ratio": 0.0,
    "min_lr_ratio": 0.0,
}
SCHEDULES = ("poly", "cosine", "constant")


def check_optimizer(cfg: Mapping[str, Any]) -> None:
    """``lr`` a finite number > 0 and ``weight_decay`` finite and >= 0, checked when the config
    is read (the optimiser itself is built inside ``fit``, where a bad value is a traceback)."""
    for key, low, strict in (("lr", 0.0, True), ("weight_decay", 0.0, False)):
        if key not in cfg:
            continue
        try:
            value = float(cfg[key])
        except (TypeError, ValueError):
            raise ValueError(f"{key}={cfg[key]!r} is not a number") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise ValueError(
                f"{key}={cfg[key]} must be a finite number {'>' if strict else '>='} 0"
            )


def build_optimizer(net: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``cfg``: ``name`` (``sgd``, ``adamw`` or any timm optimiser), ``lr``, ``weight_decay``,
    and the optimiser's own options (``momentum``, ``nesterov``, ``betas``, ...)."""
    opts = dict(cfg or DEFAULT_OPTIMIZER)
    name = str(opts.pop("name", "sgd")).lower()
    lr = float(opts.pop("lr", DEFAULT_OPTIMIZER["lr"]))
    weight_decay = float(opts.pop("weight_decay", 0.0))
    nesterov = bool(opts.pop("nesterov", False))
    if name == "sgd":  # timm's "sgd" is Nesterov; "momentum" is classic SGD with momentum
        name = "sgd" if nesterov else "momentum"
    if name not in list_optimizers():
        raise ValueError(
            f"module.optimizer.name={cfg.get('name')!r} is not an optimiser: use sgd, adamw or a "
            "timm optimiser name (timm.optim.list_optimizers())"
        )
    if "betas" in opts:
        opts["betas"] = tuple(float(b) for b in opts["betas"])
    return create_optimizer_v2(net, opt=name, lr=lr, weight_decay=weight_decay, **opts)


def lr_factor(cfg: Mapping[str, Any], total_steps: int) -> Callable[[int], float]:
    """Per-optimiser-step multiplier of the base learning rate for ``LambdaLR``."""
    cfg = {**DEFAULT_SCHEDULER, **dict(cfg)}
    name = str(cfg["name"]).lower()
    if name not in SCHEDULES:
        raise ValueError(f"module.scheduler.name must be one of {list(SCHEDULES)}, got {name!r}")
    total = max(1, int(total_steps))
    warmup = int(cfg.get("warmup_steps") or 0) or int(float(cfg.get("warmup_ratio") or 0) * total)
    power, floor = float(cfg["power"]), float(cfg["min_lr_ratio"])

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "poly":
            decay = (1.0 - progress) ** power
        elif name == "cosine":
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            decay = 1.0
        return floor + (1.0 - floor) * decay

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int
) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry: the factor schedule, stepped every optimiser step."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_steps))
    return {"scheduler": scheduler, "interval": "step"}
