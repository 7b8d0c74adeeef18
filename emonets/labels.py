"""The seven EmoNets classes and the mapping of every dataset's label spelling onto them."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in EMOTIONS)

# Spellings met in AFEW, RAVDESS, CREMA-D, FER-2013 and hand-made manifests.
_ALIASES: dict[str, str] = {
    "anger": "angry", "ang": "angry", "mad": "angry",
    "disgusted": "disgust", "dis": "disgust",
    "fearful": "fear", "afraid": "fear", "fea": "fear", "scared": "fear",
    "happiness": "happy", "hap": "happy", "joy": "happy",
    "neu": "neutral",
    "sadness": "sad",
    "surprised": "surprise", "sur": "surprise", "su": "surprise",
}


class UnknownLabelError(ValueError):
    """A label that maps onto none of the seven classes."""


def normalise_label(raw: str) -> str:
    """Return the canonical class name for a dataset's spelling, or raise UnknownLabelError."""
    key = str(raw).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LABEL_INDEX:
        raise UnknownLabelError(f"unknown label {raw!r}; expected one of {', '.join(EMOTIONS)}")
    return key
