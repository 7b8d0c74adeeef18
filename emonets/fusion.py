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
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from emonets.labels import LABEL_INDEX, PROB_COLUMNS

N_CLASSES = len(PROB_COLUMNS)
_UNIFORM = 1.0 / N_CLASSES


def predictions_to_tensor(predictions: pd.DataFrame, specialists: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The long `predictions` table as (clip_ids, P, M).

    A clip appears if any row names it (even a row of NaN probabilities); ``M[i, s]`` is True
    when specialist ``s`` gave clip ``i`` finite probabilities. Missing entries of ``P`` hold
    1/7. Rows of specialists not listed are ignored; a repeated (clip, specialist) row: the
    last one wins.
    """
    clip_ids = sorted(set(predictions["clip_id"].astype(str))) if len(predictions) else []
    index = {c: i for i, c in enumerate(clip_ids)}
    P = np.full((len(clip_ids), len(specialists), N_CLASSES), _UNIFORM, dtype=np.float64)
    M = np.zeros((len(clip_ids), len(specialists)), dtype=bool)
    for s, name in enumerate(specialists):
        rows = predictions[predictions["specialist"] == name]
        if not len(rows):
            continue
        probs = rows[list(PROB_COLUMNS)].to_numpy(np.float64)
        ok = np.isfinite(probs).all(1)
        idx = np.array([index[str(c)] for c in rows["clip_id"]], dtype=np.int64)
        P[idx[ok], s] = probs[ok]
        M[idx[ok], s] = True
    return clip_ids, P, M


def labels_of(clip_ids: list[str], clips: pd.DataFrame) -> np.ndarray:
    """Class index per clip (-1 for unlabelled or unknown clips) from the `clips` table."""
    lab = clips.set_index("clip_id")["label"]
    return np.array([LABEL_INDEX.get(lab.get(c, ""), -1) for c in clip_ids], dtype=np.int64)


def unscored(M: np.ndarray) -> np.ndarray:
    """True for the clips no specialist scored (their fused output is uniform)."""
    return ~np.asarray(M, bool).any(1)


def weighted(P: np.ndarray, M: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-clip fusion with class weights W (n_specialists, 7), renormalised over the present ones.

    A class whose present weights are all zero, and a clip with no specialist, get 1/7; each
    output row is normalised to sum to one.
    """
    M = np.asarray(M, bool)
    present = np.where(M[:, :, None], P, 0.0)
    num = np.einsum("sc,nsc->nc", W, present)
    den = np.einsum("sc,ns->nc", W, M.astype(np.float64))
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), _UNIFORM)
    total = out.sum(1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def _check(P: np.ndarray, M: np.ndarray, n_specialists: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    P, M = np.asarray(P, np.float64), np.asarray(M, bool)
    if P.ndim != 3 or P.shape[2] != N_CLASSES or M.shape != P.shape[:2]:
        raise ValueError(f"expected P (n, s, {N_CLASSES}) and M (n, s); got {P.shape} and {M.shape}")
    if n_specialists is not None and P.shape[1] != n_specialists:
        raise ValueError(f"fitted on {n_specialists} specialists, given {P.shape[1]}")
    return P, M


def _labelled(P, M, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    P, M = _check(P, M)
    y = np.asarray(y, np.int64)
    if len(y) != len(P):
        raise ValueError(f"{len(y)} labels for {len(P)} clips")
    if ((y >= N_CLASSES)).any():
        raise ValueError(f"labels must be class indices 0..{N_CLASSES - 1} (or -1 for unlabelled)")
    keep = y >= 0
    return P[keep], M[keep], y[keep]


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of class scores (n, 7)."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _softmax_scored(z: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Softmax of the scores; a clip no specialist scored gets 1/7, like the other fusers."""
    out = _softmax(z)
    out[unscored(M)] = _UNIFORM
    return out


class MeanFusion:
    """The mean of the present specialists' probabilities (needs no labels)."""

    name = "mean"

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray | None = None) -> "MeanFusion":
        self.n_specialists_ = _check(P, M)[0].shape[1]
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = _check(P, M, self.n_specialists_)
        return weighted(P, M, np.ones((P.shape[1], N_CLASSES)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n_specialists": np.array(self.n_specialists_)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "MeanFusion":
        model = cls()
        model.n_specialists_ = int(arrays["n_specialists"])
        return model


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

    def get_params(self) -> dict[str, Any]:
        return {"n_draws": self.n_draws, "refine_rounds": self.refine_rounds, "refine_batch": self.refine_batch,
                "sigma": self.sigma, "chunk": self.chunk, "seed": self.seed}

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "RandomSearchFusion":
        P, M, y = _labelled(P, M, y)
        if not len(y):
            raise ValueError("random-search fusion needs labelled clips to fit on")
        with _one_thread(torch_too=True):
            return self._search(P, M, y)

    def _search(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "RandomSearchFusion":
        n_spec = P.shape[1]
        scorer = _Scorer(P, M, y)
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
        P, M = _check(P, M, self.weights_.shape[0])
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


@contextmanager
def _one_thread(*, torch_too: bool = False):
    """Run on one thread: fusion's matrices are tiny, so BLAS / torch threads only spin (on a
    shared CPU they made fitting 15-20x slower); the caller's settings are restored afterwards."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        if not torch_too:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _normalise_columns(W: np.ndarray) -> np.ndarray:
    """Each class column of each weight set (K, s, 7) summed to one; an all-zero column -> 1/s."""
    total = W.sum(1, keepdims=True)
    return np.where(total > 0, W / np.where(total > 0, total, 1.0), 1.0 / W.shape[1])


class _Best:
    """The best weight set seen so far: most correct, then highest mean log-prob, then earliest."""

    def __init__(self, W: np.ndarray, scorer: "_Scorer"):
        self.W, self.improvements = W, 0
        self.correct = int(scorer.correct(W[None])[0])
        self.loglik = float(scorer.loglik(W[None])[0])

    def offer(self, W: np.ndarray, scorer: "_Scorer") -> None:
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


class _Scorer:
    """Counts correct clips for many weight sets at once.

    Clips are grouped by which specialists scored them and sorted by true class inside a group.
    Per group the weights are renormalised over the present specialists, one batched matmul gives
    every class score (7, K, n_group), the true class's score is subtracted, and a clip is right
    when every other class scores lower (a tie goes to the lower class index, as argmax does).
    """

    def __init__(self, P: np.ndarray, M: np.ndarray, y: np.ndarray):
        import torch

        self.torch = torch
        self.P, self.M, self.y = P, M, y
        self.groups = []
        self.constant = 0  # right answers of clips nobody scored: uniform -> argmax is class 0
        patterns, inverse = np.unique(M, axis=0, return_inverse=True)
        for g, pattern in enumerate(patterns):
            members = np.flatnonzero(inverse.reshape(-1) == g)
            members = members[np.argsort(y[members], kind="stable")]
            specs = np.flatnonzero(pattern)
            if not len(specs):
                self.constant += int((y[members] == 0).sum())
                continue
            yg = y[members]
            Pg = P[members][:, specs].transpose(2, 1, 0)  # (7, s_g, n_g)
            bounds = [(int(np.searchsorted(yg, c)), int(np.searchsorted(yg, c, "right"))) for c in range(N_CLASSES)]
            self.groups.append((specs, torch.from_numpy(np.ascontiguousarray(Pg, np.float32)), bounds, len(yg)))

    def correct(self, W: np.ndarray) -> np.ndarray:
        """(K,) number of clips each weight set (K, s, 7) classifies correctly."""
        torch = self.torch
        total = np.full(len(W), self.constant, dtype=np.int64)
        with torch.no_grad():
            for specs, Pg, bounds, n in self.groups:
                Wg = W[:, specs, :]
                den = Wg.sum(1, keepdims=True)
                Wg = np.where(den > 0, Wg / np.where(den > 0, den, 1.0), 0.0)
                Wt = torch.from_numpy(np.ascontiguousarray(Wg.transpose(2, 0, 1), np.float32))  # (7, K, s_g)
                V = torch.bmm(Wt, Pg)  # (7, K, n)
                if (den == 0).any():  # a class with no present weight scores 1/7, as in `weighted`
                    V += torch.from_numpy((den[:, 0, :].T == 0).astype(np.float32) * _UNIFORM)[:, :, None]
                T = torch.cat([V[c, :, lo:hi] for c, (lo, hi) in enumerate(bounds)], 1)
                V -= T
                for c, (lo, hi) in enumerate(bounds):
                    V[c, :, lo:hi] = -np.inf  # the true class is not its own rival
                rival = V.amax(0)  # best other class minus the true class, (K, n)
                right = rival < 0
                if bool((rival == 0).any()):  # exact ties: right only if every tied rival has a higher index
                    lower = torch.full_like(rival, -np.inf)
                    for c, (lo, hi) in enumerate(bounds):
                        if hi < n:  # clips whose true class is above c
                            torch.maximum(lower[:, hi:], V[c, :, hi:], out=lower[:, hi:])
                    right |= (rival == 0) & (lower < 0)
                total += right.sum(1).numpy()
        return total

    def loglik(self, W: np.ndarray, *, batch: int = 256) -> np.ndarray:
        """(K,) mean log-probability of the true class under each weight set (float64)."""
        out = np.empty(len(W))
        Pc = np.where(self.M[:, :, None], self.P, 0.0).transpose(2, 1, 0)  # (7, s, n)
        Mc = self.M.T.astype(np.float64)                                    # (s, n)
        rows = np.arange(len(self.y))
        for start in range(0, len(W), batch):
            Wc = W[start:start + batch].transpose(2, 0, 1)  # (7, K, s)
            num = np.matmul(Wc, Pc)                         # (7, K, n)
            den = np.matmul(Wc, Mc)
            fused = np.where(den > 0, num / np.where(den > 0, den, 1.0), _UNIFORM)
            fused /= np.maximum(fused.sum(0, keepdims=True), 1e-300)
            out[start:start + batch] = np.log(np.clip(fused[self.y, :, rows], 1e-12, 1.0)).mean(0)
        return out


class LearnedFusion:
    """Logistic regression on [log-probabilities (uniform where missing), mask indicators]."""

    name = "learned"

    def __init__(self, *, C: float = 1.0, seed: int = 0):
        self.C, self.seed = C, seed

    def get_params(self) -> dict[str, Any]:
        return {"C": self.C, "seed": self.seed}

    @staticmethod
    def _features(P: np.ndarray, M: np.ndarray) -> np.ndarray:
        filled = np.where(M[:, :, None], P, _UNIFORM)
        return np.concatenate([np.log(np.clip(filled, 1e-6, 1)).reshape(len(P), -1), M.astype(np.float64)], 1)

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "LearnedFusion":
        from sklearn.linear_model import LogisticRegression

        P, M, y = _labelled(P, M, y)
        if not len(y):
            raise ValueError("learned fusion needs labelled clips to fit on")
        X = self._features(P, M)
        self.n_specialists_ = P.shape[1]
        self.coef_ = np.zeros((N_CLASSES, X.shape[1]))
        self.intercept_ = np.full(N_CLASSES, -1e3)  # classes never seen in fitting: never predicted
        classes = np.unique(y)
        if len(classes) == 1:  # one class seen: always predict it
            self.intercept_[classes[0]] = 0.0
            return self
        with _one_thread():
            lr = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y)
        coef = lr.coef_ if len(classes) > 2 else np.vstack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
        icpt = lr.intercept_ if len(classes) > 2 else np.array([-lr.intercept_[0] / 2, lr.intercept_[0] / 2])
        self.coef_[classes] = coef
        self.intercept_[classes] = icpt
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = _check(P, M, self.coef_.shape[1] // (N_CLASSES + 1))
        return _softmax_scored(self._features(P, M) @ self.coef_.T + self.intercept_, M)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LearnedFusion":
        model = cls()
        model.coef_ = np.asarray(arrays["coef"], np.float64)
        model.intercept_ = np.asarray(arrays["intercept"], np.float64)
        model.n_specialists_ = model.coef_.shape[1] // (N_CLASSES + 1)
        return model


class LogLinearFusion:
    """A weighted product of experts: softmax(sum_s w_s * log p_s + b), w_s >= 0, fitted by
    maximum likelihood (L-BFGS, a small L2 penalty).

    One weight per specialist plus a class bias: s + 7 parameters where the per-class methods
    have 7s or more, so it holds up on the small validation splits fusion is fitted on. Summing
    log-probabilities suits specialists that look at independent evidence (face, voice): each
    sharpens what the others say, where an arithmetic mean only averages. A weight going to 0
    drops a specialist that does not help; a missing specialist simply adds nothing.
    """

    name = "log_linear"

    def __init__(self, *, l2: float = 1e-2, seed: int = 0):
        self.l2, self.seed = l2, seed

    def get_params(self) -> dict[str, Any]:
        return {"l2": self.l2, "seed": self.seed}

    @staticmethod
    def _logs(P: np.ndarray, M: np.ndarray) -> np.ndarray:
        return np.where(M[:, :, None], np.log(np.clip(P, 1e-6, 1.0)), 0.0)  # (n, s, 7)

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "LogLinearFusion":
        from scipy.optimize import minimize

        P, M, y = _labelled(P, M, y)
        if not len(y):
            raise ValueError("log-linear fusion needs labelled clips to fit on")
        n_spec = P.shape[1]
        logs = self._logs(P, M)
        onehot = np.eye(N_CLASSES)[y]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:n_spec], theta[n_spec:]
            prob = _softmax(np.einsum("s,nsc->nc", w, logs) + b)
            nll = -np.log(np.clip((prob * onehot).sum(1), 1e-300, None)).mean()
            err = (prob - onehot) / len(y)  # d nll / d z
            grad = np.concatenate([np.einsum("nc,nsc->s", err, logs), err.sum(0)])
            return nll + self.l2 * float(theta @ theta), grad + 2 * self.l2 * theta

        start = np.concatenate([np.full(n_spec, 1.0 / n_spec), np.zeros(N_CLASSES)])
        bounds = [(0.0, None)] * n_spec + [(None, None)] * N_CLASSES
        with _one_thread():
            result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
        self.weights_, self.bias_ = result.x[:n_spec].copy(), result.x[n_spec:].copy()
        self.n_specialists_ = n_spec
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = _check(P, M, len(self.weights_))
        return _softmax_scored(np.einsum("s,nsc->nc", self.weights_, self._logs(P, M)) + self.bias_, M)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, "bias": self.bias_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LogLinearFusion":
        model = cls()
        model.weights_ = np.asarray(arrays["weights"], np.float64)
        model.bias_ = np.asarray(arrays["bias"], np.float64)
        model.n_specialists_ = len(model.weights_)
        return model


FUSERS = {"mean": MeanFusion, "random_search": RandomSearchFusion, "learned": LearnedFusion,
          "log_linear": LogLinearFusion}


def cross_val_accuracy(make: Callable[[], Any], P: np.ndarray, M: np.ndarray, y: np.ndarray, *,
                       folds: int = 5, seed: int = 0) -> float:
    """Out-of-fold accuracy of the fuser ``make()`` builds, on labelled clips (class-stratified folds).

    Use it to choose among fusion methods fitted on one split: their accuracy on that split is
    in-sample and favours the most flexible (a learned fuser can score 100% there).
    """
    P, M, y = _labelled(P, M, y)
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


def save_fuser(path: Path | str, fuser: Any, *, specialists: list[str], metrics: dict | None = None) -> Path:
    """One fitted fuser as a safe bundle (kind ``fusion``): its arrays + method and specialist order."""
    from emonets.bundle import Bundle, save_bundle

    params = fuser.get_params() if hasattr(fuser, "get_params") else {}
    bundle = Bundle(kind="fusion", config={"method": fuser.name, "specialists": list(specialists), "params": params},
                    metrics=metrics or {}, arrays=fuser.to_arrays())
    return save_bundle(path, bundle)


def load_fuser(path: Path | str) -> tuple[Any, list[str]]:
    """(fuser, specialist order) from a bundle written by ``save_fuser``."""
    from emonets.bundle import load_bundle

    bundle = load_bundle(path, kind="fusion")
    method = bundle.config["method"]
    if method not in FUSERS:
        raise ValueError(f"{path}: unknown fusion method {method!r}")
    return FUSERS[method].from_arrays(bundle.arrays), list(bundle.config["specialists"])
