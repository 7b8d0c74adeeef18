"""Fusion of the specialists' class probabilities per clip.

All fusers see a tensor ``P`` (n_clips, n_specialists, 7) and a mask ``M`` (n_clips,
n_specialists) saying which specialist scored which clip. Values of ``P`` where ``M`` is False
are never read (they may be NaN). A missing specialist's weight is shared out among the present
ones, clip by clip, so a clip without a face (or without audio) is still fused from what remains;
a clip no specialist scored gets the uniform distribution (``unscored(M)`` flags those).

- MeanFusion: the plain mean of the present specialists.
- RandomSearchFusion: EmoNets' winner: a weight per specialist *and per class*, W (n_spec, 7),
  drawn uniformly (400,000 draws), normalised per class, scored by accuracy on the fitting
  split, then refined by local Gaussian steps (sigma 0.1, clipped at 0, renormalised, rounded to
  0.01). Ties in accuracy go to the higher mean log-probability of the true class, then to the
  earlier draw, so a seed fixes the result. Scoring is vectorised (torch, chunks of draws).
- LearnedFusion: multinomial logistic regression on the concatenated log-probabilities
  (a missing specialist imputed as uniform) plus the mask as indicator features.
- LogLinearFusion: a weighted product of experts, one non-negative weight per specialist and a
  class bias (s + 7 parameters), fitted by maximum likelihood: the learned fuser for small
  validation splits.

All follow ``fit(P, M, y) -> self`` / ``predict_proba(P, M) -> (n, 7)``; labels ``y < 0``
(unlabelled clips) are ignored by ``fit``. Fit them on the validation split and report on a test
split they never saw: weights tuned on the report split overstate accuracy.

The parts: ``fusion_base`` (shared checks, ``weighted``, the mean), ``fusion_tables`` (tables to
arrays), ``fusion_search`` + ``fusion_scorer`` (random search), ``fusion_linear`` (learned and
log-linear), ``fusion_cv`` (cross-validation). Fitted fusers are saved inside the fused model
bundle (``emonets.fusion.model.FusedModel``) through their ``to_arrays`` / ``from_arrays``.
"""

from __future__ import annotations

from emonets.fusion.base import N_CLASSES, MeanFusion, unscored, weighted
from emonets.fusion.cv import cross_val_accuracy
from emonets.fusion.linear import LearnedFusion, LogLinearFusion
from emonets.fusion.search import RandomSearchFusion
from emonets.fusion.tables import labels_of, predictions_to_tensor

__all__ = ["FUSERS", "N_CLASSES", "LearnedFusion", "LogLinearFusion", "MeanFusion", "RandomSearchFusion",
           "cross_val_accuracy", "labels_of", "predictions_to_tensor", "unscored", "weighted"]

FUSERS = {"mean": MeanFusion, "random_search": RandomSearchFusion, "learned": LearnedFusion,
          "log_linear": LogLinearFusion}
