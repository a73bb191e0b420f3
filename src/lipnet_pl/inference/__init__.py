"""Inference: the one model loader (.ckpt / .onnx / save_pretrained folder), the predictor,
video pipelines, export, ONNX Runtime and int8 backends, and ``run_predict(cfg)`` (:mod:`.run`)."""

from lipnet_pl.inference.loader import LoadedModel, load_model
from lipnet_pl.inference.predictor import Predictor

__all__ = ["LoadedModel", "Predictor", "load_model"]
