"""What real datasets, cameras, disks and schedulers feed the commands (a bad label PNG, a live HTTP stream that drops, a full disk, SIGTERM), and a real process: one line and an exit status, or a clean exit 0."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from signal import SIGTERM

import numpy as np
import pytest
from PIL import Image

from hostile import fill_disk, live_server, write_ts
from lipnet_pl.core.loader import load_model
from lipnet_pl.data.layout import find_layout
from tiny import TINY_NET, run_main

COMMANDS = ("eval", "predict", "export", "train")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, lip_root, trained_ckpt):
    """LIP roots whose train (or val) labels hold 25 (20 classes), a live HTTP server of an
    MPEG-TS clip, a file named ``results``, a folder of images with a ``.txt`` and a
    ``.DS_Store``."""
    root = tmp_path_factory.mktemp("hostile")
    for split in ("train", "val"):  # a mis-converted mask in every sample of one split
        shutil.copytree(lip_root, root / f"bad_{split}")
        files = find_layout(root / f"bad_{split}")[split]
        for sample_id in files.ids:
            label = np.array(Image.open(files.label_path(sample_id)))
            label[:3, :3] = 25
            Image.fromarray(label).save(files.label_path(sample_id))
    (root / "results").write_text("a file where the output folder should go\n")
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((40, 32, 3), np.uint8)).save(photos / "person.png")
    (photos / "list.txt").write_text("person.png\n")
    (photos / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    clip = write_ts(root / "clip.ts").read_bytes()
    with live_server(clip) as url:
        yield {
            "dir": root,
            "lip": lip_root,
            "url": url,
            "photos": photos,
            "ckpt": trained_ckpt,
        }


def hostile_args(command: str, case: str, h: dict, tmp_path: Path, monkeypatch) -> list[str]:
    """The command line of ``case`` (and what the machine does meanwhile: a full disk, SIGTERM)."""
    d, ckpt = h["dir"], h["ckpt"]
    tiny_train = [
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1",
        "callbacks.step_checkpoint.every_n_train_steps=1",
        "callbacks.progress_bar=null",
        "logger=none",
        *TINY_NET,
    ]
    base = {
        "train": ["data=lip", f"data.root={d / 'bad_train'}", *tiny_train],
        "eval": [
            f"ckpt_path={ckpt}",
            f"data.root={d / 'bad_val'}",
            "data.num_workers=0",
            "trainer=cpu",
        ],
        "predict": [f"ckpt_path={ckpt}", f"input={h['photos']}", "device=cpu"],
        "export": [f"ckpt_path={ckpt}", "format=onnx", f"output={tmp_path / 'out' / 'model.onnx'}"],
    }[command]
    if case == "output_is_a_file":
        return [*base, f"output={d / 'results' / ('model.onnx' if command == 'export' else '')}"]
    if case == "disk_full":  # room for one checkpoint: the second write fails
        folder = tmp_path / ("run/checkpoints" if command == "train" else "out")
        folder.mkdir(parents=True)
        if command == "export":
            (folder / "model.onnx").write_bytes(b"the previous export")
        fill_disk(monkeypatch, folder, free_bytes=int(1.5 * ckpt.stat().st_size))
        return [*base, f"data.root={h['lip']}"] if command == "train" else base
    if case.startswith("stream_"):  # an IP camera: the stream ends, drops, drops and comes back
        path = {"stream_ended": "live", "stream_dropped": "drop", "stream_reconnected": "flaky"}
        reconnect = int(case == "stream_reconnected")
        return [
            *base,
            f"input={h['url']}/{path[case]}.ts",
            "video.realtime=true",
            f"video.reconnect={reconnect}",
            f"output={tmp_path / 'out'}",
        ]
    if case == "run_dir_is_a_file":  # run_main passes hydra.run.dir=<tmp_path>/run
        (tmp_path / "run").write_text("a file where the run dir should go\n")
        return base
    if case == "sigterm":  # a real SIGTERM to this process once the command has started
        monkeypatch.setattr("lipnet_pl.cli._seed", lambda cfg: os.kill(os.getpid(), SIGTERM))
        return base
    return base


HOSTILE = {
    ("train", "label_outside_classes"): (2, "train_segmentations"),  # the file, the values ...
    ("eval", "label_outside_classes"): (2, "val_segmentations"),
    ("predict", "output_is_a_file"): (2, "is a file, not a folder"),
    ("eval", "output_is_a_file"): (2, "is a file, not a folder"),
    ("train", "run_dir_is_a_file"): (2, "cannot create the run dir"),
    ("export", "output_is_a_file"): (2, "is a file, not a folder"),
    ("train", "disk_full"): (2, "No space left on device"),
    ("export", "disk_full"): (2, "No space left on device"),
    ("predict", "folder_with_other_files"): (0, "1 images, 0 videos (0 frames)"),
    ("predict", "stream_ended"): (0, "0 images, 1 videos"),
    ("predict", "stream_dropped"): (2, "the connection dropped mid-packet after"),
    ("predict", "stream_reconnected"): (0, "0 images, 1 videos"),
    **{(command, "sigterm"): (143, "terminated") for command in COMMANDS},
}


def check_stream_output(folder: Path, printed: str) -> None:
    """The overlay video is finalised (playable) and holds every frame the command reported."""
    import re

    import av

    (video,) = folder.glob("*_overlay.mp4")
    frames = int(re.search(r": (\d+) frames \(\d+ dropped", printed).group(1))
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames >= 1


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_no_traceback(cli, tmp_path):
    proc = cli("eval", [f"ckpt_path={tmp_path / 'nope.ckpt'}"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: ckpt_path={tmp_path / 'nope.ckpt'} does not exist: pass a .ckpt of a training run "
        "(<run dir>/checkpoints/last.ckpt), an .onnx file from `python -m lipnet_pl.export`, or a "
        "save_pretrained folder"
    ]


@pytest.mark.parametrize(("command", "case"), list(HOSTILE), ids=lambda value: value)
def test_what_users_and_machines_feed_the_commands(
    command, case, hostile, tmp_path, monkeypatch, capsys
):
    args = hostile_args(command, case, hostile, tmp_path, monkeypatch)
    code, out, err = run_main(command, args, tmp_path, monkeypatch, capsys)
    expected_code, fragment = HOSTILE[command, case]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == expected_code, err[-3000:]
    assert "Traceback" not in out + err
    if code:
        assert len(lines) == 1 and fragment in lines[0], err[-3000:]
    else:
        assert not lines and fragment in out, out[-3000:]
    if case == "folder_with_other_files":  # list.txt and .DS_Store: ignored, not failed
        assert "0 failed, 2 ignored (not images or videos)" in out
    if case == "label_outside_classes":
        assert (
            "has values [25] outside the 20 classes" in lines[0] and "data.num_classes" in lines[0]
        )
    if case == "disk_full":
        folder = tmp_path / ("run/checkpoints" if command == "train" else "out")
        if command == "train":  # the checkpoint of step 1 stays; no partial file anywhere
            assert sorted(p.name for p in folder.iterdir()) == ["last-step.ckpt"]
            assert load_model(folder / "last-step.ckpt").spec.num_classes == 20
            assert str(folder / "last-step.ckpt") in lines[0]
        else:
            assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]
            assert (folder / "model.onnx").read_bytes() == b"the previous export"
    if case.startswith("stream_"):
        check_stream_output(tmp_path / "out", out + err)
        assert ("dropped, 1 reconnects)" in out) == (case == "stream_reconnected")
    shown = lines[0] if lines else next(line for line in out.splitlines() if fragment in line)
    print(f"| {command} | {case} | {code} | `{shown}` |")  # the closing note's table
