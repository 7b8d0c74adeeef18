"""The project-owned numba JIT cache (emonets.features.jit_cache): where it is, warm-up, recovery.

The corruption users hit: two processes compiling librosa's ``@guvectorize`` kernels at once can
leave a kernel (``pitch._pi_wrapper-*.nbc``) and its ufunc wrapper (``guf-pitch._pi_wrapper-*``)
from different compilations; every later extraction then segfaults in ``librosa.yin``. The
tests build that exact state (and byte-level garbage) in a private cache folder and check that
:func:`warm_up` detects it, rebuilds, warns, and that a fresh process then extracts.
Nothing here sets a private ``NUMBA_CACHE_DIR`` for the suite: it runs on the cache users get.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import pytest

from emonets.features import jit_cache
from emonets.features.jit_cache import JitCacheError, JitCacheWarning, cache_files, warm_up

# The real extraction of one clip (a wav file, decoded like every clip) with the audio
# specialist's features, pitch (librosa.yin) included; faulthandler names where it crashed.
_EXTRACT = r"""
import sys
import numpy as np, soundfile as sf
from emonets.features.mfcc import MfccConfig, extract_mfcc
sr = 16000
sf.write(sys.argv[1], (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32), sr)
rows = extract_mfcc(sys.argv[1], clip_id="clip", config=MfccConfig())
assert len(rows) > 0 and np.isfinite(np.stack(rows["coeffs"])).all()
print(len(rows))
"""


def _env(**extra: str) -> dict[str, str]:
    """This environment without any cache setting: what a user's fresh shell has."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", jit_cache.ENV_VAR)}
    env.update(extra)
    return env


def _extract(folder: Path, wav: Path) -> subprocess.CompletedProcess:
    """Extract one clip in a fresh process whose JIT cache is ``folder``."""
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", _EXTRACT, str(wav)],
                          env=_env(**{jit_cache.ENV_VAR: str(folder)}), capture_output=True, text=True,
                          timeout=600)


def _use(mp: pytest.MonkeyPatch, folder: Path) -> None:
    """Point this process at ``folder`` for one test; everything warm_up changes is restored."""
    mp.setenv(jit_cache.ENV_VAR, str(folder))
    mp.setenv("NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR", ""))
    numba = sys.modules.get("numba")
    if numba is not None:
        mp.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in cache_files(folder)}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A cache folder warmed up from empty (the cold compile), copied by each test that garbles."""
    folder = tmp_path_factory.mktemp("jit") / "pristine"
    with pytest.MonkeyPatch.context() as mp:
        _use(mp, folder)
        with warnings.catch_warnings():
            warnings.simplefilter("error", JitCacheWarning)
            result = warm_up()
    assert result.cache_dir == folder and not result.rebuilt and result.reason is None
    names = {p.name for p in cache_files(folder)}
    assert any(n.startswith("pitch._pi_wrapper") and n.endswith(".nbc") for n in names), names
    assert any(n.startswith("guf-pitch._pi_wrapper") and n.endswith(".nbc") for n in names), names
    print(f"cold warm-up: {result.seconds:.1f} s, {len(names)} cache files")
    return folder


@pytest.fixture
def cache(pristine, tmp_path, monkeypatch) -> Path:
    """A private copy of the warm cache, in use by this process for the test."""
    folder = tmp_path / "cache"
    shutil.copytree(pristine, folder)
    _use(monkeypatch, folder)
    return folder


# -- where the cache is ---------------------------------------------------------------------------
def _resolved(env: dict[str, str]) -> dict:
    code = ("import json, os, emonets, numba; from emonets.features import jit_cache; "
            "print(json.dumps(dict(env=os.environ['NUMBA_CACHE_DIR'], numba=numba.config.CACHE_DIR, "
            "key=jit_cache.cache_key())))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_process_importing_emonets_uses_the_versioned_project_cache(tmp_path):
    import librosa
    import numba
    import numpy

    key = (f"py{sys.version_info.major}.{sys.version_info.minor}-numba{numba.__version__}"
           f"-librosa{librosa.__version__}-numpy{numpy.__version__}")
    site_packages = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    site_packages.add(Path(librosa.__file__).resolve().parents[1])

    home = _env()
    home.pop("XDG_CACHE_HOME", None)
    for env, expected in ((home, Path.home() / ".cache" / "emonets" / "numba" / key),
                          (_env(XDG_CACHE_HOME=str(tmp_path / "xdg")), tmp_path / "xdg" / "emonets" / "numba" / key)):
        got = _resolved(env)
        assert got["key"] == key
        assert got["env"] == got["numba"] == str(expected)  # numba itself reads the project folder
        assert expected.is_dir()
        assert not any(expected.resolve().is_relative_to(site) for site in site_packages)


def test_project_setting_wins_and_a_users_own_numba_cache_dir_is_respected(tmp_path):
    mine = tmp_path / "mine"
    assert _resolved(_env(NUMBA_CACHE_DIR=str(mine)))["numba"] == str(mine)
    ours = tmp_path / "ours"
    got = _resolved(_env(NUMBA_CACHE_DIR=str(mine), **{jit_cache.ENV_VAR: str(ours)}))
    assert got["env"] == got["numba"] == str(ours) and ours.is_dir()


def test_clear_deletes_only_numba_cache_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("sub/f-1.py311.nbi", "sub/f-1.py311.1.nbc", "f-2.py311.nbi.tmp.0123abcd"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("keep")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.bin").write_bytes(b"keep")
    assert jit_cache.clear(tmp_path) == 3
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["notes.txt", "other", "other/data.bin"]


def test_a_failure_that_a_fresh_cache_does_not_cure_raises(tmp_path, monkeypatch):
    _use(monkeypatch, tmp_path / "cache")
    monkeypatch.setattr(jit_cache, "_CHILD", "import sys; sys.exit('JIT warm-up: broken install')")
    with pytest.warns(JitCacheWarning), pytest.raises(JitCacheError, match="broken install"):
        warm_up(timeout=120)


# -- warm-up and recovery -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_warm_cache_is_not_rebuilt_and_workers_only_read_it(cache, tmp_path):
    before = _snapshot(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error", JitCacheWarning)
        result = warm_up()
    assert not result.rebuilt and result.reason is None
    print(f"warm warm-up: {result.seconds:.1f} s")
    done = _extract(cache, tmp_path / "clip.wav")
    assert done.returncode == 0, done.stderr
    assert _snapshot(cache) == before  # nothing compiled or written after the warm-up


def _mix_kernel_and_wrapper(cache: Path, scratch: Path) -> None:
    """What two processes compiling at once leave: the yin kernel's ufunc wrapper taken from a
    second compilation (made in a process that found every other function cached, so its
    internal symbol names differ) beside the kernel of the first."""
    shutil.copytree(cache, scratch)
    for path in scratch.rglob("*pitch._pi_wrapper*"):
        path.unlink()
    done = _extract(scratch, scratch / "clip.wav")
    assert done.returncode == 0, done.stderr
    wrappers = list(scratch.rglob("guf-pitch._pi_wrapper*.nb*"))
    assert wrappers
    for path in wrappers:
        shutil.copy(path, cache / path.relative_to(scratch))


@pytest.mark.slow
def test_a_kernel_and_wrapper_from_two_compilations_segfault_and_warm_up_recovers(cache, tmp_path):
    _mix_kernel_and_wrapper(cache, tmp_path / "second-compile")
    crashed = _extract(cache, tmp_path / "clip.wav")
    # The reported fault: every extraction dies by SIGSEGV in librosa.yin.
    assert crashed.returncode == -signal.SIGSEGV, (crashed.returncode, crashed.stderr[-2000:])
    assert "_parabolic_interpolation" in crashed.stderr

    with pytest.warns(JitCacheWarning, match=rf"{cache}.*SIGSEGV"):
        result = warm_up()
    assert result.rebuilt and "SIGSEGV" in result.reason and "_parabolic_interpolation" in result.reason
    done = _extract(cache, tmp_path / "clip.wav")
    assert done.returncode == 0, done.stderr
    assert not warm_up().rebuilt


def _garble(cache: Path, how: str) -> None:
    for path in cache_files(cache):
        data = path.read_bytes()
        path.write_bytes(os.urandom(len(data)) if how == "random" else data[: len(data) // 2])


@pytest.mark.slow
@pytest.mark.parametrize("how", ["random", "truncate"])
def test_garbled_cache_files_are_detected_cleared_and_rebuilt(cache, tmp_path, how):
    _garble(cache, how)
    broken = _extract(cache, tmp_path / "clip.wav")
    # numba does not shrug it off: unpickling the garbage raises (UnpicklingError, EOFError, ...)
    assert broken.returncode != 0, broken.stdout

    with pytest.warns(JitCacheWarning, match=str(cache)):
        result = warm_up()
    assert result.rebuilt and result.reason.startswith(("exited with code", "killed by"))
    done = _extract(cache, tmp_path / "clip.wav")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_concurrent_warm_ups_wait_for_each_other(cache):
    import fcntl

    code = "from emonets.features import jit_cache; r = jit_cache.warm_up(); print(r.rebuilt)"
    with open(cache / jit_cache._LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run is compiling
        other = subprocess.Popen([sys.executable, "-c", code], env=_env(**{jit_cache.ENV_VAR: str(cache)}),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)  # longer than a warm warm-up takes
        assert other.poll() is None
        fcntl.flock(lock, fcntl.LOCK_UN)
    out, err = other.communicate(timeout=300)
    assert other.returncode == 0, err
    assert out.strip() == "False"


# -- the interactive commands: no warm-up child on every call -------------------------------------
def test_ensure_warm_starts_no_child_once_a_warm_up_passed(cache, monkeypatch):
    assert jit_cache.is_warm(cache)  # the pristine warm-up left its mark
    monkeypatch.setattr(jit_cache, "_compile_in_child", lambda *a: pytest.fail("a warm-up child started"))
    assert jit_cache.ensure_warm() is None
    jit_cache.clear(cache)
    assert not jit_cache.is_warm(cache)


@pytest.mark.slow
def test_a_cache_corrupted_after_its_warm_up_is_repaired_by_the_fast_path(cache, tmp_path, make_clip):
    """`emonets predict` skips the warm-up once one passed; if the cache is corrupted since, the
    MFCC unit's child segfaults, and the fast path warms up (repairs) and runs the unit again."""
    from data_catalog import Store
    from emonets.features.local import extract_clips
    from emonets.ingest_store import ingest_into_store

    _mix_kernel_and_wrapper(cache, tmp_path / "second-compile")
    assert jit_cache.is_warm(cache)  # corrupt, yet marked warm: nothing but a crash can tell
    video = make_clip("speech.mp4", seconds=1.0, folder=tmp_path / "media")
    store = Store(tmp_path / "store")
    clips = store.read("clips", partitions=[ingest_into_store(str(video.parent), str(store.root), "videos")["partition"]])
    with pytest.warns(JitCacheWarning, match="SIGSEGV"):
        summary = extract_clips(store, clips, ["mfcc"])
    assert summary["failed"] == 0 and summary["computed"] == 1, summary
    assert len(store.read("mfcc")) > 0 and store.read("problems").empty
    done = _extract(cache, tmp_path / "clip.wav")
    assert done.returncode == 0, done.stderr
