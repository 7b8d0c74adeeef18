"""Cross-validated accuracy of a fuser, for choosing among fusion methods on one split."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from emonets.fusion.base import labelled


def cross_val_accuracy(make: Callable[[], Any], P: np.ndarray, M: np.ndarray, y: np.ndarray, *,
                       folds: int = 5, seed: int = 0) -> float:
    """Out-of-fold accuracy of the fuser ``make()`` builds, on labelled clips (class-stratified folds).

    Use it to choose among fusion methods fitted on one split: their accuracy on that split is
    in-sample and favours the most flexible (a learned fuser can score 100% there).
    """
    P, M, y = labelled(P, M, y)
    if not len(y):
        raise ValueError("cross-validation needs labelled clips")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    right = 0
    for k in range(min(folds, len(y))):
        test = fold == k
        if not test.any() or test.all():
            continue
        fuser = make().fit(P[~test], M[~test], y[~test])
        right += int((fuser.predict_proba(P[test], M[test]).argmax(1) == y[test]).sum())
    return right / len(y)
