"""The training data stream: which items each rank sees, and every random draw, derived from counters.

A training run's randomness is a pure function of (seed, world size, rank, batch number): the epoch's
shuffle (the same permutation on every rank, partitioned between them), each item's crop/flip/rotation
(seeded by its position in the epoch), and per batch the degradation and the diffusion noise, timesteps
and condition dropout (seeded by rank and batch number). Nothing reads a global RNG, so

- N ranks draw N different streams (different images, degradations, noise and timesteps), and
- the only state a resume needs is the number of batches a rank has consumed: a killed run continues
  with exactly the batch, crop and noise it would have seen next (for the same world size).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from spasemsr.utils.seeding import stream_seed


def generator_for(device: torch.device | str, *parts: object) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by ``stream_seed(*parts)``."""
    return torch.Generator(device).manual_seed(stream_seed(*parts))


@dataclass
class DataStream:
    """Position of one rank in the training stream: the one thing a checkpoint must hold to resume exactly."""

    seed: int
    rank: int = 0
    world_size: int = 1
    batches: int = 0  # training batches this rank has consumed (all epochs)

    def draw(self, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
        """The generator for ``purpose`` (e.g. "degradation", "diffusion") of the current batch on this rank."""
        return generator_for(device, self.seed, "batch", purpose, self.rank, self.batches)

    def state_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_world = int(state.get("world_size", self.world_size))
        if saved_world != self.world_size:
            warnings.warn(
                f"the checkpoint's data stream was written by {saved_world} ranks, this run has {self.world_size}: "
                f"training continues after batch {state['batches']} of each rank, but not with the exact batches "
                "an uninterrupted run would have seen", stacklevel=2,
            )
        self.batches = int(state["batches"])


class StreamSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, item_seed)`` for this rank, resuming mid-epoch from the stream's batch count.

    Every epoch is a permutation of the dataset seeded by (seed, epoch), padded by wrapping to a multiple
    of the world size and dealt out rank by rank (as ``DistributedSampler`` does); each rank keeps whole
    batches only. ``item_seed`` (from seed, epoch and the item's position in the epoch) seeds the item's
    crop and augmentation, so a repeated file gets a new crop and two ranks never share one.
    """

    def __init__(self, size: int, batch_size: int, stream: DataStream, shuffle: bool = True) -> None:
        if size <= 0 or batch_size <= 0:
            raise ValueError(f"StreamSampler needs a non-empty dataset and batch_size > 0, got {size}, {batch_size}")
        self.size, self.batch_size, self.stream, self.shuffle = size, batch_size, stream, shuffle
        per_rank = -(-size // stream.world_size)
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{size} training items over {stream.world_size} rank(s) make {per_rank} per rank, fewer than "
                f"data.batch_size={batch_size}: use a smaller batch size, fewer devices or data.repeat > 1"
            )

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def epoch_order(self, epoch: int) -> list[int]:
        """This rank's item indices for ``epoch`` (whole batches only)."""
        world, rank = self.stream.world_size, self.stream.rank
        if self.shuffle:
            order = torch.randperm(self.size, generator=generator_for("cpu", self.stream.seed, "epoch", epoch)).tolist()
        else:
            order = list(range(self.size))
        total = -(-self.size // world) * world
        order = (order * (total // self.size + 1))[:total]
        return order[rank::world][: len(self)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, done = divmod(self.stream.batches, self.batches_per_epoch)
        order = self.epoch_order(epoch)
        world, rank = self.stream.world_size, self.stream.rank
        for position in range(done * self.batch_size, len(order)):
            slot = position * world + rank  # the item's place in the epoch's padded permutation
            yield order[position], stream_seed(self.stream.seed, "item", epoch, slot)


class StreamLoader(DataLoader):
    """A DataLoader over a ``StreamSampler`` whose state is the stream position (Lightning's resumable loader)."""

    def __init__(self, dataset: Any, sampler: StreamSampler, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=sampler.batch_size, sampler=sampler, drop_last=True, **kwargs)
        self.stream = sampler.stream

    def state_dict(self) -> dict[str, int]:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state)
