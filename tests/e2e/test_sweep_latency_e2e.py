"""A real multirun of two variants through ``python -m lipnet_pl.train -m``: every job records its
network's CPU latency, and the sweep summary has the cost columns and the trade-off panel."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from tiny import TINY_NET, run_command

TINY = [
    "data=lip",
    "data.crop_size=[64,64]",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "logger=none",
    "callbacks.progress_bar=null",
    "sweep_latency_s=0.2",  # seconds of timing per job: any positive time records a latency
    *TINY_NET,
]


@pytest.mark.slow
def test_a_sweep_of_two_variants_records_latency_and_draws_the_tradeoff(tmp_path, lip_root):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.root={lip_root}", f"hydra.sweep.dir={sweep}"]
    proc = run_command("train", [*args, "model.net.stem_stride=1,2"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with (sweep / "sweep_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    variants = [r["overrides"].split()[-1] for r in rows]
    assert variants == ["model.net.stem_stride=1", "model.net.stem_stride=2"]
    for row in rows:
        assert float(row["cpu_latency_ms"]) > 0 and float(row["gflops"]) > 0
        assert row["latency_backend"] in ("onnxruntime fp32", "onnxruntime int8")
        assert row["input_size"] == "[64, 64]"
    stride1, stride2 = (float(r["gflops"]) for r in rows)
    assert stride2 < stride1 / 2  # a stride-2 stem: the GFLOPs of the job's own network
    md = (sweep / "sweep_summary.md").read_text()
    assert "| GFLOPs | CPU ms (b1) | best val mIoU (%) |" in md
    per_config = md.split("Per configuration")[1]
    assert "| GFLOPs | CPU ms (b1) | Pareto front |" in per_config
    verdicts = [line.rsplit("|", 2)[1].strip() for line in per_config.splitlines()[-2:]]
    assert "yes" in verdicts  # at least one configuration is on the front
    with Image.open(sweep / "sweep_summary.png") as png:  # bars + the trade-off panel beside
        assert png.width >= 9 * 110 and png.height >= 3 * 110
