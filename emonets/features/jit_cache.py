"""The project's own numba JIT cache: where it lives, compiling it once, recovering when corrupt.

Why this exists: librosa compiles its numba kernels with ``cache=True``. Left alone, numba
writes that cache into ``site-packages/librosa/**/__pycache__`` and two processes compiling the
same ``@guvectorize`` function at once can leave a kernel (``pitch._pi_wrapper-*.nbc``) and its
ufunc wrapper (``guf-pitch._pi_wrapper-*.nbc``) from *different* compilations, whose internal
symbol names differ (numba issue #10128). Every later process loads that pair and segfaults in
``librosa.yin`` (``_parabolic_interpolation``), for good. So:

* :func:`cache_dir` / :func:`configure` put numba's cache in a folder the project owns, outside
  site-packages, one per set of library versions (an upgrade never reads an old cache).
  ``emonets/__init__.py`` calls :func:`configure` first thing, so every process that imports
  emonets (the CLI, pool and Dask workers, guarded children, tests) uses the same cache.
* :func:`warm_up` compiles every JIT path of the MFCC extraction once, in a child process and
  under a file lock, before any worker starts: workers then only read the cache, and two runs
  on one machine never compile the same function at once (the cause of the corruption).
* A corrupt cache crashes the child, not the run: :func:`warm_up` sees the signal or error,
  deletes the cache files (``*.nbi``/``*.nbc`` in that folder only), warns, and compiles again.

Once ``NUMBA_CACHE_DIR`` is set, numba's ``UserProvidedCacheLocator`` comes first and numba never
reads (or writes) the stale in-tree caches under site-packages; nothing there is ever deleted.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "EMONETS_JIT_CACHE"
_LOCK_NAME = ".emonets-jit.lock"
_WARM_NAME = ".emonets-jit.warm"  # written after a warm-up that passed, removed by clear()
# The only files clear() deletes: numba's index and data files and its half-written temporaries
# ("<file>.nbi.tmp.<uid>"). Never a whole folder: NUMBA_CACHE_DIR may point anywhere.
_CACHE_SUFFIXES = (".nbi", ".nbc")


class JitCacheError(RuntimeError):
    """The JIT warm-up failed even on a freshly cleared cache (not a cache problem then)."""


class JitCacheWarning(RuntimeWarning):
    """The JIT cache was found corrupt and has been rebuilt."""


@dataclass(frozen=True)
class WarmUp:
    """What :func:`warm_up` did: ``rebuilt`` is True when the cache was corrupt and rebuilt,
    ``reason`` then says how the first attempt failed (e.g. ``killed by SIGSEGV``)."""

    cache_dir: Path
    seconds: float
    rebuilt: bool = False
    reason: str | None = None


# -- where --------------------------------------------------------------------------------------
def _version(dist: str) -> str:
    """The installed version of ``dist`` without importing it (dist-info beside the package;
    importlib.metadata as the fallback, ~40 ms to import, so not on the common path)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(dist)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        try:
            for entry in os.listdir(site):
                if entry.startswith(dist + "-") and entry.endswith(".dist-info"):
                    return entry[len(dist) + 1: -len(".dist-info")]
        except OSError:
            pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version(dist)
    except PackageNotFoundError:
        return "none"


def cache_key() -> str:
    """The versions a numba cache is valid for, e.g. ``py3.11-numba0.61.2-librosa0.11.0-numpy2.4.1``."""
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return "-".join([py] + [f"{d}{_version(d)}" for d in ("numba", "librosa", "numpy")])


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/emonets/numba/<cache_key()>`` (``~/.cache`` without XDG_CACHE_HOME)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "emonets" / "numba" / cache_key()


def cache_dir() -> Path:
    """Where numba caches: ``$EMONETS_JIT_CACHE`` if set, else a ``NUMBA_CACHE_DIR`` the user set
    themselves (respected as is: then they own the versioning), else :func:`default_cache_dir`.

    Processes started by an emonets process inherit the ``NUMBA_CACHE_DIR`` that
    :func:`configure` set, so they resolve to the same folder without recomputing the key.
    """
    for var in (ENV_VAR, "NUMBA_CACHE_DIR"):
        value = os.environ.get(var, "")
        if value:
            return Path(value).expanduser().absolute()
    return default_cache_dir()


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def configure() -> Path:
    """Point numba at :func:`cache_dir` (created) and return it. Cheap: imports neither numba nor
    librosa (about a millisecond).

    Must run before numba is imported: numba reads ``NUMBA_CACHE_DIR`` into
    ``numba.config.CACHE_DIR`` at import, and each ``cache=True`` function picks its cache
    folder when it is decorated, i.e. when librosa's modules load. If numba is already imported
    ``numba.config.CACHE_DIR`` is set too, which covers functions decorated from then on; ones
    decorated before keep the folder they chose. If the folder cannot be created (read-only
    home), a per-user folder under the temporary directory is used instead: numba would
    otherwise fall back to the in-tree caches in site-packages.
    """
    folder = cache_dir()
    if not _writable(folder):
        import tempfile

        uid = os.getuid() if hasattr(os, "getuid") else "user"
        fallback = Path(tempfile.gettempdir()) / f"emonets-numba-{uid}" / cache_key()
        if _writable(fallback):  # else keep the first choice: importing emonets never raises
            folder = fallback
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.config.CACHE_DIR = str(folder)
    return folder


def cache_files(folder: Path | None = None) -> list[Path]:
    """numba's cache files (index ``*.nbi`` and data ``*.nbc``) under ``folder``."""
    root = Path(folder) if folder is not None else cache_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and _is_cache_file(p.name))


def _is_cache_file(name: str) -> bool:
    return name.endswith(_CACHE_SUFFIXES) or any(f"{s}.tmp." in name for s in _CACHE_SUFFIXES)


def clear(folder: Path | None = None) -> int:
    """Delete numba's cache files under ``folder`` (then its emptied subfolders); return how many
    files. Deletes nothing else, so it is safe whatever ``NUMBA_CACHE_DIR`` points at."""
    root = Path(folder) if folder is not None else cache_dir()
    (root / _WARM_NAME).unlink(missing_ok=True)
    n = 0
    for path in cache_files(root):
        try:
            path.unlink()
            n += 1
        except FileNotFoundError:
            pass
    for sub in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()  # only succeeds when empty
        except OSError:
            pass
    return n


# -- compile once ---------------------------------------------------------------------------------
# Run in a fresh interpreter: the real extraction (every extra, deltas, a resample) on a short
# tone, so each numba function the pipeline uses is compiled and cached (or loaded from the
# cache). The pitch of the tone is checked too: a cache that loads but computes garbage fails.
_CHILD = r"""
import sys
sys.path.insert(0, {root!r})
import numpy as np
from emonets.features.mfcc import EXTRAS, MfccConfig, mfcc_frames, speed_perturb
sr, hz = 16000, 220.0
t = np.arange(sr // 2) / sr
y = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
config = MfccConfig(extras=EXTRAS)
feats = mfcc_frames(y, sr=sr, config=config)
mfcc_frames(speed_perturb(y, factor=1.1, sr=sr), sr=22050, config=config)
pitch = feats[5:-5, config.n_mfcc + 1]  # static columns: mfcc, energy, pitch, ...
if not np.all(np.isfinite(feats)) or abs(np.median(pitch) - np.log2(hz / 100)) > 0.05:
    sys.exit("JIT warm-up: wrong features (median pitch %.3f)" % np.median(pitch))
"""


@contextlib.contextmanager
def _lock(folder: Path):
    """An exclusive fcntl lock on a file in the cache folder (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(folder / _LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _describe(returncode: int) -> str:
    import signal

    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _compile_in_child(folder: Path, timeout: float) -> str | None:
    """Run the extraction in a child using ``folder`` as the cache; None, or why it failed."""
    import subprocess

    env = dict(os.environ, NUMBA_CACHE_DIR=str(folder), **{ENV_VAR: str(folder)})
    code = _CHILD.format(root=str(Path(__file__).resolve().parents[2]))  # the folder holding emonets/
    try:
        done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:g} s"
    if done.returncode == 0:
        return None
    return _describe(done.returncode) + _where(done.stderr or "", crashed=done.returncode < 0)


def _where(stderr: str, *, crashed: bool) -> str:
    """': <last line of the traceback>' for an error; for a crash, the innermost frame of the
    faulthandler dump outside numba, e.g. ' in _parabolic_interpolation (librosa/core/pitch.py:467)'."""
    import re

    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if crashed:
        frames = [m.groups() for m in map(re.compile(r'File "(.+)", line (\d+) in (\S+)').search, lines) if m]
        for path, line, func in frames:
            if f"{os.sep}numba{os.sep}" not in path:
                return f" in {func} ({'/'.join(Path(path).parts[-3:])}:{line})"
        return ""
    return f": {lines[-1]}" if lines else ""


def warm_up(*, timeout: float = 600.0) -> WarmUp:
    """Compile (or load) every JIT function the MFCC extraction uses, before workers start.

    Runs the real extraction in a child process, since a corrupt cache segfaults the process
    that loads it and a segfault cannot be caught in-process. If the child fails in any way
    (signal, exception, wrong features, ``timeout`` seconds), the cache files are deleted, a
    :class:`JitCacheWarning` names the folder and the failure, and the child runs again on the
    empty cache; a second failure raises :class:`JitCacheError`. All under an exclusive lock in
    the cache folder, so concurrent runs on one machine compile one at a time (the second then
    finds a warm cache). Warm, this costs one interpreter start-up plus loading the cached
    functions (a few seconds); cold, the compilation (~25 s on one core).
    """
    import warnings

    folder = configure()
    start = time.monotonic()
    with _lock(folder):
        reason = _compile_in_child(folder, timeout)
        if reason is None:
            _mark_warm(folder)
            return WarmUp(cache_dir=folder, seconds=time.monotonic() - start)
        removed = clear(folder)
        warnings.warn(f"numba JIT cache at {folder} is corrupt (warm-up {reason}); deleted its "
                      f"{removed} cache files and compiling again", JitCacheWarning, stacklevel=2)
        again = _compile_in_child(folder, timeout)
        if again is not None:
            raise JitCacheError(f"JIT warm-up failed on a freshly cleared cache at {folder}: {again} "
                                f"(first attempt: {reason})")
        _mark_warm(folder)
    return WarmUp(cache_dir=folder, seconds=time.monotonic() - start, rebuilt=True, reason=reason)


def _mark_warm(folder: Path) -> None:
    (folder / _WARM_NAME).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))


def is_warm(folder: Path | None = None) -> bool:
    """True once a warm-up passed on this cache (and nothing cleared it since)."""
    return (Path(folder) if folder is not None else cache_dir()).joinpath(_WARM_NAME).is_file()


def ensure_warm(*, timeout: float = 600.0) -> WarmUp | None:
    """:func:`warm_up` unless a warm-up already passed on this cache (then nothing: no child).

    For interactive commands, where the seconds of a warm-up on every call would be most of
    the work; a cache corrupted since then crashes the unit's guarded child, and the caller
    then runs :func:`warm_up` (which repairs it) and retries.
    """
    return None if is_warm(configure()) else warm_up(timeout=timeout)


def prepare_workers(*, force: bool) -> None:
    """The mfcc stage's set-up before its units run: a warm-up (``force``: always, as a batch
    run and a crash repair want; else only when none passed yet, as interactive commands want)."""
    if force:
        warm_up()
    else:
        ensure_warm()
