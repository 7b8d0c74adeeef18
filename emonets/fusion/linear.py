"""The fusers that fit a linear model of the log-probabilities: logistic regression and the
weighted product of experts."""

from __future__ import annotations

import numpy as np

from emonets.fusion.base import N_CLASSES, UNIFORM, check_shapes, labelled, one_thread, softmax, softmax_scored


class LearnedFusion:
    """Logistic regression on [log-probabilities (uniform where missing), mask indicators]."""

    name = "learned"

    def __init__(self, *, C: float = 1.0, seed: int = 0):
        self.C, self.seed = C, seed

    @staticmethod
    def _features(P: np.ndarray, M: np.ndarray) -> np.ndarray:
        filled = np.where(M[:, :, None], P, UNIFORM)
        return np.concatenate([np.log(np.clip(filled, 1e-6, 1)).reshape(len(P), -1), M.astype(np.float64)], 1)

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "LearnedFusion":
        from sklearn.linear_model import LogisticRegression

        P, M, y = labelled(P, M, y)
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
        with one_thread():
            lr = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y)
        coef = lr.coef_ if len(classes) > 2 else np.vstack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
        icpt = lr.intercept_ if len(classes) > 2 else np.array([-lr.intercept_[0] / 2, lr.intercept_[0] / 2])
        self.coef_[classes] = coef
        self.intercept_[classes] = icpt
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = check_shapes(P, M, self.coef_.shape[1] // (N_CLASSES + 1))
        return softmax_scored(self._features(P, M) @ self.coef_.T + self.intercept_, M)

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

    @staticmethod
    def _logs(P: np.ndarray, M: np.ndarray) -> np.ndarray:
        return np.where(M[:, :, None], np.log(np.clip(P, 1e-6, 1.0)), 0.0)  # (n, s, 7)

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray) -> "LogLinearFusion":
        from scipy.optimize import minimize

        P, M, y = labelled(P, M, y)
        if not len(y):
            raise ValueError("log-linear fusion needs labelled clips to fit on")
        n_spec = P.shape[1]
        logs = self._logs(P, M)
        onehot = np.eye(N_CLASSES)[y]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:n_spec], theta[n_spec:]
            prob = softmax(np.einsum("s,nsc->nc", w, logs) + b)
            nll = -np.log(np.clip((prob * onehot).sum(1), 1e-300, None)).mean()
            err = (prob - onehot) / len(y)  # d nll / d z
            grad = np.concatenate([np.einsum("nc,nsc->s", err, logs), err.sum(0)])
            return nll + self.l2 * float(theta @ theta), grad + 2 * self.l2 * theta

        start = np.concatenate([np.full(n_spec, 1.0 / n_spec), np.zeros(N_CLASSES)])
        bounds = [(0.0, None)] * n_spec + [(None, None)] * N_CLASSES
        with one_thread():
            result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
        self.weights_, self.bias_ = result.x[:n_spec].copy(), result.x[n_spec:].copy()
        self.n_specialists_ = n_spec
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = check_shapes(P, M, len(self.weights_))
        return softmax_scored(np.einsum("s,nsc->nc", self.weights_, self._logs(P, M)) + self.bias_, M)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, "bias": self.bias_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LogLinearFusion":
        model = cls()
        model.weights_ = np.asarray(arrays["weights"], np.float64)
        model.bias_ = np.asarray(arrays["bias"], np.float64)
        model.n_specialists_ = len(model.weights_)
        return model
