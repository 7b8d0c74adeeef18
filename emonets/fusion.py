"""Fusion of the specialists' class probabilities per clip.

All fusers see a tensor ``P`` (n_clips, n_specialists, 7) and a mask ``M`` (n_clips,
n_specialists) saying which specialist scored which clip; a missing specialist's weight is
shared out among the present ones, clip by clip, so a clip without a face (or audio) is still
fused from what remains. A clip no specialist scored gets the uniform distribution.

- MeanFusion: the plain mean of the present specialists.
- RandomSearchFusion: EmoNets' winner: a weight per specialist *and per class*, drawn uniformly
  (400,000 draws), normalised per class, scored by accuracy on the fitting split (ties broken by
  the mean log-probability of the true class), then refined by local Gaussian steps.
- LearnedFusion: multinomial logistic regression on the concatenated probabilities + the mask.

Fit on the validation split, report on a test split none of them saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emonets.labels import LABEL_INDEX, PROB_COLUMNS

N_CLASSES = len(PROB_COLUMNS)


def predictions_to_tensor(predictions: pd.DataFrame, specialists: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The long `predictions` table as (clip_ids, P, M); a clip appears if any specialist scored it."""
    clip_ids = sorted(set(predictions["clip_id"]))
    index = {c: i for i, c in enumerate(clip_ids)}
    P = np.full((len(clip_ids), len(specialists), N_CLASSES), 1.0 / N_CLASSES, dtype=np.float64)
    M = np.zeros((len(clip_ids), len(specialists)), dtype=bool)
    for s, name in enumerate(specialists):
        rows = predictions[predictions["specialist"] == name]
        probs = rows[list(PROB_COLUMNS)].to_numpy(np.float64)
        ok = np.isfinite(probs).all(1)
        idx = np.array([index[c] for c in rows["clip_id"]], dtype=np.int64)
        P[idx[ok], s] = probs[ok]
        M[idx[ok], s] = True
    return clip_ids, P, M


def labels_of(clip_ids: list[str], clips: pd.DataFrame) -> np.ndarray:
    """Class index per clip (-1 for unlabelled) from the `clips` table."""
    lab = clips.set_index("clip_id")["label"]
    return np.array([LABEL_INDEX.get(lab.get(c, ""), -1) for c in clip_ids], dtype=np.int64)


def weighted(P: np.ndarray, M: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-clip fusion with class weights W (n_specialists, 7), renormalised over present ones."""
    num = np.einsum("sc,nsc->nc", W, P * M[:, :, None])
    den = np.einsum("sc,ns->nc", W, M.astype(np.float64))
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0 / N_CLASSES)
    total = out.sum(1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


class MeanFusion:
    """The mean of the present specialists' probabilities."""

    name = "mean"

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "MeanFusion":
        self.n_specialists_ = P.shape[1]
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        return weighted(P, M, np.ones((P.shape[1], N_CLASSES)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n_specialists": np.array(self.n_specialists_)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "MeanFusion":
        model = cls()
        model.n_specialists_ = int(arrays["n_specialists"])
        return model


class RandomSearchFusion:
    """Per-specialist, per-class weights by vectorised random search + local refinement."""

    name = "random_search"

    def __init__(self, *, n_draws: int = 400_000, refine_rounds: int = 40, refine_batch: int = 500,
                 sigma: float = 0.1, chunk: int = 4096, seed: int = 0):
        self.n_draws, self.refine_rounds, self.refine_batch = n_draws, refine_rounds, refine_batch
        self.sigma, self.chunk, self.seed = sigma, chunk, seed

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "RandomSearchFusion":
        keep = y >= 0
        P, M, y = P[keep], M[keep], y[keep]
        rng = np.random.default_rng(self.seed)
        n_spec = P.shape[1]
        best_w, best = np.ones((n_spec, N_CLASSES)) / n_spec, None
        best = self._scores(best_w[None], P, M, y)[0]
        done = 0
        while done < self.n_draws:
            k = min(self.chunk, self.n_draws - done)
            W = rng.random((k, n_spec, N_CLASSES))
            W /= W.sum(1, keepdims=True)
            scores = self._scores(W, P, M, y)
            i = int(np.argmax(scores))  # first maximum: deterministic tie-break
            if scores[i] > best:
                best, best_w = float(scores[i]), W[i]
            done += k
        for _ in range(self.refine_rounds):
            W = np.clip(best_w[None] + rng.normal(0, self.sigma, (self.refine_batch, n_spec, N_CLASSES)), 0, None)
            W = np.round(W / np.maximum(W.sum(1, keepdims=True), 1e-12), 2)
            W[W.sum(1, keepdims=True).repeat(n_spec, 1) == 0] = 1.0 / n_spec
            scores = self._scores(W, P, M, y)
            i = int(np.argmax(scores))
            if scores[i] > best:
                best, best_w = float(scores[i]), W[i]
        self.weights_ = best_w
        self.score_ = best
        self.accuracy_ = float((weighted(P, M, best_w).argmax(1) == y).mean()) if len(y) else 0.0
        return self

    @staticmethod
    def _scores(W: np.ndarray, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Accuracy of each weight set (K, s, 7) on (P, M, y), plus 1e-4 x the mean log-probability
        of the true class for the sets tied at the best accuracy (a deterministic tie-break)."""
        if len(y) == 0:
            return np.zeros(len(W))
        W32 = W.astype(np.float32)
        Mf = M.astype(np.float32)
        num = np.stack([W32[:, :, c] @ (P[:, :, c] * Mf).T.astype(np.float32) for c in range(N_CLASSES)], -1)
        if M.all():  # weights sum to one per class: the denominators are all 1
            fused = num
        else:
            den = np.stack([W32[:, :, c] @ Mf.T for c in range(N_CLASSES)], -1)
            fused = np.where(den > 0, num / np.maximum(den, 1e-12), np.float32(1.0 / N_CLASSES))
        acc = (fused.argmax(-1) == y[None]).mean(1)
        scores = acc.astype(np.float64)
        tied = np.flatnonzero(acc == acc.max())
        f = fused[tied] / fused[tied].sum(-1, keepdims=True)
        true_p = np.take_along_axis(f, np.broadcast_to(y[None, :, None], (len(tied), len(y), 1)), -1)[..., 0]
        scores[tied] += 1e-4 * np.log(np.clip(true_p, 1e-9, 1)).mean(1)
        return scores

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        return weighted(P, M, self.weights_)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, "score": np.array(self.score_)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "RandomSearchFusion":
        model = cls()
        model.weights_ = np.asarray(arrays["weights"], np.float64)
        model.score_ = float(arrays["score"])
        return model


class LearnedFusion:
    """Logistic regression on [probabilities of present specialists (uniform if missing), mask]."""

    name = "learned"

    def __init__(self, *, C: float = 1.0, seed: int = 0):
        self.C, self.seed = C, seed

    @staticmethod
    def _features(P: np.ndarray, M: np.ndarray) -> np.ndarray:
        filled = np.where(M[:, :, None], P, 1.0 / N_CLASSES)
        return np.concatenate([np.log(np.clip(filled, 1e-6, 1)).reshape(len(P), -1), M.astype(np.float64)], 1)

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "LearnedFusion":
        from sklearn.linear_model import LogisticRegression

        keep = y >= 0
        X, y = self._features(P[keep], M[keep]), y[keep]
        self.coef_ = np.zeros((N_CLASSES, X.shape[1]))
        self.intercept_ = np.full(N_CLASSES, -1e3)
        classes = np.unique(y)
        if len(classes) == 1:  # one class seen: always predict it
            self.intercept_[classes[0]] = 0.0
            return self
        lr = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y)
        coef = lr.coef_ if len(classes) > 2 else np.vstack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
        icpt = lr.intercept_ if len(classes) > 2 else np.array([-lr.intercept_[0] / 2, lr.intercept_[0] / 2])
        self.coef_[classes] = coef
        self.intercept_[classes] = icpt
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        z = self._features(P, M) @ self.coef_.T + self.intercept_
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LearnedFusion":
        model = cls()
        model.coef_ = np.asarray(arrays["coef"], np.float64)
        model.intercept_ = np.asarray(arrays["intercept"], np.float64)
        return model


FUSERS = {"mean": MeanFusion, "random_search": RandomSearchFusion, "learned": LearnedFusion}
