"""Trained networks as the ecosystem shares them: a folder with ``model.safetensors`` and a
``config.json`` holding the :class:`~lipnet_pl.core.spec.ModelSpec`.

The folder layout is the one of ``huggingface_hub``'s ``PyTorchModelHubMixin``, so the same folder
works locally, on the Hugging Face Hub (``push_to_hub``) and with ``from_pretrained("owner/name")``.

* ``model.safetensors`` holds the network's own ``state_dict`` (no wrapper prefix), so it loads into
  a plain ``build_model(**spec.net)`` with any safetensors reader, without this package;
* ``config.json`` is ``{"spec": spec.to_dict()}``: how to rebuild the network and feed it.

Local folders never touch the network. A string that is not an existing folder is read as a hub
id (``name`` or ``owner/name``) and downloaded into the hub cache; set ``HF_HUB_OFFLINE=1`` to use
only what that cache already holds (then a missing model is an error instead of a download).
A path that names a folder (absolute, ``./``, ``~``, or several ``/``) but does not exist is a
``FileNotFoundError``, never a download attempt; write ``./runs/x`` for a relative ``runs/x``.

Usage::

    save_pretrained(net, spec, "parser/")          # or PretrainedParser(spec, net).save_pretrained
    net, spec = load_pretrained("parser/")         # plain nn.Module (eval mode) + its ModelSpec
    parser = PretrainedParser.from_pretrained("parser/")   # nn.Module holding .net and .spec
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub import constants as hf_constants
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.models import build_model
from lipnet_pl.outputs import atomic_dir

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "PretrainedParser",
    "load_pretrained",
    "save_pretrained",
]


def _as_spec(spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return ModelSpec.from_dict(spec)
    raise TypeError(f"spec must be a ModelSpec or its to_dict() form, got {type(spec).__name__}")


def _unwrap(net: nn.Module) -> nn.Module:
    """The network itself: torch.compile wrappers save their inner module's keys."""
    return getattr(net, "_orig_mod", net)


def _check_fits(net: nn.Module, spec: ModelSpec) -> None:
    """Fail at save time, not at someone else's load time, when ``net`` is not ``spec.net``."""
    with torch.device("meta"):
        reference = build_model(**spec.net)
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    if want == have:
        return
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    raise ValueError(
        f"the network does not match spec.net {spec.net}: missing {missing[:5]}, "
        f"unexpected {extra[:5]}, other shape {shapes[:5]} (a BN-folded or compiled-and-changed "
        "network cannot be saved; save the trained network itself)"
    )


def _local_folder(name_or_path: str | os.PathLike) -> Path | None:
    """The folder meant by ``name_or_path``, or None when it reads as a hub id.

    Raises rather than guessing when a path-looking argument does not name a usable folder.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    looks_local = (
        isinstance(name_or_path, os.PathLike)
        or path.is_absolute()
        or text.startswith((".", "~"))
        or "\\" in text
        or text.count("/") > 1
        or path.exists()
    )
    if not looks_local:
        return None
    if not path.exists():
        raise FileNotFoundError(
            f"pretrained folder {path} does not exist (write it with save_pretrained; "
            "a hub id is 'owner/name')"
        )
    if not path.is_dir():
        raise NotADirectoryError(
            f"{path} is a file: from_pretrained wants the folder save_pretrained wrote "
            f"({CONFIG_NAME} + {WEIGHTS_NAME})"
        )
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} is missing: {path} is not a folder written by save_pretrained"
            )
    return path


class PretrainedParser(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="lipnet_pl",
    pipeline_tag="image-segmentation",
    tags=["human-parsing", "lip"],
):
    """A parsing network with its :class:`ModelSpec`; ``forward`` is the network's (logits).

    ``PretrainedParser(spec)`` builds ``build_model(**spec.net)``; ``PretrainedParser(spec, net)``
    wraps an existing (trained) network. ``save_pretrained`` / ``from_pretrained`` /
    ``push_to_hub`` come from ``huggingface_hub.PyTorchModelHubMixin``.
    """

    def __init__(self, spec: ModelSpec | Mapping[str, Any], net: nn.Module | None = None):
        super().__init__()
        self.spec = _as_spec(spec)
        if net is None:
            net = build_model(**self.spec.net)
        else:
            net = _unwrap(net)
            _check_fits(net, self.spec)
        self.net = net
        # the config the mixin writes and pushes: ModelSpec.to_dict(), not the mixin's own
        # capture of __init__ arguments (dataclasses.asdict of the spec, the network dropped)
        self._hub_mixin_config = {"spec": self.spec.to_dict()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load a folder written by :meth:`save_pretrained` or a hub id (see the module doc).

        ``map_location`` (default "cpu") places the weights; hub kwargs (``revision``,
        ``cache_dir``, ``local_files_only``, ``token``) pass through to ``huggingface_hub``.
        """
        folder = _local_folder(pretrained_model_name_or_path)
        if folder is not None:
            return super().from_pretrained(str(folder), **kwargs)
        hub_id = os.fspath(pretrained_model_name_or_path)
        try:
            return super().from_pretrained(hub_id, **kwargs)
        except OSError as err:  # hub errors (not found, offline, network) are OSErrors
            offline = " (HF_HUB_OFFLINE is set: only models in the hub cache load)"
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
            kind = FileNotFoundError if isinstance(err, FileNotFoundError) else OSError
            raise kind(
                f"cannot load {hub_id!r} from the Hugging Face Hub"
                f"{offline if hf_constants.HF_HUB_OFFLINE else ''}: {detail} "
                "(a local folder must exist; write ./name for a relative path)"
            ) from err

    def _save_pretrained(self, save_directory: Path) -> None:
        """The network's own keys (loadable without this class) and the spec as config.json."""
        weights = str(Path(save_directory) / WEIGHTS_NAME)
        try:
            save_model(self.net, weights, metadata={"format": "pt"}, force_contiguous=True)
        except SafetensorError as err:  # a full disk is an OSError like any other write's
            found = re.search(r"os error (\d+)", str(err))
            if found is None:
                raise
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), weights) from err
        config = {"spec": self.spec.to_dict()}
        (Path(save_directory) / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str | torch.device = "cpu",
        spec: ModelSpec | Mapping[str, Any] | None = None,
        **unused: Any,
    ) -> PretrainedParser:
        """Strict load (every key must fit), unlike the mixin's default ``strict=False``."""
        hub = dict(revision=revision, cache_dir=cache_dir, force_download=force_download)
        hub.update(token=token, local_files_only=local_files_only)
        if spec is None:
            if not os.path.isdir(model_id):  # the mixin swallows hub errors on config.json
                hf_hub_download(repo_id=model_id, filename=CONFIG_NAME, **hub)
            raise ValueError(
                f"{CONFIG_NAME} of {model_id} holds no 'spec': not written by lipnet_pl "
                "save_pretrained"
            )
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS_NAME)
        else:
            weights = hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, **hub)
        try:
            model = cls(spec)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{CONFIG_NAME} of {model_id}: unusable spec: {err}") from None
        try:
            load_model(model.net, weights, strict=True, device=str(map_location))
        except RuntimeError as err:
            raise ValueError(
                f"{weights} does not fit the network its {CONFIG_NAME} describes "
                f"({model.spec.name}): {err}"
            ) from None
        return model.eval()


def save_pretrained(
    net: nn.Module, spec: ModelSpec | Mapping[str, Any], directory: str | os.PathLike
) -> Path:
    """Write ``net`` (a ``build_model(**spec.net)`` network) and ``spec`` into ``directory``.

    Written into a temporary folder beside it that then replaces it: a write that fails (a full
    disk) leaves the previous folder whole and loadable (:func:`lipnet_pl.outputs.atomic_dir`)."""
    directory = Path(directory)
    parser = PretrainedParser(spec, net)
    with atomic_dir(directory) as tmp:
        parser.save_pretrained(tmp)
    return directory


def load_pretrained(
    name_or_path: str | os.PathLike, map_location: str | torch.device = "cpu", **hub_kwargs: Any
) -> tuple[nn.Module, ModelSpec]:
    """``(network in eval mode, its spec)`` from a save_pretrained folder or a hub id."""
    parser = PretrainedParser.from_pretrained(name_or_path, map_location=map_location, **hub_kwargs)
    return parser.net, parser.spec
