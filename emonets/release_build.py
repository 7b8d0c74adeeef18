"""Turning a trained store into the release that ships with the code (scripts/build_release.py,
`make release`): which specialists the fused model keeps, weights halved where the figures do
not move, the model card's figures, SHA256SUMS.

Every choice here follows a rule fixed before the figures it decides on are seen:

- motion (at chance on composed clips) stays in the fusion only when the fusion with it scores
  more than one standard error above the fusion without it, in the repeated 5-fold CV on val that
  picks the fusion method (emonets.fusion.model.choose_method): val only, never test;
- float16 weights are kept only when every figure (fused and per specialist, accuracy and
  macro-F1, val and test, to 3 decimals) equals the float32 bundle's; else float32 ships.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from data_catalog import Store

MOTION_RULE = ("motion is kept only when the fusion with it scores more than one standard error above the fusion "
               "without it in the repeated 5-fold CV on val that picks the fusion method")
HALF_RULE = ("float16 weights ship only when every figure (fused and per specialist; accuracy and macro-F1; val and "
             "test; 3 decimals) equals the float32 bundle's")


def fusion_cv(store: Store, specialists: list[str], clip_partitions: list[str]) -> dict:
    """The fusion method the fitting split (val) picks for these specialists, its CV accuracy and
    standard error: what fit_fusion would choose, without fitting every method."""
    from emonets.fusion.model import choose_method, fusion_arrays

    clips = store.read("clips", partitions=clip_partitions)
    predictions = store.read("predictions", partitions=specialists)
    predictions = predictions[predictions["clip_id"].isin(set(clips["clip_id"]))]
    _, P, M, y, split, fit_split = fusion_arrays(predictions, clips, specialists)
    rows = (split == fit_split) & (y >= 0)
    method, cv = choose_method(P[rows], M[rows], y[rows])
    accuracy = cv.get(method, 0.0)
    return {"specialists": list(specialists), "method": method, "cv_accuracy": accuracy, "n": int(rows.sum()),
            "standard_error": float(np.sqrt(accuracy * (1 - accuracy) / max(1, int(rows.sum()))))}


def motion_decision(store: Store, specialists: list[str], clip_partitions: list[str]) -> dict:
    """Whether motion earns its place in the fusion (MOTION_RULE), with both CV figures."""
    if "motion" not in specialists:
        return {"keep": False, "rule": MOTION_RULE, "note": "motion was not trained"}
    with_motion = fusion_cv(store, specialists, clip_partitions)
    without = fusion_cv(store, [s for s in specialists if s != "motion"], clip_partitions)
    return {"keep": earns_its_place(with_motion, without), "rule": MOTION_RULE, "with_motion": with_motion,
            "without_motion": without}


def earns_its_place(with_it: dict, without: dict) -> bool:
    """MOTION_RULE: more than one standard error (of the figure without it) above the fusion without it."""
    return bool(with_it["cv_accuracy"] > without["cv_accuracy"] + without["standard_error"])


def halve_torch_weights(bundle: Path) -> int:
    """Rewrite every torch state dict under ``bundle`` (a fused bundle and its specialists' copies)
    with float16 floating tensors (they load back into float32 modules); returns the files changed.

    Each bundle whose weights changed says so in its description (``meta.weights``): that also
    gives it another prediction-cache key (emonets.prediction_cache.model_key hashes the
    descriptions), so its predictions are never taken from the float32 bundle's cached results.
    """
    import torch

    from data_catalog.atomic import write_json_atomic

    changed = 0
    for part in sorted(Path(bundle).rglob("torch/*.pt")):
        state = torch.load(part, map_location="cpu", weights_only=True)
        half = {k: v.half() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}
        torch.save(half, part)
        desc_file = part.parent.parent / "bundle.json"
        desc = json.loads(desc_file.read_text())
        desc.setdefault("meta", {})["weights"] = "float16"
        write_json_atomic(desc_file, desc)
        changed += 1
    return changed


def copy_bundle_tree(src: Path, parent: Path, name: str) -> Path:
    """A copy of bundle ``src`` in a new temp folder under ``parent`` (the caller renames it in)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent))
    shutil.copytree(src, tmp / name)
    return tmp / name


def figures_equal(a: dict, b: dict) -> bool:
    """Every figure of two evaluations (emonets.prediction_run.evaluate_root) equal to 3 decimals."""
    def flat(result: dict) -> dict:
        out = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "n": result["n"]}
        for name, m in (result.get("specialists") or {}).items():
            out.update({f"{name}.{k}": m[k] for k in ("accuracy", "macro_f1", "n")})
        return {k: round(float(v), 3) for k, v in out.items()}

    return flat(a) == flat(b)


def bundle_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


CARD_START = "<!-- fused: written by scripts/build_release.py; do not edit by hand -->"
CARD_END = "<!-- /fused -->"


def fused_card(build: dict) -> str:
    """The model card's section on the fused model, from the build's figures."""
    from emonets.labels import EMOTIONS

    ev = build["evaluation"]
    lines = [CARD_START, "", "## `fused/` — the fused model (what `emonets predict` uses by default)", "",
             f"**What it is.** The specialists {', '.join(f'`{s}`' for s in build['specialists'])}, each a copy of its "
             f"bundle, and a `{build['fusion_method']}` fusion of their class probabilities "
             f"(chosen on val by {build['fusion_rule']}). Built by `make release` "
             f"(`scripts/build_release.py`, library {build['library_version']}) on {build['built']}; "
             f"weights stored as {build['weights']} ({build['weights_rule']}). {build['bytes'] / 1e6:.1f} MB.", "",
             "**Training data and splits.** The *composed* audio-video set (`emonets compose`, seed 0, "
             f"{build['clips']['total']} clips: one real FER-2013 face animated over a few seconds while one real "
             "RAVDESS utterance of the same emotion plays): train = FER-2013 train faces + RAVDESS actors 01–10 "
             f"({build['clips']['train']} clips), val = FER-2013 PublicTest faces + actors 11–14 "
             f"({build['clips']['val']}), test = other PublicTest faces + actors 15–18 ({build['clips']['test']}). "
             f"The face ConvNet: {build['face_source']}. Each specialist learns from train (early stopping and SVM C "
             "on val); the fusion is fitted on val; test was used for nothing but the figures below.", "",
             f"**Motion.** {build['motion']['summary']}", "",
             "**Licences.** RAVDESS: CC BY-NC-SA 4.0 (non-commercial, share-alike: so is this model); FER-2013: "
             "research use. Research and non-commercial use only.", "",
             "**Figures** (`emonets evaluate release COMPOSED_ROOT --split S`; each specialist on the clips it "
             "could score, the fused model on all):", "",
             "| split | model | n | accuracy | macro-F1 |", "| --- | --- | ---: | ---: | ---: |"]
    for split in ("val", "test"):
        r = ev[split]
        lines.append(f"| {split} | **fused** | {r['n']} | **{r['accuracy']:.3f}** | **{r['macro_f1']:.3f}** |")
        for name, m in (r.get("specialists") or {}).items():
            lines.append(f"| {split} | {name} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} |")
    for split in ("val", "test"):
        r = ev[split]
        lines += ["", f"Fused, {split} (rows true, columns predicted):", "",
                  "| true \\ predicted | " + " | ".join(EMOTIONS) + " | recall |",
                  "| --- | " + " | ".join("---:" for _ in EMOTIONS) + " | ---: |"]
        for e, row in zip(EMOTIONS, r["confusion"]):
            n = sum(row)
            recall = f"{row[EMOTIONS.index(e)] / n:.3f}" if n else "—"
            lines.append(f"| {e} ({n}) | " + " | ".join(str(v) for v in row) + f" | {recall} |")
    lines += ["", "**Intended use.** Research on recognising acted emotions in short clips of one frontal face "
              "with speech; a starting point to train on your own data (`emonets train-all`).", "",
              "**Known limits.** Acted emotions only (FER-2013 photos, RAVDESS actors reading two sentences): "
              "spontaneous expressions, other languages and noisy rooms were never seen. Faces must look like "
              "FER-2013's 48×48 framing after alignment. The fusion was fitted on *composed* clips, where face and "
              "voice never disagree about the emotion and come from different people: on real video its weights "
              "are a guess. The motion specialist is at chance on composed clips (a still face moved slightly). "
              "The shipped face ConvNet's checkpoint was chosen on FER-2013 PublicTest, whose faces the "
              "composed val and test clips show: the face figures there are slightly optimistic. "
              "Seven classes only; `calm` RAVDESS clips were dropped.", "", CARD_END, ""]
    return "\n".join(lines)


def write_card_section(card: Path, section: str) -> None:
    """Put ``section`` into the card, replacing the previous generated one (the rest is kept)."""
    text = card.read_text() if card.is_file() else "# EmoNets shipped models — model card\n"
    if CARD_START in text and CARD_END in text:
        before, rest = text.split(CARD_START, 1)
        after = rest.split(CARD_END, 1)[1].lstrip("\n")
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    card.write_text(text)


def summary_line(build: dict) -> str:
    ev = build["evaluation"]
    return json.dumps({"accuracy": ev["test"]["accuracy"], "macro_f1": ev["test"]["macro_f1"], "n": ev["test"]["n"],
                       "specialists": ev["test"].get("specialists"), "val": {k: ev["val"][k] for k in
                                                                             ("accuracy", "macro_f1", "n")},
                       "weights": build["weights"], "bytes": build["bytes"], "motion": build["motion"]["keep"]})
