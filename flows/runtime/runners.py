"""Task runners by name: local processes (both cores) or Dask (a LocalCluster or an address)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlparse

RUNNERS = ("local", "threads", "dask")
# Interactive commands also take "inline": the library in this process (guarded children do the
# work), no Prefect; "auto" picks it unless a Prefect API is configured (then runs are recorded).
INTERACTIVE_RUNNERS = ("auto", "inline", *RUNNERS)


def prefect_api_configured() -> bool:
    """Whether a Prefect API is configured (PREFECT_API_URL in the environment or in the active
    profile), read without importing Prefect (which costs seconds)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    import tomllib
    from pathlib import Path

    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(profiles.read_text())
    except (OSError, ValueError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    settings = (data.get("profiles") or {}).get(active) or {}
    return bool(settings.get("PREFECT_API_URL"))


def interactive_runner(runner: str) -> str:
    """``auto`` -> ``inline`` when no Prefect API is configured, else ``threads`` (recorded runs)."""
    if runner != "auto":
        return runner
    return "threads" if prefect_api_configured() else "inline"


class RunnerUnavailableError(RuntimeError):
    """The requested task runner cannot be used (e.g. no Dask scheduler at that address)."""


def check_dask_address(address: str, *, timeout: float = 3.0) -> None:
    """Fail fast, with the address in the message, when no scheduler answers there."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise RunnerUnavailableError(f"Dask address {address!r} is not of the form tcp://HOST:PORT")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
            pass
    except OSError as err:
        raise RunnerUnavailableError(f"cannot reach a Dask scheduler at {address}: {err}") from None


def make_task_runner(runner: str = "local", *, dask_address: str | None = None, workers: int | None = None):
    """A Prefect task runner: ``local`` = process pool, ``threads``, or ``dask``."""
    workers = workers or max(1, min(os.cpu_count() or 1, 4))
    if runner == "local":
        from prefect.task_runners import ProcessPoolTaskRunner

        from emonets.workers.parent_watch import exit_when_parent_dies

        # Workers exit when this process dies (kill -9), instead of writing on unlocked.
        return ProcessPoolTaskRunner(max_workers=workers, initializer=exit_when_parent_dies)
    if runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            check_dask_address(dask_address)
            return DaskTaskRunner(address=dask_address)
        # processes=False: worker processes would each start their own temporary Prefect server.
        return DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": workers, "processes": False})
    raise RunnerUnavailableError(f"unknown task runner {runner!r}; choose one of {', '.join(RUNNERS)}")


@contextmanager
def shared_ephemeral_api() -> Iterator[None]:
    """Point task worker processes at this process's temporary Prefect API.

    Without a configured PREFECT_API_URL each process-pool worker would start a temporary
    Prefect server of its own (~220 MB and seconds of start-up each). When this process runs
    one, its URL is exported for the duration of the block, so workers inherit it.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    running = [s for s in SubprocessASGIServer._instances.values() if getattr(s, "running", False)]
    if not running:
        yield
        return
    os.environ["PREFECT_API_URL"] = running[0].api_url
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
