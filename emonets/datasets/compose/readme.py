"""The words a composed tree carries: the split policy, README.txt and the sources' licences.

Text only, so the licence terms and their wording are easy to find and review.
"""

from __future__ import annotations

from emonets.datasets.compose.plan import ComposeConfig

LICENCES = {
    "fer2013": "FER-2013 (ICML 2013 representation-learning challenge, Kaggle): released for research use.",
    "ravdess": "RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391): CC BY-NC-SA 4.0 — "
               "derived clips are non-commercial and shared alike, with attribution.",
}


def split_policy(split: str, config: ComposeConfig) -> dict[str, str]:
    """Which sources each split draws on, in words (``split_policy`` in ``compose.json``)."""
    if split != "all":
        return {split: "every clip; faces from all FER-2013 folders (held-out val/test faces first), "
                       "voices from every RAVDESS actor"}
    a = config

    def actors(r):
        return f"RAVDESS actors {r[0]:02d}-{r[1]:02d}"

    return {"train": f"FER-2013 train faces + {actors(a.train_actors)}",
            "val": f"FER-2013 val (PublicTest) faces not used by test + {actors(a.val_actors)}",
            "test": f"FER-2013 val (PublicTest) faces + {actors(a.test_actors)}"}


def readme_text(m: dict) -> str:
    """README.txt of a composed tree, from its manifest ``m``."""
    cfg = m["config"]
    lines = [
        "EmoNets COMPOSED audio-video benchmark (not AFEW, not recorded video)",
        "",
        "Each clip shows one real FER-2013 face photo (48x48 grey, upscaled bicubic to "
        f"{cfg['face_px']} px) on a neutral grey background, moving slightly (shift <= {cfg['max_shift']} px, "
        f"scale +-{cfg['max_scale']:.0%}, rotation <= {cfg['max_rotation']} deg), while one real RAVDESS "
        "utterance of the same emotion plays. Report results on it as 'composed'.",
        "",
        f"Written by emonets.datasets.compose.dataset.compose_dataset (seed {m['seed']}, split mode {m['split_mode']}, "
        f"per class {m['per_class'] or 'all'}); every clip's sources are listed in compose.json.",
        *([f"VOICES REUSED: each utterance voices up to {m['reuse_speech']} clips of its split (with different "
           "faces), for scale measurements; such clips share their audio."] if m.get("reuse_speech", 1) > 1 else []),
        f"Layout: <Train|Val|Test>/<Emotion>/<clip>.mp4, H.264 + AAC, {cfg['width']}x{cfg['height']} at "
        f"{cfg['fps']} fps, audio {cfg['sr']} Hz mono; clip length = utterance length.",
        "",
        "Splits (no face and no voice is in two splits):",
        *(f"  {s}: {text}" for s, text in m["split_policy"].items()),
        "",
        "Classes: " + ", ".join(m["classes"]),
        *(f"Dropped: {c} ({why})" for c, why in m["dropped_classes"].items()),
        "",
        "Licences of the sources (they carry over to these clips):",
        *(f"  - {text}" for text in m["licences"].values()),
        "Do not redistribute commercially; keep this file with the clips.",
    ]
    return "\n".join(lines) + "\n"
