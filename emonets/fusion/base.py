"""What every fuser shares: input checks, class-weighted averaging, softmax, the one-thread guard,
and the plain mean.

Kept apart so each fuser module holds only its own fitting rule.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from emonets.labels import PROB_COLUMNS

N_CLASSES = len(PROB_COLUMNS)
UNIFORM = 1.0 / N_CLASSES


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
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), UNIFORM)
    total = out.sum(1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def check_shapes(P: np.ndarray, M: np.ndarray, n_specialists: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P, M) as float64 / bool arrays; ValueError if their shapes do not fit (or the specialist count)."""
    P, M = np.asarray(P, np.float64), np.asarray(M, bool)
    if P.ndim != 3 or P.shape[2] != N_CLASSES or M.shape != P.shape[:2]:
        raise ValueError(f"expected P (n, s, {N_CLASSES}) and M (n, s); got {P.shape} and {M.shape}")
    if n_specialists is not None and P.shape[1] != n_specialists:
        raise ValueError(f"fitted on {n_specialists} specialists, given {P.shape[1]}")
    return P, M


def labelled(P, M, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked (P, M, y) of the labelled clips only (``y >= 0``)."""
    P, M = check_shapes(P, M)
    y = np.asarray(y, np.int64)
    if len(y) != len(P):
        raise ValueError(f"{len(y)} labels for {len(P)} clips")
    if ((y >= N_CLASSES)).any():
        raise ValueError(f"labels must be class indices 0..{N_CLASSES - 1} (or -1 for unlabelled)")
    keep = y >= 0
    return P[keep], M[keep], y[keep]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of class scores (n, 7)."""
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def softmax_scored(z: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Softmax of the scores; a clip no specialist scored gets 1/7, like the other fusers."""
    out = softmax(z)
    out[unscored(M)] = UNIFORM
    return out


class MeanFusion:
    """The mean of the present specialists' probabilities (needs no labels)."""

    name = "mean"

    def fit(self, P: np.ndarray, M: np.ndarray, y: np.ndarray | None = None) -> "MeanFusion":
        self.n_specialists_ = check_shapes(P, M)[0].shape[1]
        return self

    def predict_proba(self, P: np.ndarray, M: np.ndarray) -> np.ndarray:
        P, M = check_shapes(P, M, self.n_specialists_)
        return weighted(P, M, np.ones((P.shape[1], N_CLASSES)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n_specialists": np.array(self.n_specialists_)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "MeanFusion":
        model = cls()
        model.n_specialists_ = int(arrays["n_specialists"])
        return model


@contextmanager
def one_thread(*, torch_too: bool = False):
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
