"""OpenVINO in the bench, run only in a process of its own (tests/e2e/test_openvino_isolated.py): importing openvino in the pytest process breaks pytest's captured stderr for every later test that captures output (the session dies with 'lost sys.stderr')."""

from __future__ import annotations

import json

import pytest
import torch

from lipnet_pl.benchmark.runners import (
    Case,
    ModelInfo,
    RoundSettings,
    Variant,
    measure_group,
)
from lipnet_pl.benchmark.suite import run
from lipnet_pl.config import compose


def _openvino_row(onnx_path, calibration=None):
    from lipnet_pl.benchmark.openvino import lazy_openvino

    cpu = torch.device("cpu")
    example = torch.randn(1, 3, 8, 8)
    variant = Variant("openvino", "int8", lazy_openvino(onnx_path, example, calibration), cpu)
    case = Case(ModelInfo("tiny", 0.0, 0.0), cpu, "fp32", 1, (8, 8), 1, 0)
    (row,) = measure_group(case, {"ov": variant}, RoundSettings(2, 2, 0.05, 10))
    return row


def _tiny_onnx(tmp_path, conv=None):
    """A one-convolution ONNX file with free batch/height/width, written directly (no exporter:
    seconds saved), with ``conv``'s weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    conv = conv or torch.nn.Conv2d(3, 4, 3, padding=1)
    weights = [
        numpy_helper.from_array(conv.weight.detach().numpy(), "w"),
        numpy_helper.from_array(conv.bias.detach().numpy(), "b"),
    ]
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 4, "H", "W"])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    return tmp_path / "tiny.onnx"


def test_openvino_rows_run_the_bench_onnx_file_in_fp32_and_int8(tmp_path):
    from lipnet_pl.benchmark.openvino import compile_openvino

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    path = _tiny_onnx(tmp_path, conv)
    calib = [torch.randn(1, 3, 8, 8).numpy() for _ in range(4)]
    x = torch.from_numpy(calib[0])  # inside the calibrated ranges
    with torch.no_grad():
        want = conv(x)
    fp32 = compile_openvino(path, (1, 3, 8, 8))(x)
    int8 = compile_openvino(path, (2, 3, 8, 8), calib)(torch.cat([x, x]))  # calibrated at batch 1
    assert torch.allclose(fp32, want, atol=1e-5)
    assert int8.shape == (2, 4, 8, 8) and not torch.equal(int8[0], fp32[0])  # quantized ...
    assert (int8[0] - want[0]).abs().max() < 0.1 * want.abs().max()  # ... and close to fp32
    row = _openvino_row(path, calib)
    assert row.ok and row.rounds == 2 and row.label == "openvino int8 CPU"


@pytest.mark.parametrize("missing", ["openvino", "nncf"])
def test_openvino_without_its_packages_is_a_row_saying_why(monkeypatch, tmp_path, missing):
    import sys

    class Missing:  # an import system without the package
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == missing:
                raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    for name in [m for m in sys.modules if m.split(".")[0] == missing]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Missing(), *sys.meta_path])
    row = _openvino_row(_tiny_onnx(tmp_path), [torch.randn(1, 3, 8, 8).numpy()])
    assert row.note == (
        f"error: RuntimeError: {missing} is not installed: pip install 'lipnet_pl[openvino]' "
        "(openvino, nncf)"
    )
    assert row.rounds == 0


def test_openvino_failing_on_this_cpu_is_a_row_saying_why(monkeypatch, tmp_path):
    import openvino

    def refuse(self, *args, **kwargs):  # what the CPU plugin raises on an unsupported CPU
        raise RuntimeError("Exception from src/inference: CPU plugin: unsupported instruction set")

    monkeypatch.setattr(openvino.Core, "compile_model", refuse)
    row = _openvino_row(_tiny_onnx(tmp_path))
    assert row.note.startswith("error: RuntimeError: Exception from src/inference: CPU plugin")
    assert row.rounds == 0 and not row.ok


def test_the_bench_writes_openvino_fp32_and_int8_rows_of_a_model(tmp_path, smaller_lipnet):
    overrides = [
        "models=[lipnet]", "size=64", "device=cpu", "cpu.min_rounds=2", "cpu.max_rounds=2",
        "cpu.warmup=0", "cpu.compile=[]", "cpu.batch_sizes=[1]", "onnxruntime.int8=[]",
        "x86_int8=[]", "versus_reference=[]", "train_step=false", "plot=false",
        "openvino=[lipnet]", "onnxruntime.calibration_batches=2", f"paths.output_dir={tmp_path}",
    ]  # fmt: skip
    run(compose("bench", overrides), tmp_path)
    data = json.loads((tmp_path / "bench.json").read_text())
    ov = {r["variant"]: r for r in data["results"] if r["backend"] == "openvino"}
    assert sorted(ov) == ["fp32", "int8"]
    assert all(
        r["rounds"] == 2 and r["device"] == "cpu" and r["median_ms"] > 0 for r in ov.values()
    )
    assert data["meta"]["openvino"] != "not installed"


def _eval(lip_root, ckpt, out, backend):
    from lipnet_pl.evaluation.evaluate import evaluate

    overrides = [
        f"ckpt_path={ckpt}", "data=lip", f"data.root={lip_root}", "data.num_workers=0",
        "data.batch_size=2", "trainer=cpu", f"paths.output_dir={out}", f"backend={backend}",
        "save_predictions=true",
    ]  # fmt: skip
    return evaluate(compose("eval", overrides))


def test_eval_backend_openvino_scores_a_checkpoint_as_pytorch_does(
    lip_root, trained_ckpt, tmp_path
):
    """``eval backend=openvino`` exports the checkpoint and runs it under OpenVINO: the mIoU of
    the PyTorch backend (within 0.1 point) and >= 99.9 % of its label pixels, as ONNX Runtime's
    (tests/test_eval.py; comparing with PyTorch spares a second export)."""
    from tiny import same_label_share

    runs = {b: _eval(lip_root, trained_ckpt, tmp_path / b, b) for b in ("torch", "openvino")}
    assert (tmp_path / "openvino" / "model.onnx").is_file()
    assert abs(runs["torch"]["miou"] - runs["openvino"]["miou"]) <= 0.001
    share = same_label_share(
        tmp_path / "torch" / "predictions", tmp_path / "openvino" / "predictions"
    )
    assert share >= 0.999


def test_predict_backend_openvino_runs_the_int8_export(random_ckpt, lip_root, tmp_path):
    """The documented deployment: ``export quantize=int8``, then ``predict backend=openvino``
    on the int8 file; its logits are those of ONNX Runtime on the same file within int8 rounding,
    and the predict command writes a label map per image."""
    from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet
    from lipnet_pl.core.openvino_runtime import OpenVinoNet
    from lipnet_pl.exporting.export import export
    from lipnet_pl.inference.predict import predict

    export_overrides = [
        f"paths.output_dir={tmp_path / 'run'}", f"ckpt_path={random_ckpt}",
        f"output={tmp_path / 'model.onnx'}", "quantize=int8", f"calibration.data_root={lip_root}",
        "calibration.images=3",
    ]  # fmt: skip
    export(compose("export", export_overrides))
    int8 = tmp_path / "model.int8.onnx"
    torch.manual_seed(0)
    x = torch.randn(2, 3, 48, 40)
    ov, ort = OpenVinoNet(int8)(x), OnnxRuntimeNet(int8)(x)
    assert ov.shape == ort.shape == (2, 20, 48, 40)
    assert (ov - ort).abs().mean() < 0.05 * ort.std()
    assert (ov.argmax(1) == ort.argmax(1)).float().mean() > 0.9
    images = lip_root / "TrainVal_images" / "val_images"
    out = tmp_path / "labels"
    predict_overrides = [
        f"paths.output_dir={tmp_path / 'predict'}", f"ckpt_path={int8}", f"input={images}",
        f"output={out}", "backend=openvino", "device=cpu",
    ]  # fmt: skip
    report = predict(compose("predict", predict_overrides))
    stems = sorted(p.stem for p in images.glob("*.jpg"))
    assert report.images == len(stems) == 5 and not report.failed, report
    assert sorted(p.stem for p in (out / "labels").glob("*.png")) == stems


def test_openvino_backend_refuses_a_gpu_and_a_missing_package_in_one_line(
    random_ckpt, monkeypatch, tmp_path
):
    import sys

    from lipnet_pl.core.backends import select_backend
    from lipnet_pl.core.loader import load_model
    from lipnet_pl.errors import UserError

    loaded = load_model(random_ckpt)
    with pytest.raises(UserError, match=r"^backend=openvino runs on the CPU, not cuda:0: set"):
        select_backend(loaded, "openvino", "cuda:0", tmp_path)

    class Missing:  # an import system without openvino
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "openvino":
                raise ModuleNotFoundError("No module named 'openvino'", name="openvino")

    for name in [m for m in sys.modules if m.split(".")[0] == "openvino"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Missing(), *sys.meta_path])
    with pytest.raises(UserError) as err:
        select_backend(loaded, "openvino", "cpu", tmp_path)
    assert str(err.value) == (
        "backend=openvino: openvino is not installed: pip install 'lipnet_pl[openvino]' "
        "(openvino, nncf)"
    )
    assert list(tmp_path.iterdir()) == []  # both refused before exporting the checkpoint
