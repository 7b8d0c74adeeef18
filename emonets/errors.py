"""Errors that mark one clip as unusable for one stage (recorded in `problems`, run goes on)."""


class ClipError(Exception):
    """A per-clip problem: the clip is skipped by the stage, the run continues."""


class MediaError(ClipError):
    """A file that cannot be opened or decoded as media (missing, empty, truncated, not media)."""


class NoAudioError(ClipError):
    """A clip without an audio stream."""


class NoVideoError(ClipError):
    """A file without a video stream where frames were needed."""
