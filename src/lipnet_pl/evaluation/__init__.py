"""Evaluation: ``evaluate(cfg)`` (:mod:`.evaluate`: a checkpoint, ONNX file or pretrained folder
on a split under the standard LIP protocol), the reports and figures (:mod:`.reports`) and the
prediction writer (:mod:`.writer`). The metric and TTA themselves live in :mod:`lipnet_pl.core`."""
