"""Training entry point, LightningModule and the checkpoint contract."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from lipnet_pl.losses import SegmentationLoss
from lipnet_pl.module import SegmentationModule
from lipnet_pl.train import train
from lipnet_pl.utils import compose_config
from tiny import TINY_NET, tiny_lip


@pytest.fixture(scope="module")
def lip_root(tmp_path_factory):
    """A tiny synthetic LIP set in the official layout (odd val count)."""
    return tiny_lip(tmp_path_factory.mktemp("lip") / "LIP", train=6, val=3, seed=1)


def tiny_overrides(root, out, *extra):
    return [
        "data=lip",
        f"data.root={root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "logger=none",
        "callbacks.progress_bar=null",
        f"paths.output_dir={out}",
        *TINY_NET,
        *extra,
    ]


def test_train_without_lip_fails_fast_with_pointer(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("LIPNET_ROOT", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lipnet_pl.train", "experiment=lip_base"],
        cwd=tmp_path,  # no data/LIP here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert "data/README.md" in proc.stderr
    assert "make demo" in proc.stderr
    assert "data.root" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_lip_base_fast_dev_run_on_official_layout(lip_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(
        "train",
        [
            "experiment=lip_base",
            "trainer=cpu",
            "debug=fdr",
            f"data.root={lip_root}",
            "data.crop_size=[64,64]",
            "data.batch_size=2",
            f"paths.output_dir={tmp_path}",
        ],
    )
    assert cfg.model.net.dilations == [1, 1, 2, 4, 8, 1]  # the paper's network
    assert cfg.module.optimizer.name == "sgd" and cfg.module.scheduler.name == "poly"
    summary = train(cfg)
    assert summary["global_step"] == 1
    assert summary["params"] > 3_000_000
    on_disk = json.loads((tmp_path / "run_summary.json").read_text())
    assert on_disk["dilations"] == [1, 1, 2, 4, 8, 1]
    assert on_disk["input_size"] == [64, 64]


@pytest.mark.slow
def test_checkpoint_follows_contract_and_reloads(lip_root, tmp_path):
    from lipnet_pl.checkpoint import load_model_from_checkpoint

    summary = train(
        compose_config(
            "train", tiny_overrides(lip_root, tmp_path, "module.loss.class_weights=null")
        )
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert summary["last_ckpt"] == str(last) and summary["best_ckpt"]
    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # primitives only
    hp = ckpt["hyper_parameters"]
    assert hp["net"]["name"] == "lipnet" and hp["net"]["num_classes"] == 20
    assert hp["input_size"] == [64, 64]
    assert len(hp["classes"]["names"]) == 20 and hp["classes"]["flip_pairs"] == [
        [14, 15],
        [16, 17],
        [18, 19],
    ]
    assert set(hp["normalize"]) == {"mean", "std"}
    assert ckpt["state_dict"] and all(k.startswith("net.") for k in ckpt["state_dict"])
    assert ckpt["global_step"] == 2

    loaded = load_model_from_checkpoint(last)
    module = SegmentationModule.load_from_checkpoint(
        last, map_location="cpu", weights_only=True
    ).eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), module.net(x), atol=1e-6)
    assert loaded.input_size == (64, 64)
    assert (tmp_path / "figures").is_dir() and any((tmp_path / "figures").glob("val_panel_*.png"))


@pytest.mark.slow
def test_compiled_training_saves_uncompiled_keys(lip_root, tmp_path):
    overrides = tiny_overrides(
        lip_root, tmp_path, "module.compile=eager", "trainer.limit_train_batches=1"
    )
    train(compose_config("train", overrides))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["compile"] == "eager"
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])


def _module(**kwargs):
    net = {
        "name": "lipnet",
        "num_classes": 20,
        "stem_channels": 8,
        "widths": [8, 8, 16, 16, 16, 16],
        "aspp_channels": 16,
        "decoder_channels": 16,
        "skip_channels": 8,
    }
    return SegmentationModule(net=net, input_size=(64, 64), **kwargs)


def test_optimizer_skips_weight_decay_on_norms_and_biases():
    module = _module(optimizer={"name": "sgd", "lr": 0.01, "weight_decay": 5e-4})
    module._trainer = SimpleNamespace(estimated_stepping_batches=100)
    opt = module.configure_optimizers()["optimizer"]
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(module.net.parameters()))
    assert opt.defaults["momentum"] == 0.9


@pytest.mark.parametrize("name", ["poly", "cosine"])
def test_schedule_warms_up_then_decays_per_step(name):
    module = _module(scheduler={"name": name, "warmup_steps": 10, "power": 0.9})
    module._trainer = SimpleNamespace(estimated_stepping_batches=110)
    factor = module._lr_factor()
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    mid = (1 - 0.5) ** 0.9 if name == "poly" else 0.5 * (1 + math.cos(math.pi * 0.5))
    assert factor(60) == pytest.approx(mid)
    assert factor(110) == pytest.approx(0.0, abs=1e-9)


def test_bad_module_config_raises_clear_errors():
    with pytest.raises(ValueError, match="module.optimizer.name"):
        module = _module(optimizer={"name": "rmsprop"})
        module._trainer = SimpleNamespace(estimated_stepping_batches=10)
        module.configure_optimizers()
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationModule(net={"name": "lipnet", "num_classes": 7})
    with pytest.raises(ValueError, match="module.loss.lovasz"):
        SegmentationLoss(20, lovasz=-1)


def test_loss_is_weighted_sum_of_ce_lovasz_dice():
    torch.manual_seed(0)
    logits = torch.randn(2, 20, 16, 16)
    target = torch.randint(0, 20, (2, 16, 16))
    target[:, :3] = 255
    parts = {
        k: SegmentationLoss(
            20, ce=float(k == "ce"), lovasz=float(k == "lovasz"), dice=float(k == "dice")
        )
        for k in ("ce", "lovasz", "dice")
    }
    values = {k: float(loss(logits, target)) for k, loss in parts.items()}
    assert values["ce"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, target, ignore_index=255))
    )
    combined = SegmentationLoss(20, ce=1.0, lovasz=0.5, dice=2.0)(logits, target)
    assert float(combined) == pytest.approx(
        values["ce"] + 0.5 * values["lovasz"] + 2.0 * values["dice"], rel=1e-5
    )
