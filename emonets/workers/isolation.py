"""Run a unit of work in a child process, so a native crash costs that unit, not the run.

A segfault in dlib, PyAV or numba, an ``os._exit`` or an out-of-memory kill takes down the
process it happens in. In a process pool that breaks the whole pool (``BrokenProcessPool``);
with threads it kills the run. So every extraction unit runs in a *guarded child*: a plain
subprocess (not multiprocessing, so it works under daemonic Dask workers too) that each
calling thread keeps and reuses, talking over a pair of pipes. When the child dies mid-call,
the call is retried once in a fresh child; a second death raises :class:`WorkerCrashed`
naming the signal or exit code, and the caller records it for that unit alone.

The child also dies with its parent (see :mod:`emonets.workers.parent_watch`): killing a run never
leaves children writing into the store.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

_HEADER = struct.Struct("!Q")


class WorkerCrashed(RuntimeError):
    """The child running a unit died (signal, exit code) or overran its time limit, twice."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RemoteError(RuntimeError):
    """An exception raised in the child that could not be sent back as itself."""


def describe_exit(returncode: int | None) -> str:
    """'worker crashed: SIGSEGV' for a signal, 'worker exited with code 3' otherwise."""
    if returncode is None:
        return "worker stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed: out of memory, or by a user)" if -returncode == signal.SIGKILL else ""
        return f"worker crashed: {name}{hint}"
    return f"worker exited with code {returncode}"


# -- framing: length-prefixed pickles over raw file descriptors ------------------------
def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int) -> Any:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        raise EOFError
    body = _read_exact(fd, _HEADER.unpack(header)[0])
    if body is None:
        raise EOFError
    return pickle.loads(body)


@dataclass
class _Child:
    proc: subprocess.Popen
    to_child: int
    from_child: int

    def close(self) -> None:
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class GuardedRunner:
    """Calls ``module:function`` in a reusable child process; one runner per calling thread."""

    def __init__(self, *, retries: int = 1):
        self.retries = retries
        self._child: _Child | None = None

    def call(self, fn: Callable, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the child; its exceptions re-raised here as themselves."""
        target = (fn.__module__, fn.__qualname__)
        last = ""
        for _ in range(1 + self.retries):
            child = self._ensure_child()
            try:
                _send(child.to_child, ("call", target, args, kwargs))
                status, payload = self._wait(child, timeout)
            except (EOFError, BrokenPipeError, OSError) as err:
                last = self._crash_reason(child, err)
                self._discard()
                continue
            if status == "ok":
                return payload
            raise payload
        raise WorkerCrashed(last)

    def close(self) -> None:
        self._discard()

    # -- internals -----------------------------------------------------------------
    def _ensure_child(self) -> _Child:
        if self._child is None or self._child.proc.poll() is not None:
            self._discard()
            self._child = _spawn()
        return self._child

    def _wait(self, child: _Child, timeout: float | None) -> tuple[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            ready, _, _ = select.select([child.from_child], [], [], wait)
            if ready:
                return _recv(child.from_child)
            if deadline is not None and time.monotonic() >= deadline:
                child.proc.kill()
                child.proc.wait()
                raise _TimedOut(timeout)

    def _crash_reason(self, child: _Child, err: BaseException) -> str:
        if isinstance(err, _TimedOut):
            return f"worker timed out after {err.seconds:g} s"
        try:
            code = child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        return describe_exit(code)

    def _discard(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None


class _TimedOut(OSError):
    def __init__(self, seconds: float):
        super().__init__(f"timed out after {seconds} s")
        self.seconds = seconds


def _spawn() -> _Child:
    """Start a child: the interpreter we run in, our sys.path, two pipes passed by number."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emonets.workers.isolation", str(down_r), str(up_w), str(os.getpid())],
        pass_fds=(down_r, up_w), env=env, stdin=subprocess.DEVNULL,
    )
    os.close(down_r)
    os.close(up_w)
    return _Child(proc, down_w, up_r)


_local = threading.local()
_all_runners: list[GuardedRunner] = []
_registry_lock = threading.Lock()


def run_guarded(fn: Callable, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in this thread's guarded child (started on first use)."""
    runner = getattr(_local, "runner", None)
    if runner is None:
        runner = _local.runner = GuardedRunner()
        with _registry_lock:
            _all_runners.append(runner)
    return runner.call(fn, *args, timeout=timeout, **kwargs)


def close_guarded_children() -> None:
    """Stop every guarded child this process started (a run's end, in the threads runner)."""
    with _registry_lock:
        runners = list(_all_runners)
    for runner in runners:
        runner.close()


# -- the child's side --------------------------------------------------------------------
def _serve(down: int, up: int, parent: int) -> None:
    import importlib

    from emonets.workers.parent_watch import exit_when_parent_dies

    exit_when_parent_dies(parent)
    while True:
        try:
            op, (module, qualname), args, kwargs = _recv(down)
        except EOFError:
            return
        try:
            fn: Any = importlib.import_module(module)
            for part in qualname.split("."):
                fn = getattr(fn, part)
            reply = ("ok", fn(*args, **kwargs))
        except BaseException as err:  # sent back; the parent re-raises it
            reply = ("error", err)
        try:
            _send(up, reply)
        except Exception:
            text = "".join(traceback.format_exception(reply[1])) if reply[0] == "error" else repr(reply[1])
            _send(up, ("error", RemoteError(text)))


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
