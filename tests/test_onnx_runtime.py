"""ONNX Runtime backend: spec metadata in the .onnx file and OnnxRuntimeNet as a torch network."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import (
    CLASS_NAMES_KEY,
    SPEC_KEY,
    OnnxRuntimeNet,
    read_metadata,
    read_spec,
    write_spec,
)
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.errors import UserError
from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import fold_batchnorm
from tiny import TINY_LIPNET_KWARGS, built_once

pytestmark = [
    pytest.mark.slow,  # one ONNX export (~15 s on 2 cores)
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
    # one pytest-xdist worker runs the module: its export is built once, not waited for by the
    # other worker (xdist starts the larger groups first)
    pytest.mark.xdist_group("onnx_runtime"),
]


def tiny_spec() -> ModelSpec:
    return ModelSpec(
        net={"name": "lipnet", "num_classes": 20, **TINY_LIPNET_KWARGS}, input_size=(64, 64)
    )


def export(net: torch.nn.Module, path: Path) -> Path:
    """The export command's recipe: torch.export-based exporter, opset 18, weights inside,
    dynamic batch / height / width."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(fold_batchnorm(net), torch.randn(1, 3, 64, 64), path, True, 18)


def fix_input_shape(src: Path, dst: Path, shape: tuple[int, ...]) -> Path:
    """A static-shape file (as ``dynamic=false`` exports give) without a second export."""
    model = onnx.load(str(src))
    for dim, size in zip(model.graph.input[0].type.tensor_type.shape.dim, shape, strict=True):
        dim.Clear()
        dim.dim_value = size
    onnx.save(model, dst)
    return dst


@pytest.fixture(scope="module")
def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model("lipnet", **TINY_LIPNET_KWARGS).eval()
    for m in net.modules():  # non-trivial batch-norm statistics, so folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def onnx_files(tiny_net, tmp_path_factory) -> dict[str, Path]:
    def export_both(root: Path) -> None:
        torch.save(tiny_net.state_dict(), root / "net.pt")
        dynamic = export(tiny_net, root / "dynamic.onnx")
        fix_input_shape(dynamic, root / "static.onnx", (1, 3, 64, 64))
        for path in (dynamic, root / "static.onnx"):
            write_spec(path, tiny_spec())

    root = built_once(tmp_path_factory, "onnx_runtime", export_both)
    files = {"dynamic": root / "dynamic.onnx", "static": root / "static.onnx"}
    exported = torch.load(root / "net.pt", weights_only=True)  # perhaps another worker's
    assert all(torch.equal(exported[k], v) for k, v in tiny_net.state_dict().items())
    return files


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 65, 67)])
def test_dynamic_file_matches_torch(tiny_net, onnx_files, shape):
    net = OnnxRuntimeNet(onnx_files["dynamic"])
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tiny_net(x)
    got = net(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.shape == expected.shape == (shape[0], 20, *shape[2:])
    agree = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agree >= 0.999, agree
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)


def test_static_file_rejects_another_size_and_chunks_batches(tiny_net, onnx_files):
    net = OnnxRuntimeNet(onnx_files["static"])
    assert net.input_shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"fixed input 1x3x64x64.*height 65 != 64"):
        net(torch.randn(1, 3, 65, 64))
    x = torch.randn(3, 3, 64, 64)  # batch 3 through a batch-1 file: three runs
    with torch.no_grad():
        expected = tiny_net(x)
    torch.testing.assert_close(net(x), expected, atol=1e-3, rtol=1e-3)


def test_behaves_as_a_torch_module(onnx_files):
    net = OnnxRuntimeNet(onnx_files["dynamic"], threads=1)
    assert list(net.parameters()) == [] and net.state_dict() == {}
    assert net.providers == ["CPUExecutionProvider"]
    assert net.spec == tiny_spec() and net.num_classes == 20
    twin = copy.deepcopy(net.eval())  # the session is rebuilt, not copied
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    torch.testing.assert_close(twin(x), net(x))
    assert "dynamic.onnx" in repr(net)


def test_spec_round_trip_keeps_other_metadata_and_the_model(onnx_files, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_files["dynamic"].read_bytes())
    spec = ModelSpec(
        net={"name": "lipnet", "num_classes": 3},
        classes=ClassInfo(
            names=("bg", "left", "right"), palette=((0, 0, 0),) * 3, flip_pairs=((1, 2),)
        ),
        input_size=(96, 64),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    write_spec(path, spec, extra={"note": "kept"})
    write_spec(path, spec)  # rewriting replaces the spec, keeps unrelated keys
    assert read_spec(path) == spec
    meta = read_metadata(path)
    assert meta["note"] == "kept" and meta[CLASS_NAMES_KEY] == '["bg", "left", "right"]'
    assert sum(p.key == SPEC_KEY for p in onnx.load(str(path)).metadata_props) == 1
    onnx.checker.check_model(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp file left
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_failed_write_leaves_the_file_untouched(onnx_files, tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_files["dynamic"].read_bytes())
    before = path.read_bytes()

    def broken_save(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save", broken_save)
    with pytest.raises(UserError, match=r"cannot write .*model\.onnx \(disk full\)"):
        write_spec(path, tiny_spec())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_corrupt_or_foreign_files_raise_value_error_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf at all\xff\xff\xff")
    with pytest.raises(ValueError, match="corrupt.onnx"):
        read_spec(corrupt)
    with pytest.raises(ValueError, match="corrupt.onnx"):
        OnnxRuntimeNet(corrupt)

    foreign = tmp_path / "foreign.onnx"  # valid ONNX, no lipnet_pl spec
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    vi = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 3, 4, 4]) for n in "xy"]
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([node], "g", vi[:1], vi[1:])), foreign)
    with pytest.raises(ValueError, match=r"foreign.onnx.*without a lipnet_pl spec"):
        read_spec(foreign)
    assert OnnxRuntimeNet(foreign).spec is None  # still runnable as a plain ONNX network

    bad_json = tmp_path / "bad_json.onnx"
    bad_json.write_bytes(foreign.read_bytes())
    model = onnx.load(str(bad_json))
    model.metadata_props.add(key=SPEC_KEY, value='{"net": {}}')
    onnx.save(model, bad_json)
    with pytest.raises(ValueError, match=r"bad_json.onnx.*unreadable"):
        read_spec(bad_json)

    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        read_spec(tmp_path / "missing.onnx")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(threads=0), "threads"), (dict(threads=1.5), "threads"), (dict(device="tpu"), "device")],
)
def test_bad_arguments_raise_value_error(onnx_files, kwargs, match):
    with pytest.raises(ValueError, match=match):
        OnnxRuntimeNet(onnx_files["dynamic"], **kwargs)


def test_wrong_rank_input_is_a_clear_error(onnx_files):
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        OnnxRuntimeNet(onnx_files["dynamic"])(torch.randn(3, 64, 64))


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider present"
)
def test_cuda_without_a_cuda_provider_warns_and_runs_on_cpu(onnx_files):
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        net = OnnxRuntimeNet(onnx_files["dynamic"], device="cuda")
    assert net.providers == ["CPUExecutionProvider"]
    assert net.device == torch.device("cpu")  # where it runs, not what was asked for
    assert np.isfinite(net(torch.randn(1, 3, 64, 64)).numpy()).all()


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available(),
    reason="needs onnxruntime-gpu and a CUDA device",
)
def test_cuda_provider_returns_logits_on_the_input_device(tiny_net, onnx_files):
    net = OnnxRuntimeNet(onnx_files["dynamic"], device="cuda")
    assert net.providers[0] == "CUDAExecutionProvider"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = tiny_net(x)
    got = net(x.cuda())
    assert got.device.type == "cuda"
    agree = (got.cpu().argmax(1) == expected.argmax(1)).float().mean().item()
    assert agree >= 0.999


def test_forward_binds_torch_memory_instead_of_copying_through_numpy(onnx_files, monkeypatch):
    net = OnnxRuntimeNet(onnx_files["dynamic"])
    x = torch.randn(2, 3, 64, 64)
    expected = net(x)
    monkeypatch.setattr(net.session, "run", lambda *a, **k: pytest.fail("host numpy round trip"))
    got = net(x)
    assert got.shape == (2, 20, 64, 64) and torch.equal(got, expected)
