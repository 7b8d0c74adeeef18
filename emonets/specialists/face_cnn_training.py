"""Training the face ConvNet with Lightning (the only part of the face specialist that needs it).

Kept apart from :mod:`emonets.specialists.face_cnn` so that loading a trained model and
predicting never imports Lightning (seconds of start-up for every `emonets predict`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from emonets.specialists.face_cnn import FaceCNNConfig
from emonets.specialists.face_cnn_data import FaceDataModule
from emonets.specialists.face_cnn_net import FaceNet, augment, to_input
from emonets.specialists.lightning_utils import (EpochTimer, ReleaseProcessGroup, device_settings, progress_callbacks,
                                                quiet_lightning, read_history)


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


def train_face_net(c: FaceCNNConfig, images: np.ndarray, labels: np.ndarray, val_images: np.ndarray | None,
                   val_labels: np.ndarray | None, *, work_dir: Path | str | None = None,
                   init_state: dict | None = None) -> tuple[dict, dict]:
    """Train a FaceNet on (N, H, W) uint8 faces; return (its state dict, the training metrics).

    The best validation checkpoint is kept (the averaged net when SWA ran to the end).
    """
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
    state = {k: v.detach().cpu().float().clone().contiguous() for k, v in module.net.state_dict().items()}
    history = read_history(Path(logger.log_dir) / "metrics.csv", timer.seconds)
    seconds = [h["seconds"] for h in history if h.get("seconds")]
    metrics = {
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
    if not (work_dir or c.log_dir):
        shutil.rmtree(work, ignore_errors=True)
    return state, metrics


def _best_val_acc(checkpoint, history: list[dict]) -> float | None:
    """The checkpointed validation accuracy (from the history when DDP workers kept the score)."""
    if checkpoint is None:
        return None
    if checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    scores = [h["val_acc"] for h in history if h.get("val_acc") is not None]
    return float(max(scores)) if scores else None
