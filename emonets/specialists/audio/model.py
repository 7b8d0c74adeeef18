"""The audio specialist: MFCC frames -> context-window MLP -> per-class top-k pooling -> softmax.

As in EmoNets, a two-hidden-layer network (~310 units, dropout) scores every frame and the
clip's class scores are the mean of each class's highest frame scores, taken *before* the
softmax, so the whole thing trains end to end on clip labels. Differences from the paper, and
why: context windows of neighbouring frames instead of single frames (emotion lives in
trajectories), no RBM pre-training (dropout + augmentation do its job at this size), and an
ensemble of seeds. Normalisation statistics come from the training clips only and are stored in
the bundle.

Augmentation: frame-level views inside ``fit`` (tempo, crop, time masks, noise: see
emonets.specialists.audio.data); audio-level speed perturbation (``emonets.features.mfcc.speed_perturb``, factors 0.9 and
1.1) is done by whoever extracts the training features, which then passes the perturbed copies
as extra training clips. On RAVDESS it was the single largest gain (benchmarks/bench_audio.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.specialists.audio.data import Augment, collate, fit_normaliser, utterance_centre
from emonets.specialists.audio.net import FrameMLP, top_pool
from emonets.specialists.base import N_CLASSES, ClipSet, Specialist


@dataclass(frozen=True, kw_only=True)
class AudioConfig:
    """Model, pooling and training settings (stored in the bundle)."""

    hidden: tuple[int, ...] = (310, 310)
    context: int = 5  # frames either side stacked into one MLP input
    dilation: int = 2  # spacing of the stacked frames (2 -> a ±100 ms window from ±5 frames)
    stride: int = 3  # MLP evaluated every `stride` frames
    dropout: float = 0.5
    input_dropout: float = 0.2
    pool: str = "frac"  # "frac": mean of the top ceil(pool_frac*T); "k": top pool_k; "paper": (1.4*max+0.6*2nd)/2
    pool_k: int = 2
    pool_frac: float = 0.1
    centre_columns: int = 0  # subtract each clip's own mean from these leading columns (0: none)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    batch_size: int = 16
    max_epochs: int = 20
    patience: int = 8
    monitor: str = "val_loss"
    seeds: tuple[int, ...] = (0, 1, 2)  # one network per seed; probabilities averaged
    augment: Augment = field(default_factory=lambda: Augment(
        tempo=0.1, crop_min=0.7, time_masks=2, mask_frames=20, noise=0.1, max_frames=300))
    log_dir: str | None = None  # keep Lightning's CSV logs and checkpoints here (else a temp dir)

    def __post_init__(self) -> None:
        if self.pool not in ("frac", "k", "paper"):
            raise ValueError(f"pool must be 'frac', 'k' or 'paper', not {self.pool!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", Augment(**self.augment))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"], d["seeds"] = list(self.hidden), list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AudioConfig":
        return cls(**d)


def pool_scores(scores: torch.Tensor, lengths: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """The clip's class logits from per-frame scores (B, C, T) by the configured top pooling."""
    if config.pool == "paper":
        return top_pool(scores, lengths, weights=(0.7, 0.3))
    if config.pool == "k":
        return top_pool(scores, lengths, k=config.pool_k)
    return top_pool(scores, lengths, frac=config.pool_frac)


class AudioSpecialist(Specialist):
    """Clip-level emotion from (T, D) MFCC frames; see the module docstring."""

    name = "audio"

    def __init__(self, config: AudioConfig = AudioConfig()):
        self.config = config

    # -- training ------------------------------------------------------------------------
    def fit(self, train: ClipSet, val: ClipSet | None = None) -> "AudioSpecialist":
        """Fit normalisation on ``train``, then one network per seed (early stopping on ``val``)."""
        if len(train) == 0 or np.any(train.labels < 0):
            raise ValueError("fit needs labelled training clips")
        c = self.config
        self.n_features_ = int(train.items[0].shape[1])
        self.mean_, self.std_ = fit_normaliser(train.items, c.centre_columns)
        train_items = _Mapped(train.items, self._normalise)  # normalised on access: no second copy
        val_items = _Mapped(val.items, self._normalise) if val is not None and len(val) else None
        self.states_, self.history_ = [], []
        for seed in c.seeds:
            state, history = self._fit_one(seed, train_items, train.labels,
                                           val_items, val.labels if val_items else None)
            self.states_.append(state)
            self.history_.append(history)
        self.metrics_ = self._summarise(val)
        return self

    # A warm start fine-tunes each seed's network this many epochs at this share of the learning
    # rate (its own cosine schedule): enough to take in a few added clips, far from a new training.
    warm_epochs = 3
    warm_lr_scale = 0.3

    def fit_warm(self, previous: "AudioSpecialist", train: ClipSet, val: ClipSet | None = None) -> "AudioSpecialist":
        """Continue from ``previous`` (same config): its normaliser is kept (its networks were
        trained on it) and each seed's network fine-tuned ``warm_epochs`` on the new training set."""
        if len(train) == 0 or np.any(train.labels < 0):
            raise ValueError("fit needs labelled training clips")
        if int(train.items[0].shape[1]) != previous.n_features_ or len(previous.states_) != len(self.config.seeds):
            raise ValueError("the previous audio model has other inputs or seeds: it cannot be continued")
        self.n_features_, self.mean_, self.std_ = previous.n_features_, previous.mean_, previous.std_
        train_items = _Mapped(train.items, self._normalise)
        val_items = _Mapped(val.items, self._normalise) if val is not None and len(val) else None
        short = replace(self.config, max_epochs=self.warm_epochs, lr=self.config.lr * self.warm_lr_scale,
                        patience=self.warm_epochs)
        self.states_, self.history_ = [], []
        for seed, state in zip(self.config.seeds, previous.states_):
            state, history = self._fit_one(seed, train_items, train.labels, val_items,
                                           val.labels if val_items else None, config=short, init_state=state)
            self.states_.append(state)
            self.history_.append(history)
        self.metrics_ = {**self._summarise(val), "warm_epochs": self.warm_epochs}
        self.warm_start_ = (f"each seed's network fine-tuned {self.warm_epochs} epochs from the previous model "
                            f"at {self.warm_lr_scale:g}x its learning rate; normaliser kept")
        return self

    def _fit_one(self, seed, train_items, train_labels, val_items, val_labels, *, config: AudioConfig | None = None,
                 init_state: dict | None = None):
        from emonets.specialists.audio.training import train_frame_net

        return train_frame_net(config or self.config, self.n_features_, seed, train_items, train_labels, val_items,
                               val_labels, init_state=init_state)

    def _summarise(self, val: ClipSet | None) -> dict:
        seconds = [e["seconds"] for h in self.history_ for e in h["epochs"] if e.get("seconds") is not None]
        metrics = {
            "epochs_trained": [len(h["epochs"]) for h in self.history_],
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
            "best_scores": [h["best_score"] for h in self.history_],
        }
        if val is not None and len(val):
            pred = self.predict_proba(val).argmax(1)
            metrics["val_accuracy"] = float((pred == val.labels).mean())
        return metrics

    # -- prediction ----------------------------------------------------------------------
    def _normalise(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise ValueError(f"expected (T, {self.n_features_}) frames, got {x.shape}")
        x = utterance_centre(x, self.config.centre_columns)
        return ((x - self.mean_) / self.std_).astype(np.float32)

    def _nets(self) -> list[FrameMLP]:
        c = self.config
        nets = []
        for state in self.states_:
            net = FrameMLP(self.n_features_, N_CLASSES, hidden=c.hidden, context=c.context, dilation=c.dilation,
                           stride=c.stride, dropout=c.dropout, input_dropout=c.input_dropout)
            net.load_state_dict(state)
            nets.append(net.eval())
        return nets

    @torch.no_grad()
    def predict_proba(self, data: ClipSet) -> np.ndarray:
        """(n, 7) class probabilities, the mean over the ensemble; a clip with no frames is scored
        as one average frame."""
        n = len(data)
        out = np.zeros((n, N_CLASSES), dtype=np.float64)
        if n == 0:
            return out.astype(np.float32)
        def clip(x):  # normalised per batch: never a copy of the whole split
            return self._normalise(x) if len(x) else np.zeros((1, self.n_features_), np.float32)

        order = np.argsort([max(1, len(x)) for x in data.items], kind="stable")  # similar lengths batch together
        nets = self._nets()
        for start in range(0, n, 32):
            idx = order[start:start + 32]
            x, lengths, _ = collate([(clip(data.items[i]), 0) for i in idx])
            out_lengths = torch.div(lengths + self.config.stride - 1, self.config.stride, rounding_mode="floor")
            for net in nets:
                logits = pool_scores(net(x), out_lengths, self.config)
                out[idx] += torch.softmax(logits, dim=1).double().numpy()
        return (out / len(nets)).astype(np.float32)

    @torch.no_grad()
    def frame_proba(self, data: ClipSet) -> list[np.ndarray]:
        """Per clip, each scored MFCC frame's class probabilities before the clip's top-k pooling.

        (ceil(T / config.stride), 7) per clip: row j scores MFCC frame j·stride (the net runs every
        ``stride`` frames), the softmax of each seed's frame scores, averaged over the seeds; a clip
        with no frames gives (0, 7). It shows *when* the voice sounds like a class. The clip's own
        probabilities (predict_proba) pool the frame scores before the softmax, so they are not
        the mean of these rows.
        """
        nets = self._nets()
        out = []
        for x in data.items:
            if len(x) == 0:
                out.append(np.zeros((0, N_CLASSES), np.float32))
                continue
            frames = torch.from_numpy(self._normalise(x)).T[None]  # (1, D, T), as collate pads
            probs = sum(torch.softmax(net(frames)[0].double(), dim=0) for net in nets) / len(nets)
            out.append(probs.T.numpy().astype(np.float32))
        return out

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        bundle = Bundle(
            kind=self.name,
            config={"audio": self.config.to_dict(), "n_features": self.n_features_},
            metrics={**self.metrics_, "history": self.history_},
            torch_states={f"net{i}": s for i, s in enumerate(self.states_)},
            arrays={"mean": self.mean_, "std": self.std_},
        )
        return save_bundle(path, bundle)

    @classmethod
    def load(cls, path: Path | str) -> "AudioSpecialist":
        bundle = load_bundle(path, kind=cls.name)
        model = cls(AudioConfig.from_dict(bundle.config["audio"]))
        model.n_features_ = int(bundle.config["n_features"])
        model.mean_ = bundle.arrays["mean"].astype(np.float32)
        model.std_ = bundle.arrays["std"].astype(np.float32)
        model.states_ = [bundle.torch_states[f"net{i}"] for i in range(len(bundle.torch_states))]
        metrics = dict(bundle.metrics)
        model.history_ = metrics.pop("history", [])
        model.metrics_ = metrics
        return model


class _Mapped(Sequence):
    """``fn(items[i])`` computed when item i is read (each training epoch reads every clip once)."""

    def __init__(self, items: list, fn):
        self.items, self.fn = items, fn

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.fn(self.items[i])
