"""What a sweep job adds to its run summary: its network's CPU latency at batch 1.

So a sweep over dilations or variants answers "what does this accuracy cost" in the same table
(``sweep_summary``: GFLOPs, latency, the mIoU-vs-latency panel). The network is the job's
``model.net`` built afresh (the speed does not depend on the trained weights) at the job's crop
size, timed by :func:`lipnet_pl.core.latency.cpu_latency` for ``sweep_latency_s`` seconds
(0 = not measured). A measurement that fails is logged and leaves the latency empty: the
training result stands.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lipnet_pl.cli import one_line
from lipnet_pl.config import plain
from lipnet_pl.core.latency import cpu_latency
from lipnet_pl.models import build_model

log = logging.getLogger(__name__)

FIELDS = ("cpu_latency_ms", "latency_backend", "latency_rounds")


def measure(cfg: DictConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """The latency fields for ``summary`` (None each when off or when it failed)."""
    seconds = float(cfg.get("sweep_latency_s") or 0)
    if seconds <= 0:
        return dict.fromkeys(FIELDS)
    size = tuple(int(s) for s in summary.get("input_size") or plain(cfg.data.crop_size))
    try:
        latency = cpu_latency(build_model(**plain(cfg.model.net)).eval(), size, seconds)
    except Exception as err:  # a measurement, not the job's result: logged, left empty
        log.warning("CPU latency not measured: %s: %s", type(err).__name__, one_line(err))
        return dict.fromkeys(FIELDS)
    log.info("CPU latency at batch 1, %dx%d: %.2f ms (%s)", *size, latency.ms, latency.backend)
    return {
        "cpu_latency_ms": round(latency.ms, 3),
        "latency_backend": latency.backend,
        "latency_rounds": latency.rounds,
    }


def add_latency(cfg: DictConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with the latency fields, also written into ``cfg.summary_file`` (atomically);
    an empty summary (not rank 0, or no result) is returned as it is."""
    if not summary:
        return summary
    summary = {**summary, **measure(cfg, summary)}
    path = Path(cfg.summary_file)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
    return summary
