"""``predict`` and ``eval`` load every backend, an ONNX Runtime session included, on their
device; an ONNX model runs (and the console says it runs) where its session is."""

from __future__ import annotations

import pytest
import torch

import lipnet_pl.core.loader as loader
import lipnet_pl.evaluation.evaluate as evaluate_run
import lipnet_pl.inference.predict as predict_run
from lipnet_pl.config import compose
from lipnet_pl.core.loader import LoadedModel
from lipnet_pl.core.predictor import Predictor
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.evaluation.evaluate import evaluate
from tiny import TINY_NET_CONFIG


class Loaded(Exception):
    """Raised by the spy once the loader was called: nothing else of the command runs."""


@pytest.fixture
def load_spy(monkeypatch):
    seen: list[str] = []

    def spy(path, device="cpu", key="ckpt_path"):
        seen.append(str(device))
        raise Loaded

    monkeypatch.setattr(loader, "load_model", spy)
    monkeypatch.setattr(predict_run, "load_model", spy)
    monkeypatch.setattr(evaluate_run, "load_model", spy)
    return seen


def test_predict_loads_the_model_on_its_device(load_spy, monkeypatch, tmp_path):
    monkeypatch.setattr(predict_run, "resolve_device", lambda name: torch.device("cuda"))
    cfg = compose(
        "predict", ["ckpt_path=model.onnx", "input=x.jpg", f"paths.output_dir={tmp_path}"]
    )
    with pytest.raises(Loaded):
        predict_run.predict(cfg)
    assert load_spy == ["cuda"]


@pytest.mark.parametrize(("trainer", "device"), [("gpu", "cuda:0"), ("cpu", "cpu")])
def test_eval_loads_the_model_on_the_trainer_device(
    load_spy, tmp_path, monkeypatch, trainer, device
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # trainer=gpu is checked first
    cfg = compose(
        "eval", ["ckpt_path=model.onnx", f"trainer={trainer}", f"paths.output_dir={tmp_path}"]
    )
    with pytest.raises(Loaded):
        evaluate(cfg)
    assert load_spy == [device]


def test_predictor_of_an_onnx_model_works_where_the_session_runs():
    spec = ModelSpec.from_dict({"net": dict(TINY_NET_CONFIG), "input_size": [64, 64]})
    net = torch.nn.Identity()
    net.device = torch.device("cpu")  # an ONNX session that fell back to the CPU provider
    predictor = Predictor(LoadedModel(net, spec, "m.onnx", "onnx"), device=torch.device("cuda"))
    assert predictor.device == torch.device("cpu")
