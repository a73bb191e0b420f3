"""``python -m lipnet_pl.data bench ROOT``: speed of the training data pipeline.

Decode + augmentation + normalisation of the train split, printed as
``train pipeline: N img/s per worker`` (median over runs; also per CPU-second of this process,
which other load on the machine does not distort).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from lipnet_pl.data.classes import LIP
from lipnet_pl.data.dataset import LIPDataset
from lipnet_pl.data.layout import find_layout
from lipnet_pl.data.transforms import TrainTransform
from lipnet_pl.errors import UserError


def _set_one_thread(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


def bench(
    root: Path,
    workers: int = 0,
    crop: int = 473,
    samples: int = 200,
    runs: int = 5,
    batch_size: int = 8,
) -> float:
    """Median train-pipeline throughput per worker (decode + augmentation + normalisation)."""
    import torch
    from torch.utils.data import DataLoader

    if workers < 0 or samples < 1 or runs < 1:
        raise UserError(
            f"need --workers >= 0, --samples >= 1, --runs >= 1; got {workers}, {samples}, {runs}"
        )
    try:
        files = find_layout(root)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    if "train" not in files:
        raise UserError(f"{root} has no train split to benchmark")
    dataset = LIPDataset(files["train"], TrainTransform((crop, crop), LIP.flip_permutation))
    torch.manual_seed(0)
    rates: list[float] = []
    cpu_rates: list[float] = []  # per CPU-second of this process: unaffected by other load
    if workers == 0:
        torch.set_num_threads(1)
        n = len(dataset)
        dataset[0]  # warm-up
        for r in range(runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(samples):
                dataset[(r * samples + i) % n]
            rates.append(samples / (time.perf_counter() - start))
            cpu_rates.append(samples / max(time.process_time() - cpu_start, 1e-9))
    else:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            worker_init_fn=_set_one_thread,
            persistent_workers=True,
            drop_last=True,
        )
        batches = max(1, samples // batch_size)
        it = iter(loader)

        def next_batch():
            nonlocal it
            try:
                return next(it)
            except StopIteration:
                it = iter(loader)
                return next(it)

        for _ in range(workers * 2):
            next_batch()  # warm-up: workers started and queues full
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(batches):
                next_batch()
            rates.append(batches * batch_size / (time.perf_counter() - start) / workers)
    rate = statistics.median(rates)
    print(f"train pipeline: {rate:.1f} img/s per worker")
    if cpu_rates:
        print(
            f"  (by process CPU time: {statistics.median(cpu_rates):.1f} img/s; wall clock above)"
        )
    return rate
