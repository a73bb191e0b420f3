"""What real users and real machines feed the commands: a live HTTP MPEG-TS stream that ends or
drops, a disk that fills up. Shared by the contract table and the module tests."""

from __future__ import annotations

import errno
import http.server
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TS_FRAMES = 40
DROP_AT = 77  # bytes into a 188-byte MPEG-TS packet: the connection drops mid-packet


def write_ts(path: Path, frames: int = TS_FRAMES, size: int = 64) -> Path:
    """An MPEG-TS clip (what IP cameras and HLS serve) of ``frames`` 64x64 frames at 25 fps."""
    import av

    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size, size, 3), 6 * i % 256, np.uint8)
            image[:, : size // 2] = 255 - image[:, : size // 2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@contextmanager
def live_server(clip: bytes) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 streaming ``clip`` without a Content-Length, as a live
    camera does; yields its base URL. Paths:

    * ``/live.ts``: the whole stream, then the connection closes (after a complete packet);
    * ``/drop.ts``: half the stream, the connection closing in the middle of a packet;
    * ``/flaky.ts``: like ``/drop.ts`` on the first request, the whole stream on the next;
    * ``/stall.ts``: the whole stream, then the connection stays open and silent (a camera that
      has nothing new) until the server stops.
    """
    assert len(clip) % 188 == 0
    cut = len(clip) // 2 // 188 * 188 + DROP_AT
    requests: dict[str, int] = {}
    stopping = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no length: the end of the body is the closed connection

        def do_GET(self) -> None:
            requests[self.path] = requests.get(self.path, 0) + 1
            if self.path not in ("/live.ts", "/drop.ts", "/flaky.ts", "/stall.ts"):
                self.send_error(404)
                return
            again = self.path == "/flaky.ts" and requests[self.path] > 1
            whole = self.path in ("/live.ts", "/stall.ts") or again
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(clip if whole else clip[:cut])
            if self.path == "/stall.ts":
                self.wfile.flush()
                stopping.wait(60)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


class _FullDiskFile(io.BufferedWriter):
    """A file on a disk with ``budget[0]`` bytes free: what does not fit raises ENOSPC after
    the part that fits is written, as a real full disk does."""

    def __init__(self, raw, budget: list[int]):
        super().__init__(raw)
        self._budget = budget

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        room = max(0, self._budget[0])
        super().write(data[:room])
        self._budget[0] -= len(data)
        if len(data) > room:
            super().flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return len(data)


def fill_disk(monkeypatch, folder: Path, free_bytes: int) -> None:
    """Simulate a disk with ``free_bytes`` left for files written under ``folder`` (through
    ``open``/``os.fdopen``, as checkpoints and ONNX files are); other files are untouched."""
    real_open = io.open
    budget = [free_bytes]
    folder = Path(folder).resolve()

    def opened(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else file
        buffered_writer = isinstance(handle, io.BufferedWriter)  # binary, mode w/a/x
        if buffered_writer and Path(os.fspath(path)).resolve().is_relative_to(folder):
            return _FullDiskFile(handle.detach(), budget)
        return handle

    monkeypatch.setattr(io, "open", opened)
    monkeypatch.setattr("builtins.open", opened)
