"""Known failures as one line: what the `emonets` command prints instead of a traceback.

Exit codes of every command:

- 0: done.
- 1: the run started and failed for a reason outside its inputs: the disk filled up, another
  I/O error; and for ``predict``, some of the videos could not be labelled (the others are).
- 2: the command was given something it cannot use, found before or during the run: an
  unknown name or option, a missing path, a folder that is not a model bundle, a model file
  refused as unsafe or corrupt, an unreadable CSV, a store in use by another run, a missing
  prerequisite (nothing ingested, no fused model yet).

Either way one line ``error: …`` is printed, and Prefect's own ERROR log of the failed run (with
its traceback) is kept off the console. Any other exception is a bug: it propagates with its
traceback, and Prefect's held-back log records are shown too.
"""

from __future__ import annotations

import csv
import difflib
import errno
import logging
import os
import pickle
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterable, Iterator

RUN_FAILED = 1
USER_ERROR = 2


def fail(message: str, code: int = USER_ERROR):
    """Print ``error: message`` (one line) and end the command with ``code``."""
    import typer

    from cli.console import console, safe

    console.print(f"[bold red]error:[/] {safe(one_line(message))}", soft_wrap=True)
    raise typer.Exit(code)


def choice(value: str, choices: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``choices``; else ValueError naming them (and a close match)."""
    choices = list(choices)
    if value in choices:
        return value
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {what} {value!r}{hint} (choose from {', '.join(choices)})")


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def describe(exc: BaseException, *, csv_file: Path | str | None = None) -> tuple[str, int] | None:
    """(one-line message, exit code) for a known failure; None for anything else (a bug).

    ``csv_file`` names the CSV the command reads, for decoding errors that do not say which file.
    """
    from data_catalog import StoreLockedError

    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            where = e.filename or e.filename2
            return (f"no space left on device ({where})" if where else "no space left on device"), RUN_FAILED
    if isinstance(exc, StoreLockedError):
        return one_line(exc), USER_ERROR
    if isinstance(exc, (UnicodeDecodeError, csv.Error)) or type(exc).__name__ in ("ParserError", "EmptyDataError"):
        where = f"{csv_file}" if csv_file else "a CSV file"
        return f"cannot read {where} as CSV: {one_line(exc)}", USER_ERROR
    if isinstance(exc, pickle.UnpicklingError):
        return f"refused to load a model file: {one_line(exc).split('. ')[0]}", USER_ERROR
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return one_line(exc), USER_ERROR
    if isinstance(exc, OSError):
        where = exc.filename or exc.filename2
        text = exc.strerror or one_line(exc)
        return (f"{text} ({where})" if where else text), RUN_FAILED
    if isinstance(exc, ValueError) or type(exc).__name__ == "RunnerUnavailableError":
        return one_line(exc), USER_ERROR
    return None


class _HeldPrefectErrors(logging.Filter):
    """Holds back Prefect's ERROR records (failed task and flow runs, with tracebacks) from the console.

    The records still reach Prefect's API (the UI shows them); only the console handlers of
    this process are filtered. ``close(show=True)`` prints what was held, ``show=False`` drops it.
    """

    def __init__(self) -> None:
        super().__init__()
        import prefect  # noqa: F401  (configures Prefect's logging: its console handler is on the root logger)

        self.records: list[logging.LogRecord] = []
        self.handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
        for h in self.handlers:
            h.addFilter(self)
        # Task worker processes (the local process pool) log to the console on their own; their
        # failures come back to this process, which reports them (one line for the known ones).
        self._env = os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")
        if self._env is None and not _verbose():
            os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.name.startswith("prefect"):
            self.records.append(record)
            return False
        return True

    def close(self, *, show: bool) -> None:
        if self._env is None:
            os.environ.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)
        for h in self.handlers:
            h.removeFilter(self)
            if show:
                for record in self.records:
                    h.handle(record)
        self.records.clear()


def _verbose() -> bool:
    """The user asked for Prefect's logs (PREFECT_LOGGING_LEVEL=INFO or DEBUG)."""
    return os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING").upper() in ("DEBUG", "INFO")


@contextmanager
def cli_run(*, lock=None, csv_file: Path | str | None = None, flows: bool = True) -> Iterator[None]:
    """The body of a command: known failures become one line and an exit code (see the module doc).

    ``lock`` (a Store) is locked first, before Prefect is imported, so a busy store is refused at
    once; flows started inside take the same lock again (flows.runtime.locking is re-entrant per process).
    ``flows``: the block runs Prefect flows (their console ERROR records are held back).
    """
    import typer

    from flows.runtime.locking import exclusive_store

    try:
        with exclusive_store(lock) if lock is not None else nullcontext():
            held = _HeldPrefectErrors() if flows else None
            try:
                yield
            except typer.Exit:
                if held:
                    held.close(show=True)
                raise
            except Exception as exc:
                if held:
                    held.close(show=describe(exc, csv_file=csv_file) is None)
                raise
            except BaseException:
                if held:
                    held.close(show=True)
                raise
            else:
                if held:
                    held.close(show=True)
    except typer.Exit:
        raise
    except Exception as exc:
        known = describe(exc, csv_file=csv_file)
        if known is None:
            raise
        fail(*known)
