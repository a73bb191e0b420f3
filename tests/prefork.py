"""``python -m lipnet_pl.<command>`` in a child forked from an interpreter that has already
imported torch, Lightning and Hydra.

Why: an end-to-end test runs the real command, and a fresh interpreter spends 3-5 s of this
project's 2-core machine on imports before the command does anything; the suite runs about a
hundred such commands. The forked child gets what ``python -m`` would give it (argv, working
directory first on ``sys.path``, environment, stdin/stdout/stderr, its own pid, exit status or
death by signal, atexit handlers at exit) and then runs the module as ``__main__``.

Under pytest-xdist the workers of a run share one server (the first to need it starts it; it
exits with the run's controller): its imports cost ~7 s of CPU, once.

What it cannot give: import-time behaviour (an import error, a library that reads the
environment when it is imported). Tests of those run a fresh interpreter themselves
(``tests/e2e/test_imports.py``, the packaging tests), and ``LIPNET_TESTS_FRESH_PYTHON=1`` makes
every command of the suite a fresh interpreter again.

Run as a script, this file is the server: ``python prefork.py SOCKET``.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOAD = (
    "torch",
    "torchvision",
    "lightning.pytorch",
    "hydra",
    "onnx",
    "onnxruntime",
    "matplotlib.pyplot",
    "lipnet_pl.cli",
    "lipnet_pl.training.train",
    "lipnet_pl.evaluation.evaluate",
    "lipnet_pl.inference.predict",
    "lipnet_pl.exporting.export",
    "lipnet_pl.benchmark.suite",
    "lipnet_pl.sweeps.jobs",
    "lipnet_pl.sweeps.summary",
)
"""Imported once by the server: what the commands import (the entry modules themselves are
run fresh as ``__main__`` in each child)."""

FRESH_PYTHON = os.environ.get("LIPNET_TESTS_FRESH_PYTHON", "") not in ("", "0")


# --------------------------------------------------------------------------------- the child
def _exit_code(code: object) -> int:
    """The status ``sys.exit(code)`` gives a Python process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_child(module: str, args: list[str], cwd: str, env: dict[str, str]) -> None:
    """Become ``python -m module *args`` (never returns)."""
    import runpy
    import threading
    import traceback

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path[0] = os.getcwd()
    sys.argv = [module, *args]
    sys.modules.pop(module, None)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = _exit_code(exit_.code)
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # the interpreter joins non-daemon threads before exiting
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = code or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


# -------------------------------------------------------------------------------- the server
def serve(path: str, watch_pid: int | None = None) -> None:
    """Accept one request per connection, fork, answer the pid, then the exit status; with
    ``watch_pid``, exit (removing the socket) once that process is gone."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # whoever started it may stop reading
    children: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    checked = time.monotonic()
    while True:
        if watch_pid is not None and time.monotonic() - checked > 1.0:
            checked = time.monotonic()
            if not _alive(watch_pid):  # the run is over: its folder goes too
                shutil.rmtree(Path(path).parent, ignore_errors=True)
                os._exit(0)
        for _ in selector.select(timeout=0.02):
            conn, _ = listener.accept()
            request, fds = _receive(conn)
            if request is None:  # a client checking that the server is up
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                selector.close()
                listener.close()
                conn.close()
                for sock in children.values():
                    sock.close()
                if request.get("new_session"):
                    os.setsid()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                _run_child(request["module"], request["args"], request["cwd"], request["env"])
            for fd in fds:
                os.close(fd)
            conn.sendall(f"{pid}\n".encode())
            children[pid] = conn
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _receive(conn: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if not data:
        return None, fds
    size = int.from_bytes(data[:8], "little")
    while len(data) < 8 + size:
        data += conn.recv(1 << 20)
    return json.loads(data[8 : 8 + size]), fds


# -------------------------------------------------------------------------------- the client
class _Server:
    """The session's server, started on first use and stopped when the session exits."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="lipnet-prefork-")
        self.path = str(Path(self.dir) / "socket")
        self.process = _start_server(self.path)
        atexit.register(self.stop)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        Path(self.path).unlink(missing_ok=True)
        os.rmdir(self.dir)


class _SharedServer:
    """One server for all pytest-xdist workers of a run (``PYTEST_XDIST_TESTRUNUID``): the first
    worker to need it starts it, in a session of its own; it exits once the run's controller
    (the workers' parent) is gone. Each worker's own server cost ~7 s of CPU in imports."""

    def __init__(self, run_id: str) -> None:
        from filelock import FileLock  # a dependency of torch

        root = Path(tempfile.gettempdir()) / f"lipnet-prefork-{run_id[:16]}"
        self.path = str(root / "socket")
        self.started: subprocess.Popen | None = None  # held: it outlives this worker's use
        root.mkdir(exist_ok=True)
        with FileLock(str(root / "lock")):
            if not self.alive():
                Path(self.path).unlink(missing_ok=True)
                self.started = _start_server(self.path, watch_pid=os.getppid(), new_session=True)

    def alive(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)  # the server forks nothing for a connection without fds
        except OSError:
            return False
        finally:
            probe.close()
        return True


def _start_server(path: str, watch_pid: int | None = None, new_session: bool = False):
    command = [sys.executable, __file__, path, *([str(watch_pid)] if watch_pid else [])]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=new_session,
    )
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the prefork server did not start (exit {process.wait()})")
    process.stdout.close()
    return process


_server: _Server | _SharedServer | None = None


def server_path() -> str:
    """The socket of this process's server, started (or, under pytest-xdist, found) on first
    use."""
    global _server
    if _server is None or not _server.alive():
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        _server = _SharedServer(run_id) if run_id else _Server()
    return _server.path


def run(
    module: str,
    args: list[str],
    cwd: str | Path,
    env: dict[str, str],
    timeout: float,
    new_session: bool = False,
) -> subprocess.CompletedProcess:
    """``subprocess.run([python, -m, module, *args], capture_output=True, text=True,
    stdin=DEVNULL, ...)`` served by a forked child (or a fresh interpreter, see the module doc)."""
    command = [sys.executable, "-m", module, *args]
    if FRESH_PYTHON:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, start_new_session=new_session,
        )  # fmt: skip
    path = server_path()
    request = dict(module=module, args=list(args), cwd=str(cwd), env=dict(env))
    request["new_session"] = new_session
    payload = json.dumps(request).encode()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        socket.send_fds(conn, [len(payload).to_bytes(8, "little") + payload], [null, out_w, err_w])
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    reply = conn.makefile("r")
    pid = int(reply.readline())
    outputs = _read_until_eof([out_r, err_r], time.monotonic() + timeout)
    if outputs is None:
        os.kill(pid, 9)
        reply.readline()
        conn.close()
        raise subprocess.TimeoutExpired(command, timeout)
    code = int(reply.readline())
    conn.close()
    out, err = (o.decode(errors="replace") for o in outputs)
    return subprocess.CompletedProcess(command, code, out, err)


def _read_until_eof(fds: list[int], deadline: float) -> list[bytes] | None:
    """Everything written to ``fds`` until every writer closed them; None past the deadline."""
    chunks: dict[int, list[bytes]] = {fd: [] for fd in fds}
    selector = selectors.DefaultSelector()
    for fd in fds:
        selector.register(fd, selectors.EVENT_READ)
    try:
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for key, _ in selector.select(timeout=left):
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
    finally:
        selector.close()
        for fd in fds:
            os.close(fd)
    return [b"".join(chunks[fd]) for fd in fds]


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
