"""Score many weight sets at once for the random search (torch, batched by mask pattern).

Its own module because it is the speed-critical part, tested against a plain loop.
"""

from __future__ import annotations

import numpy as np

from emonets.fusion.base import N_CLASSES, UNIFORM


class Scorer:
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
                    V += torch.from_numpy((den[:, 0, :].T == 0).astype(np.float32) * UNIFORM)[:, :, None]
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
            fused = np.where(den > 0, num / np.where(den > 0, den, 1.0), UNIFORM)
            fused /= np.maximum(fused.sum(0, keepdims=True), 1e-300)
            out[start:start + batch] = np.log(np.clip(fused[self.y, :, rows], 1e-12, 1.0)).mean(0)
        return out
