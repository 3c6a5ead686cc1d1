"""(HR crop, sampled latent) pairs: what an SR model's sampler hands the VAE decoder, for a decoder fitted to it.

A decoder fine-tuned on clean-photo latents decodes the prior's *sampled* latents worse (issue #18: every SpaSemSR
row lost PSNR-Y with it). StableSR (Wang et al., 2023) fine-tunes its decoder on latents sampled by its SR model
from training LRs; this module makes such pairs from an export, under the export's own training data and
degradations, so the VAE task (``data.source=sampled_latents``, ``model.train_encoder=false``) can fit the decoder
to them.

``python -m spasemsr.data.sampled_latents --export weights/tiny/spasemsr --out runs/sampled_latents --batches 300``

Batch ``b`` is a function of (``--seed``, ``b``) alone: its crops, degradation, sampler noise and variant (batches
alternate over ``--variants``: the export's own sampler, and restore-then-generate from Real-ESRGAN x4plus). Each
batch is one shard written atomically; a killed run resumes at the first missing shard and makes the same pairs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import Dataset

from spasemsr.data.degradation import RealESRGANDegradation
from spasemsr.utils.atomic import atomic_path

VARIANTS: dict[str, str | None] = {"default": None, "x4plus_start": "realesrgan_x4plus"}
"""Sampler variants: the DRM swapped into the export, None for the export's own sampler; a DRM variant starts from
its restoration with the suite's knobs (evaluation/suite.py DRM_START), as the suite's x4plus-start row."""


def shard_path(out: Path, batch: int) -> Path:
    return out / f"shard_{batch:05d}.safetensors"


def make_pairs(export: Path, out: Path, batches: int, seed: int = 0,
               variants: Sequence[str] = tuple(VARIANTS)) -> int:
    """Write shards 0..``batches``-1 that are missing under ``out``; returns how many were written."""
    from omegaconf import OmegaConf

    from spasemsr.data.datamodule import make_dataset
    from spasemsr.evaluation.suite import DRM_START
    from spasemsr.pipeline import sampler_settings
    from spasemsr.weights.exports import load_pipeline, read_export

    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; valid: {sorted(VARIANTS)}")
    missing = [b for b in range(batches) if not shard_path(out, b).is_file()]
    if not missing:
        return 0
    cfg = read_export(export)
    dataset = make_dataset(cfg.data, "train", cfg.data.crop_size, train=True)
    degradation = RealESRGANDegradation(OmegaConf.to_object(cfg.degradation), scale=cfg.data.scale)
    pipelines = {name: load_pipeline(export, drm=VARIANTS[name]) for name in variants}
    for batch in missing:
        name = variants[batch % len(variants)]
        pipeline = pipelines[name]
        knobs = sampler_settings(pipeline.sampler, **(DRM_START if VARIANTS[name] else {}))
        generator = torch.Generator().manual_seed(seed * 1_000_003 + batch)
        picks = torch.randint(len(dataset), (cfg.data.batch_size,), generator=generator).tolist()
        item_seeds = torch.randint(2**31, (cfg.data.batch_size,), generator=generator).tolist()
        hr = torch.stack([dataset[(index, s)]["hr"] for index, s in zip(picks, item_seeds, strict=True)])
        lr, _ = degradation(hr, generator)
        latents = pipeline.latents(pipeline.prepare(lr, knobs), generator, knobs)
        with atomic_path(shard_path(out, batch)) as tmp:
            save_file({"hr": (hr * 255).round().to(torch.uint8), "latents": latents.float().contiguous()}, str(tmp),
                      metadata={"export": str(export), "variant": name, "seed": str(seed)})
        print(f"shard {batch + 1}/{batches} ({name})", file=sys.stderr, flush=True)
    return len(missing)


class SampledLatents(Dataset):
    """Every pair in a folder of shards (its subfolders too: one per seed), in memory.

    Items are {"hr": (3, H, W) in [0, 1], "latents": (C, H/f, W/f)}, as scaled as the prior's."""

    def __init__(self, folder: str | Path) -> None:
        shards = sorted(Path(folder).rglob("shard_*.safetensors"))
        if not shards:
            raise FileNotFoundError(f"{folder}: no shard_*.safetensors (make them with python -m "
                                    "spasemsr.data.sampled_latents --export EXPORT --out FOLDER)")
        tensors = [load_file(str(shard)) for shard in shards]
        self.hr: Tensor = torch.cat([t["hr"] for t in tensors])
        self.latents: Tensor = torch.cat([t["latents"] for t in tensors])

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index = key[0] if isinstance(key, tuple) else key
        return {"hr": self.hr[index].float() / 255, "latents": self.latents[index]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, required=True, help="an exported SR model (its sampler and data)")
    parser.add_argument("--out", type=Path, required=True, help="folder of shards (resumed where it stops)")
    parser.add_argument("--batches", type=int, required=True, help="shards to have (each data.batch_size pairs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {sorted(VARIANTS)}")
    args = parser.parse_args(argv)
    written = make_pairs(args.export, args.out, args.batches, args.seed, args.variants.split(","))
    print(f"{args.out}: {written} shards written, {args.batches} wanted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
