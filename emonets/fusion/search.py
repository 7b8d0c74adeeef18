"""EmoNets' winning fuser: per-specialist, per-class weights found by random search.

The search loop and its tie-breaking live here; counting correct clips fast is ``fusion_scorer``'s job.
"""

from __future__ import annotations

import numpy as np

from emonets.fusion.base import N_CLASSES, check_shapes, labelled, one_thread, weighted
from emonets.fusion.scorer import Scorer


class RandomSearchFusion:
    """Per-specialist, per-class weights by vectorised random search + local refinement.

    ``chunk`` draws are scored at a time (None: sized so one chunk's scores stay ~1M floats);
    the draws come from one seeded stream, so the chunk size does not change which sets are drawn.
    """

    name = "random_search"

    def __init__(self, *, n_draws: int = 400_000, refine_rounds: int = 40, refine_batch: int = 500,
                 sigma: float = 0.1, chunk: int | None = None, seed: int = 0):
        self.n_draws, self.refine_rounds, self.refine_batch = n_draws, refine_rounds, refine_batch
        self.sigma, self.chunk, self.seed = sigma, chunk, seed

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "RandomSearchFusion":
        P, M, y = labelled(P, M, y)
        if not len(y):
            raise ValueError("random-search fusion needs labelled clips to fit on")
        with one_thread(torch_too=True):
            return self._search(P, M, y)

    def _search(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "RandomSearchFusion":
        n_spec = P.shape[1]
        scorer = Scorer(P, M, y)
        chunk = self.chunk or max(16, min(4096, 1_000_000 // (N_CLASSES * len(y))))
        rng = np.random.default_rng(self.seed)
        # The plain mean is candidate 0, so the search never ends below it on the fitting split.
        best = _Best(np.full((n_spec, N_CLASSES), 1.0 / n_spec), scorer)
        done = 0
        while done < self.n_draws:
            W = rng.random((min(chunk, self.n_draws - done), n_spec, N_CLASSES))
            best.offer(W / W.sum(1, keepdims=True), scorer)
            done += len(W)
        self.n_draw_improvements_ = best.improvements
        for _ in range(self.refine_rounds):
            W = np.clip(best.W[None] + rng.normal(0.0, self.sigma, (self.refine_batch, n_spec, N_CLASSES)), 0, None)
            W = np.round(_normalise_columns(W), 2)
            for start in range(0, len(W), chunk):
                best.offer(_normalise_columns(W[start:start + chunk]), scorer)
        self.weights_ = best.W
        self.n_specialists_ = n_spec
        self.correct_ = int(best.correct)
        self.loglik_ = float(best.loglik)
        self.score_ = self.correct_ / len(y)
        self.accuracy_ = float((weighted(P, M, self.weights_).argmax(1) == y).mean())
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = check_shapes(P, M, self.weights_.shape[0])
        return weighted(P, M, self.weights_)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, "score": np.array(self.score_)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "RandomSearchFusion":
        model = cls()
        model.weights_ = np.asarray(arrays["weights"], np.float64)
        model.n_specialists_ = model.weights_.shape[0]
        model.score_ = float(arrays["score"])
        return model


def _normalise_columns(W: np.ndarray) -> np.ndarray:
    """Each class column of each weight set (K, s, 7) summed to one; an all-zero column -> 1/s."""
    total = W.sum(1, keepdims=True)
    return np.where(total > 0, W / np.where(total > 0, total, 1.0), 1.0 / W.shape[1])


class _Best:
    """The best weight set seen so far: most correct, then highest mean log-prob, then earliest."""

    def __init__(self, W: np.ndarray, scorer: "Scorer"):
        self.W, self.improvements = W, 0
        self.correct = int(scorer.correct(W[None])[0])
        self.loglik = float(scorer.loglik(W[None])[0])

    def offer(self, W: np.ndarray, scorer: "Scorer") -> None:
        correct = scorer.correct(W)
        top = int(correct.max())
        if top < self.correct:
            return
        tied = np.flatnonzero(correct == top)
        ll = scorer.loglik(W[tied])
        i = int(np.argmax(ll))  # first maximum: the earliest draw wins a full tie
        if top > self.correct or ll[i] > self.loglik:
            self.W, self.correct, self.loglik = W[tied[i]].copy(), top, float(ll[i])
            self.improvements += 1
