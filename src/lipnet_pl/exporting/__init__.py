"""The ``export`` command's layer: ``export(cfg)`` (:mod:`.export`) checks the config, picks the
output paths, writes the files through :mod:`lipnet_pl.core` (ONNX, TorchScript, pretrained,
int8) and checks them against PyTorch. An end layer like ``inference``: nothing below imports it."""
