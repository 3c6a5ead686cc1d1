"""``make demo``: the tiny pipeline end to end on bundled data, offline, on CPU.

Trains the tiny VAE, the tiny text-conditioned prior and the ControlNet-SR baseline with a small
step budget (``--steps``), makes x4 LR versions of the held-out kodak5 images (bicubic), upscales
them, and prints where everything is. A short budget shows the machinery, not final quality.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch.nn.functional as F

from spasemsr.config import load_config
from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.data.images import read_image, write_image
from spasemsr.data.samples import sample_paths
from spasemsr.training.run import train
from spasemsr.upscale import upscale_files


def _stage(name: str, root: Path, steps: int, *overrides: str) -> Path:
    every = max(steps // 4, 1)
    cfg = load_config(CONFIGS_ROOT / name, [
        f"run.root={root}", f"trainer.max_steps={steps}", f"trainer.val_every_n_steps={every}",
        f"trainer.ckpt_every_n_steps={every}", *overrides,
    ])
    return train(cfg)


def bicubic_lr(root: Path, scale: int = 4) -> list[Path]:
    """x``scale`` bicubic LR versions of kodak5 (the held-out test split)."""
    paths = []
    for hr_path in sample_paths("kodak5"):
        hr = read_image(hr_path).unsqueeze(0)
        lr = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
        target = root / "kodak5_lr" / f"{hr_path.stem}.png"
        write_image(lr[0].clamp(0, 1), target)
        paths.append(target)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="runs/demo", help="where runs and images go")
    parser.add_argument("--steps", type=int, default=300, help="training steps per stage")
    parser.add_argument("--sample-steps", type=int, default=20, help="DDIM steps when upscaling")
    args = parser.parse_args(argv)
    root = Path(args.root)
    started = time.perf_counter()
    vae = _stage("tiny_vae.yaml", root, args.steps)
    prior = _stage("tiny_prior.yaml", root, args.steps, f"model.vae_path={vae}")
    sr_model = _stage("controlnet_sr.yaml", root, args.steps, f"profile.backbone_path={prior}")
    out = root / "sr"
    failures = upscale_files([str(p) for p in bicubic_lr(root)], out, sr_model, steps=args.sample_steps,
                             overwrite=True)
    losses = {
        stage: json.loads((export / "manifest.json").read_text())["final_metrics"]
        for stage, export in (("vae", vae), ("prior", prior), ("controlnet_sr", sr_model))
    }
    print(json.dumps({"losses": losses, "seconds": round(time.perf_counter() - started, 1)}, indent=2))
    print(f"\nSR images (x4 of {root / 'kodak5_lr'}): {out}")
    print(f"ControlNet-SR model: {sr_model}")
    print(f"TensorBoard: tensorboard --logdir {root}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
