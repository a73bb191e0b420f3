"""Training: the train command, the LightningModule, optimiser/schedule builders, the checkpoint
contract, channels_last training, uint8 masks and the callbacks."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from lipnet_pl.config import compose
from lipnet_pl.core.loader import load_model
from lipnet_pl.engine.lightning_module import SegmentationModule
from lipnet_pl.engine.losses import SegmentationLoss
from lipnet_pl.engine.optim import build_optimizer, lr_factor
from lipnet_pl.training.train import train
from tiny import TINY_NET_CONFIG


def tiny_module(**kwargs) -> SegmentationModule:
    return SegmentationModule(net=dict(TINY_NET_CONFIG), input_size=(64, 64), **kwargs)


@pytest.mark.slow
def test_lip_base_fast_dev_run_on_official_layout(lip_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose(
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
    assert summary["global_step"] == 1 and summary["params"] > 3_000_000
    on_disk = json.loads((tmp_path / "run_summary.json").read_text())
    assert on_disk["dilations"] == [1, 1, 2, 4, 8, 1] and on_disk["input_size"] == [64, 64]


@pytest.mark.slow
def test_checkpoint_follows_the_contract_and_the_loader_rebuilds_it(trained_ckpt):
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)  # primitives only
    hp = ckpt["hyper_parameters"]
    assert hp["net"]["name"] == "lipnet" and hp["net"]["num_classes"] == 20
    assert hp["input_size"] == [64, 64] and set(hp["normalize"]) == {"mean", "std"}
    assert hp["classes"]["flip_pairs"] == [[14, 15], [16, 17], [18, 19]]
    assert ckpt["state_dict"] and all(k.startswith("net.") for k in ckpt["state_dict"])
    assert ckpt["global_step"] == 2
    loaded = load_model(trained_ckpt)
    assert loaded.format == "ckpt" and loaded.input_size == (64, 64)
    assert loaded.classes.names[14] == "Left-arm"
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, state[key]), key
    figures = trained_ckpt.parent.parent / "figures"
    assert any(figures.glob("val_panel_*.png"))


@pytest.mark.slow
def test_compiled_training_saves_uncompiled_keys(train_cfg, tmp_path):
    train(train_cfg("module.compile=eager", "trainer.limit_train_batches=1"))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["compile"] == "eager"
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_channels_last_training_step_matches_the_default_layout(dtype):
    """One step in channels_last gives the default layout's loss and gradients."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64, dtype=dtype)
    masks = torch.randint(0, 20, (2, 64, 64), dtype=torch.uint8)
    masks[:, :5] = 255
    grads = {}
    for channels_last in (False, True):
        torch.manual_seed(1)
        module = tiny_module(channels_last=channels_last).to(dtype)
        module._trainer = SimpleNamespace(
            world_size=1, strategy=SimpleNamespace(root_device=torch.device("cpu"))
        )
        module.setup("fit")
        batch = module.on_after_batch_transfer({"image": images.clone(), "mask": masks.clone()}, 0)
        assert batch["mask"].dtype == torch.long  # uint8 widened on the device
        assert batch["image"].is_contiguous(memory_format=torch.channels_last) == channels_last
        module.log = lambda *a, **k: None
        loss = module.training_step(batch, 0)
        loss.backward()
        grads[channels_last] = (loss.detach(), [p.grad.clone() for p in module.net.parameters()])
    if dtype == torch.float64:  # the same function, to rounding, parameter by parameter
        assert torch.allclose(grads[False][0], grads[True][0], rtol=1e-10)
        for a, b in zip(grads[False][1], grads[True][1], strict=True):
            assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)
    else:  # float32 rounding can flip near-tied max-pool choices: compare the whole gradient
        assert torch.allclose(grads[False][0], grads[True][0], rtol=1e-5)
        a, b = (torch.cat([g.flatten() for g in grads[k][1]]) for k in (False, True))
        assert (a - b).norm() <= 1e-2 * a.norm()


def test_masks_leave_the_workers_as_uint8(synthetic_lip_root):
    from lipnet_pl.data import LIPDataModule

    dm = LIPDataModule(synthetic_lip_root, batch_size=2, num_workers=0, crop_size=(48, 48))
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["mask"].dtype == torch.uint8
    assert next(iter(dm.val_dataloader()))["mask"][0].dtype == torch.uint8


def test_sgd_without_weight_decay_on_norms_and_biases():
    net = tiny_module().net
    opt = build_optimizer(net, {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4})
    assert isinstance(opt, torch.optim.SGD) and not opt.defaults["nesterov"]
    decay = [g for g in opt.param_groups if g["weight_decay"] > 0]
    no_decay = [g for g in opt.param_groups if g["weight_decay"] == 0]
    assert decay[0]["weight_decay"] == 5e-4
    assert all(p.ndim > 1 for g in decay for p in g["params"])
    assert all(p.ndim <= 1 for g in no_decay for p in g["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    assert opt.defaults["momentum"] == 0.9
    adamw = build_optimizer(
        net, {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.01}
    )
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.9, 0.99)


@pytest.mark.parametrize("name", ["poly", "cosine"])
def test_schedule_warms_up_then_decays_per_step(name):
    factor = lr_factor({"name": name, "warmup_steps": 10, "power": 0.9}, total_steps=110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    mid = (1 - 0.5) ** 0.9 if name == "poly" else 0.5 * (1 + math.cos(math.pi * 0.5))
    assert factor(60) == pytest.approx(mid)
    assert factor(110) == pytest.approx(0.0, abs=1e-9)


def test_bad_module_config_raises_errors_naming_the_key():
    with pytest.raises(ValueError, match="module.optimizer.name='rmsprop2'"):
        build_optimizer(tiny_module().net, {"name": "rmsprop2", "lr": 0.1})
    with pytest.raises(ValueError, match="module.scheduler.name"):
        lr_factor({"name": "step"}, 10)
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationModule(net={"name": "lipnet", "num_classes": 7})
    with pytest.raises(ValueError, match="module.loss.lovasz"):
        SegmentationLoss(20, lovasz=-1)
    with pytest.raises(ValueError, match="tta.scales"):
        tiny_module(tta={"scales": [0]})


def test_loss_is_weighted_sum_of_ce_lovasz_dice():
    torch.manual_seed(0)
    logits = torch.randn(2, 20, 16, 16)
    target = torch.randint(0, 20, (2, 16, 16))
    target[:, :3] = 255
    values = {
        k: float(
            SegmentationLoss(
                20, ce=float(k == "ce"), lovasz=float(k == "lovasz"), dice=float(k == "dice")
            )(logits, target)
        )
        for k in ("ce", "lovasz", "dice")
    }
    assert values["ce"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, target, ignore_index=255))
    )
    combined = SegmentationLoss(20, ce=1.0, lovasz=0.5, dice=2.0)(logits, target)
    assert float(combined) == pytest.approx(
        values["ce"] + 0.5 * values["lovasz"] + 2.0 * values["dice"], rel=1e-5
    )


def test_progress_bar_reads_metrics_every_n_steps_and_hides_v_num(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from lipnet_pl.engine.callbacks import ProgressBar

    reads = []

    def fake_get_metrics(self, trainer, module):
        reads.append(1)
        return {"v_num": 3, "train/loss": float(len(reads))}

    monkeypatch.setattr(RichProgressBar, "get_metrics", fake_get_metrics)
    bar = ProgressBar(metrics_every=5)
    trainer = SimpleNamespace(training=True)
    shown = [bar.get_metrics(trainer, None) for _ in range(12)]
    assert len(reads) == 3  # calls 1, 5 and 10 read; the others reuse the cached values
    assert all("v_num" not in m for m in shown)
    trainer.training = False
    bar.get_metrics(trainer, None)
    assert len(reads) == 4  # validation and epoch ends always read


def test_lr_monitor_is_dropped_and_guard_added_without_logger(train_cfg):
    from lightning.pytorch.callbacks import LearningRateMonitor

    from lipnet_pl.engine.builders import instantiate_group
    from lipnet_pl.engine.guard import NonFiniteGuard
    from lipnet_pl.training.train import _default_callbacks

    cfg = train_cfg("~callbacks.nonfinite_guard")
    callbacks = _default_callbacks(instantiate_group(cfg.callbacks, "callbacks"), [])
    assert not any(isinstance(c, LearningRateMonitor) for c in callbacks)
    assert sum(isinstance(c, NonFiniteGuard) for c in callbacks) == 1
