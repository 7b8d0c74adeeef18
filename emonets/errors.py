"""Errors that mark one clip as unusable for one stage (recorded in `problems`, run goes on),
and the one error that stops a run: the disk is full."""

from __future__ import annotations

import errno
import os
import re
from typing import Iterable


class ClipError(Exception):
    """A per-clip problem: the clip is skipped by the stage, the run continues."""


class MediaError(ClipError):
    """A file that cannot be opened or decoded as media (missing, empty, truncated, not media)."""


class NoAudioError(ClipError):
    """A clip without an audio stream."""


class NoVideoError(ClipError):
    """A file without a video stream where frames were needed."""


_ERRNO_28 = re.compile(r"\[Errno 28\][^:']*(?::\s*'([^']*)')?")


def disk_full_in(messages: Iterable[str]) -> OSError | None:
    """The disk-full error among the failures of a run's tasks (as their messages say it), if any."""
    for text in messages:
        hit = _ERRNO_28.search(str(text))
        if hit:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), hit.group(1))
    return None


def raise_if_disk_full(messages: Iterable[str]) -> None:
    """Stop a run whose tasks failed for want of space (carrying on would only fail again, less clearly)."""
    err = disk_full_in(messages)
    if err is not None:
        raise err
