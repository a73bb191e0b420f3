"""Which files are images and which are videos: the one list of file suffixes.

The dataset layout (:mod:`lipnet_pl.data.layout`) and prediction inputs
(:mod:`lipnet_pl.inference.files`) both read it, so a file the trainer accepts is one
``predict`` accepts too.
"""

from __future__ import annotations

import os

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".ts", ".m4v")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES


def _suffix(path: str | os.PathLike) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def is_image(path: str | os.PathLike) -> bool:
    return _suffix(path) in IMAGE_SUFFIXES


def is_video(path: str | os.PathLike) -> bool:
    return _suffix(path) in VIDEO_SUFFIXES


def is_media(path: str | os.PathLike) -> bool:
    return _suffix(path) in MEDIA_SUFFIXES


def describe() -> str:
    """The suffixes, for messages that say what is accepted."""
    return f"images {' '.join(IMAGE_SUFFIXES)}; videos {' '.join(VIDEO_SUFFIXES)}"
