"""Training: the LightningModule, its optimiser/schedule builders, losses, callbacks, divergence
guard, atomic checkpoint IO, and ``train(cfg)`` (:mod:`.run`)."""

from lipnet_pl.training.module import SegmentationModule

__all__ = ["SegmentationModule"]
