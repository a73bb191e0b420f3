"""Evaluation: standard LIP metrics (one confusion matrix at original label size), the paper's
per-image metric (labelled as not comparable), TTA, reports, and ``evaluate(cfg)`` (:mod:`.run`)."""

from lipnet_pl.evaluation.metrics import LIPSegmentationMetrics, scores_from_confusion
from lipnet_pl.evaluation.tta import predict_logits, tta_config

__all__ = ["LIPSegmentationMetrics", "predict_logits", "scores_from_confusion", "tta_config"]
