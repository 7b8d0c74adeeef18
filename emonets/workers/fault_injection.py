"""A test-only way to crash one chosen extraction unit, as a native fault would.

Set ``EMONETS_TEST_CRASH`` to ``STAGE:KEY[:HOW[:TIMES]]``: the process running that unit
kills itself with ``HOW`` (a signal name such as ``SIGSEGV`` or ``SIGKILL``, or ``exit:N`` for
``os._exit(N)``; default ``SIGSEGV``), or with ``HOW`` = ``enospc`` raises the disk-full error. With ``TIMES`` it crashes only that many times, counted
by marker files in ``EMONETS_TEST_CRASH_DIR``, so a test can show the retry in a fresh
process succeeding. Unset (as for every user) it does nothing.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

ENV = "EMONETS_TEST_CRASH"
COUNTER_ENV = "EMONETS_TEST_CRASH_DIR"


def maybe_crash(stage: str, key: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    parts = spec.split(":")
    if parts[:2] != [stage, key]:
        return
    how = parts[2] if len(parts) > 2 and parts[2] else "SIGSEGV"
    rest = parts[3:]
    if how == "exit":
        code, rest = int(rest[0]), rest[1:]
    if rest:
        counter = Path(os.environ[COUNTER_ENV])
        counter.mkdir(parents=True, exist_ok=True)
        done = len(list(counter.glob(f"{stage}-{key}-*")))
        if done >= int(rest[0]):
            return
        (counter / f"{stage}-{key}-{done}").touch()
    if how == "exit":
        os._exit(code)
    if how == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"<store>/{stage}/{key}")
    os.kill(os.getpid(), getattr(signal, how))
