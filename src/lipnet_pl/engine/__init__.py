"""The training engine: the LightningModule (:mod:`.module`), its optimiser, schedule and loss
builders, callbacks, divergence guard, atomic checkpoint IO, DDP helpers and the datamodule /
trainer builders (:mod:`.builders`). ``training`` (``train(cfg)``) and ``evaluation``
(``evaluate(cfg)``) both run on it; it never imports either."""
