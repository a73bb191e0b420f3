"""``precision=auto``: bf16 only where the GPU has it in hardware, else fp16; fp32 on the CPU."""

from __future__ import annotations

import pytest
import torch

from lipnet_pl.config import compose
from lipnet_pl.engine.builders import build_trainer
from lipnet_pl.precision import auto_dtype, trainer_precision


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device whose native bf16 support the test sets (``native[0]``)."""
    native = [True]

    def is_bf16_supported(including_emulation=True):
        assert including_emulation is False  # emulated bf16 (V100, T4) must not count
        return native[0]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "device", lambda device: torch.device("cpu"))  # a no-op
    return native


def test_auto_is_bf16_on_ampere_and_later_and_fp16_on_older_gpus(fake_gpu):
    assert auto_dtype("cuda") == "bf16"
    assert trainer_precision("auto", "gpu") == "bf16-mixed"
    fake_gpu[0] = False
    assert auto_dtype("cuda:0") == "fp16"
    assert trainer_precision("auto", "auto") == "16-mixed"  # Lightning adds the GradScaler


def test_auto_is_fp32_on_the_cpu_and_explicit_choices_stay():
    assert auto_dtype("cpu") == "fp32"
    assert trainer_precision("auto", "cpu") == "32-true"
    assert trainer_precision("bf16-mixed", "gpu") == "bf16-mixed"
    assert trainer_precision(None, "cpu") is None


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainers_default_to_auto(trainer):
    cfg = compose("train", [f"trainer={trainer}"])
    assert cfg.trainer.precision == "auto"


def test_build_trainer_resolves_auto(tmp_path):
    cfg = compose(
        "train", ["trainer=cpu", "trainer.precision=auto", f"paths.output_dir={tmp_path}"]
    )
    assert build_trainer(cfg, [], []).precision == "32-true"
