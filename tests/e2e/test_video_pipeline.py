"""Pipelined video (lipnet_pl.inference.video): order, labels, drops on live sources, clean stops.

Frames are 64x48. The top row of 8x8 blocks spells the frame index in binary, so order survives
a lossy codec and can be read back; below it a bright/dark boundary moves with the index, the
fake ``parse`` thresholds it, and ``render`` paints the labels there, so wrong or shuffled labels
show in the decoded output.
"""

from __future__ import annotations

import _thread
import os
import signal
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from hostile import TS_FRAMES, live_server, write_ts
from lipnet_pl.inference.video import VideoStats, open_source, run_video, time_model

W, H, FPS = 64, 48, 25
TOP = 16  # rows 0-7: index bits; rows 16+: the labelled region


def boundary(i: int) -> int:
    return 8 * (1 + i % 6)


def make_frame(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for bit in range(8):
        if (i >> bit) & 1:
            img[:8, bit * 8 : bit * 8 + 8] = 255
    img[TOP:, : boundary(i)] = 200
    img[TOP:, boundary(i) :] = 40
    return img


def read_index(img: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if img[4, bit * 8 + 4].mean() > 128)


def threshold_parse(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Class 1 where the frame is dark: in the labelled region, right of the boundary."""
    return [(f[..., 0] < 128).astype(np.uint8) for f in frames]


def render(frame: np.ndarray, label: np.ndarray) -> np.ndarray:
    out = frame.copy()
    out[TOP:] = label[TOP:, :, None] * 255  # inverted: bright where the input was dark
    return out


def render_signalling(frame_index: int) -> tuple:
    """``render``, and an event set when it reaches ``frame_index`` (earlier frames are encoded):
    lets a test act mid-stream without racing the writer thread."""
    reached = threading.Event()

    def fn(frame: np.ndarray, label: np.ndarray) -> np.ndarray:
        if read_index(frame) >= frame_index:
            reached.set()
        return render(frame, label)

    return fn, reached


def labels_ok(img: np.ndarray, i: int) -> bool:
    """The rendered labels of frame ``i`` (3 px margin around the edge for the codec's blur)."""
    region = img[TOP + 2 : -2].mean(axis=2)
    return bool(
        (region[:, : boundary(i) - 3] < 128).all() and (region[:, boundary(i) + 3] > 128).all()
    )


def encode(output, n: int, fps: int = FPS, fmt: str | None = None, pace: bool = False) -> None:
    """Write frames 0..n-1 with mpeg4 (in every FFmpeg build); ``pace``: at real-time speed."""
    with av.open(output, "w", format=fmt) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.bit_rate = 1_000_000
        start = time.perf_counter()
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(make_frame(i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
            if pace:
                time.sleep(max(0.0, start + (i + 1) / fps - time.perf_counter()))
        for packet in stream.encode(None):
            container.mux(packet)


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [f.time for f in frames]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    encode(str(path), 30)
    return path


class _SocketFile:
    def __init__(self, conn: socket.socket):
        self.conn = conn

    def write(self, data) -> int:
        self.conn.sendall(data)
        return len(data)


def serve_live(n: int) -> tuple[str, threading.Thread]:
    """A live source: an MPEG-TS stream of ``n`` frames sent at real-time pace over TCP to the
    first client (like a camera), then the end of the stream (the connection closes)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                try:
                    encode(_SocketFile(conn), n, fmt="mpegts", pace=True)
                except OSError:  # the client went away
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{port}", thread


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("video-")]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_file_every_frame_in_order_with_right_labels(clip, tmp_path, batch_size):
    seen = []
    out = tmp_path / "out.mp4"
    stats = run_video(
        clip, out, threshold_parse, render, batch_size=batch_size, realtime=True,
        on_progress=seen.append,
    )  # fmt: skip
    frames, _ = decode(out)
    assert [read_index(f) for f in frames] == list(range(30))
    assert all(labels_ok(f, i) for i, f in enumerate(frames))
    assert (stats.frames, stats.dropped, stats.live, stats.realtime) == (30, 0, False, False)
    assert stats.classes_seen == {0, 1} and stats.output == out
    assert stats.end_to_end_fps > 0 and stats.model_fps > 0 and stats.model_seconds < stats.seconds
    assert seen and seen[-1].frames == 30  # a final report
    assert pipeline_threads() == []


def test_max_frames_and_odd_render_size(clip, tmp_path):
    out = tmp_path / "out.mp4"
    stats = run_video(
        clip, out, threshold_parse, lambda f, lab: render(f, lab)[:47, :63], max_frames=7
    )
    frames, _ = decode(out)
    assert stats.frames == len(frames) == 7
    assert frames[0].shape == (46, 62, 3)  # yuv420p: the odd last row and column are dropped


def test_render_size_change_is_scaled_to_the_first_size(clip, tmp_path):
    def growing(frame, label):  # e.g. a live stream switching resolution
        out = render(frame, label)
        return out if read_index(frame) < 5 else np.repeat(np.repeat(out, 2, 0), 2, 1)

    out = tmp_path / "out.mp4"
    stats = run_video(clip, out, threshold_parse, growing, max_frames=10)
    frames, _ = decode(out)
    assert stats.frames == 10 and {f.shape for f in frames} == {(H, W, 3)}


def test_on_progress_error_stops_the_pipeline(clip, tmp_path):
    def on_progress(stats):
        if stats.frames:  # a file exists
            raise OSError("terminal gone")

    out = tmp_path / "out.mp4"
    slow = lambda frames: time.sleep(0.05) or threshold_parse(frames)  # noqa: E731
    with pytest.raises(OSError, match="terminal gone"):
        run_video(clip, out, slow, render, on_progress=on_progress)
    assert pipeline_threads() == []
    frames, _ = decode(out)
    assert len(frames) < 30


def test_parse_error_reaches_caller_and_output_is_closed(clip, tmp_path):
    calls = 0
    render_fn, rendering_3 = render_signalling(3)

    def failing_parse(frames):
        nonlocal calls
        calls += 1
        if calls == 3:
            assert rendering_3.wait(10)
            raise RuntimeError("model exploded")
        return threshold_parse(frames)

    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="model exploded") as excinfo:
        run_video(clip, out, failing_parse, render_fn, batch_size=2)
    assert any(entry.name == "failing_parse" for entry in excinfo.traceback)  # worker's traceback
    assert any("parser thread" in note for note in excinfo.value.__notes__)
    assert pipeline_threads() == []
    frames, _ = decode(out)  # closed properly: readable, holds at most the parsed frames
    assert len(frames) <= 4 and [read_index(f) for f in frames] == list(range(len(frames)))


def test_wrong_number_of_labels_is_a_clear_error(clip, tmp_path):
    with pytest.raises(ValueError, match="parse returned 0 label maps for 1 frames"):
        run_video(clip, tmp_path / "out.mp4", lambda frames: [], render)


@pytest.fixture
def python_sigint_handler():
    """Ctrl-C raises KeyboardInterrupt, whatever handler an earlier test (a Lightning Trainer)
    left installed: ``_thread.interrupt_main`` calls the installed handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint_handler")
def test_ctrl_c_mid_stream_leaves_a_playable_file(clip, tmp_path):
    calls = 0
    render_fn, rendering_2 = render_signalling(2)

    def parse(frames):
        nonlocal calls
        calls += 1
        if calls == 5:
            assert rendering_2.wait(10)
            _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt in the main thread
            time.sleep(0.3)  # still parsing when it arrives
        return threshold_parse(frames)

    out = tmp_path / "out.mp4"
    stats = run_video(clip, out, parse, render_fn)
    assert stats.interrupted and 1 <= stats.frames < 30
    assert pipeline_threads() == []
    frames, _ = decode(out)
    assert len(frames) == stats.frames
    assert [read_index(f) for f in frames] == list(range(stats.frames))


@pytest.mark.timeout(60)
def test_live_stream_realtime_drops_frames_and_ends_with_the_stream(tmp_path):
    n = 30  # 1.2 s at 25 fps; the parser manages 10 fps
    url, server = serve_live(n)
    source = open_source(url)
    assert source.live and source.kind == "url"

    def slow_parse(frames):
        time.sleep(0.1)
        return threshold_parse(frames)

    out = tmp_path / "live.mp4"
    stats = run_video(source, out, slow_parse, render, realtime=True)
    server.join(10)
    frames, times = decode(out)
    indices = [read_index(f) for f in frames]
    assert stats.realtime and stats.dropped > 0 and stats.frames + stats.dropped == n
    assert len(frames) == stats.frames < n
    assert indices == sorted(set(indices))  # order kept, nothing repeated
    assert all(labels_ok(f, i) for f, i in zip(frames, indices, strict=True))
    # the output keeps the live timing: a frame shows until the next one that was parsed
    assert times == pytest.approx([(i - indices[0]) / FPS for i in indices], abs=1.5 / FPS)


@pytest.mark.timeout(60)
def test_live_stream_without_realtime_keeps_every_frame(tmp_path):
    n = 20
    url, server = serve_live(n)

    def slow_parse(frames):
        time.sleep(0.06)  # slower than the stream: the reader waits, nothing is lost
        return threshold_parse(frames)

    out = tmp_path / "live.mp4"
    stats = run_video(url, out, slow_parse, render, realtime=False)
    server.join(10)
    frames, _ = decode(out)
    assert stats.live and not stats.realtime
    assert (stats.frames, stats.dropped) == (n, 0)
    assert [read_index(f) for f in frames] == list(range(n))


@pytest.mark.timeout(60)
def test_fifo_is_a_live_source(tmp_path):
    fifo = tmp_path / "stream.ts"
    os.mkfifo(fifo)

    def feed() -> None:
        # Python's open releases the GIL while it waits for the reader; av.open(fifo, "w")
        # would block holding it and deadlock the test.
        with open(fifo, "wb") as pipe:
            encode(pipe, 10, fmt="mpegts")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with open_source(fifo) as source:
        assert source.live and source.kind == "pipe"
        stats = run_video(source, tmp_path / "out.mp4", threshold_parse, render)
    feeder.join(10)
    assert stats.frames == 10


def test_open_errors_name_the_source(tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    with socket.create_server(("127.0.0.1", 0)) as s:
        closed_port = s.getsockname()[1]
    cases = {
        str(tmp_path / "missing.mp4"): "no such file",
        str(tmp_path): "is a directory",
        str(tmp_path / "notes.txt"): "video file FFmpeg can read",
        f"tcp://127.0.0.1:{closed_port}": "is the server up",
    }
    for spec, hint in cases.items():
        with pytest.raises(ValueError, match=hint) as excinfo:
            open_source(spec)
        assert spec in str(excinfo.value) and "\n" not in str(excinfo.value)
    with pytest.raises(ValueError, match="does not exist"):
        run_video(tmp_path / "missing.mp4", tmp_path / "no" / "out.mp4", threshold_parse, render)


def test_time_model_times_warm_calls():
    calls = []

    def parse(frames):
        calls.append(len(frames))
        time.sleep(0.01)
        return threshold_parse(frames)

    fps = time_model(parse, [make_frame(0)] * 4, n=10)
    assert calls == [4, 4, 4, 4]  # one warm-up, then 3 batches of 4 >= 10 frames
    assert 0 < fps < 4 / 0.01
    with pytest.raises(ValueError, match="at least one frame"):
        time_model(parse, [])

    def broken(frames):
        raise RuntimeError("no weights")

    with pytest.raises(RuntimeError, match="no weights"):  # from its timing thread
        time_model(broken, [make_frame(0)])


def test_stats_rates():
    stats = VideoStats(frames=20, seconds=4.0, model_seconds=2.0)
    assert (stats.end_to_end_fps, stats.model_fps) == (5.0, 10.0)
    assert VideoStats().end_to_end_fps == 0.0


@pytest.fixture(scope="module")
def http_camera(tmp_path_factory):
    """A live HTTP MPEG-TS server on 127.0.0.1 (``/live.ts`` ends, ``/drop.ts`` drops mid-packet,
    ``/flaky.ts`` drops once, then streams to the end)."""
    clip = write_ts(tmp_path_factory.mktemp("camera") / "clip.ts").read_bytes()
    with live_server(clip) as url:
        yield url


@pytest.mark.parametrize(
    ("path", "reconnect", "frames", "reconnects", "reason"),
    [
        ("live", 0, TS_FRAMES, 0, None),  # the server closed after the last whole packet: the end
        ("drop", 0, TS_FRAMES // 2, 0, "the connection dropped mid-packet"),
        ("flaky", 1, TS_FRAMES // 2 + TS_FRAMES, 1, None),  # reopened into the same file
        ("drop", 1, 2 * (TS_FRAMES // 2), 1, "the connection dropped mid-packet"),
    ],
)
def test_http_live_stream_that_ends_drops_or_comes_back(
    http_camera, tmp_path, path, reconnect, frames, reconnects, reason
):
    source = open_source(f"{http_camera}/{path}.ts")
    assert source.live and source.format == "mpegts"
    out = tmp_path / "out.mp4"
    stats = run_video(source, out, threshold_parse, render, reconnect=reconnect)
    assert (stats.frames, stats.reconnects) == (frames, reconnects)
    assert (stats.stop_reason or "").startswith(reason or "")
    assert (stats.stop_reason is None) == (reason is None)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames
