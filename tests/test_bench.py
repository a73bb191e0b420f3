"""`make bench` smoke test: tiny config, every output written, the final speed-up line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from lipnet_pl.bench import CONFIG_DIR, Result, fast_path_speedup, run

TINY = [
    "only=[lipnet]",
    "size=64",
    "device=cpu",
    "cpu.repeats=1",
    "cpu.warmup=0",
    "cpu.compile=[]",
    "cpu.train_repeats=1",
    "cpu.batch_sizes=[1,2]",
    "speedup_pairs=2",
]


def bench_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="bench", overrides=[*TINY, *overrides])


@pytest.mark.slow
def test_bench_writes_json_markdown_and_plot(tmp_path):
    results, speedup = run(bench_cfg(), tmp_path)
    data = json.loads((tmp_path / "bench.json").read_text())
    cases = {(r["variant"], r["batch"]) for r in data["results"]}
    assert cases == {("eager", 1), ("eager", 2), ("fast", 1), ("fast", 2), ("train", 2)}
    assert all(r["median_ms"] > 0 and r["images_per_s"] > 0 for r in data["results"])
    assert all(r["params_m"] > 3 and r["gflops"] > 0 for r in data["results"])
    assert data["meta"]["reduced_cpu_profile"] is True
    assert data["meta"]["fast_path_speedup"] == pytest.approx(speedup)
    md = (tmp_path / "bench.md").read_text()
    assert "| lipnet | fast | fp32 | 2 |" in md and "## Training step" in md
    assert md.rstrip().splitlines()[-1] == f"fast-path speed-up: {speedup:.2f}x"
    png = (tmp_path / "fps_vs_batch.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_speedup_is_eager_over_best_configured_fast_path():
    def row(variant, ms, batch=1, dtype="fp32"):
        return Result(
            "lipnet", "inference", variant, dtype, batch, ms, ms, 1e3 / ms, None, "", 1.0, 1.0
        )

    rows = [
        row("eager", 100.0),
        row("fast", 80.0),
        row("eager", 10.0, batch=4),
        row("fast", 1.0, dtype="bf16"),
    ]
    assert fast_path_speedup(rows) == pytest.approx(1.25)
    assert fast_path_speedup([*rows, row("fast+compile", 50.0)]) == pytest.approx(2.0)
    assert fast_path_speedup(rows[2:]) != fast_path_speedup(rows[2:])  # NaN when not measured


def test_unknown_model_label_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model labels \['resnet'\]"):
        run(bench_cfg("only=[resnet]"), tmp_path)


@pytest.mark.slow
def test_cli_first_and_last_lines(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lipnet_pl.bench",
            *TINY,
            f"output_dir={tmp_path}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("CUDA not available: reduced CPU configuration")
    assert re.fullmatch(r"fast-path speed-up: \d+\.\d\dx", lines[-1])
    assert any(line.startswith("torch ") and "torch threads" in line for line in lines[:3])
    assert (tmp_path / "bench.json").is_file()
