"""Training: ``train(cfg)`` (:mod:`.train`). The LightningModule, callbacks and builders it runs
are the engine's (:mod:`lipnet_pl.engine`); multirun jobs and their summary are
:mod:`lipnet_pl.sweeps`'s."""

from lipnet_pl.engine.module import SegmentationModule

__all__ = ["SegmentationModule"]
