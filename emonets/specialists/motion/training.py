"""Training the synchrony autoencoder with Lightning (kept apart so predicting never imports it)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from emonets.specialists.motion.autoencoder import SynchronyAE, TrainResult, reconstruction_error
from emonets.specialists.trainer import TrainerSettings, fit_and_reload_best, work_folder


class SynchronyAEModule(L.LightningModule):
    """Trains a SynchronyAE as a denoising autoencoder (Adam, mean squared error)."""

    def __init__(self, n_in: int, n_hidden: int = 300, lr: float = 1e-3, noise: float = 0.3,
                 weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.net = SynchronyAE(n_in, n_hidden)

    def _loss(self, x: torch.Tensor, corrupt: bool) -> torch.Tensor:
        noisy = x
        if corrupt and self.hparams.noise > 0:
            noisy = x * (torch.rand_like(x) >= self.hparams.noise)
        recon, _ = self.net(noisy)
        return F.mse_loss(recon.float(), x.float())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0], corrupt=True)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0], corrupt=True), on_step=False, on_epoch=True)
        self.log("val_recon", self._loss(batch[0], corrupt=False), on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def _loader(x: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int) -> DataLoader:
    """Whole-batch indexing of a tensor (which may already live on the GPU): no per-row collation."""
    data = TensorDataset(x)
    sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed)) if shuffle else SequentialSampler(data)
    return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False))


def train_autoencoder(x: np.ndarray, x_val: np.ndarray | None = None, *, n_hidden: int = 300, lr: float = 1e-3,
                      noise: float = 0.3, weight_decay: float = 0.0, batch_size: int = 256, max_epochs: int = 20,
                      patience: int = 3, seed: int = 0, accelerator: str = "auto",
                      work_dir: Path | str | None = None) -> TrainResult:
    """Fit a SynchronyAE on whitened rows ``x`` (n, d) with Lightning; early stopping on ``x_val``.

    bf16 mixed precision on a GPU (the data then lives on the device), float32 on the CPU. The
    checkpoint with the lowest validation (or, without ``x_val``, training) loss is returned.
    Logs (CSV) and checkpoints go to ``work_dir`` (a temporary folder, removed, when None).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    has_val = x_val is not None and len(x_val) > 0
    with work_folder(work_dir, "emonets-motion-ae-") as root:
        settings = TrainerSettings(
            name="motion", max_epochs=max_epochs, log_dir=root, log_name="motion_ae",
            monitor="val_loss" if has_val else "train_loss", checkpoint_dir=root / "checkpoints",
            checkpoint_name="best", weights_only_checkpoint=True, patience=patience if has_val else None,
            precision="auto-gpu", accelerator=accelerator, deterministic=True)  # float32 on a CPU, as always
        hardware = settings.hardware()
        device = torch.device("cuda") if hardware["accelerator"] == "gpu" else torch.device("cpu")
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(device)
        module = SynchronyAEModule(x.shape[1], n_hidden, lr, noise, weight_decay)
        initial = reconstruction_error(module.net, x)
        val_loader = None
        if has_val:
            val_loader = _loader(torch.as_tensor(np.asarray(x_val, np.float32)).to(device), 4096, shuffle=False,
                                 seed=seed)
        fit = fit_and_reload_best(settings, module, train_dataloaders=_loader(xt, batch_size, shuffle=True, seed=seed),
                                  val_dataloaders=val_loader)
    net = module.net.float().cpu().eval()
    return TrainResult(net, fit.epoch_seconds, fit.history, initial, reconstruction_error(net, x),
                       hardware["accelerator"], hardware["precision"])
