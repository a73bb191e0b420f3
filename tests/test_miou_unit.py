"""One unit for mIoU on screen (issue 28, item 10): eval, the demo's last line and the training
progress bar all print percent with a % sign."""

from __future__ import annotations

import re

from lipnet_pl.core.metrics import percent
from lipnet_pl.engine.callbacks import shown_as_percent
from lipnet_pl.evaluation.evaluate import report
from lipnet_pl.workflows.demo import final_line

RESULTS = {
    "miou": 0.1423,
    "pixel_acc": 0.8,
    "mean_acc": 0.25,
    "lr_miou": 0.05,
    "paper_miou_per_image": 0.6,
}


def test_eval_demo_and_training_print_mIoU_in_the_same_unit(capsys, tmp_path):
    report(RESULTS, tmp_path)
    printed = capsys.readouterr().out
    assert re.search(r"^val mIoU 14\.23% \| pixel acc 80\.00% \| mean acc 25\.00%", printed)
    assert final_line(RESULTS) == "val mIoU: 14.23%"
    bar = shown_as_percent({"val/miou": 0.1423, "val/lr_miou": 0.05, "train/loss": 1.5})
    assert bar == {"val/miou": "14.23%", "val/lr_miou": "5.00%", "train/loss": 1.5}
    assert percent(None) == "-"
