"""Inference on the user's media: ``predict(cfg)`` (:mod:`.predict`) over images, folders,
videos and live streams (:mod:`.files`, :mod:`.video`). The loader, predictor, backends and export
it runs on live in :mod:`lipnet_pl.core` (re-exported here for convenience)."""

from lipnet_pl.core.loader import LoadedModel, load_model
from lipnet_pl.core.predictor import Predictor

__all__ = ["LoadedModel", "Predictor", "load_model"]
