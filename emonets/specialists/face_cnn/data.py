"""In-memory face data for the ConvNet: uint8 arrays, whole batches gathered by index.

Faces stay uint8 (28k FER faces are 66 MB) and are only scaled to float per batch inside the
model. On a GPU the whole set is moved to the device once, so batches never cross the bus.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from emonets.specialists.lightning_utils import ShardedBatches


class FaceTensors(Dataset):
    """(N, H, W) uint8 faces + (N,) labels; indexed by a *list* of rows to give a whole batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} faces but {len(labels)} labels")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows):
        rows = torch.as_tensor(rows, device=self.images.device)
        return self.images[rows], self.labels[rows]

    def to(self, device) -> "FaceTensors":
        return FaceTensors(self.images.to(device), self.labels.to(device))


def _tensors(images: np.ndarray, labels: np.ndarray) -> FaceTensors:
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 3:
        raise ValueError(f"need (N, H, W) uint8 faces, got shape {images.shape}")
    return FaceTensors(torch.from_numpy(images), torch.from_numpy(np.asarray(labels, np.int64)))


class FaceDataModule(L.LightningDataModule):
    """Train / val faces held in memory (on the GPU when there is one)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, val_images: np.ndarray | None = None,
                 val_labels: np.ndarray | None = None, *, batch_size: int = 128, val_batch_size: int = 512,
                 on_device: bool | None = None, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.train_set = _tensors(images, labels)
        self.val_set = _tensors(val_images, val_labels) if val_images is not None and len(val_images) else None
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.on_device = torch.cuda.is_available() if on_device is None else on_device

    def setup(self, stage: str | None = None) -> None:
        if self.on_device and torch.cuda.is_available():
            dev = torch.device("cuda", torch.cuda.current_device())
            self.train_set = self.train_set.to(dev)
            self.val_set = self.val_set.to(dev) if self.val_set is not None else None

    def _shard(self) -> tuple[int, int]:
        """(rank, world size) under DDP; (0, 1) otherwise."""
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Optimiser steps per epoch in each of ``world_size`` processes."""
        return len(ShardedBatches(len(self.train_set), self.batch_size, shuffle=True, drop_last=True,
                                  world_size=world_size))

    def train_dataloader(self) -> DataLoader:
        rank, world = self._shard()
        sampler = ShardedBatches(len(self.train_set), self.batch_size, shuffle=True, drop_last=True, seed=self.seed,
                                 rank=rank, world_size=world)
        return DataLoader(self.train_set, sampler=sampler, batch_size=None)

    def val_dataloader(self):
        if self.val_set is None:
            return []
        rank, world = self._shard()
        sampler = ShardedBatches(len(self.val_set), self.val_batch_size, shuffle=False, drop_last=False,
                                 rank=rank, world_size=world)
        return DataLoader(self.val_set, sampler=sampler, batch_size=None)
