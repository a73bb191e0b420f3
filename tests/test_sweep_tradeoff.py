"""The sweep summary's cost columns (GFLOPs, CPU latency) and its mIoU-vs-latency Pareto front,
on made-up job results; a failed latency measurement leaves the job's result standing."""

from __future__ import annotations

import csv
import json

import pytest
from omegaconf import OmegaConf

from lipnet_pl.sweeps import latency as sweep_latency
from lipnet_pl.sweeps.stats import _tradeoff_panel, group_rows, pareto_front
from lipnet_pl.sweeps.summary import write_summary


def test_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    points = [
        (10.0, 0.50),  # fastest
        (20.0, 0.55),
        (25.0, 0.52),  # slower and worse than (20, 0.55)
        (10.0, 0.45),  # as fast as the first, worse
        (30.0, 0.60),  # most accurate
        (20.0, 0.55),  # equal to the second: neither beats the other
        (40.0, 0.60),  # as accurate as (30, 0.60), slower
    ]
    assert pareto_front(points) == [True, True, False, False, True, True, False]
    assert pareto_front([]) == []


# configuration -> (GFLOPs, [(seed, mIoU, CPU latency ms)]); made up
SWEEP = {
    "stem2": (5.2, [(0, 0.40, 20.0), (1, 0.42, 22.0)]),  # fast: front
    "stem1": (32.8, [(0, 0.52, 90.0), (1, 0.50, 94.0)]),  # most accurate: front
    "wide": (32.8, [(0, 0.46, 95.0), (1, 0.44, 97.0)]),  # slower and worse than stem1
    "nolat": (5.2, [(0, 0.30, None), (1, 0.31, None)]),  # latency not measured
}


def _write_sweep(root):
    for config, (gflops, jobs) in SWEEP.items():
        for seed, miou, ms in jobs:
            job = root / f"variant={config},seed={seed}"
            job.mkdir(parents=True)
            summary = {
                "model": "lipnet",
                "params": 3960852,
                "gflops": gflops,
                "cpu_latency_ms": ms,
                "latency_backend": None if ms is None else "onnxruntime int8",
                "best_val_miou": miou,
                "best_val_lr_miou": miou / 2,
                "overrides": [f"variant={config}", f"seed={seed}"],
            }
            (job / "run_summary.json").write_text(json.dumps(summary))


def test_summary_has_the_cost_columns_and_marks_the_front(tmp_path):
    _write_sweep(tmp_path)
    csv_path, md_path = write_summary(tmp_path)
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert {"gflops", "cpu_latency_ms", "latency_backend"} <= set(rows[0])
    by_job = {r["job"]: r for r in rows}
    assert float(by_job["variant=stem2,seed=1"]["cpu_latency_ms"]) == 22.0
    assert by_job["variant=nolat,seed=0"]["cpu_latency_ms"] == ""
    md = md_path.read_text()
    assert "| GFLOPs | CPU ms (b1) | best val mIoU (%) |" in md.splitlines()[0]
    assert "| variant=stem2,seed=1 | lipnet | - | 3.96 M | 5.20 | 22.00 | 42.00 |" in md
    per_config = md.split("Per configuration")[1]
    assert "| GFLOPs | CPU ms (b1) | Pareto front |" in per_config
    assert "| variant=stem2 | 2/2 | 41.00 ± 1.41 | 20.50 ± 0.71 | - | 5.20 | 21.00 | yes |" in md
    assert "| variant=stem1 | 2/2 | 51.00 ± 1.41 | 25.50 ± 0.71 | - | 32.80 | 92.00 | yes |" in md
    assert "| variant=wide | 2/2 | 45.00 ± 1.41 | 22.50 ± 0.71 | - | 32.80 | 96.00 | no |" in md
    assert "| variant=nolat | 2/2 | 30.50 ± 0.71 | 15.25 ± 0.35 | - | 5.20 | - | - |" in md
    png = (tmp_path / "sweep_summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_tradeoff_panel_joins_the_front_and_draws_every_measured_configuration(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _write_sweep(tmp_path)
    from lipnet_pl.sweeps.summary import collect_rows

    groups = group_rows(collect_rows(tmp_path))
    fig, ax = plt.subplots()
    _tradeoff_panel(ax, groups)
    (front,) = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    assert list(front.get_xdata()) == [21.0, 92.0]  # stem2, stem1: by latency
    assert list(front.get_ydata()) == pytest.approx([41.0, 51.0])
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["variant=stem1", "variant=stem2", "variant=wide"]  # nolat: no latency
    plt.close(fig)


def test_a_failed_latency_measurement_leaves_the_result_standing(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("onnxruntime cannot load net.onnx\nsecond line")

    monkeypatch.setattr(sweep_latency, "cpu_latency", broken)
    cfg = OmegaConf.create(
        {
            "sweep_latency_s": 3,
            "summary_file": str(tmp_path / "run_summary.json"),
            "data": {"crop_size": [8, 8]},
            "model": {"net": {"name": "lipnet", "num_classes": 3}},
        }
    )
    summary = sweep_latency.add_latency(cfg, {"best_val_miou": 0.5, "input_size": [8, 8]})
    assert summary == {
        "best_val_miou": 0.5,
        "input_size": [8, 8],
        "cpu_latency_ms": None,
        "latency_backend": None,
        "latency_rounds": None,
    }
    assert json.loads((tmp_path / "run_summary.json").read_text()) == summary
    assert "CPU latency not measured: RuntimeError: onnxruntime cannot load net.onnx" in caplog.text
    cfg.sweep_latency_s = 0  # off: not measured, nothing built
    assert sweep_latency.measure(cfg, summary)["cpu_latency_ms"] is None
    assert sweep_latency.add_latency(cfg, {}) == {}  # no result (another rank): untouched
