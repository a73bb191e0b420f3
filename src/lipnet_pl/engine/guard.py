"""Stop training on a real divergence without stalling the GPU every step.

The guard ORs "the loss is not finite" (and, without a gradient scaler, "the gradient norm is not
finite") into a flag that stays on the device. The flag is read (one host-device sync, plus one
all-reduce under DDP so every rank stops together) every ``check_every_n_steps`` optimiser steps
and before every checkpoint write, so a diverged state is never saved: the last good checkpoint
stays the newest one.

With fp16 mixed precision (``trainer.precision=16-mixed``) inf/NaN gradients are routine: the
GradScaler skips those steps and lowers its scale. The gradient check is therefore left to the
scaler; only a non-finite loss stops the run.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lipnet_pl.errors import NonFiniteLossError


class NonFiniteGuard(Callback):
    def __init__(self, check_every_n_steps: int = 50) -> None:
        if int(check_every_n_steps) < 1:
            raise ValueError(
                "callbacks.nonfinite_guard.check_every_n_steps must be >= 1, got "
                f"{check_every_n_steps}"
            )
        self.every = int(check_every_n_steps)
        self._bad: torch.Tensor | None = None
        self._first_bad_step: torch.Tensor | None = None

    # ------------------------------------------------------------------ flag on the device
    def _flag(self, value: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(value.detach()).all()
        if self._bad is None:
            self._bad = torch.zeros((), dtype=torch.bool, device=bad.device)
            self._first_bad_step = torch.full((), -1, dtype=torch.long, device=bad.device)
        now = torch.full_like(self._first_bad_step, step)
        first = torch.where(self._bad, self._first_bad_step, now)  # keep the first bad step
        self._first_bad_step = torch.where(bad, first, self._first_bad_step)
        self._bad = self._bad | bad

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self._flag(loss, trainer.global_step)  # the step this loss belongs to

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.check(trainer)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # fp16: the GradScaler skips non-finite steps and lowers the scale
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads:
            self._flag(torch.nn.utils.get_total_norm(grads), trainer.global_step)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self.check(trainer)  # never write a diverged state

    def on_train_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    # ------------------------------------------------------------------ the check
    def check(self, trainer: pl.Trainer) -> None:
        """Sync the flag (all ranks) and raise :class:`NonFiniteLossError` when it is set."""
        local = bool(self._bad) if self._bad is not None else False
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(local, all=False)
        else:
            bad = local
        if not bad:
            return
        step = int(self._first_bad_step) if local and self._first_bad_step is not None else "?"
        raise NonFiniteLossError(
            f"training diverged: the loss or the gradients became NaN/Inf at global step {step} "
            f"(detected at step {trainer.global_step}); stopped before writing any checkpoint, "
            "the last good one is kept. Lower module.optimizer.lr, add warm-up "
            "(module.scheduler.warmup_steps) or gradient clipping (trainer.gradient_clip_val), "
            "or check the data."
        )
