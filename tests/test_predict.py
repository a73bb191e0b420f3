"""Prediction on folders and videos: files written, labels = the model's argmax, bad inputs counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from PIL import Image

from lipnet_pl.checkpoint import load_model_from_checkpoint
from lipnet_pl.data.dataset import decode_image
from lipnet_pl.models import build_model
from lipnet_pl.predict import CONFIG_DIR, run
from lipnet_pl.viz import colorize
from tiny import TINY_LIPNET_KWARGS

TINY_NET = dict(name="lipnet", num_classes=20, **TINY_LIPNET_KWARGS)
INPUT_SIZE = (48, 40)  # not the images' sizes: resize there and back is exercised
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def make_checkpoint(path: Path) -> Path:
    """A checkpoint following src/lipnet_pl/checkpoint.py, with random (seeded) weights."""
    torch.manual_seed(0)
    net = build_model(**TINY_NET)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(
        {
            "hyper_parameters": {
                "net": TINY_NET,
                "classes": {},
                "input_size": list(INPUT_SIZE),
                "normalize": {"mean": MEAN, "std": STD},
            },
            "state_dict": {"net." + k: v for k, v in net.state_dict().items()},
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def predict_cfg(**overrides):
    args = [f"{k}={v}" for k, v in overrides.items()]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="predict", overrides=args)


def expected_labels(ckpt: Path, image: np.ndarray):
    """Independent recomputation: normalise, stretch to input_size, net, logits back, argmax."""
    loaded = load_model_from_checkpoint(ckpt)
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    x = F.interpolate(x, size=INPUT_SIZE, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        logits = loaded.net(x)
    logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)[0]
    top2 = logits.topk(2, dim=0).values
    return logits.argmax(0).numpy(), (top2[0] - top2[1]).numpy()


def write_images(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir()
    images = {
        "a.jpg": rng.integers(0, 256, (64, 56, 3), dtype=np.uint8),
        "b.png": rng.integers(0, 256, (50, 70, 3), dtype=np.uint8),
        "sub/c.png": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
    }
    for name, arr in images.items():
        Image.fromarray(arr).save(folder / name)
    gray = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(folder / "gray.jpg")
    (folder / "corrupt.jpg").write_bytes(b"this is not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    # the network sees what the data layer decodes (JPEG is lossy): read the files back with it
    return {
        name: decode_image(folder / name).permute(1, 2, 0).numpy() for name in [*images, "gray.jpg"]
    }


def test_predict_folder_writes_labels_equal_to_the_argmax(ckpt, tmp_path):
    images = write_images(tmp_path / "in")
    out = tmp_path / "out"
    report = run(predict_cfg(ckpt_path=ckpt, input=tmp_path / "in", output=out, batch_size=3))
    assert report.images == 4
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"corrupt.jpg", "notes.txt"}
    assert "cannot decode image" in failed["corrupt.jpg"] and "corrupt.jpg" in failed["corrupt.jpg"]
    assert "unknown extension '.txt'" in failed["notes.txt"]
    for name, image in images.items():
        rel = Path(name).with_suffix(".png")
        label_img = Image.open(out / "labels" / rel)
        assert label_img.mode == "L"
        assert label_img.size == (image.shape[1], image.shape[0])
        label = np.asarray(label_img)
        expected, margin = expected_labels(ckpt, image)
        mismatch = label != expected
        # the fast path (folded BN, channels_last) may only flip near-exact ties
        assert np.all(margin[mismatch] < 1e-4), f"{name}: {mismatch.sum()} pixels differ"
        assert mismatch.mean() < 0.001
        assert np.array_equal(np.asarray(Image.open(out / "color" / rel)), colorize(label))
        assert Image.open(out / "overlay" / rel).size == label_img.size
        legend_img = Image.open(out / "legend" / rel)
        assert legend_img.height == 4 + 20 * len(np.unique(label))  # one row per class present


def test_flip_tta_runs_and_keeps_sizes(ckpt, tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    cfg = predict_cfg(
        ckpt_path=ckpt, input=tmp_path / "x.png", output=tmp_path / "out", **{"tta.flip": "true"}
    )
    report = run(cfg)
    assert report.images == 1 and not report.failed
    assert Image.open(tmp_path / "out/labels/x.png").size == (47, 33)


def test_empty_dir_and_missing_path_are_reported(ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = predict_cfg(
        ckpt_path=ckpt,
        input=f"[{tmp_path / 'empty'},{tmp_path / 'missing.png'}]",
        output=tmp_path / "o",
    )
    report = run(cfg)
    assert report.succeeded == 0
    reasons = " | ".join(r for _, r in report.failed)
    assert len(report.failed) == 2
    assert "no images or videos" in reasons and "no such file" in reasons


def test_no_checkpoint_needs_an_explicit_flag(tmp_path, capsys):
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match="allow_random_weights=true"):
        run(predict_cfg(input=tmp_path / "x.png", output=tmp_path / "o"))
    cfg = predict_cfg(
        input=tmp_path / "x.png",
        output=tmp_path / "o",
        allow_random_weights="true",
        input_size="[32,32]",
    )
    report = run(cfg)
    assert report.images == 1
    assert "using RANDOM weights" in capsys.readouterr().out  # never silent


def write_video(path: Path, frames: int = 6, size: int = 64) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            arr = np.full((size, size, 3), 40 * i % 256, dtype=np.uint8)
            arr[:, : size // 2] = 255 - arr[:, : size // 2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_predict_video_writes_an_overlay_video(ckpt, tmp_path):
    write_video(tmp_path / "clip.mp4")
    report = run(predict_cfg(ckpt_path=ckpt, input=tmp_path / "clip.mp4", output=tmp_path / "out"))
    assert report.videos == 1 and report.frames == 6 and not report.failed
    assert report.video_fps[str(tmp_path / "clip.mp4")] > 0
    with av.open(str(tmp_path / "out" / "clip_overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (64, 64, 3)
    assert (tmp_path / "out" / "clip_legend.png").is_file()


@pytest.mark.slow
def test_cli_exits_non_zero_when_every_input_fails(ckpt, tmp_path):
    (tmp_path / "bad.gif.txt").write_text("x")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lipnet_pl.predict",
            f"ckpt_path={ckpt}",
            f"input={tmp_path / 'bad.gif.txt'}",
            f"output={tmp_path / 'o'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown extension" in proc.stdout
    assert "all 1 inputs failed" in proc.stdout + proc.stderr
