"""`make gpu-check`: one line and exit 2 without CUDA; every step of the script runs (tiny, on the
CPU) and lands in the report, each run in a folder of its own with numbers of its own training
run, so the first GPU session does not debug the script or read stale results."""

from __future__ import annotations

import json

import pytest
import torch

from lipnet_pl.workflows import gpu_check


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


def training_numbers(run_dir):
    steps = json.loads((run_dir / "gpu_check.json").read_text())
    return next(s for s in steps if s["name"].startswith("training"))["numbers"]


@pytest.mark.slow
def test_cpu_smoke_twice_gives_two_reports_of_two_training_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "gc"
    assert gpu_check.run(["--cpu-smoke", "--out", str(out), "--skip", "bench,eval,onnx"]) == 0
    assert gpu_check.run(["--cpu-smoke", "--out", str(out)]) == 0
    first, second = sorted(out.iterdir())
    report = (second / "gpu_check.md").read_text()
    for step in ("bench", "training (channels_last)", "eval and predict", "ONNX export and parity"):
        assert f"## {step}: ok" in report, step
    assert "FAILED" not in report and "| train_img_s | 1000.0 |" in report
    assert "- profile: quick; precision auto -> fp32" in report
    numbers = [training_numbers(first), training_numbers(second)]
    for n in numbers:  # 8 images, batch 2, 1 epoch: all 4 steps trained in each run
        assert n["steps_this_run"] == 4 and n["train_img_s"] > 0
        for path in ("", "_workers"):  # augment_on=device and augment_on=workers
            assert n[f"steps_this_run{path}"] == 4
            assert 0 < n[f"wall_img_s{path}"] <= n[f"train_img_s{path}"]
            assert 0 <= n[f"data_wait_share{path}"] < 1
    for path in ("device", "workers"):
        assert f"data.augment_on={path}: " in report
    assert report.count(" img/s wall clock, ") == 2 and "data wait " in report
    assert numbers[0]["checkpoint"] != numbers[1]["checkpoint"]
    assert numbers[1]["checkpoint"].startswith(str(second))


def test_an_unknown_step_to_skip_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--cpu-smoke", "--skip", "bench,trian", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --skip bench,trian: unknown steps ['trian']: use a comma list of "
        "('bench', 'train', 'eval', 'onnx', 'ddp', 'profile')"
    )
    assert not any(tmp_path.iterdir())
