"""`make bench` on a tiny configuration: every backend row, the outputs, the best-backend lines
and the final speed-up line; timing and memory primitives."""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from dataclasses import replace

import pytest
import torch

import lipnet_pl.bench
from lipnet_pl.benchmark import suite
from lipnet_pl.benchmark.report import best_lines
from lipnet_pl.benchmark.runners import (
    Case,
    ModelInfo,
    Result,
    RoundSettings,
    Variant,
    make_result,
    measure_group,
)
from lipnet_pl.benchmark.suite import bench_settings, run, selected_models
from lipnet_pl.config import compose
from lipnet_pl.core.timing import PeakMemory, median_ci, time_calls
from lipnet_pl.errors import UserError
from lipnet_pl.models import build_model
from lipnet_pl.models.summary import count_parameters

TINY = [
    "models=[lipnet]",
    "size=64",
    "device=cpu",
    "cpu.min_rounds=2",
    "cpu.max_rounds=2",
    "cpu.warmup=0",
    "cpu.compile=[]",
    "cpu.train_repeats=1",
    "cpu.batch_sizes=[1,2]",
    "onnxruntime.int8=[lipnet]",
    "onnxruntime.calibration_batches=2",
    "x86_int8=[]",  # the pt2e row compiles for ~25 s: only the test that measures it has it
    "openvino=[]",  # NNCF calibrates for seconds: likewise
    "versus_reference=[]",
]


def bench_cfg(tmp_path, *overrides):
    return compose("bench", [*TINY, f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.slow
def test_bench_measures_every_backend_and_writes_its_outputs(tmp_path, smaller_lipnet):
    cfg = bench_cfg(tmp_path, "versus_reference=[lipnet]", "x86_int8=[lipnet]")
    results, meta = run(cfg, tmp_path)
    data = json.loads((tmp_path / "bench.json").read_text())
    cases = {(r["backend"], r["variant"], r["batch"]) for r in data["results"]}
    assert cases == {
        ("pytorch", "eager", 1), ("pytorch", "eager", 2),
        ("pytorch", "fast", 1), ("pytorch", "fast", 2),
        ("onnxruntime", "fp32", 1), ("onnxruntime", "fp32", 2),
        ("onnxruntime", "int8", 1), ("onnxruntime", "int8", 2),
        ("pytorch", "train+channels_last", 2), ("pytorch", "train", 2),
        ("pytorch", "pt2e+compile", 1),  # PyTorch's x86 int8, at the first batch size only
    }  # fmt: skip
    (pt2e,) = [r for r in data["results"] if r["variant"] == "pt2e+compile"]
    assert (
        pt2e["dtype"] == "int8" and pt2e["rounds"] == 2 and pt2e["note"] in ("", "CI > +-5% (cap)")
    )
    assert all(r["median_ms"] > 0 and r["images_per_s"] > 0 for r in data["results"])
    params_m = count_parameters(build_model(**smaller_lipnet)) / 1e6
    assert all(r["params_m"] == params_m and r["gflops"] > 0 for r in data["results"])
    assert data["meta"]["reduced_cpu_profile"] is True
    md = (tmp_path / "bench.md").read_text().rstrip().splitlines()
    assert re.fullmatch(
        r"channels_last training step lipnet: \d+\.\d\d img/s vs \d+\.\d\d img/s default layout "
        r"\(fp32, batch 2, interleaved steps\), \d+\.\d\dx",
        meta["layout_lines"][0],
    )
    assert re.fullmatch(
        rf"fast-path speed-up: {meta['fast_path_speedup']:.2f}x \(95 % CI \d+\.\d\d-\d+\.\d\d\)",
        md[-1],
    )
    (versus,) = data["meta"]["versus"]  # lipnet's best raced against its own eager
    assert versus["rounds"] == 2 and versus["speedup"] > 0 and versus["reference"] == "lipnet"
    assert re.fullmatch(
        r"lipnet over lipnet eager: \d+\.\d\dx images/s at batch 1 \(.+ \d+\.\d ms vs PyTorch "
        r"eager fp32 \d+\.\d ms; 95 % CI \d+\.\d\d-\d+\.\d\d, 2 interleaved rounds(; CI .+)?\)",
        md[-2],
    )
    assert re.fullmatch(
        r"best lipnet: \d+\.\d img/s at batch 1 \(.+\), \d+\.\d\dx over PyTorch eager fp32 "
        r"\(95 % CI \d+\.\d\d-\d+\.\d\d\)",
        md[-3],
    )
    png = (tmp_path / "best_backend.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_best_line_names_the_fastest_backend_and_its_gain_from_the_same_rounds():
    info = ModelInfo("lipnet", 3.96, 32.8)
    mem = PeakMemory(torch.device("cpu"))
    load = [1.0, 1.2, 1.0, 1.5, 1.0, 1.0, 1.1, 1.0]  # per round: the same for every variant

    def row(backend, variant, ms, batch=1):
        case = Case(info, torch.device("cpu"), "fp32", batch, (473, 473), 0, 1)
        times = [ms * f for f in load]
        return make_result(case, "inference", backend, variant, times, mem, round_ms=times)

    rows = [
        row("pytorch", "eager", 100.0),
        row("pytorch", "fast", 80.0),
        row("onnxruntime", "int8", 40.0),
        row("onnxruntime", "int8", 5.0, batch=4),  # other batch sizes do not count
    ]
    assert best_lines(rows) == [
        "best lipnet: 25.0 img/s at batch 1 (onnxruntime int8 CPU), 2.50x over PyTorch eager "
        "fp32 (95 % CI 2.50-2.50)"
    ]
    assert isinstance(rows[0], Result) and rows[0].images_per_s == pytest.approx(10.0)


@pytest.mark.parametrize(
    "error, note",
    [
        (
            ModuleNotFoundError("No module named 'torchao'", name="torchao"),
            "torchao is not installed: pip install 'lipnet_pl[x86int8]' (torchao)",
        ),
        (  # torchao 0.18 under torch 2.7
            ImportError("cannot import name 'ScalingType' from 'torch.nn.functional'"),
            "torchao does not import with torch",
        ),
    ],
)
def test_x86_int8_without_a_working_torchao_is_a_row_saying_why(monkeypatch, error, note):
    import sys

    from lipnet_pl.benchmark.x86_int8 import lazy_x86_int8

    class BrokenTorchao:  # an import system where torchao fails to import
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torchao":
                raise error

    for name in [m for m in sys.modules if m.split(".")[0] == "torchao"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BrokenTorchao(), *sys.meta_path])
    cpu = torch.device("cpu")
    net = torch.nn.Conv2d(3, 4, 3).eval()
    variant = Variant("pytorch", "pt2e+compile", lazy_x86_int8(net, torch.randn(1, 3, 8, 8)), cpu)
    case = Case(ModelInfo("tiny", 0.0, 0.0), cpu, "fp32", 1, (8, 8), 1, 0)
    (row,) = measure_group(case, {"pt2e": variant}, RoundSettings(2, 2, 0.05, 10))
    assert row.note.startswith(f"error: RuntimeError: {note}") and row.rounds == 0


def test_models_come_from_conf_model_and_unknown_ones_are_named(tmp_path):
    models = selected_models(bench_cfg(tmp_path, "models=[lipnet,unet_resnet18]"))
    assert models["lipnet"]["dilations"] == [1, 1, 2, 4, 8, 1]  # conf/model/lipnet.yaml + preset
    assert models["unet_resnet18"]["encoder_weights"] is None
    with pytest.raises(UserError, match=r"only=\['resnet'\]: not in models"):
        run(bench_cfg(tmp_path, "only=[resnet]"), tmp_path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("x86_int8=5", r"x86_int8=5: must be a list of model names"),
        ("versus_reference=lipnet", r"versus_reference='lipnet': must be a list of model names"),
        ("onnxruntime.int8=[1]", r"onnxruntime.int8=\[1\]: must be a list of model names"),
        (
            "reference_model=nosuch",
            r"reference_model=nosuch: no such model config; one of \[.*'lipnet'",
        ),
    ],
)
def test_bad_model_lists_are_refused_before_anything_is_measured(tmp_path, override, message):
    cfg = bench_cfg(tmp_path, "versus_reference=[lipnet]", override)
    started = time.perf_counter()
    with pytest.raises(UserError, match=message):
        run(cfg, tmp_path)
    assert time.perf_counter() - started < 10 and not (tmp_path / "bench.json").exists()


def test_time_calls_measures_each_call_after_warmup():
    calls = []
    times = time_calls(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        block = torch.ones(64, 2**20, dtype=torch.uint8)  # 64 MiB, touched
        block.add_(1)
    assert mem.mib is not None and mem.mib > 48


def test_median_ci_from_order_statistics():
    med, low, high = median_ci([float(v) for v in range(1, 21)])
    assert (med, low, high) == (10.5, 6.0, 15.0)  # ranks 6 and 15 of 20 (binomial, 95 %)
    assert median_ci([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)


def variant(name, call):
    return Variant("pytorch", name, call, torch.device("cpu"))


def test_an_oom_case_is_a_row_and_the_others_are_measured():
    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    case = Case(ModelInfo("lipnet", 4.0, 33.0), torch.device("cpu"), "fp32", 64, (8, 8), 1, 0)
    rows = measure_group(
        case,
        {"eager": variant("eager", oom), "fast": variant("fast", lambda: None)},
        RoundSettings(min_rounds=3, max_rounds=3, tolerance=0.05, time_cap_s=10),
    )
    by = {r.variant: r for r in rows}
    assert by["eager"].note == "OOM" and not by["eager"].ok and by["eager"].rounds == 0
    assert by["fast"].ok and by["fast"].rounds == 3 and by["fast"].median_ms >= 0


def test_peak_memory_of_a_row_excludes_the_warmup():
    calls = []

    def first_call_allocates():  # like cuDNN workspaces / compilation in the first calls
        calls.append(1)
        if len(calls) == 1:
            torch.ones(128, 2**20, dtype=torch.uint8).add_(1)

    case = Case(ModelInfo("m", 1.0, 1.0), torch.device("cpu"), "fp32", 1, (8, 8), 1, 0)
    (row,) = measure_group(
        case, {"eager": variant("eager", first_call_allocates)}, RoundSettings(2, 2, 0.05, 10)
    )
    assert row.peak_mem_mib is not None and row.peak_mem_mib < 32


def test_bench_settings_restore_threads_and_tf32(tmp_path):
    flags = (
        torch.get_num_threads(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    with bench_settings(bench_cfg(tmp_path, "threads=1"), torch.device("cuda")):
        assert torch.get_num_threads() == 1 and torch.backends.cuda.matmul.allow_tf32
        assert torch._dynamo.config.fail_on_recompile_limit_hit
    assert flags == (
        torch.get_num_threads(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    assert not torch._dynamo.config.fail_on_recompile_limit_hit


@pytest.fixture
def cheap_compile(monkeypatch):
    """torch.compile through Dynamo with the ``eager`` backend: the same code caches and
    recompile limits as inductor, without minutes of C++ compilation."""
    real = suite.make_fast

    def make_fast(model, *, compile=False, compile_mode=None, dynamic=None, **kwargs):
        net = real(model, **kwargs)
        return torch.compile(net, backend="eager", dynamic=dynamic) if compile else net

    monkeypatch.setattr(suite, "make_fast", make_fast)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()


COMPILED = [
    "models=[lipnet,lipnet_rt]",
    "cpu.compile=true",
    "onnxruntime.enabled=false",
    "train_step=false",
    "plot=false",
]


@pytest.mark.slow
def test_every_model_gets_its_own_compile_cache(cheap_compile, smaller_lipnet, tmp_path):
    with torch._dynamo.config.patch(recompile_limit=2):  # 2 models x 2 batch sizes
        results, _ = run(bench_cfg(tmp_path, *COMPILED), tmp_path)
    compiled = [r for r in results if r.variant == "fast+compile"]
    assert len(compiled) == 4 and all(r.ok for r in compiled)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 4  # none ran eagerly


@pytest.mark.slow
def test_a_recompile_limit_hit_is_an_error_in_the_row(cheap_compile, smaller_lipnet, tmp_path):
    with torch._dynamo.config.patch(recompile_limit=1):
        results, _ = run(bench_cfg(tmp_path, *COMPILED, "only=[lipnet]"), tmp_path)
    rows = {r.batch: r for r in results if r.variant == "fast+compile"}
    assert rows[1].ok and rows[2].note.startswith("error: ") and "limit" in rows[2].note
    assert all(r.ok for r in results if r.variant != "fast+compile")


def test_the_bench_command_lets_idle_openmp_threads_sleep(monkeypatch):
    """Set when the command module loads (before torch in ``python -m lipnet_pl.bench``: libgomp
    reads it once); a user's own setting wins."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    importlib.reload(lipnet_pl.bench)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    importlib.reload(lipnet_pl.bench)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


class CpuSession:
    """An ONNX Runtime session that ended up on the CPU provider (asked for CUDA)."""

    device = torch.device("cpu")

    def __call__(self, x):
        return x


def test_onnx_rows_on_a_gpu_bench_name_the_cpu_provider_and_skip_large_batches():
    case = Case(ModelInfo("lipnet", 4.0, 33.0), torch.device("cuda"), "fp32", 64, (8, 8), 0, 0)
    sessions = {"fp32": CpuSession(), "int8": CpuSession()}
    assert suite.group_variants(case, {}, sessions, first_batch=False) == {}
    first = suite.group_variants(replace(case, batch=1), {}, sessions, first_batch=True)
    assert {v.device.type for v in first.values()} == {"cpu"}
    rows = measure_group(replace(case, batch=1), first, RoundSettings(2, 2, 0.05, 10))
    assert {(r.variant, r.device) for r in rows} == {("fp32", "cpu"), ("int8", "cpu")}
    assert {r.label for r in rows} == {"onnxruntime fp32 CPU", "onnxruntime int8 CPU"}
    assert all(r.ok and r.rounds == 2 for r in rows)  # timed on the host clock, not CUDA events


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ("fpu avx2 avx512f avx512_vnni amx_bf16 amx_int8 amx_tile", "AVX512-VNNI AMX-INT8"),
        ("fpu avx2 avx_vnni", "AVX-VNNI"),
        ("fpu sse4_2 avx2 fma", "none"),
    ],
)
def test_the_bench_names_the_cpus_int8_instructions(flags, want):
    from lipnet_pl.benchmark.suite import int8_isa

    cpuinfo = f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
    assert int8_isa(cpuinfo) == want
