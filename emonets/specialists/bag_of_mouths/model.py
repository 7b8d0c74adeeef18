"""The bag-of-mouths specialist: k-means dictionaries of small mouth patches, triangle codes,
logistic regression; a clip's probabilities are the mean of its frames' (EmoNets 2013).

Per frame: the grey mouth patch is cut into a ``grid`` of regions; every region yields dense
``patch`` x ``patch`` sub-patches (stride 1), each contrast-normalised and PCA-whitened with that
region's whitening; each region has its own k-means dictionary; a sub-patch's triangle code is
averaged over its region, and the regions' codes are concatenated into the frame's vector
(regions x centroids). A standardised multinomial logistic regression (L2 weight decay, strength
1/C) maps frame vectors to the seven classes.

The paper used a 4x4 grid of 8x8x3 patches on a ~38x50 colour mouth crop and 400 centroids per
region. Our mouth patch is grey and smaller (16x28 by default, see ``emonets.features.mouths``), so the
defaults are a 2x4 grid of 8x7 regions with 5x5 patches (12 per region).

``items[i]`` of a ClipSet holds clip i's (T, h, w) uint8 mouth patches (T = 1 for still
images). A clip with no frame cannot be scored: its row of ``predict_proba`` is NaN.

A frame's code is kept in half precision, and a clip's codes go through the clip cache
(emonets.clip_cache, keyed by the dictionaries and the clip's content) when the training task
sets one: a warm re-fit after one added clip encodes that clip only.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.clip_cache import cached_per_clip, digest
from emonets.specialists.base import N_CLASSES, ClipSet, Specialist
from emonets.specialists.coding import (
    Whitening,
    contrast_normalise,
    fit_dictionary,
    fit_whitening,
    triangle_encode,
)


@dataclass(frozen=True, kw_only=True)
class BagOfMouthsConfig:
    """Everything that shapes a bag-of-mouths model (stored in its bundle)."""

    grid: tuple[int, int] = (2, 4)      # regions: rows, columns
    patch: int = 5                      # dense sub-patch side, pixels
    n_centroids: int = 400              # k-means dictionary size per region (the paper: 400)
    cn_eps: float = 10.0                # contrast normalisation regulariser (pixel units squared)
    pca_variance: float = 0.9           # whitening keeps this fraction of the variance (the paper: 90%)
    whiten_eps: float = 0.1
    kmeans_patches_per_frame: int = 10  # sub-patches per frame and region drawn for k-means (paper: 10)
    max_kmeans_patches: int = 100_000   # per region
    kmeans_iter: int = 50
    C: float = 0.001                    # inverse L2 strength; 0.001-0.01 tie on a FER-train hold-out
    max_iter: int = 500
    max_frames_per_clip: int | None = 50  # training frames per clip (evenly spaced); None = all
    max_train_frames: int | None = 40_000  # and in all (fewer per clip on a large set): training
    #                                       memory stays flat in the clip count; None = no bound
    chunk: int = 2048                   # frames encoded at a time (bounds memory)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(v) for v in self.grid))
        if min(self.grid) < 1 or self.patch < 1 or self.n_centroids < 1:
            raise ValueError("grid, patch and n_centroids must be positive")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BagOfMouthsConfig":
        return cls(**{**d, "grid": tuple(d["grid"])})


def region_edges(shape: tuple[int, int], grid: tuple[int, int], patch: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of each region of an (h, w) patch, row-major; each holds >= one sub-patch."""
    h, w = shape
    ys = np.linspace(0, h, grid[0] + 1).round().astype(int)
    xs = np.linspace(0, w, grid[1] + 1).round().astype(int)
    edges = [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(grid[0]) for j in range(grid[1])]
    if any(y1 - y0 < patch or x1 - x0 < patch for y0, y1, x0, x1 in edges):
        raise ValueError(f"a {grid} grid on a {shape} mouth patch leaves regions smaller than {patch}x{patch}")
    return [tuple(int(v) for v in e) for e in edges]


def region_patches(frames: np.ndarray, edge: tuple[int, int, int, int], patch: int) -> np.ndarray:
    """(N, P, patch*patch) float32: every dense sub-patch (stride 1) of one region of N frames."""
    y0, y1, x0, x1 = edge
    views = sliding_window_view(frames[:, y0:y1, x0:x1], (patch, patch), axis=(1, 2))
    n, py, px = views.shape[:3]
    return views.reshape(n, py * px, patch * patch).astype(np.float32)


class BagOfMouths(Specialist):
    """Mouth patches -> per-region triangle codes -> logistic regression (see module doc)."""

    name = "bag_of_mouths"

    def __init__(self, config: BagOfMouthsConfig = BagOfMouthsConfig()):
        self.config = config

    # -- features ---------------------------------------------------------------------------
    def _check_frames(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3:
            raise ValueError(f"mouth patches must be (T, h, w), got {frames.shape}")
        if hasattr(self, "patch_shape_") and frames.shape[0] and tuple(frames.shape[1:]) != self.patch_shape_:
            raise ValueError(f"mouth patches are {frames.shape[1:]}, the model was fitted on {self.patch_shape_}")
        return frames.astype(np.uint8, copy=False)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(T, regions * centroids) float32 frame vectors of (T, h, w) mouth patches."""
        frames = self._check_frames(frames)
        cfg = self.config
        width = sum(len(c) for c in self.centroids_)
        out = np.empty((len(frames), width), dtype=np.float32)
        for start in range(0, len(frames), cfg.chunk):
            block = frames[start : start + cfg.chunk]
            col = 0
            for edge, white, cents in zip(self.edges_, self.whitenings_, self.centroids_):
                p = region_patches(block, edge, cfg.patch)
                n, n_p, d = p.shape
                z = white.transform(contrast_normalise(p.reshape(n * n_p, d), eps=cfg.cn_eps))
                out[start : start + n, col : col + len(cents)] = triangle_encode(z, cents).reshape(n, n_p, -1).mean(1)
                col += len(cents)
        return out

    def frame_codes(self, frames: np.ndarray) -> np.ndarray:
        """(T, regions * centroids) float16 codes: ``encode`` rounded to half precision, the form
        in which codes are kept per clip (emonets.clip_cache), so a cached and a fresh code agree."""
        return self.encode(frames).astype(np.float16)

    def representation_key(self) -> str:
        """Digest of what a clip's codes depend on: whitenings, dictionaries and patch settings."""
        return "mouths-" + digest([w.mean for w in self.whitenings_], [w.matrix for w in self.whitenings_],
                                  self.centroids_, self.patch_shape_, self.config.patch, self.config.cn_eps,
                                  self.config.grid)

    def clip_codes(self, data: ClipSet, rows: list[int]) -> list[np.ndarray]:
        """Each of those clips' frame codes: from the clip cache where it holds them, else encoded
        (all the missing clips' frames together) and then kept there."""
        def compute(idx: list[int]) -> list[np.ndarray]:
            items = [self._check_frames(data.items[rows[i]]) for i in idx]
            codes = self.frame_codes(np.concatenate(items))
            ends = np.cumsum([len(i) for i in items])
            return [codes[end - len(item): end] for end, item in zip(ends, items)]

        return cached_per_clip(self.clip_cache, self.representation_key(), [data.clip_ids[k] for k in rows], compute)

    # -- training ---------------------------------------------------------------------------
    def _frames_per_clip(self, data: ClipSet) -> int | None:
        """At most max_frames_per_clip a clip, and fewer on a large set (about max_train_frames in all)."""
        cap, total = self.config.max_frames_per_clip, self.config.max_train_frames
        if total is not None:
            n_clips = max(1, sum(1 for item, label in zip(data.items, data.labels) if label >= 0 and len(item)))
            cap = max(1, total // n_clips) if cap is None else max(1, min(cap, total // n_clips))
        return cap

    @staticmethod
    def _pick(n: int, cap: int | None) -> np.ndarray:
        """Indices of the (evenly spaced) training frames among a clip's ``n``."""
        return np.arange(n) if cap is None or n <= cap else np.linspace(0, n - 1, cap).round().astype(int)

    def _training_rows(self, data: ClipSet) -> list[int]:
        rows = [k for k, (item, label) in enumerate(zip(data.items, data.labels)) if label >= 0 and len(item)]
        if not rows:
            raise ValueError("no labelled frame to train on")
        return rows

    def _training_frames(self, data: ClipSet) -> tuple[np.ndarray, np.ndarray]:
        """Frames (evenly spaced, at most max_frames_per_clip per clip and about max_train_frames
        in all) and their clip's label."""
        cap = self._frames_per_clip(data)
        frames, labels = [], []
        for k in self._training_rows(data):
            item = self._check_frames(data.items[k])
            frames.append(item[self._pick(len(item), cap)])
            labels.append(np.full(len(frames[-1]), data.labels[k], dtype=np.int64))
        return np.concatenate(frames), np.concatenate(labels)

    def _training_codes(self, data: ClipSet) -> tuple[np.ndarray, np.ndarray]:
        """The codes of the frames ``_training_frames`` picks, and their labels, read clip by clip
        through the clip cache (a group of clips at a time: memory bounded by the picked frames)."""
        cap = self._frames_per_clip(data)
        rows = self._training_rows(data)
        codes, labels = [], []
        for group in _clip_groups([len(data.items[k]) for k in rows], self.config.chunk):
            for k, clip in zip((rows[g] for g in group), self.clip_codes(data, [rows[g] for g in group])):
                codes.append(clip[self._pick(len(clip), cap)].astype(np.float32))
                labels.append(np.full(len(codes[-1]), data.labels[k], dtype=np.int64))
        return np.concatenate(codes), np.concatenate(labels)

    def fit(self, train: ClipSet, val: ClipSet | None = None) -> "BagOfMouths":
        """Learn whitenings and dictionaries per region, then the logistic regression."""
        cfg = self.config
        t0 = time.perf_counter()
        frames, labels = self._training_frames(train)
        if len(np.unique(labels)) < 2:
            raise ValueError("need at least two classes to train")
        self.patch_shape_ = tuple(int(v) for v in frames.shape[1:])
        self.edges_ = region_edges(self.patch_shape_, cfg.grid, cfg.patch)
        rng = np.random.default_rng(cfg.seed)
        n_sample = min(len(frames) * cfg.kmeans_patches_per_frame, cfg.max_kmeans_patches)
        self.whitenings_, self.centroids_ = [], []
        for r, edge in enumerate(self.edges_):
            patches = region_patches(frames, edge, cfg.patch)  # (N, P, d) view-sized copy
            n, n_p, d = patches.shape
            pick = rng.choice(n * n_p, size=min(n_sample, n * n_p), replace=False)
            sample = contrast_normalise(patches.reshape(n * n_p, d)[pick], eps=cfg.cn_eps)
            white = fit_whitening(sample, variance=cfg.pca_variance, eps=cfg.whiten_eps)
            self.whitenings_.append(white)
            self.centroids_.append(fit_dictionary(white.transform(sample), n_centroids=cfg.n_centroids,
                                                  seed=cfg.seed + r, max_iter=cfg.kmeans_iter))
        del frames
        t_dict = time.perf_counter() - t0
        self._fit_head(train, val)
        self.metrics_.update(dictionary_seconds=round(t_dict, 2), fit_seconds=round(time.perf_counter() - t0, 2))
        return self

    def fit_warm(self, previous: "BagOfMouths", train: ClipSet, val: ClipSet | None = None) -> "BagOfMouths":
        """Continue from ``previous``: its whitenings and k-means dictionaries (learnt from a
        sample of at most ``max_kmeans_patches`` patches a region, which a few added clips barely
        move) are kept; the logistic regression re-fits on the new training frames, whose codes
        come from the clip cache (only added clips are encoded)."""
        t0 = time.perf_counter()
        shapes = {tuple(self._check_frames(train.items[k]).shape[1:]) for k in self._training_rows(train)}
        if shapes != {tuple(previous.patch_shape_)}:
            raise ValueError(f"mouth patches are {sorted(shapes)}, the previous model took {previous.patch_shape_}")
        for attr in ("patch_shape_", "edges_", "whitenings_", "centroids_"):
            setattr(self, attr, getattr(previous, attr))
        self._fit_head(train, val, start_from=previous.classifier_)
        self.metrics_["fit_seconds"] = round(time.perf_counter() - t0, 2)
        self.warm_start_ = ("whitenings and dictionaries kept from the previous model; logistic regression re-fit "
                            "from its weights")
        return self

    def _fit_head(self, train: ClipSet, val: ClipSet | None, start_from=None) -> None:
        """The standardised logistic regression on the training frames' codes; val accuracy when given.
        ``start_from``: a previous classifier whose weights start the solver (same optimum, fewer
        iterations) when it knew the same classes."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        cfg = self.config
        features, labels = self._training_codes(train)
        if len(np.unique(labels)) < 2:
            raise ValueError("need at least two classes to train")
        head = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
        previous = start_from[-1] if start_from is not None else None
        if previous is not None and np.array_equal(previous.classes_, np.unique(labels)):
            head.set_params(warm_start=True)
            head.coef_, head.intercept_ = previous.coef_.copy(), previous.intercept_.copy()
        clf = make_pipeline(StandardScaler(), head)
        clf.fit(features, labels)
        head.set_params(warm_start=False)  # a later fit of this estimator starts afresh
        self.classifier_ = clf
        self.metrics_ = {
            "train_frames": int(len(features)),
            "train_frame_accuracy": float((clf.predict(features) == labels).mean()),
            "whitening_components": [w.n_components for w in self.whitenings_],
            "solver_iterations": int(np.max(head.n_iter_)),
        }
        if val is not None and (val.labels >= 0).any():
            proba = self.predict_proba(val)
            ok = (val.labels >= 0) & ~np.isnan(proba).any(axis=1)
            self.metrics_["val_accuracy"] = float((proba[ok].argmax(1) == val.labels[ok]).mean())

    # -- prediction -------------------------------------------------------------------------
    def _codes_proba(self, codes: np.ndarray) -> np.ndarray:
        out = np.zeros((len(codes), N_CLASSES), dtype=np.float64)
        if len(codes):
            out[:, self.classifier_.classes_] = self.classifier_.predict_proba(codes.astype(np.float32))
        return out

    def frame_proba(self, frames: np.ndarray) -> np.ndarray:
        """(T, 7) class probabilities of each frame (classes unseen in training get 0)."""
        return self._codes_proba(self.frame_codes(self._check_frames(frames)))

    def predict_proba(self, data: ClipSet) -> np.ndarray:
        """(n_clips, 7): the mean of each clip's frame probabilities; NaN rows for clips without frames."""
        out = np.full((len(data), N_CLASSES), np.nan)
        for group in _clip_groups([len(i) for i in data.items], self.config.chunk):  # bounded: a few chunks
            codes = self.clip_codes(data, group)
            probs = self._codes_proba(np.concatenate(codes))
            ends = np.cumsum([len(c) for c in codes])
            for k, end, clip in zip(group, ends, codes):
                out[k] = probs[end - len(clip): end].mean(axis=0)
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        arrays = {"patch_shape": np.array(self.patch_shape_, dtype=np.int64)}
        for r, (white, cents) in enumerate(zip(self.whitenings_, self.centroids_)):
            arrays[f"whiten_mean_{r}"] = white.mean
            arrays[f"whiten_matrix_{r}"] = white.matrix
            arrays[f"centroids_{r}"] = cents
        bundle = Bundle(kind=self.name, config=self.config.to_dict(), metrics=getattr(self, "metrics_", {}),
                        estimators={"classifier": self.classifier_}, arrays=arrays)
        return save_bundle(path, bundle)

    @classmethod
    def load(cls, path: Path | str) -> "BagOfMouths":
        bundle = load_bundle(path, kind=cls.name)
        model = cls(BagOfMouthsConfig.from_dict(bundle.config))
        a = bundle.arrays
        model.patch_shape_ = tuple(int(v) for v in a["patch_shape"])
        model.edges_ = region_edges(model.patch_shape_, model.config.grid, model.config.patch)
        n = len(model.edges_)
        model.whitenings_ = [Whitening(a[f"whiten_mean_{r}"], a[f"whiten_matrix_{r}"]) for r in range(n)]
        model.centroids_ = [a[f"centroids_{r}"] for r in range(n)]
        model.classifier_ = bundle.estimators["classifier"]
        model.metrics_ = bundle.metrics
        return model


def _clip_groups(lengths: list[int], frames: int) -> list[list[int]]:
    """Indices of the clips with frames, grouped in order so a group holds about ``frames`` frames
    (a longer clip is a group of its own): predicting a split never encodes all its frames at once."""
    groups, group, size = [], [], 0
    for k, n in enumerate(lengths):
        if not n:
            continue
        if group and size + n > frames:
            groups.append(group)
            group, size = [], 0
        group.append(k)
        size += n
    return groups + [group] if group else groups
