"""Faces: detection and tracking of the main face, landmarks, alignment to FER-2013's framing.

The names below load on first use (PEP 562), so ``emonets.features.faces.config`` or ``.align`` can be
imported without the detector and tracker behind ``extract_faces``.
"""

from emonets.features.faces.config import FaceConfig

__all__ = ["FaceConfig", "FaceResult", "extract_faces", "faces_from_images"]


def __getattr__(name: str):
    if name in __all__:
        from emonets.features.faces import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
