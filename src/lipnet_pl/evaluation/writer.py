"""Eval's optional per-image outputs: LIP-format label PNGs of the predictions.

``python -m lipnet_pl.eval ... save_predictions=true`` writes ``predictions/<id>.png`` (class ids,
original image size), the same files ``predict`` writes under ``labels/`` for the same images.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback
from PIL import Image

from lipnet_pl.core.labels import labels_at, to_uint8


class PredictionWriter(Callback):
    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.written = 0

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for logits, size, sample_id in zip(
            outputs["logits"], batch["orig_size"].tolist(), batch["id"], strict=True
        ):
            label = to_uint8(labels_at(logits, size)).numpy()
            Image.fromarray(label, mode="L").save(self.out_dir / f"{sample_id}.png")
            self.written += 1
