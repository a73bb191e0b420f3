"""``python -m lipnet_pl.data bench ROOT``: speed of the training data path, both placements.

Prints, for the train split at ``--crop``:

* ``train pipeline, augment_on=workers: N img/s per worker``: decode + augmentation +
  normalisation in a loader worker (float32 out);
* ``train pipeline, augment_on=device: N img/s per worker``: what a worker does when the
  augmentation runs on the device (decode + resize, uint8 out), and its speed-up;
* ``device-side augmentation (DEVICE, batch B): X ms per image``: the batched rest of the work
  where the model runs (CUDA when there is one, else the CPU on one thread);
* ``jpeg decode``: the JPEG decoders installed, on this split's files.

The two paths are timed in alternating runs (median of ``--runs``), so load from other jobs hits
both alike; each line also gives the rate per CPU-second of this process, which that load does
not distort. docs/training.md turns these numbers into workers and cores per GPU.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from lipnet_pl.data.classes import LIP
from lipnet_pl.data.dataset import LIPDataset
from lipnet_pl.data.device_augment import DeviceAugment, WorkerSide
from lipnet_pl.data.layout import find_layout
from lipnet_pl.data.transforms import TrainTransform
from lipnet_pl.errors import UserError

PATHS = ("workers", "device")


def _set_one_thread(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


def _datasets(root: Path, crop: int) -> tuple[dict[str, LIPDataset], TrainTransform]:
    try:
        files = find_layout(root)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    if "train" not in files:
        raise UserError(f"{root} has no train split to benchmark")
    train = TrainTransform((crop, crop), LIP.flip_permutation)
    sets = {
        "workers": LIPDataset(files["train"], train),
        "device": LIPDataset(files["train"], WorkerSide(train)),
    }
    return sets, train


def _in_process(dataset: LIPDataset, first: int, samples: int) -> tuple[float, float]:
    """(wall, CPU) seconds for ``samples`` items from ``first`` on, in this process."""
    n = len(dataset)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(samples):
        dataset[(0, (first + i) % n)]
    return time.perf_counter() - start, time.process_time() - cpu_start


def _loader_timer(dataset, workers: int, batch_size: int) -> Callable[[int, int], tuple]:
    """A timer over ``workers`` persistent DataLoader workers (wall seconds, no CPU figure)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=_set_one_thread,
        persistent_workers=True,
        drop_last=True,
    )
    state = {"it": iter(loader)}

    def next_batch():
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])

    for _ in range(workers * 2):
        next_batch()  # warm-up: workers started and queues full

    def timed(_first: int, samples: int) -> tuple[float, None]:
        start = time.perf_counter()
        for _ in range(max(1, samples // batch_size)):
            next_batch()
        return (time.perf_counter() - start) * workers, None  # per worker

    return timed


def device_side_ms(dataset: LIPDataset, train: TrainTransform, batch_size: int, device) -> float:
    """Milliseconds per image of :class:`DeviceAugment` on ``device`` (median of 5 batches; wall
    clock with synchronisation on CUDA, this process's CPU time on the CPU)."""
    import torch
    from torch.utils.data import default_collate

    batch = default_collate([dataset[(0, i % len(dataset))] for i in range(batch_size)])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    augment = DeviceAugment(train)
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time  # CPU: not distorted by other load
    times = []
    for _ in range(6):
        if cuda:
            torch.cuda.synchronize(device)
        start = clock()
        augment(batch)
        if cuda:
            torch.cuda.synchronize(device)
        times.append(clock() - start)
    return statistics.median(times[1:]) / batch_size * 1e3


def decoder_rates(dataset: LIPDataset, limit: int = 64, runs: int = 3) -> dict[str, float]:
    """JPEG decodes per CPU-second (one thread) of each installed decoder on the split's files."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    files = dataset.files
    data = [files.image_path(i).read_bytes() for i in files.ids[:limit]]
    data = [d for d in data if d[:3] == b"\xff\xd8\xff"]

    def pil(d, draft=None):
        with Image.open(io.BytesIO(d)) as img:
            if draft:
                img.draft("RGB", draft)  # reduced DCT decoding where the image is >= 2x draft
            return np.asarray(img.convert("RGB"))

    decoders = {
        "torchvision.io.decode_jpeg (in use)": lambda d: decode_jpeg(
            torch.frombuffer(bytearray(d), dtype=torch.uint8), mode=ImageReadMode.RGB
        ),
        "PIL": pil,
        "PIL draft(half the crop)": lambda d: pil(d, draft=(dataset_half(dataset),) * 2),
    }
    try:
        import simplejpeg  # optional: measured when installed, never required

        decoders["simplejpeg"] = lambda d: simplejpeg.decode_jpeg(d, colorspace="RGB")
    except ImportError:
        pass
    if not data:
        return {}
    rates: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(runs):
        for name, decode in decoders.items():
            start = time.process_time()
            for d in data:
                decode(d)
            rates[name].append(len(data) / max(time.process_time() - start, 1e-9))
    return {name: statistics.median(r) for name, r in rates.items()}


def dataset_half(dataset: LIPDataset) -> int:
    transform = dataset.transform
    crop = getattr(transform, "crop_size", None) or getattr(transform, "size", (473, 473))
    return max(1, int(max(crop)) // 2)


def bench(
    root: Path,
    workers: int = 0,
    crop: int = 473,
    samples: int = 200,
    runs: int = 5,
    batch_size: int = 8,
    device: str = "auto",
) -> dict[str, float]:
    """Per-worker throughput of both data paths, interleaved; returns the printed numbers."""
    import torch

    if workers < 0 or samples < 1 or runs < 1 or batch_size < 1:
        raise UserError(
            "need --workers >= 0, --samples >= 1, --runs >= 1, --batch-size >= 1; got "
            f"{workers}, {samples}, {runs}, {batch_size}"
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    sets, train = _datasets(root, crop)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if workers == 0:
        for dataset in sets.values():
            dataset[(0, 0)]  # warm-up
        timers = {name: (lambda f, n, d=d: _in_process(d, f, n)) for name, d in sets.items()}
    else:
        timers = {name: _loader_timer(d, workers, batch_size) for name, d in sets.items()}
    wall: dict[str, list[float]] = {name: [] for name in PATHS}
    cpu: dict[str, list[float]] = {name: [] for name in PATHS}
    for r in range(runs):
        for name in PATHS if r % 2 == 0 else reversed(PATHS):  # alternate, and who goes first
            w, c = timers[name](r * samples, samples)
            wall[name].append(samples / w)
            if c:
                cpu[name].append(samples / c)
    result = _report(wall, cpu)
    ms = device_side_ms(sets["device"], train, batch_size, torch.device(device))
    result["device_side_ms_per_image"] = ms
    how = "wall clock, synchronised" if device == "cuda" else "CPU time, 1 thread"
    print(f"device-side augmentation ({device}, batch {batch_size}): {ms:.2f} ms per image ({how})")
    rates = decoder_rates(sets["workers"])
    if rates:
        shown = ", ".join(f"{name} {rate:.0f}" for name, rate in rates.items())
        print(f"jpeg decode (img/s per CPU-second, 1 thread): {shown}")
    return result


def _report(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, float]:
    out = {}
    what = {"workers": "float32 out", "device": "decode + resize, uint8 out"}
    for name in PATHS:
        rate = out[name] = statistics.median(wall[name])
        extra = ""
        if cpu[name]:
            out[f"{name}_cpu"] = statistics.median(cpu[name])
            extra = f"; by process CPU time {out[f'{name}_cpu']:.1f}"
        if name == "device":
            extra += f"; {rate / out['workers']:.2f}x workers"
            if cpu[name]:
                extra += f" ({out['device_cpu'] / out['workers_cpu']:.2f}x by CPU time)"
        print(
            f"train pipeline, augment_on={name}: {rate:.1f} img/s per worker ({what[name]}{extra})"
        )
    return out
