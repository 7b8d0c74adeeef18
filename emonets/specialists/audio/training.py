"""Training one audio FrameMLP with Lightning (kept apart so predicting never imports Lightning)."""

from __future__ import annotations

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from emonets.specialists.audio.model import AudioConfig, pool_scores
from emonets.specialists.audio.data import ClipFrames, collate
from emonets.specialists.audio.net import FrameMLP
from emonets.specialists.base import N_CLASSES
from emonets.specialists.trainer import TrainerSettings, fit_and_reload_best, work_folder


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


def train_frame_net(c: AudioConfig, n_features: int, seed: int, train_items, train_labels, val_items, val_labels,
                    init_state: dict | None = None):
    """One seed's network on normalised clips; returns (its state dict, its history).

    Early stopping on ``val`` when given, the best checkpoint kept. ``init_state`` (a FrameMLP
    state dict of the same shape) continues from that network instead of a random one.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    module = AudioModule(n_features=n_features, config=c.to_dict())
    if init_state is not None:
        module.net.load_state_dict(init_state)
    train_loader = DataLoader(ClipFrames(train_items, train_labels, aug=c.augment, seed=seed),
                              batch_size=c.batch_size, shuffle=True, collate_fn=collate)
    val_loader = None
    if val_items is not None:
        val_loader = DataLoader(ClipFrames(val_items, val_labels), batch_size=64, collate_fn=collate)
    has_val = val_loader is not None
    with work_folder(c.log_dir, "emonets-audio-") as work:
        settings = TrainerSettings(
            name="audio", max_epochs=c.max_epochs, log_dir=work, log_name=f"seed{seed}", log_version=0,
            monitor=c.monitor if has_val else None, mode="max" if c.monitor.endswith("acc") else "min",
            checkpoint_dir=work / f"seed{seed}" / "checkpoints", patience=c.patience,
            precision="auto-gpu")  # float32 on a CPU, as these nets always trained
        fit = fit_and_reload_best(settings, module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    state = {k: v.detach().cpu().float().clone() for k, v in module.net.state_dict().items()}
    return state, {"epochs": fit.history, "best_score": fit.best_score, "seed": seed}
