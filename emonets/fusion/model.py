"""Fit the fusion methods on held-out predictions, and the fused model bundle `predict` loads.

``fit_fusion`` fits every method on the validation split (falling back to train only when no
labelled validation clip exists, and saying so), scores every clip with each, and measures each
method per split. ``FusedModel`` bundles the chosen fuser with copies of the specialists'
bundles, so one folder predicts end to end.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emonets.bundle import Bundle, BundleError, load_bundle, read_description, replace_dir, save_bundle
from emonets.evaluation import metrics_dict
from emonets.fusion.fusers import FUSERS, labels_of, predictions_to_tensor
from emonets.labels import PROB_COLUMNS


@dataclass
class FusionFit:
    fusers: dict[str, Any]
    fused: pd.DataFrame                       # `fused_predictions` rows, every method
    metrics: dict[str, dict[str, dict]]       # method -> split -> metrics
    fit_split: str
    best_method: str
    specialist_metrics: dict[str, dict[str, dict]] = field(default_factory=dict)
    cv_accuracy: dict[str, float] = field(default_factory=dict)  # what best_method was chosen on


def fit_fusion(predictions: pd.DataFrame, clips: pd.DataFrame, specialists: list[str], *,
               n_draws: int = 400_000, seed: int = 0) -> FusionFit:
    """Fit every fusion method (emonets.fusion.fusers.FUSERS) on the validation split; score every clip."""
    clip_ids, P, M, y, split, fit_split = fusion_arrays(predictions, clips, specialists)
    fit_rows = (split == fit_split) & (y >= 0)
    fusers = {method: _make(method, seed=seed, n_draws=n_draws).fit(P[fit_rows], M[fit_rows], y[fit_rows])
              for method in FUSERS}
    frames, metrics = [], {}
    label_names = clips.set_index("clip_id")["label"].reindex(clip_ids).fillna("").to_numpy()
    for method, fuser in fusers.items():
        probs = fuser.predict_proba(P, M).astype(np.float32)
        rows = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
        rows.insert(0, "clip_id", clip_ids)
        rows.insert(1, "method", method)
        rows.insert(2, "split", split)
        rows.insert(3, "label", label_names)
        frames.append(rows)
        metrics[method] = _per_split(y, probs.argmax(1), split)
    spec_metrics = {name: _per_split(y[M[:, s]], P[M[:, s], s].argmax(1), split[M[:, s]])
                    for s, name in enumerate(specialists)}
    best, cv = choose_method(P[fit_rows], M[fit_rows], y[fit_rows], seed=seed)
    return FusionFit(fusers, pd.concat(frames, ignore_index=True), metrics, fit_split, best, spec_metrics, cv)


def fusion_arrays(predictions: pd.DataFrame, clips: pd.DataFrame, specialists: list[str]):
    """(clip_ids, P, M, y, split, fit_split) of the specialists' predictions: the fusers' inputs,
    each clip's label index and split, and the split fusion is fitted on (val, else train)."""
    clip_ids, P, M = predictions_to_tensor(predictions, specialists)
    y = labels_of(clip_ids, clips)
    split = clips.set_index("clip_id")["split"].reindex(clip_ids).fillna("").to_numpy()
    fit_split = "val" if ((split == "val") & (y >= 0)).any() else "train"
    if not ((split == fit_split) & (y >= 0)).any():
        raise ValueError("fusion needs labelled clips in the val (or train) split")
    return clip_ids, P, M, y, split, fit_split


SELECTION_RULE = "one-standard-error rule on 3x repeated 5-fold CV of the fitting split"
# Fewest parameters first: the order the one-standard-error rule prefers (s specialists).
SIMPLICITY = ("mean", "log_linear", "random_search", "learned")  # 0, s + 7, 7s, 56s + 7 parameters


def choose_method(P: np.ndarray, M: np.ndarray, y: np.ndarray, *, seed: int = 0, cv_draws: int = 50_000,
                  repeats: int = 3) -> tuple[str, dict[str, float]]:
    """The fusion method the bundle uses, and each method's cross-validated accuracy.

    In-sample accuracy on the fitting split would pick the learned fuser, which overfits; plain
    cross-validation on a validation split of ~200 clips is noisy (one standard error is ~3
    points) and, when the split's clips share speakers across folds, still flatters the most
    flexible fuser. So: stratified 5-fold CV repeated ``repeats`` times with different folds,
    then the one-standard-error rule: the simplest method (SIMPLICITY) whose CV accuracy is
    within one standard error of the best.
    """
    from emonets.fusion.fusers import cross_val_accuracy

    methods = [m for m in SIMPLICITY if m in FUSERS] + [m for m in FUSERS if m not in SIMPLICITY]
    folds = int(min(5, np.bincount(y[y >= 0]).max(initial=0)))
    if folds < 2:
        return "random_search", {}
    cv = {m: float(np.mean([cross_val_accuracy(lambda m=m: _make(m, seed=seed, n_draws=cv_draws), P, M, y,
                                               folds=folds, seed=seed + r) for r in range(repeats)]))
          for m in methods}
    best = max(cv.values())
    n = int((y >= 0).sum())
    se = float(np.sqrt(best * (1 - best) / max(n, 1)))
    return next(m for m in methods if cv[m] >= best - se), cv


def _make(method: str, *, seed: int, n_draws: int):
    """An unfitted fuser: seeded where it draws, with the random search's draw count."""
    if method == "random_search":
        return FUSERS[method](n_draws=n_draws, seed=seed)
    return FUSERS[method]() if method == "mean" else FUSERS[method](seed=seed)


def _per_split(y: np.ndarray, pred: np.ndarray, split: np.ndarray) -> dict[str, dict]:
    out = {}
    for s in sorted(set(split)):
        keep = (split == s) & (y >= 0)
        if keep.any():
            out[s] = metrics_dict(y[keep], pred[keep])
    return out


class FusedModel:
    """The specialists' bundles + one fitted fuser: predicts a clip from whatever it has."""

    name = "fused"

    def __init__(self, specialists: dict[str, Any], fuser: Any, method: str):
        self.specialists, self.fuser, self.method = specialists, fuser, method

    @property
    def order(self) -> list[str]:
        return list(self.specialists)

    def fuse(self, per_specialist: dict[str, pd.DataFrame]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(clip_ids, fused probs, P, M) from each specialist's prediction rows."""
        frames = [df.assign(specialist=name) for name, df in per_specialist.items() if len(df)]
        long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["clip_id", "specialist", *PROB_COLUMNS])
        clip_ids, P, M = predictions_to_tensor(long, self.order)
        return clip_ids, self.fuser.predict_proba(P, M), P, M

    def save(self, path: Path | str, *, specialist_bundles: dict[str, Path], metrics: dict | None = None,
             inputs: dict | None = None) -> Path:
        """Write the fuser and copies of the specialist bundles into one folder (atomically)."""
        path = Path(path)
        bundle = Bundle(kind="fused", config={"method": self.method, "specialists": self.order},
                        metrics=metrics or {}, inputs=inputs or {},
                        arrays={f"fuser_{k}": v for k, v in self.fuser.to_arrays().items()})
        # Built beside the target and swapped in whole, so a crash never leaves a fused bundle
        # whose description is complete but whose specialist copies are not.
        building = save_bundle(path.with_name(f".building-{path.name}"), bundle)
        try:
            for name, src in specialist_bundles.items():
                shutil.copytree(src, building / "specialists" / name)
            replace_dir(building, path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path | str) -> "FusedModel":
        from emonets import registry

        bundle = load_bundle(path, kind="fused")
        method = bundle.config.get("method")
        if method not in FUSERS:
            raise BundleError(f"{path}: unknown fusion method {method!r} in {Path(path) / 'bundle.json'}")
        arrays = {k[len("fuser_"):]: v for k, v in bundle.arrays.items() if k.startswith("fuser_")}
        try:
            fuser = FUSERS[method].from_arrays(arrays)
        except (KeyError, ValueError) as err:
            raise BundleError(f"{path}: the {method} fuser's arrays are missing or malformed ({err})") from err
        specialists = {}
        for name in bundle.config.get("specialists", []):
            part = Path(path) / "specialists" / name
            if not (part / "bundle.json").is_file():
                raise BundleError(f"{path}: incomplete fused bundle, no specialist bundle at {part}")
            specialists[name] = registry.specialist(name).model_class().load(part)
        return cls(specialists, fuser, method)


def bundle_kind(path: Path | str) -> str:
    """The kind a bundle folder says it holds (a specialist's name, or "fused").

    FileNotFoundError for a folder (or file) that is no bundle, BundleError for an unreadable one.
    """
    return read_description(path)["kind"]
