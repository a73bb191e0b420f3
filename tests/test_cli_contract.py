"""Every command answers a user's mistake the same way: ONE line ``error: ...`` that names the
key or file and what to do, exit status 2, no traceback (lipnet_pl.cli)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from lipnet_pl.data.synthetic import generate
from tiny import run_main

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
