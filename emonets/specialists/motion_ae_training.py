"""Training the synchrony autoencoder with Lightning (kept apart so predicting never imports it)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from emonets.specialists.lightning_utils import EpochTimer, progress_callbacks, quiet_lightning, read_history
from emonets.specialists.motion_ae import SynchronyAE, TrainResult, reconstruction_error


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
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    L.seed_everything(seed, workers=True, verbose=False)
    use_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    precision = "bf16-mixed" if use_gpu else "32-true"
    device = torch.device("cuda") if use_gpu else torch.device("cpu")
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(device)
    module = SynchronyAEModule(x.shape[1], n_hidden, lr, noise, weight_decay)
    initial = reconstruction_error(module.net, x)
    has_val = x_val is not None and len(x_val) > 0
    monitor = "val_loss" if has_val else "train_loss"
    tmp = tempfile.TemporaryDirectory(prefix="motion-ae-") if work_dir is None else None
    root = Path(tmp.name if tmp else work_dir)
    # Lightning's deterministic=True switches torch's global flag on; put it back afterwards.
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        timer = EpochTimer()
        checkpoint = ModelCheckpoint(dirpath=root / "checkpoints", monitor=monitor, mode="min", save_top_k=1,
                                     save_weights_only=True, filename="best")
        callbacks = [timer, checkpoint, *progress_callbacks("motion")]
        if has_val:
            callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=patience))
        logger = CSVLogger(root, name="motion_ae")
        val_loader = None
        if has_val:
            val_loader = _loader(torch.as_tensor(np.asarray(x_val, np.float32)).to(device), 4096, shuffle=False,
                                 seed=seed)
        with warnings.catch_warnings(), quiet_lightning():  # notes on an absent val split, internals, banners
            warnings.filterwarnings("ignore", message=r".*(val_dataloader|LeafSpec|does not have many workers).*")
            trainer = L.Trainer(max_epochs=max_epochs, accelerator="gpu" if use_gpu else "cpu", devices=1,
                                precision=precision, callbacks=callbacks, logger=logger,
                                enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                                log_every_n_steps=1, num_sanity_val_steps=0)
            trainer.fit(module, _loader(xt, batch_size, shuffle=True, seed=seed), val_loader)
        history = read_history(Path(logger.log_dir) / "metrics.csv", timer.seconds)
        net = SynchronyAE(x.shape[1], n_hidden)
        if checkpoint.best_model_path:
            state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
        else:  # pragma: no cover - no epoch finished
            net.load_state_dict(module.net.state_dict())
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
        if tmp is not None:
            tmp.cleanup()
    net = net.float().cpu().eval()
    return TrainResult(net, timer.seconds, history, initial, reconstruction_error(net, x),
                       "gpu" if use_gpu else "cpu", precision)
