"""The one model loader: any saved lipnet_pl model -> network + :class:`ModelSpec`.

``eval``, ``predict``, ``export`` and ``bench`` all call :func:`load_model`, which accepts

* a training checkpoint (``.ckpt``, read with ``torch.load(weights_only=True)``, no Lightning),
* an exported ONNX file (``.onnx``, run by ONNX Runtime; the spec is in its metadata),
* a ``save_pretrained`` folder (``config.json`` + ``model.safetensors``), or such a folder on the
  Hugging Face Hub named explicitly as ``hf://owner/name`` (``HF_HUB_OFFLINE=1``: cache only).

The training-checkpoint contract (written by :class:`lipnet_pl.engine.lightning_module.SegmentationModule`):
``checkpoint["hyper_parameters"]`` holds primitives only: the spec keys ``net`` (``build_model``
arguments incl. ``name`` and ``num_classes``), ``classes``, ``input_size``, ``normalize``; and
``checkpoint["state_dict"]`` holds the network's parameters under the prefix ``net.`` (never
``_orig_mod.``: compiled models are saved uncompiled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet, read_spec
from lipnet_pl.core.pretrained import load_pretrained
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.errors import CheckpointError
from lipnet_pl.models import build_model

LOADABLE_FORMATS = ("ckpt", "onnx", "pretrained")  # what load_model reads
HUB_PREFIX = "hf://"
HINT = (
    "pass a .ckpt of a training run (<run dir>/checkpoints/last.ckpt), an .onnx file from "
    "`python -m lipnet_pl.export`, or a save_pretrained folder"
)


@dataclass
class LoadedModel:
    """A network in eval mode with everything needed to feed it and read its output."""

    net: nn.Module
    spec: ModelSpec
    source: str
    format: str  # ckpt | onnx | pretrained | random

    @property
    def classes(self) -> ClassInfo:
        return self.spec.classes

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_size

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.spec.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.spec.std


def model_format(path: str | Path) -> str:
    """``ckpt``, ``onnx`` or ``pretrained`` from the path (folder = pretrained)."""
    path = Path(path)
    if path.is_dir():
        return "pretrained"
    return "onnx" if path.suffix.lower() == ".onnx" else "ckpt"


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    key: str = "ckpt_path",
) -> LoadedModel:
    """Load any saved lipnet_pl model (see module docstring) in eval mode on ``device``.

    Errors are :class:`CheckpointError` (a user error) naming ``key`` and the file.
    """
    if path in (None, "", "???"):
        raise CheckpointError(f"{key} is required: {HINT}")
    if str(path).startswith(HUB_PREFIX):  # explicit: a typo in a local path never downloads
        return _load_pretrained(str(path).removeprefix(HUB_PREFIX), key, device)
    path = Path(str(path)).expanduser()
    if not path.exists():
        raise CheckpointError(f"{key}={path} does not exist: {HINT}")
    fmt = model_format(path)
    if fmt == "pretrained":
        loaded = _load_pretrained(path, key, device)
    elif fmt == "onnx":
        loaded = _load_onnx(path, device, key)
    else:
        loaded = _load_ckpt(path, key)
    if fmt != "onnx":
        loaded.net.to(device)
    loaded.net.eval()
    return loaded


def read_checkpoint(path: Path, key: str = "ckpt_path") -> dict:
    """``torch.load(weights_only=True)`` of a training checkpoint, with one-line errors."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(
            f"{key}={path} is not a readable PyTorch checkpoint (truncated, corrupt or another "
            f"kind of file: {type(err).__name__}): {HINT}"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"{key}={path} holds a {type(ckpt).__name__}, not a checkpoint: {HINT}"
        )
    return ckpt


def _load_ckpt(path: Path, key: str) -> LoadedModel:
    ckpt = read_checkpoint(path, key)
    hp = ckpt.get("hyper_parameters") or {}
    if "net" not in hp or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{key}={path} was not written by lipnet_pl training (no hyper_parameters['net'] or "
            f"state_dict): {HINT}"
        )
    try:
        spec = ModelSpec.from_dict(hp)
        net = build_model(**spec.net)
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"{key}={path} describes a network this version cannot build: {err}"
        ) from None
    state = {
        k[len("net.") :].replace("_orig_mod.", ""): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("net.")
    }
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{key}={path}: weights do not fit the network: {first}") from None
    return LoadedModel(net, spec, str(path), "ckpt")


def _load_onnx(path: Path, device: str | torch.device, key: str) -> LoadedModel:
    try:
        spec = read_spec(path)
        net = OnnxRuntimeNet(path, device=str(device))
    except (ValueError, OSError) as err:
        raise CheckpointError(f"{key}={path}: {err}") from None
    _check_onnx_fits_spec(net, spec, f"{key}={path}")
    return LoadedModel(net, spec, str(path), "onnx")


def _check_onnx_fits_spec(net: OnnxRuntimeNet, spec, where: str) -> None:
    """The graph's static sizes agree with its spec: every image is resized to the spec's
    input size, and the spec names one class per output channel."""
    _, _, height, width = net.input_shape
    h, w = spec.input_size
    if (height is not None and height != h) or (width is not None and width != w):
        raise CheckpointError(
            f"{where} takes fixed {height}x{width} inputs but its spec says input_size "
            f"[{h}, {w}]: re-export it from the checkpoint (dynamic=true takes any size)"
        )
    dims = net._output_dims
    channels = dims[1] if len(dims) == 4 and isinstance(dims[1], int) else None
    if channels is not None and channels != spec.num_classes:
        raise CheckpointError(
            f"{where} outputs {channels} classes but its spec names {spec.num_classes}: the "
            "metadata belongs to another model; re-export it from its checkpoint"
        )


def _load_pretrained(path: Path | str, key: str, device: str | torch.device) -> LoadedModel:
    """A save_pretrained folder, or a Hugging Face Hub id (downloaded only when asked for by
    name; ``HF_HUB_OFFLINE=1`` keeps it to the local cache)."""
    try:
        net, spec = load_pretrained(path)
    except (ValueError, OSError) as err:
        raise CheckpointError(f"{key}={path}: {err}") from None
    return LoadedModel(net.to(device), spec, str(path), "pretrained")


def random_model(spec: ModelSpec) -> LoadedModel:
    """An UNTRAINED network for ``spec`` (smoke tests and timing only)."""
    return LoadedModel(build_model(**spec.net).eval(), spec, "random weights", "random")
