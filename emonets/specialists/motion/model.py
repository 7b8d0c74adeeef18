"""The motion specialist: synchrony-autoencoder codes of whole-frame blocks, a bag of visual
words per clip, and a chi-squared-kernel SVM (EmoNets' "activity" model, after Konda et al.).

Steps (all fitted on the training clips):

1. each 16x16x10 block (``emonets.features.motion_blocks``) is flattened, contrast-normalised and
   PCA-whitened (keeping ``pca_variance`` of the variance);
2. a SynchronyAE (``emonets.specialists.motion.autoencoder``) learns ``n_hidden`` motion-energy units from the whitened
   blocks, unsupervised, so unlabelled clips (label -1) help here and in step 3;
3. MiniBatchKMeans quantises the blocks' codes into ``n_words`` words; a clip becomes the
   L1-normalised histogram of its blocks' words;
4. an SVM with the chi-squared kernel exp(-gamma * chi2(x, y)) (precomputed, C = 100 as in the
   paper; gamma = 1 / mean chi2 distance of the training histograms unless set) on the labelled
   clips. Probabilities: a multinomial logistic regression fitted on the SVM's out-of-fold scores
   (Platt-style calibration) when every class has >= 2 training clips, else a softmax of the scores.
   (libsvm's built-in Platt scaling, deprecated in scikit-learn 1.9, contradicts the SVM's own
   decisions when a class has one clip.)

``items[i]`` of a ClipSet holds clip i's (N_blocks, depth, h, w) uint8 blocks, as an array or
as a lazy item read when used (training: emonets.stored_features.StoredClip, so the ~5 MB of
blocks a clip are never all held at once). A clip without blocks cannot be scored: its row of
``predict_proba`` is NaN.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.clip_cache import cached_per_clip, digest
from emonets.specialists.base import N_CLASSES, ClipSet, Specialist
from emonets.specialists.coding import (
    Whitening,
    contrast_normalise,
    fit_dictionary,
    fit_whitening,
    nearest_centroid,
)


@dataclass(frozen=True, kw_only=True)
class MotionSpecialistConfig:
    """Everything that shapes a motion model (stored in its bundle)."""

    cn_eps: float = 10.0              # contrast normalisation regulariser (pixel units squared)
    pca_variance: float = 0.9
    max_pca_components: int = 300
    whiten_eps: float = 0.1
    max_whiten_blocks: int = 20_000   # blocks sampled to fit the whitening
    n_hidden: int = 300               # product units (the paper: 300)
    noise: float = 0.3                # denoising: fraction of inputs zeroed while training
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 20
    patience: int = 3                 # early stopping (epochs) when a validation split is given
    max_train_blocks: int = 100_000   # blocks sampled to train the autoencoder
    n_words: int = 400                # k-means vocabulary
    max_kmeans_codes: int = 100_000
    kmeans_iter: int = 50
    svm_C: float = 100.0              # the paper's C
    chi2_gamma: float | None = None   # None: 1 / mean chi2 distance of the training histograms
    calibration_folds: int = 5
    accelerator: str = "auto"
    work_dir: str | None = None       # Lightning logs + checkpoints; None: a temp folder, removed
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionSpecialistConfig":
        return cls(**d)


def _draw(items: list, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clip index, row offset) of at most ``limit`` blocks drawn uniformly from all items, in
    clip order; uses only the items' lengths, so lazy items (emonets.stored_features) stay on disk."""
    sizes = np.array([len(i) for i in items], dtype=np.int64)
    total = int(sizes.sum())
    pick = np.sort(rng.choice(total, size=min(limit, total), replace=False))
    bounds = np.cumsum(sizes)
    clip = np.searchsorted(bounds, pick, side="right")
    return clip, pick - (bounds[clip] - sizes[clip])


def _gather(items: list, draws: list[tuple[np.ndarray, np.ndarray]], row_shape: tuple[int, ...]) -> list[np.ndarray]:
    """The drawn blocks of each draw, reading every clip once for all draws together."""
    out: list[np.ndarray] | None = None
    for c in np.unique(np.concatenate([clip for clip, _ in draws])) if draws else []:
        blocks = np.asarray(items[c])
        if out is None:  # the items' own dtype (uint8 from the store)
            out = [np.empty((len(clip), *row_shape), blocks.dtype) for clip, _ in draws]
        for (clip, offset), dest in zip(draws, out):
            at = clip == c
            dest[at] = blocks[offset[at]]
    return out if out is not None else [np.empty((len(clip), *row_shape), np.uint8) for clip, _ in draws]


def _sample_rows(items: list, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` blocks drawn uniformly from all items, in a fixed order."""
    draw = _draw(items, limit, rng)
    return _gather(items, [draw], tuple(items[0].shape[1:]))[0] if len(draw[0]) else np.zeros((0,), np.uint8)


def chi2_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, m) chi-squared distances sum((x - y)^2 / (x + y)) between histogram rows."""
    from sklearn.metrics.pairwise import additive_chi2_kernel

    return -additive_chi2_kernel(np.asarray(x, np.float64), np.asarray(y, np.float64))


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _scores(svm, kernel: np.ndarray) -> np.ndarray:
    """(n, n_classes) one-vs-rest scores of a fitted SVC (two classes: [-s, s])."""
    s = svm.decision_function(kernel)
    return np.stack([-s, s], axis=1) if s.ndim == 1 else s


class MotionSpecialist(Specialist):
    """Motion blocks -> whitening -> synchrony AE codes -> bag of words -> chi2 SVM."""

    name = "motion"

    def __init__(self, config: MotionSpecialistConfig = MotionSpecialistConfig()):
        self.config = config

    # -- features ---------------------------------------------------------------------------
    def _check(self, blocks: np.ndarray) -> np.ndarray:
        blocks = np.asarray(blocks)
        if blocks.ndim != 4:
            raise ValueError(f"motion blocks must be (N, depth, h, w), got {blocks.shape}")
        if hasattr(self, "block_shape_") and len(blocks) and tuple(blocks.shape[1:]) != self.block_shape_:
            raise ValueError(f"blocks are {blocks.shape[1:]}, the model was fitted on {self.block_shape_}")
        return blocks

    def whiten(self, blocks: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """(N, k) float32 whitened blocks, ``chunk`` rows at a time (the float64 intermediate of
        100k blocks would be 2 GB)."""
        flat = self._check(blocks).reshape(len(blocks), -1)
        parts = [self.whitening_.transform(contrast_normalise(flat[i: i + chunk], eps=self.config.cn_eps))
                 for i in range(0, len(flat), chunk)]
        return np.concatenate(parts) if parts else self.whitening_.transform(
            contrast_normalise(flat, eps=self.config.cn_eps))

    def codes(self, blocks: np.ndarray) -> np.ndarray:
        """(N, n_hidden) autoencoder codes of a clip's blocks."""
        from emonets.specialists.motion.autoencoder import encode

        return encode(self.autoencoder_, self.whiten(blocks))

    def histogram(self, blocks: np.ndarray) -> np.ndarray:
        """(n_words,) L1-normalised bag of words of one clip's blocks (zeros when it has none)."""
        hist = np.zeros(len(self.words_), dtype=np.float64)
        blocks = np.asarray(blocks)  # a lazy item is read here, once
        if len(blocks):
            np.add.at(hist, nearest_centroid(self.codes(blocks), self.words_), 1.0)
            hist /= hist.sum()
        return hist

    def representation_key(self) -> str:
        """Digest of what a clip's histogram depends on: whitening, autoencoder and words."""
        return "motion-" + digest(self.whitening_.mean, self.whitening_.matrix, self.autoencoder_.state_dict(),
                                  self.words_, self.block_shape_, self.config.cn_eps)

    def histograms(self, data: ClipSet, rows: list[int]) -> np.ndarray:
        """(len(rows), n_words) histograms of those clips of ``data``: from the clip cache
        (emonets.clip_cache) where it holds them, else computed (and then kept there)."""
        if not rows:
            return np.zeros((0, len(self.words_)))
        hists = cached_per_clip(self.clip_cache, self.representation_key(), [data.clip_ids[k] for k in rows],
                                lambda idx: [self.histogram(data.items[rows[i]]) for i in idx])
        return np.stack(hists)

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: ClipSet, val: ClipSet | None = None) -> "MotionSpecialist":
        """Whitening, autoencoder and vocabulary on all training blocks; the SVM on labelled clips."""
        from emonets.specialists.motion.training import train_autoencoder

        cfg = self.config
        t0 = time.perf_counter()
        items = [i for i in train.items if len(i)]  # lazy items stay on disk until sampled
        if not items:
            raise ValueError("no motion blocks to train on")
        if any(i.ndim != 4 for i in items):
            raise ValueError(f"motion blocks must be (N, depth, h, w), got {next(i.shape for i in items if i.ndim != 4)}")
        shapes = {tuple(i.shape[1:]) for i in items}
        if len(shapes) != 1:
            raise ValueError(f"training clips hold blocks of differing shapes {shapes}")
        self.block_shape_ = shapes.pop()
        labelled = (train.labels >= 0) & np.array([len(i) > 0 for i in train.items])
        if len(np.unique(train.labels[labelled])) < 2:
            raise ValueError("need labelled clips of at least two classes to train the SVM")
        rng = np.random.default_rng(cfg.seed)

        draws = [_draw(items, cfg.max_whiten_blocks, rng), _draw(items, cfg.max_train_blocks, rng)]
        sample, train_blocks = _gather(items, draws, self.block_shape_)  # one read of each clip
        sample = sample.reshape(len(sample), -1)
        self.whitening_ = fit_whitening(contrast_normalise(sample, eps=cfg.cn_eps), variance=cfg.pca_variance,
                                        max_components=cfg.max_pca_components, eps=cfg.whiten_eps)
        del sample
        x = self.whiten(train_blocks)
        del train_blocks
        x_val = None
        if val is not None:
            val_items = [i for i in val.items if len(i)]
            if val_items:
                x_val = self.whiten(_sample_rows(val_items, max(1, cfg.max_train_blocks // 5), rng))
        t_prep = time.perf_counter() - t0
        result = train_autoencoder(x, x_val, n_hidden=cfg.n_hidden, lr=cfg.lr, noise=cfg.noise,
                                   weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
                                   max_epochs=cfg.max_epochs, patience=cfg.patience, seed=cfg.seed,
                                   accelerator=cfg.accelerator, work_dir=cfg.work_dir)
        self.autoencoder_ = result.net
        t_ae = time.perf_counter()
        from emonets.specialists.motion.autoencoder import encode

        codes = encode(self.autoencoder_, x[rng.permutation(len(x))[: cfg.max_kmeans_codes]])
        self.words_ = fit_dictionary(codes, n_centroids=cfg.n_words, seed=cfg.seed, max_iter=cfg.kmeans_iter)
        t_words = time.perf_counter() - t_ae

        idx = np.flatnonzero(labelled)
        self.train_hist_ = self.histograms(train, list(idx))
        self.train_labels_ = train.labels[idx].astype(np.int64)
        self._fit_svm()
        self.metrics_ = {
            "train_blocks": int(sum(len(i) for i in items)),
            "ae_blocks": int(len(x)),
            "whitening_components": self.whitening_.n_components,
            "ae_epochs": len(result.epoch_seconds),
            "ae_epoch_seconds": [round(s, 3) for s in result.epoch_seconds],
            "ae_history": result.history,
            "ae_initial_loss": result.initial_loss,
            "ae_final_loss": result.final_loss,
            "ae_accelerator": result.accelerator,
            "ae_precision": result.precision,
            "prep_seconds": round(t_prep, 2),
            "kmeans_seconds": round(t_words, 2),
            "svm_clips": int(len(idx)),
            "chi2_gamma": self.gamma_,
            "calibrated": self.calibrator_ is not None,
            "train_accuracy": float((self.svm_.classes_[self._proba(self.train_hist_).argmax(1)]
                                    == self.train_labels_).mean()),
            "fit_seconds": round(time.perf_counter() - t0, 2),
        }
        self._measure_val(val)
        return self

    def fit_warm(self, previous: "MotionSpecialist", train: ClipSet, val: ClipSet | None = None) -> "MotionSpecialist":
        """Continue from ``previous``: its representation (whitening, autoencoder, words) is kept,
        the SVM and its calibration re-fit on the new training clips' histograms (an unchanged clip's
        comes from the clip cache, so only added clips are read and encoded).

        The representation is learnt unsupervised from a sample of at most ``max_train_blocks``
        blocks; a few added clips move that sample by a fraction of a percent, so it is kept as it is
        rather than fine-tuned. A full retrain (a large change, ``--full``, the scheduled run)
        learns it again.
        """
        t0 = time.perf_counter()
        for attr in ("block_shape_", "whitening_", "autoencoder_", "words_"):
            setattr(self, attr, getattr(previous, attr))
        labelled = (train.labels >= 0) & np.array([len(i) > 0 for i in train.items])
        if len(np.unique(train.labels[labelled])) < 2:
            raise ValueError("need labelled clips of at least two classes to train the SVM")
        shapes = {tuple(i.shape[1:]) for i in train.items if len(i)} - {tuple(self.block_shape_)}
        if shapes:
            raise ValueError(f"training clips hold blocks of shapes {shapes}; the previous model took {self.block_shape_}")
        idx = np.flatnonzero(labelled)
        self.train_hist_ = self.histograms(train, list(idx))
        self.train_labels_ = train.labels[idx].astype(np.int64)
        self._fit_svm()
        kept = {k: v for k, v in getattr(previous, "metrics_", {}).items()
                if k.startswith("ae_") or k in ("whitening_components", "train_blocks")}
        self.metrics_ = {**kept, "warm_from_representation": previous.representation_key(),
                         "svm_clips": int(len(idx)), "chi2_gamma": self.gamma_,
                         "calibrated": self.calibrator_ is not None,
                         "fit_seconds": round(time.perf_counter() - t0, 2)}
        self._measure_val(val)
        self.warm_start_ = "whitening, autoencoder and words kept from the previous model; SVM and calibration re-fit"
        return self

    def _measure_val(self, val: ClipSet | None) -> None:
        if val is not None and (val.labels >= 0).any():
            proba = self.predict_proba(val)
            ok = (val.labels >= 0) & ~np.isnan(proba).any(axis=1)
            if ok.any():
                self.metrics_["val_accuracy"] = float((proba[ok].argmax(1) == val.labels[ok]).mean())

    def _fit_svm(self) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        cfg, h, y = self.config, self.train_hist_, self.train_labels_
        dist = chi2_distances(h, h)
        off = dist[~np.eye(len(h), dtype=bool)]
        mean = float(off.mean()) if off.size else 0.0
        self.gamma_ = float(cfg.chi2_gamma if cfg.chi2_gamma is not None else (1.0 / mean if mean > 0 else 1.0))
        kernel = np.exp(-self.gamma_ * dist)
        self.svm_ = SVC(kernel="precomputed", C=cfg.svm_C, decision_function_shape="ovr").fit(kernel, y)
        self.calibrator_ = None
        counts = np.bincount(y)[np.unique(y)]
        folds = min(cfg.calibration_folds, int(counts.min()))
        if folds >= 2:
            oof = np.zeros((len(y), len(self.svm_.classes_)))
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
            for tr, te in splitter.split(kernel, y):
                if len(np.unique(y[tr])) < len(self.svm_.classes_):
                    return  # a fold misses a class: fall back to the softmax
                fold = SVC(kernel="precomputed", C=cfg.svm_C, decision_function_shape="ovr")
                fold.fit(kernel[np.ix_(tr, tr)], y[tr])
                oof[te] = _scores(fold, kernel[np.ix_(te, tr)])
            self.calibrator_ = LogisticRegression(C=1.0, max_iter=1000).fit(oof, y)

    # -- prediction -------------------------------------------------------------------------
    def predict_proba(self, data: ClipSet) -> np.ndarray:
        """(n_clips, 7) class probabilities; NaN rows for clips without blocks."""
        out = np.full((len(data), N_CLASSES), np.nan)
        rows = [k for k, item in enumerate(data.items) if len(item)]
        if not rows:
            return out
        out[rows] = 0.0
        out[np.ix_(rows, self.svm_.classes_)] = self._proba(self.histograms(data, rows))
        return out

    def _proba(self, hist: np.ndarray) -> np.ndarray:
        """(n, n_fitted_classes) probabilities of bag-of-words histograms."""
        scores = _scores(self.svm_, np.exp(-self.gamma_ * chi2_distances(hist, self.train_hist_)))
        return self.calibrator_.predict_proba(scores) if self.calibrator_ is not None else _softmax(scores)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        estimators = {"svm": self.svm_}
        if self.calibrator_ is not None:
            estimators["calibrator"] = self.calibrator_
        arrays = {
            "block_shape": np.array(self.block_shape_, dtype=np.int64),
            "whiten_mean": self.whitening_.mean, "whiten_matrix": self.whitening_.matrix,
            "words": self.words_, "train_hist": self.train_hist_, "train_labels": self.train_labels_,
            "gamma": np.array(self.gamma_),
        }
        ae = self.autoencoder_
        bundle = Bundle(kind=self.name, config=self.config.to_dict(), metrics=getattr(self, "metrics_", {}),
                        torch_states={"autoencoder": ae.state_dict()}, estimators=estimators, arrays=arrays,
                        meta={"n_in": int(ae.W.shape[0]), "n_hidden": int(ae.W.shape[1])})
        return save_bundle(path, bundle)

    @classmethod
    def load(cls, path: Path | str) -> "MotionSpecialist":
        from emonets.specialists.motion.autoencoder import SynchronyAE

        bundle = load_bundle(path, kind=cls.name)
        model = cls(MotionSpecialistConfig.from_dict(bundle.config))
        a = bundle.arrays
        model.block_shape_ = tuple(int(v) for v in a["block_shape"])
        model.whitening_ = Whitening(a["whiten_mean"], a["whiten_matrix"])
        model.words_ = a["words"]
        model.train_hist_ = a["train_hist"]
        model.train_labels_ = a["train_labels"]
        model.gamma_ = float(a["gamma"])
        net = SynchronyAE(bundle.meta["n_in"], bundle.meta["n_hidden"])
        net.load_state_dict(bundle.torch_states["autoencoder"])
        model.autoencoder_ = net.eval()
        model.svm_ = bundle.estimators["svm"]
        model.calibrator_ = bundle.estimators.get("calibrator")
        model.metrics_ = bundle.metrics
        return model
