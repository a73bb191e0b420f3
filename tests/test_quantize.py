"""int8 static quantization (onnxruntime QDQ) of an exported LIP-Net, and its calibration set."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet, read_spec, write_spec
from lipnet_pl.core.quantize import (
    CALIBRATION_METHODS,
    QUANT_KEY,
    calibration_batches,
    quantize_onnx_int8,
)
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.data import EvalTransform, LIPDataset, find_layout
from lipnet_pl.data.synthetic import generate
from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import fold_batchnorm
from tiny import TINY_LIPNET_KWARGS, built_once

pytestmark = [
    pytest.mark.slow,  # one ONNX export and calibrations (~30 s on 2 cores)
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
    # one pytest-xdist worker runs the module: its export is built once, not waited for by the
    # other worker (xdist starts the larger groups first)
    pytest.mark.xdist_group("quantize"),
]
SIZE = (64, 64)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lip")
    generate(root, style="simple", train=12, val=4, test=1, seed=3, min_size=48, max_size=96)
    return root


def fit(net: torch.nn.Module, root: Path, steps: int = 40) -> torch.nn.Module:
    """A few Adam steps on the synthetic train split: a random network's logits are nearly tied,
    so its argmax flips under any rounding; a fitted one has the margins of a real model."""
    dataset = LIPDataset(find_layout(root)["train"], transform=EvalTransform(SIZE))
    samples = [dataset[i] for i in range(len(dataset))]
    x = torch.stack([s["image"] for s in samples])
    y = torch.stack(
        [F.interpolate(s["mask"][None, None].float(), SIZE, mode="nearest")[0, 0] for s in samples]
    ).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y, ignore_index=255).backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, data_root) -> tuple[torch.nn.Module, Path]:
    """The fitted tiny LIP-Net and its BN-folded ONNX export (free batch/height/width)."""

    def fit_and_export(folder: Path) -> None:
        torch.manual_seed(0)
        net = fit(build_model("lipnet", **TINY_LIPNET_KWARGS), data_root)
        torch.save(net.state_dict(), folder / "net.pt")
        path = folder / "fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(fold_batchnorm(net), torch.randn(1, 3, *SIZE), path, True, 18)
        spec = ModelSpec(
            net={"name": "lipnet", "num_classes": 20, **TINY_LIPNET_KWARGS}, input_size=SIZE
        )
        write_spec(path, spec)

    folder = built_once(tmp_path_factory, "quantize_fp32", fit_and_export)
    net = build_model("lipnet", **TINY_LIPNET_KWARGS)
    net.load_state_dict(torch.load(folder / "net.pt", weights_only=True))
    return net.eval(), folder / "fp32.onnx"


def test_calibration_batches_are_eval_preprocessed_train_images(data_root):
    batches = calibration_batches(data_root, num_images=5, crop_size=SIZE, batch_size=2)
    assert [b.shape for b in batches] == [(2, 3, *SIZE), (2, 3, *SIZE), (1, 3, *SIZE)]
    assert all(b.dtype == np.float32 for b in batches)
    dataset = LIPDataset(find_layout(data_root)["train"], transform=EvalTransform(SIZE))
    expected = {dataset[i]["image"].numpy().tobytes() for i in range(len(dataset))}
    assert all(image.tobytes() in expected for b in batches for image in b)
    again = calibration_batches(data_root, num_images=5, crop_size=SIZE, batch_size=2)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))  # seeded
    assert len(calibration_batches(data_root, num_images=100, crop_size=SIZE)) == 12  # all


@pytest.mark.parametrize("method", ["entropy", "percentile", "minmax"])
def test_int8_model_runs_keeps_the_spec_and_agrees_with_fp32(
    fp32, data_root, tmp_path, monkeypatch, method
):
    monkeypatch.chdir(tmp_path)  # onnxruntime's helpers must not leave files in the cwd either
    net, fp32_path = fp32
    calib = calibration_batches(data_root, num_images=8, crop_size=SIZE)
    out = quantize_onnx_int8(fp32_path, tmp_path / "int8.onnx", calib, method=method)
    assert out == tmp_path / "int8.onnx" and sorted(p.name for p in tmp_path.iterdir()) == [
        "int8.onnx"
    ]
    assert read_spec(out) == read_spec(fp32_path)
    info = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}[QUANT_KEY])
    assert info["calibration"] == method and info["calibration_images"] == 8
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)

    int8 = OnnxRuntimeNet(out)
    x = torch.from_numpy(np.concatenate(calibration_batches(data_root, 4, SIZE, split="val")))
    with torch.no_grad():
        ref = net(x)
    got = int8(x)
    assert got.shape == ref.shape == (4, 20, *SIZE)
    agree = (got.argmax(1) == ref.argmax(1)).float().mean().item()
    assert agree >= 0.97, agree


def test_bad_arguments_raise_value_error(fp32, tmp_path):
    _, fp32_path = fp32
    calib = [np.zeros((1, 3, *SIZE), np.float32)]
    with pytest.raises(ValueError, match="'histogram'"):
        quantize_onnx_int8(fp32_path, tmp_path / "a.onnx", calib, method="histogram")
    with pytest.raises(ValueError, match="no batches"):
        quantize_onnx_int8(fp32_path, tmp_path / "a.onnx", [])
    with pytest.raises(ValueError, match=r"\[5, 5\]"):
        quantize_onnx_int8(fp32_path, tmp_path / "a.onnx", [np.zeros((5, 5))])
    with pytest.raises(ValueError, match="percentile"):
        quantize_onnx_int8(fp32_path, tmp_path / "a.onnx", calib, percentile=101)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        quantize_onnx_int8(tmp_path / "missing.onnx", tmp_path / "a.onnx", calib)
    assert not (tmp_path / "a.onnx").exists()
    assert set(CALIBRATION_METHODS) >= {"minmax", "percentile", "entropy"}


def test_calibration_batches_validate_arguments(data_root):
    with pytest.raises(ValueError, match="num_images"):
        calibration_batches(data_root, num_images=0)
    with pytest.raises(ValueError, match="'test_split'"):
        calibration_batches(data_root, split="test_split")


def test_int8_graph_keeps_logits_float_and_quantizes_the_se_means(fp32, data_root, tmp_path):
    _, fp32_path = fp32
    calib = calibration_batches(data_root, num_images=4, crop_size=SIZE)
    out = quantize_onnx_int8(fp32_path, tmp_path / "int8.onnx", calib)
    model = onnx.load(str(out))
    producer = {o: n for n in model.graph.node for o in n.output}
    logits = producer[model.graph.output[0].name]
    assert logits.op_type == "Resize"  # the float upsampling writes the output, no Q/DQ after it
    assert all(n.op_type != "ReduceMean" for n in model.graph.node)
    pools = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]
    assert len(pools) == 12  # one per SE block, each between a DequantizeLinear and a Quantize
    assert all(producer[p.input[0]].op_type == "DequantizeLinear" for p in pools)

    # the image's max-pool (image_pooling=input) in float, on the image as the int8 net sees it
    def source(name):  # the tensor behind a DequantizeLinear(QuantizeLinear(tensor)) chain
        while name in producer and producer[name].op_type in ("DequantizeLinear", "QuantizeLinear"):
            name = producer[name].input[0]
        return name

    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    (image_pool,) = [n for n in pools if source(n.input[0]) == "image"]
    info = json.loads({p.key: p.value for p in model.metadata_props}[QUANT_KEY])
    assert set(info["float_nodes"]) == {logits.name, image_pool.name}


def test_spatial_means_become_global_pools_with_the_same_values(fp32, tmp_path):
    import onnxruntime as ort

    from lipnet_pl.core.int8_graph import float_nodes, spatial_means_to_global_pool

    _, fp32_path = fp32
    model = onnx.load(str(fp32_path))
    means = sum(n.op_type == "ReduceMean" for n in model.graph.node)
    assert means == 12 and spatial_means_to_global_pool(model) == 12
    assert spatial_means_to_global_pool(model) == 0  # nothing left to rewrite
    rewritten = tmp_path / "gap.onnx"
    onnx.save(model, str(rewritten))
    x = np.random.default_rng(0).standard_normal((1, 3, *SIZE)).astype(np.float32)
    ref, got = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
        for p in (fp32_path, rewritten)
    )
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert len(float_nodes(model)) == 2  # the logits' Resize and the image's MaxPool
