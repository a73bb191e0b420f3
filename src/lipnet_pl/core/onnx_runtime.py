"""ONNX Runtime as a drop-in torch network, and the model spec stored inside the ONNX file.

An exported ``.onnx`` carries its :class:`~lipnet_pl.core.spec.ModelSpec` (network config,
classes, input size, normalisation) as JSON in the model's ``metadata_props``, so a single file
is enough to evaluate or predict. :class:`OnnxRuntimeNet` wraps an ``InferenceSession`` in an
``nn.Module`` whose ``forward`` maps image tensors to logit tensors, so evaluation under
Lightning, TTA and prediction run it unchanged (no autograd: it is inference only).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.outputs import atomic_path

SPEC_KEY = "lipnet_pl.spec"
CLASS_NAMES_KEY = "class_names"


def _import_onnx():
    try:
        import onnx
    except ImportError as err:  # pragma: no cover - a dev/export dependency
        raise RuntimeError("onnx is not installed: pip install -e '.[export]'") from err
    return onnx


def _import_ort():
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - a dev/export dependency
        raise RuntimeError("onnxruntime is not installed: pip install -e '.[export]'") from err
    return onnxruntime


def _load_proto(path: Path, load_external_data: bool = True):
    onnx = _import_onnx()
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not a readable ONNX model ({err})") from None


def write_spec(onnx_path: str | Path, spec: ModelSpec, extra: dict[str, str] | None = None) -> Path:
    """Store ``spec`` (and ``extra`` string entries) in ``onnx_path``'s metadata, in place.

    Existing metadata keys are kept unless overwritten. The file is rewritten atomically (temp
    file in the same folder + ``os.replace``), so a crash never leaves a half-written model.
    """
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    path = Path(onnx_path)
    model = _load_proto(path)
    entries = {
        SPEC_KEY: spec.to_json(),
        CLASS_NAMES_KEY: json.dumps(list(spec.classes.names)),
        **{str(k): str(v) for k, v in (extra or {}).items()},
    }
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    with atomic_path(path) as tmp:
        _import_onnx().save(model, str(tmp))
    return path


def read_metadata(onnx_path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file as a dict (weights are not loaded)."""
    path = Path(onnx_path)
    model = _load_proto(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_spec(onnx_path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` stored by :func:`write_spec`.

    Raises ``ValueError`` naming the file when it is not ONNX, is corrupt, or carries no (or an
    unreadable) lipnet_pl spec; ``FileNotFoundError`` when it does not exist.
    """
    path = Path(onnx_path)
    meta = read_metadata(path)
    if SPEC_KEY not in meta:
        raise ValueError(
            f"{path} is an ONNX model without a lipnet_pl spec (metadata key {SPEC_KEY!r}): "
            "export it with python -m lipnet_pl.export, or add one with write_spec()"
        )
    try:
        return ModelSpec.from_json(meta[SPEC_KEY])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: the lipnet_pl spec in its metadata is unreadable ({err})"
        ) from None


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


def in_chunks(
    x: torch.Tensor, step: int | None, run: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``run`` over ``x`` in chunks of a static batch size ``step`` (None: all at once), the
    last chunk padded by repeating its last image; the outputs of ``x``'s images, concatenated."""
    batch = len(x)
    step = step or batch
    outs = []
    for start in range(0, batch, step):
        chunk = x[start : start + step]
        if len(chunk) < step:  # pad the last chunk by repeating its last image
            chunk = torch.cat([chunk, chunk[-1:].expand(step - len(chunk), -1, -1, -1)])
        outs.append(run(chunk.contiguous()))
    return torch.cat(outs)[:batch] if len(outs) > 1 else outs[0][:batch]


class OnnxRuntimeNet(nn.Module):
    """An ONNX model under onnxruntime behind the ``nn.Module`` interface of a torch network.

    ``forward(x)`` takes float images [B, C, H, W] (any device; they are moved to the session's
    device, and the session reads and writes torch memory there through I/O binding) and returns
    float32 logits on ``x``'s device. Files exported with a static shape accept only
    that C, H, W (a ``ValueError`` says which shape the file expects); a static batch size other
    than the input's is served by running the batch in chunks.

    Args:
        path: the ``.onnx`` file.
        device: "cpu", or "cuda[:N]" for the CUDA execution provider (falls back to CPU with a
            warning when this onnxruntime build has none; ``self.device`` then says ``cpu``:
            it is where the session runs).
        threads: intra-op threads; default: ``torch.get_num_threads()``, like the torch path.
        spinning: let ONNX Runtime's idle threads busy-wait for the next run (its default).
            Off here: in a process that also runs torch (pre/post-processing, TTA, another
            backend) the spinning threads take the cores torch needs (docs/benchmarks.md).
    """

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        spinning: bool = False,
    ):
        super().__init__()
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.path = Path(path)
        self.device = _device(device)
        self.threads = threads
        self.spinning = bool(spinning)
        meta = read_metadata(self.path)  # FileNotFoundError / ValueError before a session exists
        self.spec: ModelSpec | None = read_spec(self.path) if SPEC_KEY in meta else None
        self._start()

    def _start(self) -> None:
        ort = _import_ort()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads or torch.get_num_threads()
        if not self.spinning:  # idle threads sleep: they would take the cores from torch
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers: list = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                cuda = ("CUDAExecutionProvider", {"device_id": self.device.index or 0})
                providers = [cuda, "CPUExecutionProvider"]
            else:
                warnings.warn(
                    f"OnnxRuntimeNet: device={self.device} asked for, but this onnxruntime has "
                    "no CUDAExecutionProvider (install onnxruntime-gpu); running on CPU",
                    stacklevel=3,
                )
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime's InvalidGraph / Fail / ...
            raise ValueError(f"onnxruntime cannot load {self.path}: {err}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(
                f"{self.path} has {len(inputs)} inputs ({[i.name for i in inputs]}); "
                "OnnxRuntimeNet runs single-input image models"
            )
        self.input_name = inputs[0].name
        self._input_dims = list(inputs[0].shape)
        self.output_name = self.session.get_outputs()[0].name
        self._output_dims = list(self.session.get_outputs()[0].shape)
        # where the session runs, not what was asked for or what this onnxruntime has
        if self.session.get_providers()[0] != "CUDAExecutionProvider":
            self.device = torch.device("cpu")
        # Each dim is an int when static, a str / None when free.
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        if len(self.input_shape) != 4:
            raise ValueError(
                f"{self.path}: input {self.input_name} is not [B, C, H, W]: {inputs[0].shape}"
            )

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def num_classes(self) -> int | None:
        return self.spec.num_classes if self.spec is not None else None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("session", None)  # not picklable: rebuilt on load (deepcopy, spawn workers)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._start()

    def _check_shape(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[0] < 1:
            raise ValueError(
                f"OnnxRuntimeNet expects [B, C, H, W] images with B >= 1, got {list(x.shape)}"
            )
        for axis, name in ((1, "channels"), (2, "height"), (3, "width")):
            want = self.input_shape[axis]
            if want is not None and x.shape[axis] != want:
                expected = "x".join("B" if d is None else str(d) for d in self.input_shape)
                raise ValueError(
                    f"{self.path} was exported for fixed input {expected}, got {list(x.shape)} "
                    f"({name} {x.shape[axis]} != {want}): resize the input or re-export with "
                    "dynamic=true"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_shape(x)
        caller = x.device
        x = x.detach().to(self.device, torch.float32).contiguous()
        return in_chunks(x, self.input_shape[0], self._run).to(caller)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """One session call with I/O bound to torch memory on the session's device: no copy
        through host numpy (on CUDA about 1 GB of logits per batch-64 call)."""
        binding = self.session.io_binding()
        where = (self.device.type, self.device.index or 0)
        binding.bind_input(self.input_name, *where, np.float32, tuple(x.shape), x.data_ptr())
        shape = self._output_shape(x)
        if shape is None:  # an output dim not tied to the input: ORT allocates it
            binding.bind_output(self.output_name, *where)
            self._run_bound(binding)
            return torch.from_numpy(binding.copy_outputs_to_cpu()[0]).to(self.device)
        out = torch.empty(shape, dtype=torch.float32, device=self.device)
        binding.bind_output(self.output_name, *where, np.float32, shape, out.data_ptr())
        self._run_bound(binding)
        return out

    def _run_bound(self, binding) -> None:
        """On CUDA torch wrote the input on its stream and ORT runs on its own: wait for torch's
        writes before the run, and for ORT's outputs before torch reads them."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        if self.device.type == "cuda":
            binding.synchronize_outputs()

    def _output_shape(self, x: torch.Tensor) -> tuple[int, ...] | None:
        """The logits' shape for input ``x``: static dims, and free dims named like an input
        dim (the exporter names batch/height/width the same on both sides)."""
        shape = []
        for dim in self._output_dims:
            if isinstance(dim, int):
                shape.append(dim)
            elif dim in self._input_dims:
                shape.append(int(x.shape[self._input_dims.index(dim)]))
            else:
                return None
        return tuple(shape)

    def extra_repr(self) -> str:
        shape = "x".join("?" if d is None else str(d) for d in self.input_shape)
        return f"path={str(self.path)!r}, input={shape}, providers={self.providers}"
