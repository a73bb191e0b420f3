"""The command layer: what every ``python -m lipnet_pl.<command>`` does the same way.

Each command module is a thin shell, ``main = hydra_command("<config>", <library function>)``:

* configs come from the packaged ``conf/`` (:func:`lipnet_pl.config.config_dir`), with the usual
  Hydra conventions (``key=value``, ``group=option``, ``-m`` sweeps, ``hydra.run.dir=...``,
  ``--cfg job``), and every output lands in the run dir ``paths.output_dir``;
* the console is kept for our output (:func:`lipnet_pl.runtime.quiet_libraries`);
* ``seed`` (when the config has one) seeds Python, NumPy, torch and the data workers;
* the exit-status contract:

  ===  ==================================================================================
  0    success
  1    a bug: the traceback is printed
  2    the user's input is wrong (config value, file, data): ONE line ``error: ...`` that
       names the key or file and says what to do, no traceback
  3    training diverged (NaN/Inf loss or gradients); the last good checkpoint is kept
  4    a multirun finished, but some of its jobs failed (the summary lists them; one line names
       them)
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM): stopped as on Ctrl-C, ``error: terminated``
  0    (SLURM) the job saved a checkpoint and was requeued: ``requeued: will resume from ...``
       on rank 0 only (:mod:`lipnet_pl.engine.requeue`)
  ===  ==================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from omegaconf import DictConfig

from lipnet_pl.config import config_dir
from lipnet_pl.errors import NonFiniteLossError, Requeued, SweepFailed, Terminated, UserError
from lipnet_pl.hydra_runtime import is_rank_zero
from lipnet_pl.runtime import quiet_libraries

EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_SWEEP_FAILED = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process killed by it
_SIGTERM_RECEIVED = threading.Event()


def one_line(message: object) -> str:
    """A multi-line message as one line; indented lists after a ``...:`` line become ``a, b``."""
    parts: list[str] = []
    listing = False
    for raw in str(message).splitlines():
        line = raw.strip()
        if not line:
            listing = False
            continue
        if listing and parts:
            parts[-1] += ("" if parts[-1].endswith(":") else ",") + " " + line
            continue
        parts.append(line)
        listing = line.endswith(":")
    text = ""
    for part in parts:
        text += ("" if not text else " " if text[-1] in ".:;," else "; ") + part
    return text or type(message).__name__


def _exit(status: int, message: str) -> NoReturn:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def _hydra_config_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    return (ConfigCompositionException, MissingConfigException, OverrideParseException)


def exit_on_errors(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; map user errors to one line + exit 2, divergence to exit 3, Ctrl-C to 130.

    Bugs propagate with their traceback (exit 1).
    """
    from omegaconf.errors import MissingMandatoryValue

    try:
        return fn(*args, **kwargs)
    except UserError as err:
        _exit(EXIT_USER_ERROR, one_line(_worker_message(err)))
    except NonFiniteLossError as err:
        _exit(EXIT_DIVERGED, one_line(err))
    except MissingMandatoryValue as err:
        key = getattr(err, "full_key", None) or "a required value"
        _exit(EXIT_USER_ERROR, f"{key} is required: add {key}=<value> to the command")
    except _hydra_config_errors() as err:
        detail = one_line(err)
        cause = err.__cause__
        if cause is not None and str(cause) and str(cause) not in str(err):
            detail += " (" + one_line(str(cause).split("\n")[0]) + ")"
        _exit(EXIT_USER_ERROR, detail + " (run with --help for the config groups and keys)")
    except SweepFailed as err:
        _exit(EXIT_SWEEP_FAILED, one_line(err))
    except KeyboardInterrupt as err:
        _exit(*_interruption(err))
    except Requeued as stop:
        _stopped_by_slurm(stop)


def _interruption(err: KeyboardInterrupt) -> tuple[int, str]:
    """Ctrl-C or SIGTERM: paths that stop on Ctrl-C may re-raise a plain KeyboardInterrupt (the
    video pipeline does), so the flag set by the handler decides too."""
    if isinstance(err, Terminated) or _SIGTERM_RECEIVED.is_set():
        return EXIT_TERMINATED, "terminated"
    return EXIT_INTERRUPTED, "interrupted"


def _worker_message(err: BaseException) -> str:
    """A DataLoader worker's exception is re-raised as a new one of the same type whose message
    is the worker's traceback: its last line, without the class name, is the message."""
    text = str(err)
    if "\nOriginal Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    return last.removeprefix(f"{type(err).__module__}.{type(err).__qualname__}: ")


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    _SIGTERM_RECEIVED.set()
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` in the main thread (Python's
    default would kill the process with no word and no finalised output); restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SIGTERM_RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _SIGTERM_RECEIVED.clear()


def _stopped_by_slurm(stop: Requeued) -> NoReturn:
    """One line on rank 0 (the other ranks stopped at the same step and say nothing)."""
    rank_zero = is_rank_zero()
    where = f"{stop.ckpt_path} (step {stop.step})"
    if stop.requeued:
        if rank_zero:
            print(f"requeued: will resume from {where}", file=sys.stderr, flush=True)
        sys.exit(0)
    if rank_zero:
        _exit(EXIT_TERMINATED, f"terminated; resume from {where}")
    sys.exit(EXIT_TERMINATED)


_DEFERRED: list[Exception] = []


def fail_after_hydra(error: Exception) -> None:
    """Report ``error`` under the contract once Hydra returns: Hydra turns an exception raised
    in one of its callbacks (e.g. the sweep summary's failed jobs) into a warning and exit 0."""
    _DEFERRED.append(error)


def _raise_deferred() -> None:
    if _DEFERRED:
        raise _DEFERRED.pop(0)


def _seed(cfg: DictConfig) -> None:
    if "seed" in cfg and cfg.seed is not None:
        from lightning.pytorch import seed_everything

        try:
            seed = int(cfg.seed)
        except (TypeError, ValueError):
            raise UserError(f"seed={cfg.seed}: use a whole number (seed=42)") from None
        seed_everything(seed, workers=True, verbose=False)


def hydra_command(
    config_name: str,
    task: Callable[[DictConfig], Any],
    objective: Callable[[Any], float | None] | None = None,
) -> Callable[[], Any]:
    """The ``main()`` of a command: Hydra main over ``conf/<config_name>.yaml`` that calls
    ``task(cfg)`` under the exit-status contract.

    ``objective(result)`` is what the Hydra main returns (for sweepers that optimise a value).
    """

    def main() -> Any:
        quiet_libraries()  # before Hydra imports the configured callbacks (and smp with them)
        import hydra

        # Hydra's own handler prints a trimmed traceback for every error and exits 1; let
        # exceptions through so the contract above decides (a user's setting is respected).
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")

        sys.argv.extend(srun_rank_overrides(sys.argv[1:], os.environ))
        started: list[bool] = []

        @hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)
        def hydra_main(cfg: DictConfig) -> Any:
            started.append(True)
            quiet_libraries()
            # errors are mapped inside the job: Hydra would otherwise add its own lines
            exit_on_errors(_seed, cfg)
            result = exit_on_errors(task, cfg)
            return objective(result) if objective is not None else None

        with sigterm_stops():
            try:
                result = exit_on_errors(hydra_main)
            except OSError as err:
                if started or err.filename is None:
                    raise
                _exit(EXIT_USER_ERROR, _run_dir_message(err))
            exit_on_errors(_raise_deferred)
            return result

    main.__doc__ = f"Hydra command over conf/{config_name}.yaml calling {task.__qualname__}."
    return main


def srun_rank_overrides(args: list[str], environ: Any) -> list[str]:
    """Hydra overrides for a rank other than 0 of a single run that ``srun`` started N times:
    no ``.hydra/`` config copy and no ``train.log`` of its own (rank 0 writes them; every rank
    appending to one log interleaves it). Its log lines still reach the console (srun's log)."""
    rank, tasks = (int(environ.get(k) or 0) for k in ("SLURM_PROCID", "SLURM_NTASKS"))
    if rank == 0 or tasks < 2 or {"-m", "--multirun"} & set(args):
        return []
    return ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


def _run_dir_message(err: OSError) -> str:
    """Hydra creates the run dir before the job starts: a path it cannot make is the user's."""
    return (
        f"cannot create the run dir {err.filename} ({err.strerror or err}): pass "
        "hydra.run.dir=<a folder you can write> (hydra.sweep.dir with -m)"
    )


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the same contract: a usage error is ONE line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        _exit(EXIT_USER_ERROR, f"{self.prog}: {message} (see {self.prog} --help)")


def argparse_command(run: Callable[[list[str] | None], int | None]) -> Callable[..., int]:
    """The ``main(argv)`` of a command with sub-commands/flags (``models``, ``data``)."""

    def main(argv: list[str] | None = None) -> int:
        quiet_libraries()
        with sigterm_stops():
            status = exit_on_errors(run, argv)
        return int(status or 0)

    return main
