"""Composed clips: FER-2013 faces and RAVDESS voices combined into labelled videos, with their splits and licences."""
