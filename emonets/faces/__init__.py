"""Faces: detection and tracking of the main face, landmarks, alignment to FER-2013's framing."""

from emonets.faces.pipeline import FaceConfig, FaceResult, extract_faces, face_array, faces_from_images

__all__ = ["FaceConfig", "FaceResult", "extract_faces", "face_array", "faces_from_images"]
