"""Training: ``train(cfg)`` (:mod:`.train`). The LightningModule it fits is the engine's
(:class:`lipnet_pl.engine.lightning_module.SegmentationModule`), as are the callbacks and
builders; multirun jobs and their summary are :mod:`lipnet_pl.sweeps`'s."""
