"""Shared fixtures: the real shared data (by path, never copied), a fresh store per test, and
small media files the tests generate themselves."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Prefect: a private home per test session, quiet logs, no telemetry.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="emonets-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def pytest_collection_finish(session):
    """Tests that extract MFCC in this process get the JIT warm-up a pipeline run does first.

    numba caches into the project's folder (emonets.features.jit_cache), the one users get, shared by
    every test session on this machine: compiling it once under the warm-up's lock keeps two
    sessions from compiling (and corrupting) it at once, and repairs it if it is corrupt.
    """
    if "emonets.features.mfcc" in sys.modules and session.items:
        from emonets.features.jit_cache import warm_up

        warm_up()


REQUIRE_SHARED_DATA = "EMONETS_REQUIRE_SHARED_DATA"  # "1" (CI sets it): missing shared data fails


def shared_path(*parts: str) -> Path:
    """A path under the shared data; if it is absent the test is skipped with the reason, or fails
    with it where ``EMONETS_REQUIRE_SHARED_DATA=1`` (CI sets it), so a missing mount cannot turn
    the shared-data tests into silent skips."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"shared data not found at {path} (set EMONETS_SHARED_DATA)"
        if os.environ.get(REQUIRE_SHARED_DATA) == "1":
            pytest.fail(f"{reason}; {REQUIRE_SHARED_DATA}=1 requires it", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture
def store(tmp_path):
    from data_catalog import Store

    return Store(tmp_path / "store")


@pytest.fixture
def make_clip(tmp_path):
    """Write a short synthetic mp4 (moving gradient, optional tone) and return its path."""
    from emonets.media.writer import write_video

    def _make(name: str = "clip.mp4", *, seconds: float = 1.0, fps: int = 25, size=(64, 80),
              audio: bool = True, folder: Path | None = None) -> Path:
        h, w = size
        n = max(1, int(round(seconds * fps)))
        yy, xx = np.mgrid[0:h, 0:w]
        frames = (np.stack([(xx + 3 * i) % 256, yy % 256, np.full_like(xx, 128)], -1).astype(np.uint8)
                  for i in range(n))
        sr = 16000
        tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32) if audio else None
        target = (folder or tmp_path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_video(target, frames, fps=fps, audio=tone, sr=sr)

    return _make


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API for every flow test of the session (Prefect's test harness)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
