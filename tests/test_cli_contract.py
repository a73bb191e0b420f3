"""Every command answers a user's mistake the same way: ONE line ``error: ...`` that names the
key or file and what to do, exit status 2, no traceback (lipnet_pl.cli)."""

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
from lipnet_pl.data.synthetic import generate
from tiny import TINY_NET

COMMANDS = ("eval", "predict", "export", "train")
CASES = ("missing", "random_bytes", "text_file", "no_val_split", "bad_option")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, lip_root, trained_ckpt):
    """Files the cases point at: bad checkpoints, an image, a data root without val split."""
    root = tmp_path_factory.mktemp("cases")
    (root / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "notes.ckpt").write_text("hello, I am a text file\n")
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(root / "person.png")
    train_only = root / "train_only"
    generate(train_only, seed=1, style="simple", train=2, val=1, test=0, min_size=48, max_size=64)
    shutil.rmtree(train_only / "TrainVal_images" / "val_images")
    (root / "empty").mkdir()
    return {"dir": root, "lip": lip_root, "ckpt": trained_ckpt, "train_only": train_only}


def case_args(command: str, case: str, paths: dict) -> list[str]:
    """The command line of ``case`` for ``command`` (see the table in the closing note)."""
    d, good = paths["dir"], paths["ckpt"]
    ckpt = {
        "missing": d / "missing.ckpt",
        "random_bytes": d / "random.ckpt",
        "text_file": d / "notes.ckpt",
    }.get(case, good)
    base = {
        "eval": [f"data.root={paths['lip']}", "data.num_workers=0", "trainer=cpu"],
        "predict": [f"input={d / 'person.png'}", "device=cpu"],
        "export": ["format=onnx", f"output={d / 'out.onnx'}"],
        "train": [
            f"data.root={paths['lip']}",
            "data.num_workers=0",
            "trainer=cpu",
            "debug=fdr",
            "logger=none",
        ],
    }[command]
    args = [*base, f"ckpt_path={ckpt}"]
    if case == "no_val_split":
        args += {
            "eval": [f"data.root={paths['train_only']}"],
            "predict": [f"input={d / 'empty'}"],
            "export": ["quantize=int8", f"calibration.data_root={d / 'empty'}"],
            "train": [f"data.root={paths['train_only']}", "ckpt_path=null"],
        }[command]
    if case == "bad_option":
        args += {
            "eval": ["tta.flip=maybe"],
            "predict": ["batch_size=0"],
            "export": ["format=gif"],
            "train": ["data.batch_size=0", "ckpt_path=null"],
        }[command]
    return args


def run_main(command: str, args: list[str], tmp_path: Path, monkeypatch, capsys):
    import importlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [command, *args, f"hydra.run.dir={tmp_path / 'run'}"])
    main = importlib.import_module(f"lipnet_pl.{command}").main
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_user_error_is_one_line_and_exit_2(command, case, inputs, tmp_path, monkeypatch, capsys):
    code, out, err = run_main(
        command, case_args(command, case, inputs), tmp_path, monkeypatch, capsys
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    key = {
        "missing": "missing.ckpt",
        "random_bytes": "random.ckpt",
        "text_file": "notes.ckpt",
        "no_val_split": {
            "eval": "val",
            "predict": "input",
            "export": "(config key calibration.data_root)",
            "train": "val",
        },
        "bad_option": {
            "eval": "tta.flip",
            "predict": "batch_size",
            "export": "format",
            "train": "data.batch_size",
        },
    }[case]
    assert (key if isinstance(key, str) else key[command]) in lines[0]
    print(f"| {command} | {case} | {code} | `{lines[0]}` |")  # the closing note's table


def test_unknown_config_key_and_group_option_are_one_line(tmp_path, monkeypatch, capsys):
    code, _, err = run_main("train", ["colour=red"], tmp_path, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "colour" in err and "+colour=red" in err
    code, _, err = run_main("train", ["model=resnet9000"], tmp_path, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "model/resnet9000" in err and "lipnet" in err  # lists the valid options


def test_unknown_model_name_is_a_user_error(inputs, tmp_path, monkeypatch, capsys):
    args = [*case_args("train", "bad_option", inputs)[:-2], "model.net.name=resnet9000"]
    code, _, err = run_main("train", args, tmp_path, monkeypatch, capsys)
    assert code == 2 and "resnet9000" in err and "lipnet" in err and err.count("\n") == 1


def test_checkpoint_classes_that_disagree_with_the_data(inputs, tmp_path, monkeypatch, capsys):
    args = [*case_args("eval", "bad_option", inputs)[:-1], "data.num_classes=5"]
    code, _, err = run_main("eval", args, tmp_path, monkeypatch, capsys)
    assert code == 2 and "predicts 20 classes but data.num_classes=5" in err


def test_missing_required_value_names_the_key(tmp_path, monkeypatch, capsys):
    code, _, err = run_main("eval", [], tmp_path, monkeypatch, capsys)
    assert (
        code == 2 and err == "error: ckpt_path is required: add ckpt_path=<value> to the command\n"
    )


def test_models_and_data_commands_follow_the_same_contract(tmp_path, capsys):
    from lipnet_pl.data.__main__ import main as data_main
    from lipnet_pl.models.__main__ import main as models_main

    for main, argv in (
        (models_main, ["resnet9000"]),
        (models_main, ["lipnet", "--size", "0"]),
        (data_main, ["check", str(tmp_path / "nowhere")]),
        (data_main, ["prepare", str(tmp_path), str(tmp_path / "out")]),
        (data_main, ["frobnicate"]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, argv
        assert err.count("\n") == 1 and err.startswith("error: "), (argv, err)


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_no_traceback(cli, tmp_path):
    proc = cli("eval", [f"ckpt_path={tmp_path / 'nope.ckpt'}"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: ckpt_path={tmp_path / 'nope.ckpt'} does not exist: pass a .ckpt of a training run "
        "(<run dir>/checkpoints/last.ckpt), an .onnx file from `python -m lipnet_pl.export`, or a "
        "save_pretrained folder"
    ]


# What real datasets, cameras, disks and schedulers do (issue 18): every case is a real input
# (a label PNG with a bad value, an HTTP server, a file in the output's place, a full disk, a
# signal), and the command's answer is one line and an exit status, or a clean exit 0.


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


def check_stream_output(folder: Path, printed: str) -> None:
    """The overlay video is finalised (playable) and holds every frame the command reported."""
    import re

    import av

    (video,) = folder.glob("*_overlay.mp4")
    frames = int(re.search(r": (\d+) frames \(\d+ dropped", printed).group(1))
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames >= 1
