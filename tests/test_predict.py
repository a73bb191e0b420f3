"""Prediction on files and folders: outputs written, labels = the model's argmax at the image's
own size, bad inputs reported and skipped, random weights only on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lipnet_pl.config import compose
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.predictor import Predictor
from lipnet_pl.core.viz import colorize
from lipnet_pl.data.dataset import decode_image
from lipnet_pl.errors import UserError
from lipnet_pl.inference.predict import predict


def predict_cfg(tmp_path: Path, **overrides):
    args = [f"{k}={v}" for k, v in overrides.items()]
    return compose("predict", [f"paths.output_dir={tmp_path / 'run'}", "device=cpu", *args])


def expected_labels(ckpt: Path, image: np.ndarray):
    """Independent recomputation: torchvision's antialiased uint8 stretch, normalise, the plain
    network, logits back to the image size, argmax; also the top-2 logit margin per pixel."""
    from torchvision.transforms.v2.functional import resize

    loaded = load_model(ckpt)
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).unsqueeze(0)
    x = resize(x, list(loaded.input_size), antialias=True).float() / 255
    x = (x - torch.tensor(loaded.mean).view(1, 3, 1, 1)) / torch.tensor(loaded.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = loaded.net(x)
    logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear")[0]
    top2 = logits.topk(2, dim=0).values
    return logits.argmax(0).numpy(), (top2[0] - top2[1]).numpy()


def write_images(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    images = {
        "a.jpg": rng.integers(0, 256, (64, 56, 3), dtype=np.uint8),
        "b.png": rng.integers(0, 256, (50, 70, 3), dtype=np.uint8),
        "sub/c.png": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
    }
    for name, arr in images.items():
        Image.fromarray(arr).save(folder / name)
    Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8), mode="L").save(
        folder / "gray.jpg"
    )
    (folder / "corrupt.jpg").write_bytes(b"this is not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    # the network sees what the data layer decodes (JPEG is lossy): read the files back with it
    return {n: decode_image(folder / n).permute(1, 2, 0).numpy() for n in [*images, "gray.jpg"]}


def test_predict_folder_writes_labels_equal_to_the_argmax(random_ckpt, tmp_path, capsys):
    images = write_images(tmp_path / "in")
    out = tmp_path / "out"
    report = predict(
        predict_cfg(
            tmp_path, ckpt_path=random_ckpt, input=tmp_path / "in", output=out, batch_size=3
        )
    )
    assert report.images == 4
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"corrupt.jpg"}  # only media that fail to decode are failures
    assert "cannot decode image" in failed["corrupt.jpg"] and "corrupt.jpg" in failed["corrupt.jpg"]
    assert report.ignored == 2  # notes.txt and sub/.DS_Store, said in the summary line
    assert "1 failed, 2 ignored (not images or videos)" in capsys.readouterr().out
    for name, image in images.items():
        rel = Path(name).with_suffix(".png")
        label_img = Image.open(out / "labels" / rel)
        assert label_img.mode == "L" and label_img.size == (image.shape[1], image.shape[0])
        label = np.asarray(label_img)
        expected, margin = expected_labels(random_ckpt, image)
        mismatch = label != expected
        # the fast path (folded BN, channels_last) may only flip near-exact ties
        assert np.all(margin[mismatch] < 1e-3), f"{name}: {mismatch.sum()} pixels differ"
        assert mismatch.mean() < 0.002
        assert np.array_equal(np.asarray(Image.open(out / "color" / rel)), colorize(label))
        assert Image.open(out / "overlay" / rel).size == label_img.size
        legend_img = Image.open(out / "legend" / rel)
        assert legend_img.height == 4 + 20 * len(np.unique(label))  # one row per class present


def test_predictor_batches_images_of_any_size_and_flip_tta_keeps_sizes(random_ckpt):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((33, 47), (90, 20))]
    for tta in ({"flip": False}, {"flip": True}):
        labels = Predictor(load_model(random_ckpt), device="cpu", tta=tta).predict(images)
        assert [lab.shape for lab in labels] == [(33, 47), (90, 20)]
        assert all(lab.dtype == np.uint8 and lab.max() < 20 for lab in labels)


def test_empty_dir_and_missing_path_are_reported(random_ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = predict_cfg(
        tmp_path,
        ckpt_path=random_ckpt,
        input=f"[{tmp_path / 'empty'},{tmp_path / 'missing.png'}]",
        output=tmp_path / "o",
    )
    with pytest.raises(UserError, match="nothing was predicted: all 2 inputs failed"):
        predict(cfg)


def test_no_checkpoint_needs_an_explicit_flag(tmp_path, capsys):
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    with pytest.raises(UserError, match="allow_random_weights=true"):
        predict(predict_cfg(tmp_path, input=tmp_path / "x.png", output=tmp_path / "o"))
    cfg = predict_cfg(
        tmp_path,
        input=tmp_path / "x.png",
        output=tmp_path / "o",
        allow_random_weights="true",
        **{"random_model.input_size": "[32,32]"},
    )
    assert predict(cfg).images == 1
    assert "RANDOM weights" in capsys.readouterr().out  # never silent


def write_video(path: Path, frames: int = 6, size: int = 64) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            arr = np.full((size, size, 3), 40 * i % 256, dtype=np.uint8)
            arr[:, : size // 2] = 255 - arr[:, : size // 2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_predict_video_writes_an_overlay_video_and_both_fps(random_ckpt, tmp_path, capsys):
    import av

    clip = write_video(tmp_path / "clip.mp4")
    cfg = predict_cfg(tmp_path, ckpt_path=random_ckpt, input=clip, output=tmp_path / "out")
    report = predict(cfg)
    assert report.videos == 1 and report.frames == 6 and not report.failed
    stats = report.video_stats[str(clip)]
    assert stats["isolated_model_fps"] > 0 and stats["end_to_end_fps"] > 0
    printed = capsys.readouterr().out
    assert "isolated model FPS:" in printed and "end-to-end FPS:" in printed
    with av.open(str(tmp_path / "out" / "clip_overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (64, 64, 3)
    assert (tmp_path / "out" / "clip_legend.png").is_file()
