"""The LightningDataModule: datasets from config, online degradation on the device, fixed val pairs.

The training stream (``spasemsr.data.stream``) is a function of (seed, world size, rank, batch number):
each rank draws its own shuffle share, crops, degradations and diffusion noise, and a checkpoint needs
only the batch count to resume with exactly the next batch. HR-only sources are degraded batched on the
training device (Real-ESRGAN style) in ``on_after_batch_transfer``, which also hands the batch its
``generator`` for the loss's own draws (noise, timesteps, condition dropout) and its ``batch_number``.
Validation pairs are degraded once, with ``data.val_seed``, so every validation sees the same LR (each
keeps its sampled parameters under ``degradation``, as training batches do); under DDP each rank
validates its share and the logged metrics are averaged over ranks.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from spasemsr.config.choices import DATA_SOURCES
from spasemsr.data import probe
from spasemsr.data.datasets import HRFolderDataset, PairedFolderDataset, bundled_dataset
from spasemsr.data.degradation import DegradationConfig, RealESRGANDegradation
from spasemsr.data.images import list_images
from spasemsr.data.sampled_latents import SampledLatents
from spasemsr.data.stream import DataStream, StreamLoader, StreamSampler

SOURCES = DATA_SOURCES


class FixedPairs(Dataset):
    """A small evaluation set whose LR images were degraded once with a fixed seed."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def make_dataset(data: DictConfig, split: str, crop_size: int, train: bool) -> Dataset:
    """Build the train or val dataset named by ``data.source``."""
    if data.source == "sampled_latents":  # pairs to train on; the clean bundled photos to validate the round trip
        if train:
            return SampledLatents(_required(data, "latents_dir"))
        return bundled_dataset(split, crop_size, data.scale, train)
    if data.source == "bundled":
        return bundled_dataset(split, crop_size, data.scale, train, repeat=data.repeat if train else 1)
    if data.source == "probe":
        if crop_size != probe.SIZE or data.scale != 4:
            raise ValueError(f"data.source=probe makes {probe.SIZE}x{probe.SIZE} x4 images: set data.crop_size="
                             f"{probe.SIZE} and data.scale=4 (got {crop_size}, {data.scale})")
        return probe.ProbeDataset(data.repeat if train else data.val_images, train)
    hr = _required(data, f"{split}_hr")
    if data.source == "hr_folder":
        return HRFolderDataset(list_images(hr), crop_size, data.scale, train, repeat=data.repeat if train else 1)
    if data.source == "paired":
        lr = _required(data, f"{split}_lr")
        return PairedFolderDataset(hr, lr, crop_size, data.scale, train)
    raise ValueError(f"data.source={data.source!r} is not one of {SOURCES}")


def _required(data: DictConfig, key: str) -> str:
    if not data[key]:
        raise ValueError(f"data.{key} is empty: data.source={data.source} needs it set to a folder")
    return data[key]


class SRDataModule(LightningDataModule):
    """Train/val loaders for every task; ``degrade`` adds LR images where the source has none."""

    def __init__(self, data: DictConfig, degradation: DictConfig | DegradationConfig, seed: int,
                 degrade: bool) -> None:
        super().__init__()
        self.data = data
        self.seed = seed
        self.degrade = degrade
        if isinstance(degradation, DictConfig):
            degradation = OmegaConf.to_object(degradation)  # runs the dataclass's own range checks
        self.degradation = RealESRGANDegradation(degradation, scale=data.scale)
        self.stream = DataStream(seed)

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        if trainer is not None:
            self.stream.rank, self.stream.world_size = trainer.global_rank, trainer.world_size
        self.train_set = make_dataset(self.data, "train", self.data.crop_size, train=True)
        self.val_set = self._fixed_val_pairs()

    def _fixed_val_pairs(self) -> Dataset:
        source = make_dataset(self.data, "val", self.data.crop_size, train=False)
        items = [source[i] for i in range(min(self.data.val_images, len(source)))]
        if self.degrade and items and "lr" not in items[0]:
            hr = torch.stack([item["hr"] for item in items])
            generator = torch.Generator().manual_seed(self.data.val_seed)
            lr, params = self.degradation(hr, generator)
            # Each item keeps its own degradation parameters, so validation can score estimators and captions.
            items = [
                dict(item, lr=image, degradation={key: value[i] for key, value in params.items()})
                for i, (item, image) in enumerate(zip(items, lr, strict=True))
            ]
        return FixedPairs(items)

    def train_dataloader(self) -> StreamLoader:
        """This rank's share of the shuffled training set, resumable mid-epoch (its state is the stream's)."""
        sampler = StreamSampler(len(self.train_set), self.data.batch_size, self.stream)
        return StreamLoader(self.train_set, sampler, num_workers=self.data.num_workers,
                            persistent_workers=self.data.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation pairs; under DDP each rank takes its share (padded by wrapping, as DDP needs)."""
        world = self.stream.world_size
        sampler = DistributedSampler(self.val_set, world, self.stream.rank, shuffle=False) if world > 1 else None
        return DataLoader(self.val_set, batch_size=self.data.batch_size, shuffle=False, sampler=sampler)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """A training batch gets its degradation (if needed), its loss generator and number; the stream advances."""
        trainer = self.trainer
        if trainer is not None and not trainer.training:
            return batch
        hr = batch["hr"]
        if self.degrade and "lr" not in batch:
            batch["lr"], batch["degradation"] = self.degradation(hr, self.stream.draw("degradation", hr.device))
        batch["generator"] = self.stream.draw("diffusion", hr.device)
        batch["batch_number"] = self.stream.batches
        self.stream.batches += 1
        return batch
