"""`make bench` on a tiny configuration: every backend row, the outputs, the best-backend lines
and the final speed-up line; timing and memory primitives."""

from __future__ import annotations

import json
import re

import pytest
import torch

from lipnet_pl.benchmark.report import best_lines
from lipnet_pl.benchmark.runners import Case, ModelInfo, Result, make_result
from lipnet_pl.benchmark.suite import run, selected_models
from lipnet_pl.benchmark.timing import PeakMemory, time_calls
from lipnet_pl.config import compose
from lipnet_pl.errors import UserError

TINY = [
    "models=[lipnet]",
    "size=64",
    "device=cpu",
    "cpu.repeats=1",
    "cpu.warmup=0",
    "cpu.compile=[]",
    "cpu.train_repeats=1",
    "cpu.batch_sizes=[1,2]",
    "speedup_pairs=2",
    "onnxruntime.int8=[lipnet]",
    "onnxruntime.calibration_batches=2",
]


def bench_cfg(tmp_path, *overrides):
    return compose("bench", [*TINY, f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.slow
def test_bench_measures_every_backend_and_writes_its_outputs(tmp_path):
    results, meta = run(bench_cfg(tmp_path), tmp_path)
    data = json.loads((tmp_path / "bench.json").read_text())
    cases = {(r["backend"], r["variant"], r["batch"]) for r in data["results"]}
    assert cases == {
        ("pytorch", "eager", 1), ("pytorch", "eager", 2),
        ("pytorch", "fast", 1), ("pytorch", "fast", 2),
        ("onnxruntime", "fp32", 1), ("onnxruntime", "fp32", 2),
        ("onnxruntime", "int8", 1), ("onnxruntime", "int8", 2),
        ("pytorch", "train+channels_last", 2), ("pytorch", "train", 2),
    }  # fmt: skip
    assert all(r["median_ms"] > 0 and r["images_per_s"] > 0 for r in data["results"])
    assert all(r["params_m"] > 3 and r["gflops"] > 0 for r in data["results"])
    assert data["meta"]["reduced_cpu_profile"] is True
    md = (tmp_path / "bench.md").read_text().rstrip().splitlines()
    assert re.fullmatch(
        r"channels_last training step lipnet: \d+\.\d\d img/s vs \d+\.\d\d img/s default layout "
        r"\(fp32, batch 2, interleaved steps\), \d+\.\d\dx",
        meta["layout_lines"][0],
    )
    assert md[-1] == f"fast-path speed-up: {meta['fast_path_speedup']:.2f}x"
    assert re.fullmatch(
        r"best lipnet: \d+\.\d img/s at batch 1 \(.+\), \d+\.\d\dx over PyTorch eager fp32", md[-2]
    )
    png = (tmp_path / "best_backend.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_best_line_names_the_fastest_backend_and_its_gain_over_eager():
    info = ModelInfo("lipnet", 3.96, 32.8)
    mem = PeakMemory(torch.device("cpu"))

    def row(backend, variant, ms, batch=1):
        case = Case(info, torch.device("cpu"), "fp32", batch, (473, 473), 0, 1)
        return make_result(case, "inference", backend, variant, [ms], mem)

    rows = [
        row("pytorch", "eager", 100.0),
        row("pytorch", "fast", 80.0),
        row("onnxruntime", "int8", 40.0),
        row("onnxruntime", "int8", 5.0, batch=4),  # other batch sizes do not count
    ]
    assert best_lines(rows) == [
        "best lipnet: 25.0 img/s at batch 1 (onnxruntime int8), 2.50x over PyTorch eager fp32"
    ]
    assert isinstance(rows[0], Result) and rows[0].images_per_s == pytest.approx(10.0)


def test_models_come_from_conf_model_and_unknown_ones_are_named(tmp_path):
    models = selected_models(bench_cfg(tmp_path, "models=[lipnet,unet_resnet18]"))
    assert models["lipnet"]["dilations"] == [1, 1, 2, 4, 8, 1]  # conf/model/lipnet.yaml + preset
    assert models["unet_resnet18"]["encoder_weights"] is None
    with pytest.raises(UserError, match=r"only=\['resnet'\]: not in models"):
        run(bench_cfg(tmp_path, "only=[resnet]"), tmp_path)


def test_time_calls_measures_each_call_after_warmup():
    calls = []
    times = time_calls(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        block = torch.ones(64, 2**20, dtype=torch.uint8)  # 64 MiB, touched
        block.add_(1)
    assert mem.mib is not None and mem.mib > 48
