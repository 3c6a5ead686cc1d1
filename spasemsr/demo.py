"""``make demo``: the shipped tiny SpaSemSR on held-out photos, offline, on CPU, no training needed.

Upscales the five held-out Kodak images (x4, Real-ESRGAN-degraded LR made with a fixed seed) with the
committed ``weights/tiny/spasemsr`` model and with bicubic, scores both under the declared protocol
(``spasemsr evaluate``), and prints the two rows and where the SR images and TensorBoard runs are.
``--train-steps N`` first retrains the VAE → prior → ControlNet-SR chain for N steps per stage and
evaluates that model instead, to show the training machinery end to end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spasemsr.config import load_config
from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.evaluation.datasets import bundled_set
from spasemsr.evaluation.evaluate import evaluate
from spasemsr.training.run import train
from spasemsr.weights.table import default_path

SHOWN = ("psnr_y", "ssim_y", "lr_consistency", "niqe")


def _stage(name: str, root: Path, steps: int, *overrides: str) -> Path:
    every = max(steps // 4, 1)
    cfg = load_config(CONFIGS_ROOT / name, [
        f"run.root={root}", f"trainer.max_steps={steps}", f"trainer.val_every_n_steps={every}",
        f"trainer.ckpt_every_n_steps={every}", *overrides,
    ])
    return train(cfg)


def train_chain(root: Path, steps: int) -> Path:
    """The tiny VAE, prior and ControlNet-SR trained for ``steps`` each; returns the ControlNet-SR export."""
    vae = _stage("tiny_vae.yaml", root, steps)
    prior = _stage("tiny_prior.yaml", root, steps, f"model.vae_path={vae}")
    return _stage("controlnet_sr.yaml", root, steps, f"profile.backbone_path={prior}")


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/demo", help="where runs and images go")
    parser.add_argument("--model", default=default_path("tiny_spasemsr"), help="exported model to demonstrate")
    parser.add_argument("--train-steps", type=int, default=0, help="retrain the chain briefly first (0: use --model)")
    parser.add_argument("--sample-steps", type=int, help="DDIM steps (default: the model's config)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    started = time.perf_counter()
    model = train_chain(root, args.train_steps) if args.train_steps else Path(args.model)
    dataset = bundled_set("kodak5", "realesrgan")
    knobs = {"steps": args.sample_steps} if args.sample_steps else {}
    rows = {"bicubic": evaluate("bicubic", dataset, SHOWN, root / "bicubic"),
            str(model): evaluate(str(model), dataset, SHOWN, root / "sr", knobs)}
    print("\nkodak5 (held out), x4 Real-ESRGAN LR:")
    for name, result in rows.items():
        print(f"  {name:>28}: " + "  ".join(f"{k} {result['means'][k]:.4g}" for k in SHOWN))
    print(json.dumps({"knobs": rows[str(model)]["record"]["knobs"],
                      "seconds": round(time.perf_counter() - started, 1)}, indent=2))
    print(f"\nSR images: {root / 'sr' / 'sr'}  (bicubic: {root / 'bicubic' / 'sr'})")
    print(f"TensorBoard: tensorboard --logdir {root}")


if __name__ == "__main__":
    main()
