"""Process-wide runtime choices shared by every command: the device and a quiet console."""

from __future__ import annotations

import logging
import warnings

import torch

from lipnet_pl.errors import UserError


def resolve_device(name: str | torch.device = "auto", key: str = "device") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` otherwise."""
    if isinstance(name, torch.device):
        return name
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except RuntimeError:
        raise UserError(f"{key}={name!r} is not a device: use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{key}={name!r} but CUDA is not available: use {key}=auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"{key}={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type != "cpu":
        raise UserError(f"{key}={name!r}: only cpu and cuda devices are supported")
    return device


class _DropAdverts(logging.Filter):
    """Lightning's tips that advertise its cloud products ("💡 Tip: ... litlogger/litmodels")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡" not in record.getMessage()


_QUIET = False
_ONE_LIGHTNING_CONSOLE = False


def _one_lightning_console() -> None:
    """`import lightning` gives its logger a console handler of its own; under Hydra, which
    logs to the console and the run's log file, every Lightning line would be printed twice."""
    global _ONE_LIGHTNING_CONSOLE
    if _ONE_LIGHTNING_CONSOLE or not logging.getLogger().handlers:
        return  # not yet configured (before Hydra's job starts): done on the next call
    _ONE_LIGHTNING_CONSOLE = True
    import lightning  # noqa: F401  (its import adds the handler: remove it after)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True


def quiet_libraries() -> None:
    """Keep the console for our output: drop library advertisements and known-harmless noise.

    Commands call it first thing (Hydra imports configured callbacks, and with them our
    libraries, before the job starts) and again inside the job, once logging is configured.
    """
    global _QUIET
    _one_lightning_console()
    if _QUIET:
        return
    _QUIET = True
    # Lightning's rank_zero_info/warn log through these loggers (filters act on their records)
    for name in ("lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropAdverts())
    # the ONNX exporter's passes log every step at INFO (unused nodes, constant folding, ...)
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # inductor on a CPU-only machine: "No CUDA runtime is found, using CUDA_HOME=..."
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # smp < 0.5 imports pretrainedmodels, whose first import prints SyntaxWarnings ("is" with a
    # literal) while it compiles: a user's first command would start with them
    warnings.filterwarnings("ignore", category=SyntaxWarning, module=r".*pretrainedmodels")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")


def visible_devices() -> int:
    """The default number of parallel jobs: visible GPUs, else 1 (one training uses every core)."""
    return torch.cuda.device_count() or 1
