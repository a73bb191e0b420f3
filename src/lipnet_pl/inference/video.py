"""Live and pipelined video: decode, parse and encode run concurrently, frames stay in order.

    with open_source("rtsp://cam/stream") as source:            # or a file, /dev/video0, 0
        print(f"isolated model FPS: {time_model(parse, [source.blank_frame()]):.1f}")
        stats = run_video(source, "out.mp4", parse, render, realtime=True)

Three threads joined by bounded queues: the reader decodes (PyAV releases the GIL while it
decodes and converts to RGB), the parser calls ``parse`` on batches (torch releases it in its
kernels), the writer calls ``render`` and encodes (PyAV releases it again). The calling thread only
supervises: it reports progress, turns Ctrl-C into a clean stop, and re-raises a worker's exception
with the worker's traceback. Whatever ends the run (end of stream, ``max_frames``, Ctrl-C, an
error), the encoder is flushed and the container closed, so the output file is always playable.

A live source that stops is not an exception: the end of the stream ends the run, and a dropped
connection or a timeout ends it with ``stats.stop_reason`` saying why, or, with ``reconnect=N``,
reopens the source up to N times (short back-off) and goes on into the same output file.

Nothing here knows about Hydra, checkpoints or torch: ``parse`` maps RGB frames to label maps,
``render`` maps (frame, labels) to the output frame.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import av
import av.logging
import numpy as np

log = logging.getLogger(__name__)

# Protocols that only ever carry live streams. http(s) may serve a file or a live stream: the
# container decides (no duration and no frame count -> live).
LIVE_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp", "tcp", "rist", "mmsh", "mmst", "zmq"}
)
NETWORK_TIMEOUT = 10.0
"""Seconds a network source may take to open, or stay silent before the read fails."""
ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    # Cheapest settings: the encoder must never be the bottleneck on a small CPU, and
    # zerolatency (no B-frames, no lookahead) lets every frame out at once, so a stop is instant.
    "libx264": {"preset": "ultrafast", "tune": "zerolatency"},
    "libx265": {"preset": "ultrafast", "tune": "zerolatency"},
}
FALLBACK_CODEC = "mpeg4"  # in every FFmpeg build, unlike libx264 (GPL)
TS_PACKET_SIZE = 188
# FFmpeg's http reader on a connection closed without a Content-Length (how live streams end)
_PREMATURE_END = re.compile(r"Stream ends prematurely at (\d+)")

Parse = Callable[[list[np.ndarray]], Sequence[np.ndarray]]
Render = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Frame(NamedTuple):
    """A decoded frame: ``image`` HxWx3 uint8 RGB, ``time`` in seconds on the source's clock
    (None when the source has no timestamps), ``index`` counted from 0 in decode order."""

    image: np.ndarray
    time: float | None
    index: int


class VideoSource:
    """An opened video source: what it is, and its frames as :class:`Frame` (iterate once).

    Made by :func:`open_source`. ``live`` sources (cameras, network streams) cannot be paused or
    rewound: a reader that falls behind only adds latency, which ``run_video(realtime=True)``
    avoids by dropping frames.
    """

    def __init__(
        self,
        spec: str,
        container,
        live: bool,
        kind: str,
        reopen: Callable[[], VideoSource] | None = None,
    ):
        self.spec = spec
        self.live = live
        self.kind = kind  # "file" | "url" | "device" | "pipe"
        self.reopen = reopen  # a fresh VideoSource of the same spec and options (reconnecting)
        self.format = container.format.name
        self._container = container
        self._stream = container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = Fraction(rate) if rate else Fraction(25)
        self.frames: int | None = self._stream.frames or None
        self.width = int(self._stream.codec_context.width)
        self.height = int(self._stream.codec_context.height)
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"VideoSource({self.spec!r}, {self.kind}, live={self.live}, "
            f"{self.width}x{self.height} @ {float(self.fps):.2f} fps, frames={self.frames})"
        )

    def blank_frame(self) -> np.ndarray:
        """A black frame of the source's size: enough to time a network, whose cost does not
        depend on the pixels, without consuming frames of the source."""
        return np.zeros((max(self.height, 2), max(self.width, 2), 3), np.uint8)

    def __iter__(self) -> Iterator[Frame]:
        stream = self._stream
        index = 0
        for packet in self._container.demux(stream):
            try:
                decoded = packet.decode()
            except av.InvalidDataError:
                if not self.live:
                    raise
                continue  # a damaged packet of a live stream: the next keyframe recovers
            for frame in decoded:
                yield Frame(frame.to_ndarray(format="rgb24"), frame.time, index)
                index += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _webcam(index: int) -> tuple[str, str]:
    if sys.platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if sys.platform == "darwin":
        return str(index), "avfoundation"
    raise ValueError(
        f"cannot open webcam {index}: webcam indices work on Linux (v4l2) and macOS "
        "(avfoundation); on Windows pass the DirectShow name, e.g. "
        "open_source('video=Integrated Camera', format='dshow')"
    )


def _classify(spec: str | int | os.PathLike) -> tuple[str, str | None, bool | None, str]:
    """(url for av.open, demuxer or None, live or None = ask the container, kind)."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return (*_webcam(spec), True, "device")
    text = os.fspath(spec)
    if text.isdigit():
        return (*_webcam(int(text)), True, "device")
    scheme = urlsplit(text).scheme.lower()
    if len(scheme) > 1 and "://" in text:  # len > 1: not a Windows drive letter
        if scheme == "file":
            return text, None, False, "file"
        return text, None, (True if scheme in LIVE_SCHEMES else None), "url"
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        raise ValueError(
            f"cannot open video source {text!r}: no such file; give a video file, a URL "
            "(rtsp://, http://, udp://, tcp://...), a device such as /dev/video0, or a webcam index"
        ) from None
    if stat.S_ISCHR(mode):
        return text, ("v4l2" if sys.platform.startswith("linux") else None), True, "device"
    if stat.S_ISFIFO(mode):
        return text, None, True, "pipe"
    if stat.S_ISDIR(mode):
        raise ValueError(f"cannot open video source {text!r}: it is a directory, not a video")
    return text, None, False, "file"


_HINTS = {
    "file": "is it a video file FFmpeg can read (not truncated, a known container)?",
    "url": "is the server up and the URL right? (rtsp behind a firewall: "
    "options={'rtsp_transport': 'tcp'})",
    "device": "is the camera connected and not in use by another program? (ls /dev/video*; "
    "v4l2 settings go in options, e.g. {'video_size': '640x480', 'framerate': '30'})",
    "pipe": "is something writing a video stream into the pipe?",
}


def open_source(
    spec: str | int | os.PathLike,
    *,
    format: str | None = None,
    options: Mapping[str, str] | None = None,
    live: bool | None = None,
    timeout: float | None = None,
) -> VideoSource:
    """Open a file, URL (rtsp, http(s), udp, tcp, ...), V4L2 device, FIFO or webcam index.

    ``live`` is decided here unless given: devices, pipes and stream-only protocols are live,
    regular files are not, and other URLs are live when the container reports neither a duration
    nor a frame count. ``format`` forces an FFmpeg demuxer, ``options`` are FFmpeg options (e.g.
    ``rtsp_transport``, ``video_size``), ``timeout`` bounds the open and each read of a network
    source (default :data:`NETWORK_TIMEOUT`). Any failure is a ``ValueError`` naming the source.
    """
    url, demuxer, is_live, kind = _classify(spec)
    name = spec if isinstance(spec, int) else os.fspath(spec)
    if kind == "url" and timeout is None:
        timeout = NETWORK_TIMEOUT
    if kind == "url":
        _keep_ffmpeg_errors()
    try:
        container = av.open(
            url, format=format or demuxer, options=dict(options or {}), timeout=timeout
        )
    except Exception as err:  # FFmpegError, OSError: one line naming the source and a next step
        raise ValueError(
            f"cannot open video source {name!r} ({type(err).__name__}: {err}); {_HINTS[kind]}"
        ) from err
    if not container.streams.video:
        container.close()
        raise ValueError(f"video source {name!r} has no video stream (audio only, or not a video)")
    if is_live is None:
        video = container.streams.video[0]
        is_live = container.duration is None and not video.frames
    reopen = partial(open_source, spec, format=format, options=options, live=live, timeout=timeout)
    return VideoSource(str(name), container, bool(is_live if live is None else live), kind, reopen)


def _keep_ffmpeg_errors() -> None:
    """PyAV adds FFmpeg's last error line (``Stream ends prematurely at N``: how far a network
    read got) to its exceptions only while its log callback is installed. At level PANIC it
    records errors without printing anything (a level the user set is kept)."""
    if av.logging.get_level() is None:
        av.logging.set_level(av.logging.PANIC)


def stop_reason(err: Exception, source: VideoSource) -> str | None:
    """Why a live source's read failed, or None when the source ENDED: a server that closes the
    connection (no Content-Length) after a whole MPEG-TS packet has ended its stream (FFmpeg
    still reports an I/O error); mid-packet, the connection dropped."""
    text = str(err)
    premature = _PREMATURE_END.search(text)
    if premature is None:
        return text.split("; last error log")[0]
    at = int(premature.group(1))
    if source.format != "mpegts" or at % TS_PACKET_SIZE == 0:
        return None
    return f"the connection dropped mid-packet after {at} bytes"


@dataclass
class VideoStats:
    """What a run did. ``model_fps`` counts only the time inside ``parse``; under the pipeline it
    is lower than :func:`time_model`'s isolated figure when decode/encode compete for cores."""

    frames: int = 0  # written to the output
    dropped: int = 0  # decoded but skipped to stay real time (realtime=True on a live source)
    seconds: float = 0.0  # wall time from the start of the pipeline to the closed output
    model_seconds: float = 0.0
    classes_seen: set[int] = field(default_factory=set)
    interrupted: bool = False  # ended by Ctrl-C: the caller should stop too
    stop_reason: str | None = None  # a live source dropped or timed out (None: it ended)
    reconnects: int = 0  # times a dropped live source was reopened
    live: bool = False
    realtime: bool = False  # dropping was on (realtime=True and a live source)
    fps: Fraction = Fraction(25)  # the source's frame rate, used for the output
    codec: str = ""
    output: Path | None = None  # None when no frame was written (no file is created)

    @property
    def end_to_end_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else 0.0


def time_model(parse: Parse, frames: Sequence[np.ndarray], n: int = 10, warmup: int = 1) -> float:
    """Isolated frames per second of ``parse`` alone (nothing else running), over at least ``n``
    frames after ``warmup`` untimed calls; ``frames`` is one batch, e.g. ``[source.blank_frame()]``.

    ``parse`` runs in a fresh thread, as in :func:`run_video`: torch's OpenMP thread team belongs
    to the calling thread, and on a busy 2-core machine the main thread's team measured up to 5x
    slower than a worker thread's, which would make the two figures incomparable.
    """
    batch = list(frames)
    if not batch:
        raise ValueError("time_model needs at least one frame")
    calls = max(1, math.ceil(n / len(batch)))
    result: list = []

    def timed() -> None:
        try:
            for _ in range(warmup):
                parse(batch)
            start = time.perf_counter()
            for _ in range(calls):
                parse(batch)
            result.append(calls * len(batch) / (time.perf_counter() - start))
        except BaseException as err:
            result.append(err)

    thread = threading.Thread(target=timed, name="video-timing", daemon=True)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


class _Channel:
    """Bounded FIFO between two threads. When full, ``put`` waits (every frame is kept) or, with
    ``drop_oldest``, evicts the oldest item so a live source never waits for the parser."""

    def __init__(self, maxsize: int, stop: threading.Event, drop_oldest: bool = False):
        self._items: deque = deque()
        self._maxsize = maxsize
        self._drop_oldest = drop_oldest
        self._stop = stop
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item) -> bool:
        """Add ``item``; False when the pipeline is stopping (the producer should quit)."""
        with self._cond:
            while len(self._items) >= self._maxsize and not self._drop_oldest:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.1)
            if self._stop.is_set():
                return False
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, n: int, wait_for_all: bool) -> list | None:
        """Up to ``n`` items; waits for the first, and for the rest only with ``wait_for_all``
        (full batches from files; a live source's parser takes what is there). None at the end
        or on stop; items still queued on stop are discarded."""
        with self._cond:
            while True:
                if self._stop.is_set():
                    return None
                ready = len(self._items) >= (n if wait_for_all else 1)
                if ready or (self._closed and self._items):
                    out = [self._items.popleft() for _ in range(min(n, len(self._items)))]
                    self._cond.notify_all()
                    return out
                if self._closed:
                    return None
                self._cond.wait(0.1)

    def close(self) -> None:
        """The producer is done: consumers get what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class _Writer:
    """Encode RGB frames to ``path``, opened at the first frame (its size; an odd last row or
    column is dropped: yuv420p needs even sizes), so a run without frames leaves no file."""

    def __init__(self, path: Path, fps: Fraction, codec: str):
        if codec not in av.codecs_available:
            log.warning("codec %s is not in this FFmpeg build; using %s", codec, FALLBACK_CODEC)
            codec = FALLBACK_CODEC
        self.path = path
        self.codec = codec
        self.rate = Fraction(fps).limit_denominator(1001)
        self.time_base = 1 / self.rate
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._last_pts = -1
        self.started = False  # the file exists (it stays, playable, even after an error)

    def write(self, image: np.ndarray, pts: int | None) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"render must return an HxWx3 uint8 RGB frame, got {image.dtype} {image.shape}"
            )
        if self._container is None:
            self._open(image.shape[1] // 2 * 2, image.shape[0] // 2 * 2)
        w, h = self._size
        if (image.shape[1] // 2 * 2, image.shape[0] // 2 * 2) == (w, h):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), "rgb24")
        else:  # a live stream changed resolution (adaptive bitrate): scale to the file's size
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), "rgb24")
            frame = frame.reformat(width=w, height=h)
        self._last_pts = self._last_pts + 1 if pts is None else max(pts, self._last_pts + 1)
        frame.pts = self._last_pts
        frame.time_base = self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _open(self, width: int, height: int) -> None:
        if width < 2 or height < 2:
            raise ValueError(f"cannot encode a {width}x{height} frame: too small for yuv420p")
        self._container = av.open(str(self.path), mode="w")
        try:
            stream = self._container.add_stream(
                self.codec, rate=self.rate, options=ENCODER_OPTIONS.get(self.codec, {})
            )
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = self.time_base
            if self.codec == FALLBACK_CODEC:  # its default 200 kb/s smears colours
                stream.bit_rate = int(width * height * float(self.rate) * 0.2)
        except Exception:
            self._container.close()
            self._container = None
            raise
        self._stream, self._size = stream, (width, height)
        self.started = True

    def close(self) -> None:
        """Flush the encoder and write the container's index (mp4: the moov atom)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
        finally:
            container.close()


def _count_classes(label: np.ndarray, seen: set[int]) -> None:
    label = np.asarray(label)
    if label.dtype == np.uint8:  # bincount: linear time, unlike np.unique's sort
        seen.update(np.flatnonzero(np.bincount(label.ravel(), minlength=256)).tolist())
    else:
        seen.update(int(c) for c in np.unique(label))


def run_video(
    source: VideoSource | str | int | os.PathLike,
    output_path: str | os.PathLike,
    parse: Parse,
    render: Render,
    *,
    batch_size: int = 1,
    realtime: bool = False,
    max_frames: int | None = None,
    codec: str = "libx264",
    on_progress: Callable[[VideoStats], None] | None = None,
    reconnect: int = 0,
) -> VideoStats:
    """Decode ``source``, ``parse`` batches of frames, ``render`` and encode them to
    ``output_path``, concurrently; returns what was done. The source is closed at the end.

    ``parse(frames) -> label maps`` (uint8 HxW, one per frame) runs in a worker thread: wrap it in
    ``torch.inference_mode()`` there, which is thread-local. ``realtime=True`` on a live source
    keeps only the newest ``batch_size`` frames while the parser is busy (``dropped`` counts the
    rest), so the output stays current; the output then keeps the source's timestamps, so it
    plays at the real pace. On files ``realtime`` changes nothing: every frame is parsed.
    ``max_frames`` caps the frames written. Ctrl-C in the calling thread ends the run like the
    end of the stream (``stats.interrupted`` is set, frames not yet encoded are discarded); an
    exception in a worker (or in ``on_progress``, called about 10 times a second from the calling
    thread) stops every thread, closes the output and is re-raised here with its traceback.
    A live source that drops or times out ends the run with ``stats.stop_reason`` set, unless
    ``reconnect`` (N reopenings with back-off) brings it back.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    if reconnect < 0:
        raise ValueError(f"reconnect must be >= 0, got {reconnect}")
    output_path = Path(output_path)
    if not output_path.parent.is_dir():
        raise ValueError(f"cannot write {output_path}: folder {output_path.parent} does not exist")
    if not isinstance(source, VideoSource):
        source = open_source(source)
    pipeline = _Pipeline(source, _Writer(output_path, source.fps, codec), parse, render)
    pipeline.reconnect = int(reconnect)
    return pipeline.run(batch_size, bool(realtime and source.live), max_frames, on_progress)


class _Pipeline:
    """The three workers of :func:`run_video` and the supervision of them."""

    def __init__(self, source: VideoSource, writer: _Writer, parse: Parse, render: Render):
        self.source, self.writer, self.parse, self.render = source, writer, parse, render
        self.lock = threading.Lock()  # guards stats while the main thread snapshots it
        self.stop = threading.Event()  # every thread quits as soon as it sees it
        self.enough = threading.Event()  # max_frames reached: the reader stops reading
        self.errors: list[BaseException] = []
        self.start = time.perf_counter()
        self.reconnect = 0  # reopenings allowed for a dropped live source
        self.read_count = 0  # frames read, over every (re)opening of the source

    def run(
        self, batch_size: int, dropping: bool, max_frames: int | None, on_progress
    ) -> VideoStats:
        self.batch_size, self.dropping, self.max_frames = batch_size, dropping, max_frames
        src = self.source
        self.stats = VideoStats(
            live=src.live, realtime=dropping, fps=src.fps, codec=self.writer.codec
        )
        self.frames_in = _Channel(
            batch_size if dropping else max(4, 2 * batch_size), self.stop, dropping
        )
        self.parsed = _Channel(2, self.stop)
        threads = [
            self.worker("reader", self.read),
            self.worker("parser", self.infer),
            self.worker("writer", self.write),
        ]
        self.start = time.perf_counter()
        for thread in threads:
            thread.start()
        self.supervise(threads, on_progress)
        stats = self.stats
        stats.seconds = time.perf_counter() - self.start
        stats.dropped = self.frames_in.dropped
        stats.output = self.writer.path if self.writer.started else None
        if self.errors:
            raise self.errors[0]
        if on_progress is not None:
            on_progress(replace(stats, classes_seen=set(stats.classes_seen)))
        return stats

    def read(self) -> None:
        source: VideoSource | None = self.source
        try:
            while (reason := self.pump(source)) is not None:
                source.close()
                source = self.reopen(source, reason)
                if source is None:
                    return
        finally:
            self.frames_in.close()
            if source is not None:
                source.close()

    def pump(self, source: VideoSource) -> str | None:
        """Feed ``source``'s frames to the parser; why a live source stopped (None: it ended,
        or the run no longer wants frames)."""
        try:
            for frame in source:
                frame = frame._replace(index=self.read_count)  # counted over reopenings
                self.read_count += 1
                if self.enough.is_set() or not self.frames_in.put(frame):
                    return None
                last = self.max_frames is not None and self.read_count >= self.max_frames
                if not self.dropping and last:
                    return None
        except (av.FFmpegError, OSError) as err:
            if self.enough.is_set() or self.stop.is_set():
                log.debug("read error after the run ended, ignored", exc_info=True)
                return None
            if not source.live:
                raise
            return stop_reason(err, source)
        return None

    def reopen(self, source: VideoSource, reason: str) -> VideoSource | None:
        """``source`` reopened after a drop, with back-off, within ``reconnect`` attempts; None
        (and ``stats.stop_reason``) when it stays down or the run stops meanwhile."""
        while self.stats.reconnects < self.reconnect and source.reopen is not None:
            self.stats.reconnects += 1
            log.warning(
                "%s: %s; reconnecting (%d of %d)",
                source.spec,
                reason,
                self.stats.reconnects,
                self.reconnect,
            )
            if self.stop.wait(min(0.5 * 2 ** (self.stats.reconnects - 1), 5.0)):
                return None
            try:
                return source.reopen()
            except ValueError as err:
                reason = str(err)
        self.stats.stop_reason = reason
        return None

    def infer(self) -> None:
        count, limit = 0, self.max_frames
        try:
            while limit is None or count < limit:
                want = self.batch_size if limit is None else min(self.batch_size, limit - count)
                batch = self.frames_in.get(want, wait_for_all=not self.dropping)
                if batch is None:
                    break
                start = time.perf_counter()
                labels = list(self.parse([f.image for f in batch]))
                elapsed = time.perf_counter() - start
                if len(labels) != len(batch):
                    raise ValueError(
                        f"parse returned {len(labels)} label maps for {len(batch)} frames"
                    )
                with self.lock:
                    self.stats.model_seconds += elapsed
                if not self.parsed.put((batch, labels)):
                    break
                count += len(batch)
        finally:
            self.enough.set()
            self.parsed.close()

    def write(self) -> None:
        t0: float | None = None
        try:
            while (items := self.parsed.get(1, wait_for_all=True)) is not None:
                batch, labels = items[0]
                for frame, label in zip(batch, labels, strict=True):
                    pts = None
                    if self.dropping and frame.time is not None:  # keep the live pace
                        t0 = frame.time if t0 is None else t0
                        pts = round((frame.time - t0) / self.writer.time_base)
                    self.writer.write(self.render(frame.image, label), pts)
                    with self.lock:
                        _count_classes(label, self.stats.classes_seen)
                        self.stats.frames += 1
        finally:
            self.writer.close()

    def worker(self, name: str, body: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                body()
            except BaseException as err:
                err.add_note(f"(raised in the {name} thread of lipnet_pl.inference.video)")
                self.errors.append(err)
                self.halt()

        # daemon: a reader stuck in a network read cannot keep the interpreter alive
        return threading.Thread(target=run, name=f"video-{name}", daemon=True)

    def halt(self) -> None:
        self.stop.set()
        self.frames_in.wake()
        self.parsed.wake()

    def snapshot(self) -> VideoStats:
        with self.lock:
            return replace(
                self.stats,
                classes_seen=set(self.stats.classes_seen),
                dropped=self.frames_in.dropped,
                seconds=time.perf_counter() - self.start,
            )

    def supervise(self, threads: list[threading.Thread], on_progress) -> None:
        """Progress reports, Ctrl-C -> a clean stop; the writer is joined first (the output is
        finalised there), then the parser, then the reader (may be stuck in a network read)."""
        reader, parser, writer = threads
        try:
            while writer.is_alive():
                writer.join(0.1)
                if on_progress is not None:
                    on_progress(self.snapshot())
        except KeyboardInterrupt:
            self.stats.interrupted = True
            log.info("interrupted: closing %s", self.writer.path)
        finally:
            if writer.is_alive():  # Ctrl-C, or on_progress raised: stop, discard what is queued
                self.halt()
            writer.join()
            self.halt()  # nothing is left to deliver: release a reader waiting on a full queue
            parser.join()  # finishes the parse in progress, if any
            reader.join(timeout=1.0)  # a daemon: it may be blocked in a network read
