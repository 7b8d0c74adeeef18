"""Training the face ConvNet with Lightning (the only part of the face specialist that needs it).

Kept apart from :mod:`emonets.specialists.face_cnn.model` so that loading a trained model and
predicting never imports Lightning (seconds of start-up for every `emonets predict`).
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from emonets.specialists.face_cnn.model import FaceCNNConfig
from emonets.specialists.face_cnn.data import FaceDataModule
from emonets.specialists.face_cnn.net import FaceNet, augment, to_input
from emonets.specialists.trainer import TrainerSettings, fit_and_reload_best, work_folder


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
                   init_state: dict | None = None, resume_dir: Path | str | None = None) -> tuple[dict, dict]:
    """Train a FaceNet on (N, H, W) uint8 faces; return (its state dict, the training metrics).

    The best validation checkpoint is kept (the averaged net when SWA ran to the end). With
    ``resume_dir`` (a recipe's step, emonets.specialists.face_cnn.recipes) the final net is kept
    instead, nothing is chosen on val, and the fit checkpoints there every epoch and continues from
    its last checkpoint when run again.
    """
    L.seed_everything(c.seed, workers=True, verbose=False)
    data = FaceDataModule(images, labels, val_images, val_labels, batch_size=c.batch_size, seed=c.seed)
    has_val = data.val_set is not None
    module = FaceCNNModule(config=c.to_dict(), steps_per_epoch=data.steps_per_epoch(c.devices)).to(
        memory_format=torch.channels_last)
    if init_state is not None:
        module.net.load_state_dict(init_state)
    swa: list[L.Callback] = []
    if c.swa_epochs:  # the averaged net is kept, so training must reach the end: no early stop
        swa.append(L.pytorch.callbacks.StochasticWeightAveraging(
            swa_lrs=c.swa_lr, swa_epoch_start=c.max_epochs - c.swa_epochs + 1, annealing_epochs=1))

    def swa_completed(trainer: L.Trainer) -> bool:  # SWA ran to the end (+ its batch-norm epoch)
        return bool(c.swa_epochs) and trainer.current_epoch > c.max_epochs

    started = time.perf_counter()
    resumable = resume_dir is not None
    with work_folder(resume_dir or work_dir or c.log_dir, "emonets-face-cnn-") as work:
        settings = TrainerSettings(
            name="face_cnn", max_epochs=c.max_epochs, log_dir=work, log_name="face_cnn",
            monitor="val_acc" if has_val and not resumable else None, mode="max", checkpoint_dir=work / "checkpoints",
            patience=None if c.swa_epochs or resumable else c.patience, validate=has_val, precision=c.precision,
            devices=c.devices, strategy=c.strategy, deterministic=c.deterministic, max_minutes=c.max_minutes,
            log_every_n_steps=20, resumable=resumable)
        fit = fit_and_reload_best(settings, module, callbacks=swa, keep_final=swa_completed, datamodule=data)
    swa_done = swa_completed(fit.trainer)
    state = {k: v.detach().cpu().float().clone().contiguous() for k, v in module.net.state_dict().items()}
    history = fit.history
    seconds = [h["seconds"] for h in history if h.get("seconds")]
    metrics = {
        "epochs_trained": len(history),
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
        "train_seconds": time.perf_counter() - started,
        "device": "cuda" if fit.hardware["accelerator"] == "gpu" else "cpu",
        "devices": c.devices,
        "strategy": fit.hardware.get("strategy", "single device"),
        "precision": fit.hardware["precision"],
        "warm_started": init_state is not None,
        "params": int(sum(p.numel() for p in module.net.parameters())),
        "best_val_acc": fit.best_score,
        "final_val_acc": next((h["val_acc"] for h in reversed(history) if h.get("val_acc") is not None), None),
        "completed": fit.trainer.current_epoch >= c.max_epochs,
        "epochs_total": min(fit.trainer.current_epoch, c.max_epochs),  # with those before a resume
        "resumed": fit.resumed_from is not None,
        "swa": {"epochs": c.swa_epochs, "lr": c.swa_lr, "completed": swa_done,
                "val_acc": history[-1].get("val_acc") if swa_done and history else None} if c.swa_epochs else None,
        "history": history,
    }
    return state, metrics

