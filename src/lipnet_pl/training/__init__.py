"""Training: ``train(cfg)`` (:mod:`.run`) and the multirun summary (:mod:`.sweep`). The
LightningModule, callbacks and builders it runs are the engine's (:mod:`lipnet_pl.engine`)."""

from lipnet_pl.engine.module import SegmentationModule

__all__ = ["SegmentationModule"]
