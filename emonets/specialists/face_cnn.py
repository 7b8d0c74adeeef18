"""The face specialist: a ConvNet on 48x48 grey faces, pooled over time, then an RBF SVM.

Two stages, as in EmoNets: ``fit_frames`` trains the ConvNet on single faces (FER-2013, the
paper's "Google faces"); ``fit`` pools each training video's per-frame probabilities into 10
time segments (a 70-d vector) and fits an RBF SVM (gamma = 1/70) on those. Without a fitted
SVM a clip's probabilities are the mean of its frames'.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from sklearn.svm import SVC
from torch.nn import functional as F

from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.specialists.base import N_CLASSES, ClipSet, Specialist
from emonets.specialists.face_cnn_data import FaceDataModule
from emonets.specialists.face_cnn_net import TTA_VIEWS, FaceNet, augment, to_input, tta_views
from emonets.specialists.lightning_utils import (EpochTimer, ReleaseProcessGroup, device_settings, progress_callbacks,
                                                quiet_lightning,
                                                read_history)
from emonets.temporal import segment_pool


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
    tta: str = "mirror"  # test-time views averaged per face (face_cnn_net.TTA_VIEWS): "mirror" (2) or "affine" (18)

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


# Fields used after the ConvNet is trained (prediction and the SVM stage), so they can be changed on a ready net.
SETTINGS_OF_A_TRAINED_NET = frozenset({"tta", "segments", "svm_C"})


class FaceCNNModule(L.LightningModule):
    """Trains FaceNet on single faces with on-the-fly augmentation."""

    def __init__(self, *, config: dict, steps_per_epoch: int):
        super().__init__()
        self.save_hyperparameters()
        self.config = FaceCNNConfig(**config)
        c = self.config
        self.net = FaceNet(widths=c.widths, convs=c.convs, dropout=c.dropout, head_dropout=c.head_dropout)
        self.steps_per_epoch = steps_per_epoch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(to_input(images).contiguous(memory_format=torch.channels_last))

    def training_step(self, batch, _):
        images, y = batch
        x = to_input(images)
        if self.config.augment:
            x = augment(x)
        logits = self.net(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True, batch_size=len(y),
                 sync_dist=True)
        return loss

    def validation_step(self, batch, _):
        images, y = batch
        logits = self(images) + self(images.flip(-1))
        # sync_dist: under DDP each process sees a shard; checkpointing needs the all-rank figure
        self.log("val_loss", F.cross_entropy(logits / 2, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y), sync_dist=True)

    def configure_optimizers(self):
        c = self.config
        opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=c.lr, total_steps=max(1, c.max_epochs * self.steps_per_epoch), pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class FaceCNN(Specialist):
    """Clip-level emotion from (T, 48, 48) aligned grey faces; see the module docstring."""

    name = "face_cnn"

    def __init__(self, config: FaceCNNConfig = FaceCNNConfig(), *, svm_C: tuple[float, ...] | None = None):
        """Store the settings only; ``svm_C`` (if given) replaces the config's SVM C candidates."""
        self.config = config if svm_C is None else replace(config, svm_C=tuple(svm_C))
        self.members_: list[tuple[FaceCNNConfig, dict]] = []  # further ConvNets of an ensemble

    # -- stage 1: the ConvNet on single faces ----------------------------------------------
    def fit_frames(self, images: np.ndarray, labels: np.ndarray, val_images: np.ndarray | None = None,
                   val_labels: np.ndarray | None = None, *, work_dir: Path | str | None = None,
                   init_state: dict | None = None) -> "FaceCNN":
        """Train the ConvNet on (N, H, W) uint8 faces; keep the best validation checkpoint.

        ``init_state`` (a FaceNet state dict of the same shape, e.g. a saved model's ``state_``)
        warm-starts training: a further schedule on an under-trained net costs less than a new run.
        """
        c = self.config
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim != 3 or len(images) == 0:
            raise ValueError(f"fit_frames needs (N, H, W) uint8 faces, got {images.shape}")
        self.size_ = int(images.shape[1])
        L.seed_everything(c.seed, workers=True, verbose=False)
        devices = device_settings(c.devices, c.strategy, c.precision)
        gpu = devices["accelerator"] == "gpu"
        data = FaceDataModule(images, labels, val_images, val_labels, batch_size=c.batch_size, seed=c.seed)
        has_val = data.val_set is not None
        module = FaceCNNModule(config=c.to_dict(), steps_per_epoch=data.steps_per_epoch(c.devices)).to(
            memory_format=torch.channels_last)
        if init_state is not None:
            module.net.load_state_dict(init_state)
        work = Path(work_dir or c.log_dir or tempfile.mkdtemp(prefix="emonets-face-cnn-"))
        timer = EpochTimer()
        callbacks: list[L.Callback] = [timer, *progress_callbacks("face_cnn")]
        if c.devices > 1:
            callbacks.append(ReleaseProcessGroup())
        checkpoint = None
        if c.swa_epochs:  # the averaged net is kept, so training must reach the end: no early stop
            callbacks.append(L.pytorch.callbacks.StochasticWeightAveraging(
                swa_lrs=c.swa_lr, swa_epoch_start=c.max_epochs - c.swa_epochs + 1, annealing_epochs=1))
        if has_val:
            checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=work / "checkpoints", monitor="val_acc",
                                                             mode="max", save_top_k=1)
            callbacks.append(checkpoint)
            if not c.swa_epochs:
                callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor="val_acc", mode="max", patience=c.patience))
        logger = L.pytorch.loggers.CSVLogger(work, name="face_cnn", version=None)
        _ = logger.version  # fix the version here, so spawned DDP workers write where we read
        started = time.perf_counter()
        with warnings.catch_warnings(), quiet_lightning():
            for noise in ("does not have many workers", "LeafSpec", "number of training batches",
                          "SWA is currently only",  # SWA swaps our per-step schedule for its per-epoch one
                          "recommended to use `self.log"):  # the last: epoch_seconds is rank 0's own
                warnings.filterwarnings("ignore", message=f".*{noise}.*")
            trainer = L.Trainer(
                max_epochs=c.max_epochs, **devices,
                max_time={"minutes": c.max_minutes} if c.max_minutes else None,
                callbacks=callbacks, logger=logger, enable_progress_bar=False, enable_model_summary=False,
                enable_checkpointing=checkpoint is not None, num_sanity_val_steps=0, log_every_n_steps=20,
                limit_val_batches=1.0 if has_val else 0, deterministic=c.deterministic,
            )
            trainer.fit(module, datamodule=data)
        swa_done = bool(c.swa_epochs) and trainer.current_epoch > c.max_epochs  # + its batch-norm epoch
        if checkpoint is not None and checkpoint.best_model_path and not swa_done:
            ckpt = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(ckpt["state_dict"])
        self.state_ = {k: v.detach().cpu().float().clone().contiguous() for k, v in module.net.state_dict().items()}
        history = read_history(Path(logger.log_dir) / "metrics.csv", timer.seconds)
        seconds = [h["seconds"] for h in history if h.get("seconds")]
        self.metrics_ = {
            "epochs_trained": len(history),
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
            "train_seconds": time.perf_counter() - started,
            "device": "cuda" if gpu else "cpu",
            "devices": c.devices,
            "strategy": devices.get("strategy", "single device"),
            "precision": devices["precision"],
            "warm_started": init_state is not None,
            "params": int(sum(p.numel() for p in module.net.parameters())),
            "best_val_acc": _best_val_acc(checkpoint, history),
            "swa": {"epochs": c.swa_epochs, "lr": c.swa_lr, "completed": swa_done,
                    "val_acc": history[-1].get("val_acc") if swa_done and history else None} if c.swa_epochs else None,
            "history": history,
        }
        self.svm_ = None
        if not (work_dir or c.log_dir):
            shutil.rmtree(work, ignore_errors=True)
        return self

    def _all_members(self) -> list[tuple[FaceCNNConfig, dict]]:
        """(config, state dict) of this model's ConvNet, then of any ensemble members."""
        return [(self.config, self.state_)] + self.members_

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
        (fitted on the single net's outputs) is dropped: call ``fit`` again on videos.
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
        lengths = [len(x) for x in data.items]
        probs = self.predict_frames(np.concatenate(data.items)) if data.items else np.zeros((0, N_CLASSES))
        per_clip = np.split(probs, np.cumsum(lengths)[:-1]) if data.items else []
        vectors = np.stack([segment_pool(p, segments=self.config.segments) for p in per_clip]) if per_clip else \
            np.zeros((0, self.config.segments * N_CLASSES), np.float32)
        return vectors, per_clip

    def fit(self, train: ClipSet, val: ClipSet | None = None) -> "FaceCNN":
        """Fit the RBF SVM on the training videos' 70-d vectors; C chosen on ``val`` if given."""
        if not hasattr(self, "state_"):
            raise RuntimeError("train the ConvNet first (fit_frames) or load a bundle")
        x, _ = self._clip_vectors(train)
        y = train.labels
        if len(set(y)) < 2:
            raise ValueError("the SVM stage needs training videos of at least two classes")
        candidates = self.config.svm_C if val is not None and len(val) else self.config.svm_C[:1]
        xv, _ = self._clip_vectors(val) if val is not None and len(val) else (None, None)
        best = None
        for C in candidates:
            svm = SVC(C=C, kernel="rbf", gamma=1.0 / x.shape[1], probability=True, random_state=self.config.seed)
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
        out[:, self.svm_.classes_] = self.svm_.predict_proba(vectors)
        return out

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        bundle = Bundle(
            kind=self.name,
            config={"face_cnn": self.config.to_dict(), "size": self.size_,
                    "members": [c.to_dict() for c, _ in self.members_]},
            metrics=dict(getattr(self, "metrics_", {})),
            torch_states={"net": self.state_,
                          **{f"member_{i}": st for i, (_, st) in enumerate(self.members_, 1)}},
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


def _best_val_acc(checkpoint, history: list[dict]) -> float | None:
    """The checkpointed validation accuracy (from the history when DDP workers kept the score)."""
    if checkpoint is None:
        return None
    if checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    scores = [h["val_acc"] for h in history if h.get("val_acc") is not None]
    return float(max(scores)) if scores else None
