"""The face specialist: a ConvNet on 48x48 grey faces, pooled over time, then an RBF SVM.

Two stages, as in EmoNets: ``fit_network`` trains the ConvNet on single faces (FER-2013, the
paper's "Google faces"); ``fit_video_head`` pools each training video's per-frame probabilities
into 10 time segments (a 70-d vector) and fits an RBF SVM (gamma = 1/70) on those. ``fit`` does
both on one set of clips (scikit-learn's contract: it fits the whole model); the pipeline calls
the two stages itself, the ConvNet on still images when it has them. Without a fitted SVM a
clip's probabilities are the mean of its frames'.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.svm import SVC

from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.clip_cache import cached_per_clip, digest
from emonets.specialists.base import N_CLASSES, ClipSet, Specialist
from emonets.specialists.face_cnn.net import TTA_VIEWS, FaceNet, to_input, tta_views
from emonets.specialists.temporal import segment_pool


@dataclass(frozen=True, kw_only=True)
class FaceCNNConfig:
    """ConvNet, training and SVM settings (stored in the bundle)."""

    widths: tuple[int, ...] = (32, 96, 192, 384)  # 2.6 M parameters: 67.6% on FER-2013 val vs 65.4% for
    convs: tuple[int, ...] = (1, 2, 2, 2)  # (32, 64, 128, 256) x (1, 1, 2, 2); convs per block (see FaceNet)
    dropout: float = 0.1
    head_dropout: float = 0.4
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    batch_size: int = 128
    max_epochs: int = 30
    max_minutes: float | None = None  # wall-clock cap on ConvNet training
    patience: int = 8
    swa_epochs: int = 0  # >0: the last N epochs run at swa_lr and their weights are averaged (SWA)
    swa_lr: float = 4e-4
    augment: bool = True
    seed: int = 0
    svm_C: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)  # tried on the validation videos (first one without)
    segments: int = 10
    log_dir: str | None = None
    deterministic: bool = False  # torch deterministic algorithms (slower; same seed -> same weights)
    devices: int = 1  # >1: data-parallel (DDP) over that many GPUs, or CPU processes without a GPU
    strategy: str = "auto"  # Lightning strategy when devices > 1 ("auto" = ddp_spawn; "ddp" for scripts)
    precision: str = "auto"  # "auto": bf16 mixed on a GPU or a CPU with native bf16, else "32-true"
    tta: str = "mirror"  # test-time views averaged per face (emonets.specialists.face_cnn.net.TTA_VIEWS): "mirror" (2) or "affine" (18)

    def __post_init__(self) -> None:
        if not 0 <= self.swa_epochs <= self.max_epochs:
            raise ValueError(f"swa_epochs must be in [0, max_epochs={self.max_epochs}], got {self.swa_epochs}")
        if self.tta not in TTA_VIEWS:
            raise ValueError(f"unknown tta {self.tta!r}; known: {sorted(TTA_VIEWS)}")
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "convs", tuple(self.convs))
        object.__setattr__(self, "svm_C", tuple(self.svm_C))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["convs"], d["svm_C"] = list(self.widths), list(self.convs), list(self.svm_C)
        return d


# Fewest training videos per class for libsvm's Platt scaling; below it a softmax of the scores.
PLATT_MIN_CLIPS = 10


def svm_probabilities(svm: SVC, x: np.ndarray) -> np.ndarray:
    """Class probabilities of a fitted SVC: Platt's when it was fitted with them, else a softmax
    of its one-vs-rest scores (whose argmax is the SVM's own decision)."""
    if svm.probability:
        return svm.predict_proba(x)
    scores = svm.decision_function(x)
    scores = np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# Fields used after the ConvNet is trained (prediction and the SVM stage), so they can be changed on a ready net.
SETTINGS_OF_A_TRAINED_NET = frozenset({"tta", "segments", "svm_C"})


class FaceCNN(Specialist):
    """Clip-level emotion from (T, 48, 48) aligned grey faces; see the module docstring."""

    name = "face_cnn"

    def __init__(self, config: FaceCNNConfig = FaceCNNConfig(), *, svm_C: tuple[float, ...] | None = None):
        """Store the settings only; ``svm_C`` (if given) replaces the config's SVM C candidates."""
        self.config = config if svm_C is None else replace(config, svm_C=tuple(svm_C))

    def fit(self, train: ClipSet, val: ClipSet | None = None) -> "FaceCNN":
        """The whole model on labelled clips: the ConvNet on every frame of them (the best epoch on
        ``val``'s frames), then the video head on the clips when they hold two classes or more."""
        train, val = _with_faces(train), _with_faces(val)
        if train is None:
            raise ValueError("no labelled clip with a face to train the ConvNet on")
        frames, labels = _frames_of(train)
        val_frames, val_labels = _frames_of(val) if val is not None else (None, None)
        self.fit_network(frames, labels, val_frames, val_labels)
        if len(set(train.labels)) > 1:
            self.fit_video_head(train, val)
        return self

    # -- stage 1: the ConvNet on single faces ----------------------------------------------
    def fit_network(self, images: np.ndarray, labels: np.ndarray, val_images: np.ndarray | None = None,
                    val_labels: np.ndarray | None = None, *, work_dir: Path | str | None = None,
                    init_state: dict | None = None) -> "FaceCNN":
        """Train the ConvNet on (N, H, W) uint8 faces; keep the best validation checkpoint.

        ``init_state`` (a FaceNet state dict of the same shape, e.g. a saved model's ``state_``)
        warm-starts training: a further schedule on an under-trained net costs less than a new run.
        """
        from emonets.specialists.face_cnn.training import train_face_net

        images = np.asarray(images, dtype=np.uint8)
        if images.ndim != 3 or len(images) == 0:
            raise ValueError(f"fit_network needs (N, H, W) uint8 faces, got {images.shape}")
        self.size_ = int(images.shape[1])
        self.state_, self.metrics_ = train_face_net(self.config, images, labels, val_images, val_labels,
                                                    work_dir=work_dir, init_state=init_state)
        self.svm_ = None
        return self

    def _all_members(self) -> list[tuple[FaceCNNConfig, dict]]:
        """(config, state dict) of this model's ConvNet, then of any ensemble members."""
        return [(self.config, self.state_)] + getattr(self, "members_", [])

    def _nets(self) -> list[FaceNet]:
        nets = []
        for c, state in self._all_members():
            net = FaceNet(widths=c.widths, convs=c.convs, dropout=c.dropout, head_dropout=c.head_dropout)
            net.load_state_dict(state)
            nets.append(net.eval().to(memory_format=torch.channels_last))
        return nets

    @classmethod
    def ensemble(cls, models: list["FaceCNN"]) -> "FaceCNN":
        """One face specialist whose frame probabilities are the mean of several trained ConvNets'.

        Averaging independently trained nets is the cheapest accuracy gain on FER-2013 (the nets
        err differently). The first model's config, size and SVM-stage settings are kept; its SVM
        (fitted on the single net's outputs) is dropped: call ``fit_video_head`` again on videos.
        """
        if not models:
            raise ValueError("ensemble needs at least one trained model")
        sizes = {m.size_ for m in models}
        if len(sizes) != 1:
            raise ValueError(f"ensemble members must take the same face size, got {sorted(sizes)}")
        first = models[0]
        out = cls(first.config)
        out.size_, out.state_ = first.size_, first.state_
        out.members_ = [pair for m in models for pair in m._all_members()][1:]
        out.svm_ = None
        out.metrics_ = {"members": [dict(getattr(m, "metrics_", {}), history=None) for m in models],
                        "params": sum(p.numel() for net in out._nets() for p in net.parameters())}
        return out

    def with_settings(self, overrides: dict) -> "FaceCNN":
        """This (trained) model, changed in place, with the settings that still act once its ConvNet
        exists (test-time views, time segments, SVM C candidates) replaced; any other field would
        configure ConvNet training, which a ready net skips, so it is refused rather than ignored."""
        ignored = sorted(set(overrides) - SETTINGS_OF_A_TRAINED_NET)
        if ignored:
            raise ValueError(f"face_cnn: {ignored} configure ConvNet training, which a ready ConvNet skips; "
                             f"only {sorted(SETTINGS_OF_A_TRAINED_NET)} apply to it")
        self.config = replace(self.config, **overrides)
        return self

    @torch.no_grad()
    def predict_frames(self, images: np.ndarray, *, batch_size: int = 512, tta: str | None = None) -> np.ndarray:
        """(N, H, W) uint8 faces -> (N, 7) probabilities: each net's logits averaged over the
        test-time views (``tta``, default the config's), then the members' probabilities averaged."""
        images = np.asarray(images, dtype=np.uint8)
        views = self.config.tta if tta is None else tta
        out = np.zeros((len(images), N_CLASSES), np.float32)
        if len(images) == 0:
            return out
        nets = self._nets()
        for start in range(0, len(images), batch_size):
            x = to_input(torch.from_numpy(images[start:start + batch_size]))
            batch = [v.contiguous(memory_format=torch.channels_last) for v in tta_views(x, views)]
            probs = [torch.softmax(sum(net(v) for v in batch) / len(batch), dim=1) for net in nets]
            out[start:start + batch_size] = torch.stack(probs).mean(0).numpy()
        return out

    # -- stage 2: the SVM on time-pooled clip vectors ----------------------------------------
    def _clip_vectors(self, data: ClipSet) -> tuple[np.ndarray, list[np.ndarray]]:
        empty = [cid for cid, x in zip(data.clip_ids, data.items) if len(x) == 0]
        if empty:
            raise ValueError(f"face_cnn: clips without faces cannot be scored: {empty[:5]}")
        per_clip = cached_per_clip(getattr(self, "clip_cache", None), self.representation_key(), data.clip_ids,
                                   lambda idx: self._frame_probs([data.items[i] for i in idx]))
        vectors = np.stack([segment_pool(p, segments=self.config.segments) for p in per_clip]) if per_clip else \
            np.zeros((0, self.config.segments * N_CLASSES), np.float32)
        return vectors, per_clip

    def _frame_probs(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """Per clip, (T, 7) frame probabilities, all the clips' faces batched together."""
        lengths = [len(x) for x in items]
        probs = self.predict_frames(np.concatenate(items)) if items else np.zeros((0, N_CLASSES))
        return np.split(probs, np.cumsum(lengths)[:-1]) if items else []

    def representation_key(self) -> str:
        """Digest of what a clip's frame probabilities depend on: the nets, face size and views."""
        return "face_cnn-" + digest([state for _, state in self._all_members()], self.size_, self.config.tta)

    def fit_video_head(self, train: ClipSet, val: ClipSet | None = None) -> "FaceCNN":
        """Fit the RBF SVM on the training videos' 70-d vectors; C chosen on ``val`` if given."""
        if not hasattr(self, "state_"):
            raise RuntimeError("train the ConvNet first (fit_network) or load a bundle")
        x, _ = self._clip_vectors(train)
        y = train.labels
        if len(set(y)) < 2:
            raise ValueError("the SVM stage needs training videos of at least two classes")
        candidates = self.config.svm_C if val is not None and len(val) else self.config.svm_C[:1]
        xv, _ = self._clip_vectors(val) if val is not None and len(val) else (None, None)
        # libsvm's Platt scaling is fitted by an inner 5-fold split: with a few videos per class
        # its probabilities contradict the SVM's own decisions (on the 28-clip demo: 43% of the
        # training videos right by the SVM, 4% by the argmax of its probabilities). Below
        # PLATT_MIN_CLIPS per class the probabilities are a softmax of the SVM's scores instead.
        platt = int(np.bincount(y)[np.unique(y)].min()) >= PLATT_MIN_CLIPS
        best = None
        for C in candidates:
            svm = SVC(C=C, kernel="rbf", gamma=1.0 / x.shape[1], probability=platt, random_state=self.config.seed)
            with warnings.catch_warnings():  # sklearn 1.9 deprecates probability=True (removal in 1.11)
                warnings.filterwarnings("ignore", message=".*probability.*deprecated.*", category=FutureWarning)
                svm.fit(x, y)
            score = float((svm.predict(xv) == val.labels).mean()) if xv is not None else 0.0
            if best is None or score > best[0]:
                best = (score, C, svm)
        self.svm_ = best[2]
        self.metrics_ = {**getattr(self, "metrics_", {}), "svm_C": best[1],
                         "svm_val_accuracy": best[0] if xv is not None else None}
        return self

    def predict_proba(self, data: ClipSet) -> np.ndarray:
        """(n, 7): the SVM on time-pooled frame probabilities, or the frames' mean without one."""
        if len(data) == 0:
            return np.zeros((0, N_CLASSES), np.float32)
        vectors, per_clip = self._clip_vectors(data)
        if getattr(self, "svm_", None) is None:
            return np.stack([p.mean(0) for p in per_clip]).astype(np.float32)
        out = np.zeros((len(data), N_CLASSES), np.float32)
        out[:, self.svm_.classes_] = svm_probabilities(self.svm_, vectors)
        return out

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        bundle = Bundle(
            kind=self.name,
            config={"face_cnn": self.config.to_dict(), "size": self.size_,
                    "members": [c.to_dict() for c, _ in self._all_members()[1:]]},
            metrics=dict(getattr(self, "metrics_", {})),
            torch_states={"net": self.state_,
                          **{f"member_{i}": st for i, (_, st) in enumerate(self._all_members()[1:], 1)}},
            estimators={"svm": self.svm_} if getattr(self, "svm_", None) is not None else {},
        )
        return save_bundle(path, bundle)

    @classmethod
    def load(cls, path: Path | str) -> "FaceCNN":
        bundle = load_bundle(path, kind=cls.name)
        model = cls(FaceCNNConfig(**bundle.config["face_cnn"]))
        model.size_ = int(bundle.config["size"])
        model.state_ = bundle.torch_states["net"]
        model.members_ = [(FaceCNNConfig(**c), bundle.torch_states[f"member_{i}"])
                          for i, c in enumerate(bundle.config.get("members", []), 1)]
        model.svm_ = bundle.estimators.get("svm")
        model.metrics_ = dict(bundle.metrics)
        return model


def _with_faces(clips: ClipSet | None) -> ClipSet | None:
    """The labelled clips that have at least one face, or None."""
    if clips is None:
        return None
    kept = clips.subset((clips.labels >= 0) & np.array([len(item) > 0 for item in clips.items], bool))
    return kept if len(kept) else None


def _frames_of(clips: ClipSet) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the clips, each with its clip's label."""
    frames = np.concatenate(clips.items)
    return frames, np.concatenate([np.full(len(item), label) for item, label in zip(clips.items, clips.labels)])
