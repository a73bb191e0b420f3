"""DDP (2 CPU processes over gloo) gives exactly the single-process validation metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lipnet_pl.config import compose
from lipnet_pl.data.dataset import decode_label
from lipnet_pl.data.layout import find_layout
from lipnet_pl.evaluation.evaluate import evaluate
from tiny import TINY_NET, run_command, start_command


@pytest.mark.slow
def test_ddp_sim_validation_equals_single_process(tmp_path, lip_root):
    root = lip_root  # 5 val images: the DistributedSampler pads rank 1 with a duplicate
    VAL = len(find_layout(root)["val"].ids)
    assert VAL % 2 == 1
    data = ["data=lip", f"data.root={root}", "data.crop_size=[64,64]", "data.num_workers=0"]
    # training itself runs under DDP too (2 processes, global batch 4 = 2 per process); rank 0
    # runs in the preloaded interpreter (tests/prefork.py), Lightning starts rank 1 afresh
    trained = run_command(
        "train",
        [
            *data,
            "data.batch_size=4",
            "trainer=ddp_sim",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "logger=none",
            "callbacks.progress_bar=null",
            f"hydra.run.dir={tmp_path / 'train'}",
            *TINY_NET,
        ],
        tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads((tmp_path / "train" / "run_summary.json").read_text())["global_step"] == 2
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    common = [f"ckpt_path={ckpt}", *data, "tta=flip", "log_images=0"]

    ddp_dir = tmp_path / "ddp"
    ddp_args = [*common, "trainer=ddp_sim", "data.batch_size=4", f"hydra.run.dir={ddp_dir}"]
    with start_command("eval", ddp_args, tmp_path) as proc:  # while rank 1 starts up ...
        single = evaluate(  # ... the single-process reference runs here
            compose(
                "eval",
                [
                    *common,
                    "trainer=cpu",
                    "data.batch_size=2",
                    f"paths.output_dir={tmp_path / 'single'}",
                ],
            )
        )
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    ddp = json.loads((ddp_dir / "metrics.json").read_text())

    labels = [
        decode_label(find_layout(root)["val"].label_path(i)).numpy()
        for i in find_layout(root)["val"].ids
    ]
    valid_pixels = sum(int((lab != 255).sum()) for lab in labels)
    assert single["num_images"] == ddp["num_images"] == VAL  # the padded duplicate is not counted
    assert np.asarray(single["confmat"]).sum() == valid_pixels
    np.testing.assert_array_equal(np.asarray(ddp["confmat"]), np.asarray(single["confmat"]))
    for key in ("miou", "pixel_acc", "mean_acc", "paper_miou_per_image"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-9), key
