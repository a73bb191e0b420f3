"""``train(cfg)``: data, module, trainer from a composed ``conf/train.yaml``, then ``fit``.

Called by ``python -m lipnet_pl.train``, the demo, tests and notebooks. Every output lands under
``paths.output_dir`` (the run dir): checkpoints/, logs/, wandb/, figures/ and
``run_summary.json`` (read by the multirun summary, :mod:`lipnet_pl.sweeps.summary`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lipnet_pl.core.loader import HINT, read_checkpoint
from lipnet_pl.engine.builders import (
    build_datamodule,
    build_module,
    build_trainer,
    instantiate_group,
)
from lipnet_pl.engine.callbacks import StepCheckpoint, ThroughputMonitor, cpu_cores, find_callback
from lipnet_pl.engine.guard import NonFiniteGuard
from lipnet_pl.engine.requeue import SlurmRequeue, restart_count
from lipnet_pl.errors import Terminated, UserError
from lipnet_pl.hydra_runtime import is_multirun, job_overrides, launched_by_slurm
from lipnet_pl.models.summary import count_gflops, count_parameters
from lipnet_pl.outputs import exclusive_lock

log = logging.getLogger(__name__)


def is_distributed(trainer_cfg: DictConfig) -> bool:
    """True when the trainer config asks for more than one process."""
    strategy = str(trainer_cfg.get("strategy", "auto"))
    devices = trainer_cfg.get("devices", 1)
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        many_devices = len(devices) > 1  # [3]: one device, GPU 3 (hydra/launcher=local's slot)
    else:
        many_devices = (isinstance(devices, int) and (devices > 1 or devices == -1)) or (
            not isinstance(devices, int) and str(devices).strip() not in ("1", "auto")
        )
    return "ddp" in strategy or many_devices or int(trainer_cfg.get("num_nodes", 1)) > 1


def check_config(cfg: DictConfig) -> None:
    """Refuse combinations that hang or cannot work, before anything heavy starts."""
    if is_multirun() and is_distributed(cfg.trainer) and not launched_by_slurm():
        raise UserError(
            "Hydra multirun with a multi-process trainer "
            f"(trainer.strategy={cfg.trainer.get('strategy')}, trainer.devices="
            f"{cfg.trainer.get('devices')}, trainer.num_nodes={cfg.trainer.get('num_nodes')}) "
            "hangs: Lightning cannot relaunch DDP workers from a sweep. Run sweeps one device per "
            "job (trainer=gpu or trainer=cpu; hydra/launcher=local runs one job per GPU at once), "
            "or give every job its own SLURM job with hydra/launcher=slurm."
        )


RESUME_CHOICES = ("auto", "never")


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The furthest ``checkpoints/last*.ckpt`` or SLURM ``hpc_ckpt_*.ckpt`` of a run dir.

    By the ``global_step`` each file holds, then by kind (at one step: epoch-end ``last`` >
    ``hpc_ckpt`` > ``last-step``), modification time last: every rank of an ``srun`` picks the
    same file, also where clocks or a network filesystem's cached times differ between nodes.
    An unreadable file ranks below every readable one."""
    candidates = [*(run_dir / "checkpoints").glob("last*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    return max(candidates, key=_resume_rank, default=None)


def _resume_rank(path: Path) -> tuple[int, int, int, int]:
    try:  # mmap: the tensors are not read
        step = int(
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"]
        )
    except Exception:  # torch raises many types for a truncated or foreign file
        step = -1
    kind = 2 if path.name.startswith("last") and "step" not in path.name else 0
    number = 0
    if path.name.startswith("hpc_ckpt_"):
        kind, digits = 1, path.stem.removeprefix("hpc_ckpt_")
        number = int(digits) if digits.isdigit() else 0
    return step, kind, number, path.stat().st_mtime_ns


def check_resume_value(cfg: DictConfig) -> None:
    """``resume`` is ``auto`` or ``never``: anything else (false, no, ...) is refused, not read
    as one of them."""
    value = cfg.get("resume", "auto")
    if not isinstance(value, str) or value not in RESUME_CHOICES:
        shown = str(value).lower() if isinstance(value, bool) else value
        raise UserError(
            f"resume={shown}: use resume=auto (continue the run dir's checkpoint, the default) or "
            "resume=never (refuse a run dir that holds checkpoints); ckpt_path=<file> resumes a "
            "given checkpoint"
        )


def resolve_resume(cfg: DictConfig) -> str | None:
    """The checkpoint ``fit`` resumes from.

    * ``ckpt_path=<file>``: that file (it must exist);
    * ``ckpt_path=last``: the run dir's newest last/HPC checkpoint, an error when there is none;
    * ``ckpt_path=null`` with ``resume=auto`` (default): the newest one if the run dir has one
      (relaunching a named run, ``run_name=NAME``, or a requeued SLURM job continues), else None.
    """
    run_dir = Path(cfg.paths.output_dir)
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        if str(cfg.get("resume", "auto")) != "auto":
            return None
        found = newest_checkpoint(run_dir)
        if found is not None:
            log.info("resuming from %s (resume=auto; pass resume=never to refuse)", found)
        return None if found is None else str(found)
    if str(ckpt) == "last":
        found = newest_checkpoint(run_dir)
        if found is None:
            raise UserError(
                f"ckpt_path=last: no last*.ckpt in {run_dir / 'checkpoints'} (nor hpc_ckpt_*.ckpt "
                f"in {run_dir}): relaunch with the run's name (run_name=NAME) or its dir "
                "(hydra.run.dir=DIR), or drop ckpt_path to start a new run"
            )
        return str(found)
    if not Path(str(ckpt)).is_file():
        raise UserError(f"ckpt_path={ckpt} does not exist: pass a .ckpt file, or ckpt_path=last")
    check_resumable(Path(str(ckpt)))
    return str(ckpt)


def check_resumable(path: Path) -> None:
    """A training checkpoint of this project (read once here, so a bad file is one line)."""
    ckpt = read_checkpoint(path)
    if (
        "state_dict" not in ckpt
        or "loops" not in ckpt
        or "net" not in (ckpt.get("hyper_parameters") or {})
    ):
        raise UserError(
            f"ckpt_path={path} is not a lipnet_pl training checkpoint (it lacks the training "
            f"state): resume from <run dir>/checkpoints/last.ckpt; {HINT}"
        )


def check_same_network(path: str, module) -> None:
    """The checkpoint to resume holds this run's network (same model, widths, classes): a run
    relaunched after changing them is one line, not Lightning's 100-line state_dict error."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        state = ckpt["state_dict"]
    except Exception:  # unreadable: check_resumable / Lightning say why
        return
    mine = module.state_dict()
    differ = sorted(set(state) ^ set(mine)) + sorted(
        k for k in set(state) & set(mine) if tuple(state[k].shape) != tuple(mine[k].shape)
    )
    if differ:
        saved = (ckpt.get("hyper_parameters") or {}).get("net")
        raise UserError(
            f"{path} holds another network than this run's model.net ({len(differ)} weights "
            f"differ, e.g. {differ[0]}; the checkpoint's: {saved}): resume with the model, "
            "widths and data.num_classes it was trained with, or start a new run (another "
            "run_name)"
        )


def check_batch_split(cfg: DictConfig, world_size: int) -> None:
    """The global batch splits evenly over the processes: checked here, once, before Lightning
    starts them (each would fail on its own, one traceback per rank)."""
    for key in ("batch_size", "val_batch_size"):
        size = cfg.data.get(key)
        if isinstance(size, int) and world_size > 1 and size % world_size:
            raise UserError(
                f"data.{key}={size} is the GLOBAL batch size and must be divisible by the "
                f"{world_size} processes (trainer.devices x trainer.num_nodes): use a multiple "
                f"of {world_size}"
            )


def refuse_overwrite(cfg: DictConfig, resume_from: str | None) -> None:
    """A new run never writes over another run's checkpoints."""
    ckpt_dir = Path(cfg.paths.output_dir) / "checkpoints"
    if resume_from is None and ckpt_dir.is_dir() and any(ckpt_dir.glob("*.ckpt")):
        raise UserError(
            f"{ckpt_dir} already holds checkpoints of another run and resume=never: pick another "
            "run_name, or resume it (resume=auto or ckpt_path=last)"
        )


def run_summary(cfg: DictConfig, trainer, module, wall_s: float) -> dict[str, Any]:
    """Per-job facts for the sweep table: dilations, size, cost, best mIoU, speed (of the steps
    alone, ``train_images_per_s``, and of the wall clock, with the share spent waiting for data)."""
    dm = trainer.datamodule
    from lightning.pytorch.callbacks import ModelCheckpoint

    best_cb = next(
        (c for c in trainer.checkpoint_callbacks if not isinstance(c, StepCheckpoint)), None
    )
    best = module.best_val_results or module.last_val_results or {}
    throughput = find_callback(trainer, ThroughputMonitor)
    requeue = find_callback(trainer, SlurmRequeue)
    h, w = module.hparams["input_size"]
    return {
        "model": module.hparams["net"].get("name"),
        "dilations": module.hparams["net"].get("dilations"),
        "params": count_parameters(module.net),
        "gflops": round(count_gflops(module.net, height=h, width=w), 3),
        "input_size": [h, w],
        "best_val_miou": best.get("miou"),
        "best_val_lr_miou": best.get("lr_miou"),
        "best_epoch": best.get("epoch"),
        "last_val": {k: v for k, v in (module.last_val_results or {}).items() if k != "confmat"},
        "train_images_per_s": None if throughput is None else throughput.images_per_second,
        "train_images_per_s_wall": None
        if throughput is None
        else throughput.wall_images_per_second,
        "data_wait_share": None if throughput is None else throughput.data_wait_share,
        "augment_on": dm.resolved_augment_on() if hasattr(dm, "resolved_augment_on") else None,
        "num_workers": getattr(dm, "num_workers", None),
        "cpu_cores": cpu_cores(),
        "peak_gpu_mem_mib": None if throughput is None else throughput.peak_gpu_mem_mib,
        "steps_this_run": None if throughput is None else throughput.steps,
        "global_step": int(trainer.global_step),
        "start_step": None if requeue is None else requeue.start_step,
        "world_size": int(trainer.world_size),
        "num_nodes": int(trainer.num_nodes),
        "devices_per_node": int(trainer.num_devices),
        "precision": str(trainer.precision),
        "restart_count": restart_count(),
        "epochs": int(trainer.current_epoch),
        "best_ckpt": best_cb.best_model_path if isinstance(best_cb, ModelCheckpoint) else None,
        "last_ckpt": best_cb.last_model_path if isinstance(best_cb, ModelCheckpoint) else None,
        "output_dir": str(cfg.paths.output_dir),
        "wall_s": round(wall_s, 2),
        "overrides": job_overrides(),
    }


def _default_callbacks(callbacks: list[Any], loggers: list[Any]) -> list[Any]:
    """The divergence guard and the SLURM requeue are always on; the LR monitor needs a logger."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    if not loggers:
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    for kind in (NonFiniteGuard, SlurmRequeue):
        if not any(isinstance(cb, kind) for cb in callbacks):
            callbacks.append(kind())
    return callbacks


def _describe(module, dm) -> None:
    net = module.hparams["net"]
    log.info(
        "model %s: %.3f M parameters | input %s | %d classes | data %s",
        net.get("name"),
        count_parameters(module.net) / 1e6,
        "x".join(str(s) for s in module.hparams["input_size"]),
        module.class_info.num_classes,
        dm.root,
    )


def _fit(trainer, module, dm, ckpt_path) -> None:
    """``trainer.fit``, with Ctrl-C kept a KeyboardInterrupt (the command layer: exit 130) and
    SIGTERM a :class:`~lipnet_pl.errors.Terminated` (exit 143).

    On Ctrl-C Lightning shuts down, sets SIGINT to "ignore" and calls ``sys.exit(1)``: a
    scheduler would read that as a crash, and a notebook or test would be left deaf to Ctrl-C.
    On SIGTERM Lightning finishes the batch, checkpoints (``StepCheckpoint``) and exits.
    """
    previous = signal.getsignal(signal.SIGINT)
    previous_term = signal.getsignal(signal.SIGTERM)
    if callable(previous_term):  # the command's handler: Lightning calls it after its own
        signal.signal(signal.SIGTERM, _unless_lightning_stops(trainer, previous_term))
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except SystemExit as exit_:
        if trainer.received_sigterm:
            raise Terminated("training terminated") from exit_
        if trainer.interrupted:
            raise KeyboardInterrupt("training interrupted") from exit_
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def _unless_lightning_stops(trainer, handler):
    """SIGTERM handler for the fit: while Lightning's own handler is installed (it runs first
    and sets ``received_sigterm``), Lightning stops at the end of the batch; otherwise (setup,
    teardown) ``handler`` stops the command at once."""

    def on_sigterm(signum, frame) -> None:
        if not trainer.received_sigterm:
            handler(signum, frame)

    return on_sigterm


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit ``cfg`` and return the run summary (also written to ``cfg.summary_file``).

    One training per run dir at a time: a second one is refused with one line."""
    check_config(cfg)
    check_resume_value(cfg)
    if not is_rank_zero():  # the ranks Lightning (or SLURM, torchrun) started: rank 0 holds it
        return _train(cfg)
    hint = "wait for it to end, or pick another run_name (hydra.run.dir)"
    with exclusive_lock(cfg.paths.output_dir, "another training", hint):
        return _train(cfg)


def is_rank_zero() -> bool:
    """The first process of a (possibly distributed) run, by the launchers' environment."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(os.environ.get(key, "0") in ("0", "") for key in ranks)


def _train(cfg: DictConfig) -> dict[str, Any]:
    start = time.perf_counter()
    resume_from = resolve_resume(cfg)
    if str(cfg.get("resume", "auto")) == "never":
        refuse_overwrite(cfg, resume_from)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    if resume_from is not None:
        check_same_network(resume_from, module)
    loggers = instantiate_group(cfg.get("logger"), "logger")
    callbacks = _default_callbacks(instantiate_group(cfg.get("callbacks"), "callbacks"), loggers)
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg, callbacks, loggers)
    check_batch_split(cfg, int(trainer.world_size))
    _describe(module, dm)
    try:
        _fit(trainer, module, dm, resume_from)
        summary = {}
        if trainer.is_global_zero:
            summary = run_summary(cfg, trainer, module, time.perf_counter() - start)
            path = Path(cfg.summary_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=2))
            log.info("run summary: %s", path)
    finally:
        _finish_wandb(loggers)
    return summary


def _finish_wandb(loggers: list[Any]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        wandb.finish()  # a multirun's next job must start a fresh wandb run
