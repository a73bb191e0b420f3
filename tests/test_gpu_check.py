"""`make gpu-check`: one line and exit 2 without CUDA; every step of the script runs (tiny, on the
CPU) and lands in the report, so the first GPU session does not debug the script."""

from __future__ import annotations

import pytest
import torch

from lipnet_pl.benchmark import gpu_check


def test_without_cuda_it_stops_at_once_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--out", str(tmp_path / "gc")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert err == [
        "error: gpu-check needs a CUDA GPU and torch.cuda.is_available() is False here: "
        "run it on a GPU machine"
    ]
    assert not (tmp_path / "gc").exists()


@pytest.mark.slow
def test_cpu_smoke_runs_every_step_and_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "gc"
    assert gpu_check.run(["--cpu-smoke", "--no-compile", "--out", str(out)]) == 0
    report = (out / "gpu_check.md").read_text()
    for step in (
        "bench",
        "training (bf16, channels_last)",
        "eval and predict",
        "ONNX export and parity",
        "profile of LIP-Net batch-1 inference",
    ):
        assert f"## {step}: ok" in report, step
    assert "FAILED" not in report
    assert "| train_img_s | 1000.0 |" in report
    assert (out / "gpu_check.json").is_file()
