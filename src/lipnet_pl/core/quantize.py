"""int8 post-training quantization of an exported ONNX model with onnxruntime (static, QDQ).

Static quantization needs activation ranges, measured by running the fp32 model on calibration
images prepared exactly as evaluation prepares them (:func:`calibration_batches`). Weights are
quantized per output channel (int8, symmetric), activations per tensor (uint8, the fast u8s8
path of x86 VNNI kernels). The model spec stored in the fp32 file is copied to the int8 file.

Entropy (KL-divergence) calibration is the default. Measured on the ``make demo`` LIP-Net of
2026-12-01 (context-style synthetic val, 80 images, standard mIoU, 64 calibration images; fp32
53.08 without TTA / 54.22 with flip): entropy 52.95 / 54.19 (-0.13 / -0.03), percentile 99.999
52.52 / 53.93 (-0.56 / -0.29), percentile with 200 calibration images 52.33 / 53.83; keeping the
stem and classifier convs in float changed little (percentile 52.63 / 53.81, entropy 52.97 /
54.19). On the earlier simple-style demo model (fp32 80.73) the methods tied (minmax 80.31,
percentile 80.31, entropy 80.35). onnxruntime's "distribution" calibration targets float8 and
collapses uint8 models (4 % mIoU), so it is not offered.

Why onnxruntime and not PyTorch's own x86 int8 path (torchao pt2e + ``X86InductorQuantizer``
+ ``torch.compile``, a row of every CPU ``make bench``: ``lipnet_pl.benchmark.x86_int8``):
measured interleaved at batch 1, 473x473 on a 2-core AVX512-VNNI CPU (torch 2.14.1, torchao
0.18), onnxruntime int8 was faster for both LIP-Net (68.8 vs 75.5 ms) and lipnet_rt (20.6 vs
33.6 ms), needs no extra dependency and no compile per input shape, and its file runs wherever
the fp32 ONNX does. Before quantizing, :func:`~lipnet_pl.core.int8_graph.prepare_for_int8`
rewrites the graph for onnxruntime's int8 kernels (lipnet_rt 26.9 -> 20.9 ms).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lipnet_pl.core.int8_graph import prepare_for_int8
from lipnet_pl.core.onnx_runtime import read_metadata
from lipnet_pl.data import EvalTransform, LIPDataset, find_layout
from lipnet_pl.outputs import atomic_path, scratch_dir

QUANT_KEY = "lipnet_pl.quantization"
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
DEFAULT_METHOD = "entropy"
DEFAULT_PERCENTILE = 99.999


def _ort_quantization():
    try:
        from onnxruntime import quantization
    except ImportError as err:  # pragma: no cover - a dev/export dependency
        raise RuntimeError("onnxruntime is not installed: pip install -e '.[export]'") from err
    return quantization


class _Batches:
    """A CalibrationDataReader over in-memory batches; ``set_range`` lets onnxruntime collect
    statistics chunk by chunk (its histogram calibrators otherwise keep every intermediate
    activation of every batch in memory at once)."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]):
        self.input_name = input_name
        self.batches = batches
        self.set_range(0, len(batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}


def _as_batches(calibration: Iterable) -> list[np.ndarray]:
    batches = []
    for i, batch in enumerate(calibration):
        if hasattr(batch, "detach"):  # a torch tensor
            batch = batch.detach().cpu().numpy()
        array = np.ascontiguousarray(batch, dtype=np.float32)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4:
            raise ValueError(
                f"calibration batch {i} must be [B, C, H, W] (or [C, H, W]), got {list(array.shape)}"
            )
        batches.append(array)
    if not batches:
        raise ValueError("calibration gave no batches: pass at least one image array")
    return batches


def _chunk(n: int, at_most: int = 8) -> int:
    """Largest divisor of ``n`` not above ``at_most`` (onnxruntime needs chunks that divide n)."""
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _int8_ready(
    q, src: Path, tmp: Path, preprocess: bool, exclude_nodes: Sequence[str]
) -> tuple[Path, str, list[str]]:
    """``src`` pre-processed and rewritten for int8 into ``tmp``: (its path, the input's name,
    the nodes to keep in float)."""
    model_in = src
    if preprocess:
        model_in = tmp / "preprocessed.onnx"
        # symbolic shape inference (for transformers) fails on dynamic H, W: ONNX shape
        # inference and the graph optimiser are what matter for a CNN.
        q.shape_inference.quant_pre_process(str(src), str(model_in), skip_symbolic_shape=True)
    import onnx  # noqa: PLC0415 - after the onnxruntime check

    model = onnx.load(str(model_in))
    input_name = model.graph.input[0].name
    kept_float = prepare_for_int8(model, exclude_nodes)
    ready = tmp / "int8_ready.onnx"
    onnx.save(model, str(ready))
    return ready, input_name, kept_float


def quantize_onnx_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Iterable[np.ndarray],
    *,
    method: str = DEFAULT_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
    per_channel: bool = True,
    preprocess: bool = True,
    exclude_nodes: Sequence[str] = (),
) -> Path:
    """Write an int8 (QDQ) copy of ``fp32_path`` to ``out_path``, calibrated on ``calibration``.

    Args:
        fp32_path: an fp32 ONNX model (a lipnet_pl export; its metadata is carried over).
        out_path: where the int8 model goes (written atomically).
        calibration: float32 batches [B, C, H, W], normalised as the model expects
            (:func:`calibration_batches` makes them from a data root).
        method: activation range calibration, one of :data:`CALIBRATION_METHODS`
            (default ``entropy``: the range that keeps the activation histogram closest in KL
            divergence; measured against the others in the module docstring).
        percentile: the percentile kept by ``method="percentile"``.
        per_channel: one weight scale per output channel (much better for depthwise convs).
        preprocess: run onnxruntime's ``quant_pre_process`` first (graph optimisation and shape
            inference, recommended by onnxruntime before static quantization).
        exclude_nodes: ONNX node names to leave in float, besides those
            :func:`~lipnet_pl.core.int8_graph.prepare_for_int8` keeps there (the nodes that
            write the logits, pooling of the raw image); its exact rewrites (SE means as
            GlobalAveragePool) run first.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {list(CALIBRATION_METHODS)}, got {method!r}")
    if not (isinstance(percentile, (int, float)) and 50.0 < percentile <= 100.0):
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    src, out = Path(fp32_path), Path(out_path)
    metadata = read_metadata(src)  # FileNotFoundError / ValueError naming the file
    batches = _as_batches(calibration)
    q = _ort_quantization()
    out.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out) as tmp:
        model_in, input_name, kept_float = _int8_ready(q, src, Path(tmp), preprocess, exclude_nodes)
        quantized = Path(tmp) / "int8.onnx"
        # onnxruntime's calibrators print() their progress ("Collecting tensor data ..."): keep
        # the console for our own lines
        with contextlib.redirect_stdout(io.StringIO()):
            q.quantize_static(
                str(model_in),
                str(quantized),
                _Batches(input_name, batches),
                quant_format=q.QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                calibrate_method=getattr(q.CalibrationMethod, _ORT_METHOD[method]),
                nodes_to_exclude=kept_float,
                extra_options={
                    "CalibStridedMinMax": _chunk(len(batches)),
                    "CalibPercentile": float(percentile),
                },
            )
        info = {
            "format": "QDQ",
            "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": "uint8 per-tensor",
            "calibration": method,
            "calibration_images": int(sum(len(b) for b in batches)),
            "float_nodes": kept_float,
            **({"percentile": float(percentile)} if method == "percentile" else {}),
        }
        _save_with_metadata(quantized, {**metadata, QUANT_KEY: json.dumps(info)}, out)
    return out


def _save_with_metadata(model_path: Path, entries: dict[str, str], out: Path) -> None:
    """``model_path`` with exactly ``entries`` as metadata, moved atomically onto ``out``."""
    import onnx

    model = onnx.load(str(model_path))
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    with atomic_path(out) as staged:
        onnx.save(model, str(staged))


_ORT_METHOD = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def calibration_batches(
    root: str | Path,
    num_images: int = 64,
    crop_size: Sequence[int] = (473, 473),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    split: str = "train",
    batch_size: int = 1,
    seed: int = 0,
) -> list[np.ndarray]:
    """``num_images`` images of ``split`` under ``root``, preprocessed as evaluation does
    (``EvalTransform``: stretch to ``crop_size``, normalise), as float32 [B, 3, H, W] batches.

    Images are a seeded random sample of the split (all of it when it is smaller), so the
    calibration set does not depend on how the id list happens to be ordered.
    """
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    layout = find_layout(root)
    if split not in layout:
        raise ValueError(f"split {split!r} not found under {root}; found {sorted(layout)}")
    transform = EvalTransform(
        crop_size,
        IMAGENET_DEFAULT_MEAN if mean is None else mean,
        IMAGENET_DEFAULT_STD if std is None else std,
    )
    dataset = LIPDataset(layout[split], transform=transform, with_labels=False)
    rng = np.random.default_rng(seed)
    count = min(num_images, len(dataset))
    order = sorted(rng.choice(len(dataset), size=count, replace=False).tolist())
    images = [dataset[i]["image"].numpy() for i in order]
    return [
        np.stack(images[i : i + batch_size]).astype(np.float32) for i in range(0, count, batch_size)
    ]
