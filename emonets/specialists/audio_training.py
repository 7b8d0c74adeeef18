"""Training one audio FrameMLP with Lightning (kept apart so predicting never imports Lightning)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from emonets.specialists.audio import AudioConfig, pool_scores
from emonets.specialists.audio_data import ClipFrames, collate
from emonets.specialists.audio_net import FrameMLP
from emonets.specialists.base import N_CLASSES
from emonets.specialists.lightning_utils import EpochTimer, progress_callbacks, quiet_lightning, read_history


class AudioModule(L.LightningModule):
    """Trains a FrameMLP on clip labels through the pooled clip logits."""

    def __init__(self, *, n_features: int, config: dict):
        super().__init__()
        self.save_hyperparameters()
        self.config = AudioConfig.from_dict(config)
        c = self.config
        self.net = FrameMLP(n_features, N_CLASSES, hidden=c.hidden, context=c.context, dilation=c.dilation,
                            stride=c.stride, dropout=c.dropout, input_dropout=c.input_dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        scores = self.net(x)
        out_lengths = torch.div(lengths + self.config.stride - 1, self.config.stride, rounding_mode="floor")
        return pool_scores(scores.float(), out_lengths, self.config)

    def training_step(self, batch, _):
        x, lengths, y = batch
        loss = F.cross_entropy(self(x, lengths), y, label_smoothing=self.config.label_smoothing)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, _):
        x, lengths, y = batch
        logits = self(x, lengths)
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.config.max_epochs))
        return {"optimizer": opt, "lr_scheduler": sched}


def train_frame_net(c: AudioConfig, n_features: int, seed: int, train_items, train_labels, val_items, val_labels):
    """One seed's network on normalised clips; returns (its state dict, its history).

    Early stopping on ``val`` when given, the best checkpoint kept.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    module = AudioModule(n_features=n_features, config=c.to_dict())
    train_loader = DataLoader(ClipFrames(train_items, train_labels, aug=c.augment, seed=seed),
                              batch_size=c.batch_size, shuffle=True, collate_fn=collate)
    val_loader = None
    if val_items is not None:
        val_loader = DataLoader(ClipFrames(val_items, val_labels), batch_size=64, collate_fn=collate)
    work = Path(c.log_dir) if c.log_dir else Path(tempfile.mkdtemp(prefix="emonets-audio-"))
    timer = EpochTimer()
    callbacks: list[L.Callback] = [timer, *progress_callbacks("audio")]
    checkpoint = None
    if val_loader is not None:
        mode = "max" if c.monitor.endswith("acc") else "min"
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(
            dirpath=work / f"seed{seed}" / "checkpoints", monitor=c.monitor, mode=mode, save_top_k=1)
        callbacks += [checkpoint, L.pytorch.callbacks.EarlyStopping(monitor=c.monitor, mode=mode,
                                                                    patience=c.patience)]
    logger = L.pytorch.loggers.CSVLogger(work, name=f"seed{seed}", version=0)
    try:
        with warnings.catch_warnings(), quiet_lightning():
            for noise in ("does not have many workers", "number of training batches", "no `val_dataloader`",
                          "LeafSpec"):
                warnings.filterwarnings("ignore", message=f".*{noise}.*")
            trainer = L.Trainer(
                max_epochs=c.max_epochs, accelerator="auto", devices=1,
                precision="bf16-mixed" if torch.cuda.is_available() else "32-true",
                callbacks=callbacks, logger=logger, enable_progress_bar=False, enable_model_summary=False,
                enable_checkpointing=checkpoint is not None, num_sanity_val_steps=0, log_every_n_steps=1,
            )
            trainer.fit(module, train_loader, val_loader)
        if checkpoint is not None and checkpoint.best_model_path:
            ckpt = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(ckpt["state_dict"])
        history = read_history(Path(logger.log_dir) / "metrics.csv", timer.seconds)
    finally:
        if not c.log_dir:
            shutil.rmtree(work, ignore_errors=True)
    state = {k: v.detach().cpu().float().clone() for k, v in module.net.state_dict().items()}
    best = None if checkpoint is None or checkpoint.best_model_score is None else float(checkpoint.best_model_score)
    return state, {"epochs": history, "best_score": best, "seed": seed}
