"""Round-trip quality of a VAE on held-out photos: fidelity, colour, drawn dark dots (issue #18, item 1).

    python -m benchmarks.vae_quality [--vae weights/tiny/vae/vae runs/ship/vae/checkpoints/last.ckpt ...]
                                     [--splits kodak5 unseen] [--out PATH]

A VAE is a diffusers folder (its config.json) or a checkpoint of a VAE training run
(``<run>/checkpoints/*.ckpt``, built from ``<run>/config.yaml``), so a run can be scored while it trains.
Each VAE encodes every full image of each bundled split (posterior mode, no sampling) and decodes it;
reported per split: PSNR-RGB and PSNR-Y of the reconstruction (8-bit, border crop 4, as the SR tables),
``colour_pass`` (how much of an input colour shift survives: each image's R channel raised and B lowered
by 0.1, the mean R-B difference of the reconstructions divided by that of the inputs; 1 = colour carried,
0 = colour removed), and the dark dots of ``spasemsr.metrics.artifacts`` (per image: the reconstruction's
count, ``new_dark_dots`` = those touching no dark pixel of the HR, and the HR's own count). The row
``bicubic_x4`` is the non-generative reference (clean HR bicubic down x4 and up again). Targets of #18:
PSNR-RGB >= 28 dB on kodak5, ``colour_pass`` >= 0.95, ``new_dark_dots`` no more than ``bicubic_x4``'s.
Written to ``benchmarks/results/vae_quality.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from benchmarks.common import environment, print_table, setup, write_json

COLOUR_SHIFT = 0.1


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 4)


@torch.no_grad()
def _roundtrip(vae, hr: torch.Tensor) -> torch.Tensor:
    """Decode(encode mode) of (1, 3, H, W) in [0, 1], cropped to the VAE's grid."""
    from spasemsr.diffusion.backbone import vae_downscale

    factor = vae_downscale(vae)
    h, w = (s // factor * factor for s in hr.shape[-2:])
    x = hr[..., :h, :w]
    recon = vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample
    return ((recon.clamp(-1, 1) + 1) / 2), x


def _colour_pass(vae, hr: torch.Tensor) -> float:
    shifted = hr.clone()
    shifted[:, 0] = (shifted[:, 0] + COLOUR_SHIFT).clamp(0, 1)
    shifted[:, 2] = (shifted[:, 2] - COLOUR_SHIFT).clamp(0, 1)
    (plain, x), (moved, xs) = _roundtrip(vae, hr), _roundtrip(vae, shifted)

    def r_minus_b(img: torch.Tensor) -> float:
        return (img[:, 0] - img[:, 2]).mean().item()

    return (r_minus_b(moved) - r_minus_b(plain)) / (r_minus_b(xs) - r_minus_b(x))


def _figures(recon: torch.Tensor, x: torch.Tensor) -> dict[str, float]:
    from spasemsr.metrics.registry import compute

    return {"psnr_rgb": compute("psnr_rgb", recon, x).item(), "psnr_y": compute("psnr_y", recon, x).item(),
            "dark_dots": compute("dark_dots", recon).item(), "new_dark_dots": compute("new_dark_dots", recon, x).item(),
            "hr_dark_dots": compute("dark_dots", x).item()}


def _summary(images: dict[str, dict[str, float]]) -> dict:
    keys = next(iter(images.values())).keys()
    return {"images": images, "mean": {k: _mean([v[k] for v in images.values()]) for k in keys}}


def load_vae(path: str):
    """A diffusers VAE folder, or the VAE of a training checkpoint (architecture from its run's config.yaml)."""
    from diffusers import AutoencoderKL
    from omegaconf import OmegaConf

    from spasemsr.diffusion.backbone import build_vae

    if not path.endswith(".ckpt"):
        return AutoencoderKL.from_pretrained(path).eval()
    config = OmegaConf.load(Path(path).parents[1] / "config.yaml")
    vae = build_vae(OmegaConf.to_container(config.profile.vae_arch))
    state = torch.load(path, weights_only=True)["state_dict"]
    vae.load_state_dict({key.removeprefix("vae."): value for key, value in state.items() if key.startswith("vae.")})
    return vae.eval()


def _paths(split: str, limit: int | None) -> list[Path]:
    """The split's verified image paths, the first ``limit`` of them if given."""
    from spasemsr.data.samples import sample_paths

    return sample_paths(split)[:limit]


def score_vae(path: str, split: str, limit: int | None = None) -> dict:
    """Per-image and mean figures of one VAE on one bundled split (its first ``limit`` images if given)."""
    from spasemsr.data.images import read_image

    vae = load_vae(path)
    scores = {}
    for image_path in _paths(split, limit):
        hr = read_image(image_path)[None]
        scores[image_path.stem] = {**_figures(*_roundtrip(vae, hr)), "colour_pass": _colour_pass(vae, hr)}
    return _summary(scores)


def score_bicubic(split: str, limit: int | None = None) -> dict:
    """The non-generative reference: clean HR bicubic-downscaled x4 and bicubic-upscaled back (draws no dots)."""
    from spasemsr.data.images import read_image
    from spasemsr.data.resize import bicubic_down, bicubic_up

    scores = {}
    for image_path in _paths(split, limit):
        x = read_image(image_path)[None]
        x = x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]
        scores[image_path.stem] = _figures(bicubic_up(bicubic_down(x, 4), x.shape[-2:]).clamp(0, 1), x)
    return _summary(scores)


def main(argv: list[str] | None = None) -> None:
    """Score each VAE on each split, print one row per (VAE, split), write the JSON."""
    from spasemsr.weights.table import WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", nargs="+", default=[WEIGHTS["tiny_vae"].default],
                        help="VAE folders (config.json) or VAE training checkpoints (.ckpt)")
    parser.add_argument("--splits", nargs="+", default=["kodak5"], help="bundled splits to score")
    parser.add_argument("--images", type=int, help="score only the first N images of each split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/vae_quality.json")
    args = parser.parse_args(argv)
    device = setup("cpu", args.threads)
    results = {vae: {split: score_vae(vae, split, args.images) for split in args.splits} for vae in args.vae}
    results["bicubic_x4"] = {split: score_bicubic(split, args.images) for split in args.splits}
    keys = list(next(iter(results[args.vae[0]].values()))["mean"])
    rows = [[vae, split, *(f"{r['mean'][k]:.3f}" if k in r["mean"] else None for k in keys)]
            for vae, splits in results.items() for split, r in splits.items()]
    print_table("VAE round trip (means over each split)", ["vae", "split", *keys], rows)
    write_json(Path(args.out), {"environment": environment(device), "colour_shift": COLOUR_SHIFT, "results": results})


if __name__ == "__main__":
    main()
