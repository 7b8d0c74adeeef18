"""Generic feature coding after Coates et al. (2011), shared by bag_of_mouths and motion.

Plain numpy on (n, d) float arrays: per-row contrast normalisation, PCA whitening (fitted on
training rows, keeping a fraction of the variance), a k-means dictionary (MiniBatchKMeans), soft
"triangle" codes and nearest-centroid words. Whitening and dictionaries are kept as plain
arrays, so they go into a model bundle's ``arrays.npz`` and reload without unpickling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg


def contrast_normalise(x: np.ndarray, *, eps: float = 10.0) -> np.ndarray:
    """Each row minus its mean, divided by sqrt(its variance + eps), as float32.

    ``eps`` is in squared input units (10 suits 0..255 pixels): it keeps flat, low-contrast rows
    near zero instead of blowing their noise up to unit variance.
    """
    x = np.asarray(x, dtype=np.float32)
    centred = x - x.mean(axis=1, keepdims=True)
    return centred / np.sqrt(centred.var(axis=1, keepdims=True) + np.float32(eps))


@dataclass
class Whitening:
    """PCA whitening: ``transform(x) = (x - mean) @ matrix`` with matrix = V_k / sqrt(lambda_k + eps)."""

    mean: np.ndarray    # (d,) float32
    matrix: np.ndarray  # (d, k) float32

    @property
    def n_components(self) -> int:
        return int(self.matrix.shape[1])

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) - self.mean) @ self.matrix

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to input space (the least-squares inverse on the kept components)."""
        return np.asarray(z, dtype=np.float32) @ np.linalg.pinv(self.matrix) + self.mean


def fit_whitening(x: np.ndarray, *, variance: float = 0.9, max_components: int | None = None,
                  eps: float = 0.1) -> Whitening:
    """PCA whitening fitted on the rows of ``x``: the fewest leading components that explain
    ``variance`` of the total (capped at ``max_components``); ``eps`` regularises small eigenvalues."""
    if not 0 < variance <= 1:
        raise ValueError("variance must be in (0, 1]")
    x = np.asarray(x, dtype=np.float32)
    if len(x) < 2:
        raise ValueError("need at least two rows to fit a whitening")
    mean = x.mean(axis=0)
    centred = x - mean
    n, d = centred.shape
    m = min(d, n) if max_components is None else max(1, min(max_components, d, n))
    if n < d:  # fewer rows than dimensions: decompose the n x n Gram matrix instead
        gram = (centred @ centred.T).astype(np.float64) / n
        total = float(np.trace(gram))
        values, left = scipy.linalg.eigh(gram, subset_by_index=[n - m, n - 1])
        values, left = np.clip(values[::-1], 0.0, None), left[:, ::-1]
        vectors = centred.T.astype(np.float64) @ left / np.sqrt(np.maximum(values, 1e-12) * n)
    else:
        cov = (centred.T @ centred).astype(np.float64) / n
        total = float(np.trace(cov))
        # Only the m leading eigenpairs are needed: much faster than a full decomposition for large d.
        values, vectors = scipy.linalg.eigh(cov, subset_by_index=[d - m, d - 1])
        values, vectors = np.clip(values[::-1], 0.0, None), vectors[:, ::-1]
    k = m if total <= 0 else int(np.searchsorted(np.cumsum(values) / total, variance - 1e-9) + 1)
    k = max(1, min(k, m))
    matrix = vectors[:, :k] / np.sqrt(values[:k] + eps)
    return Whitening(mean.astype(np.float32), matrix.astype(np.float32))


def fit_dictionary(x: np.ndarray, *, n_centroids: int, seed: int = 0, batch_size: int = 4096,
                   max_iter: int = 50) -> np.ndarray:
    """(k, d) float32 centroids of the rows of ``x`` by MiniBatchKMeans (k = min(n_centroids, rows))."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.asarray(x, dtype=np.float32)
    k = max(1, min(n_centroids, len(x)))
    km = MiniBatchKMeans(n_clusters=k, batch_size=min(batch_size, len(x)), max_iter=max_iter, n_init=1,
                         random_state=seed, reassignment_ratio=0.01)
    km.fit(x)
    return km.cluster_centers_.astype(np.float32)


def _distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, k) Euclidean distances between rows and centroids."""
    sq = (x * x).sum(axis=1, keepdims=True) - 2.0 * (x @ centroids.T) + (centroids * centroids).sum(axis=1)
    return np.sqrt(np.maximum(sq, 0.0))


def triangle_encode(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Coates' soft "triangle" code: f_k = max(0, mean_j(z_j) - z_k), z_k = ||x - c_k||; (n, k) float32.

    About half the entries are zero: a row activates the centroids closer than its average one.
    """
    z = _distances(np.asarray(x, dtype=np.float32), np.asarray(centroids, dtype=np.float32))
    return np.maximum(0.0, z.mean(axis=1, keepdims=True) - z).astype(np.float32)


def nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n,) int64 index of each row's nearest centroid (its visual word)."""
    return _distances(np.asarray(x, dtype=np.float32), np.asarray(centroids, dtype=np.float32)).argmin(axis=1)
