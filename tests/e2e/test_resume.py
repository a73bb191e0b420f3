"""Fault tolerance: atomic checkpoints, a killed run relaunched with the identical command,
``ckpt_path=last`` errors, the divergence guard, and fp16 training through overflow steps."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

import lipnet_pl.engine.checkpoint_io as checkpoint_io
from lipnet_pl.core.loader import load_model
from lipnet_pl.engine.checkpoint_io import AtomicCheckpointIO
from lipnet_pl.engine.losses import SegmentationLoss
from lipnet_pl.errors import NonFiniteLossError, UserError
from lipnet_pl.training.train import train
from tiny import TINY_NET

EPOCHS, BATCHES = 3, 4


def test_atomic_save_keeps_previous_checkpoint_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def dies_mid_write(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(checkpoint_io.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    restored = torch.load(path, weights_only=True)
    assert restored["step"] == 1 and torch.equal(restored["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left


def resume_command(lip_root: Path, run_name: str) -> list[str]:
    """The command a user (or a SLURM requeue) relaunches unchanged."""
    return [
        "data=lip",
        f"data.root={lip_root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        f"trainer.max_epochs={EPOCHS}",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.limit_val_batches=1",
        "callbacks.step_checkpoint.every_n_train_steps=1",
        "callbacks.progress_bar=null",
        "logger=csv",
        f"run_name={run_name}",
        *TINY_NET,
    ]


def final_weights(run_dir: Path) -> tuple[int, dict[str, torch.Tensor]]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["global_step"], ckpt["state_dict"]


@pytest.mark.slow
def test_killed_run_relaunched_with_the_identical_command_ends_like_an_uninterrupted_one(
    lip_root, tmp_path
):
    from tiny import run_command, start_command

    reference = run_command("train", resume_command(lip_root, "reference"), tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "outputs" / "train" / "runs" / "victim"  # run_name -> a fixed run dir
    step_ckpt = run_dir / "checkpoints" / "last-step.ckpt"
    with start_command("train", resume_command(lip_root, "victim"), tmp_path) as victim:
        deadline = time.monotonic() + 300
        while victim.poll() is None and time.monotonic() < deadline:
            if step_ckpt.exists() and torch.load(step_ckpt, weights_only=True)["global_step"] >= 3:
                break  # mid-epoch 0 (4 steps per epoch) ... or later, but before the end
            time.sleep(0.01)
        still_running = victim.poll() is None
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    assert still_running, "the run ended before it could be killed"
    assert not (run_dir / "run_summary.json").exists()

    relaunched = run_command("train", resume_command(lip_root, "victim"), tmp_path)
    assert relaunched.returncode == 0, relaunched.stderr[-3000:]
    assert "resuming from" in relaunched.stdout + relaunched.stderr
    ref_step, ref_weights = final_weights(tmp_path / "outputs" / "train" / "runs" / "reference")
    step, weights = final_weights(run_dir)
    assert ref_step == step == EPOCHS * BATCHES
    assert ref_weights.keys() == weights.keys()
    for key, value in ref_weights.items():
        assert torch.equal(value, weights[key]), key


def test_ckpt_path_last_without_a_checkpoint_names_where_it_looked(train_cfg, tmp_path):
    with pytest.raises(UserError, match=f"no last\\*.ckpt in {tmp_path / 'checkpoints'}"):
        train(train_cfg("ckpt_path=last"))


def test_resume_never_refuses_a_run_dir_with_checkpoints(train_cfg, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(UserError, match="already holds checkpoints"):
        train(train_cfg("resume=never"))


def inject_nan_at(monkeypatch, call: int) -> None:
    real_forward = SegmentationLoss.forward
    calls = {"n": 0}

    def nan_on_call(self, logits, target):
        calls["n"] += 1
        loss = real_forward(self, logits, target)
        return loss * float("nan") if calls["n"] == call else loss

    monkeypatch.setattr(SegmentationLoss, "forward", nan_on_call)


FP16_WITH_SCALER = [
    "trainer.precision=null",
    "+trainer.plugins=[{_target_: lightning.pytorch.plugins.precision.MixedPrecision, "
    "precision: 16-mixed, device: cpu}]",
]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_guard_stops_within_n_steps_and_keeps_the_last_good_checkpoint(
    precision, train_cfg, tmp_path, monkeypatch
):
    inject_nan_at(monkeypatch, call=5)  # the 5th training batch: global step 4 in fp32
    every = 3
    extra = FP16_WITH_SCALER if precision == "fp16" else []
    cfg = train_cfg(
        "trainer.max_epochs=4",
        "trainer.limit_train_batches=4",
        "callbacks.step_checkpoint.every_n_train_steps=100",
        f"callbacks.nonfinite_guard.check_every_n_steps={every}",
        *extra,
    )
    with pytest.raises(NonFiniteLossError, match="became NaN/Inf at global step") as err:
        train(cfg)
    message = str(err.value)
    bad = int(message.split("at global step ")[1].split(" ")[0])
    detected = int(message.split("detected at step ")[1].split(")")[0])
    assert bad == 4 and bad < detected <= bad + every
    assert "the last good one is kept" in str(err.value)
    assert not (tmp_path / "run_summary.json").exists()
    for path in (tmp_path / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["global_step"] <= bad, path.name  # nothing written after the NaN step
        assert all(
            torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
        )
        assert load_model(path).net is not None


def test_guard_check_raises_on_non_finite_gradients_without_a_scaler():
    from types import SimpleNamespace

    from lipnet_pl.engine.guard import NonFiniteGuard

    guard = NonFiniteGuard(check_every_n_steps=10)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(), world_size=1, global_step=7)
    module = torch.nn.Linear(2, 2)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    guard.on_before_optimizer_step(trainer, module, None)
    guard.check(trainer)  # finite: no error
    module.weight.grad[0, 0] = float("inf")
    guard.on_before_optimizer_step(trainer, module, None)
    with pytest.raises(NonFiniteLossError, match="global step 7"):
        guard.check(trainer)
    scaled = NonFiniteGuard()
    trainer.precision_plugin = SimpleNamespace(scaler=object())  # fp16: the scaler decides
    scaled.on_before_optimizer_step(trainer, module, None)
    scaled.check(trainer)


@pytest.mark.slow
def test_fp16_trains_through_overflow_steps(train_cfg, tmp_path):
    """A GradScaler whose scale overflows every gradient skips those steps and backs off; the
    guard must not mistake that for divergence."""
    cfg = train_cfg(
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "callbacks.nonfinite_guard.check_every_n_steps=1",
        "trainer.precision=null",
        "+trainer.plugins=[{_target_: lightning.pytorch.plugins.precision.MixedPrecision, "
        "precision: 16-mixed, device: cpu, scaler: {_target_: torch.amp.GradScaler, device: cpu, "
        "init_scale: 1.0e30, backoff_factor: 1.0e-10}}]",
    )
    summary = train(cfg)
    assert summary["global_step"] == 8
    ckpt = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    scale = ckpt["MixedPrecision"]["scale"] if "MixedPrecision" in ckpt else None
    assert scale is not None and scale < 1.0e30  # the scaler backed off: steps overflowed
    start = load_model(tmp_path / "checkpoints" / "last.ckpt").net.state_dict()
    assert all(torch.isfinite(v).all() for v in start.values() if v.is_floating_point())


def test_ctrl_c_during_training_exits_130_and_leaves_ctrl_c_working(train_cfg, monkeypatch, capsys):
    """Lightning turns Ctrl-C into ``sys.exit(1)`` and ignores SIGINT from then on; train keeps
    it an interruption (exit 130, as every command) and puts the SIGINT handler back."""
    from lipnet_pl.cli import exit_on_errors
    from lipnet_pl.engine.lightning_module import SegmentationModule

    def pressed_ctrl_c(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(SegmentationModule, "training_step", pressed_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        exit_on_errors(train, train_cfg())
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: interrupted"
    assert signal.getsignal(signal.SIGINT) is before
