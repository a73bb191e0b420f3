"""Video decoding and encoding with PyAV (``av``): frames as HxWx3 uint8 RGB arrays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    fps: Fraction
    frames: int | None  # None when the container does not say


def read_frames(path: str | Path, max_frames: int | None = None) -> Iterator:
    """Yield a :class:`VideoInfo` first, then every frame (up to ``max_frames``) as RGB uint8."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        total = stream.frames or None
        if max_frames is not None:
            total = min(total, int(max_frames)) if total else int(max_frames)
        yield VideoInfo(fps=Fraction(fps), frames=total)
        for i, frame in enumerate(container.decode(stream)):
            if max_frames is not None and i >= int(max_frames):
                break
            yield frame.to_ndarray(format="rgb24")


class VideoWriter:
    """Encode RGB frames to a video file; the size is taken from the first frame.

    yuv420p (the format every player reads) needs even sizes, so an odd last row/column is
    dropped. Falls back to MPEG-4 Part 2 when the requested codec is not in this FFmpeg build.
    """

    def __init__(self, path: str | Path, fps: Fraction | float = 25, codec: str = "libx264"):
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec = codec if codec in av.codecs_available else "mpeg4"
        self._container = None
        self._stream = None

    def __enter__(self) -> VideoWriter:
        self._container = av.open(str(self.path), mode="w")
        return self

    def write(self, frame: np.ndarray) -> None:
        h, w = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
        if self._stream is None:
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = "yuv420p"
        video_frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(frame[:h, :w]), format="rgb24"
        )
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def __exit__(self, *exc) -> None:
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
