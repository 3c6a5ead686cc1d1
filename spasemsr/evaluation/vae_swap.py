"""The shipped SR models with another VAE in their frozen prior, row by row against the shipped results.

``python -m spasemsr.evaluation.vae_swap --vae RUN/export/vae --out runs/vae_swap [--sets kodak5,unseen]
[--only spasemsr_raw,spasemsr] [--seeds 0] [--json experiments/results/NAME.json]``

A decoder fine-tuned for a frozen encoder (``model.train_encoder: false``) keeps the latents, so the prior's UNet and
every ControlNet trained on them take it unchanged: this copies the shipped weights under ``--out``, puts ``--vae``
into the copy's prior, evaluates the suite rows there (Real-ESRGAN LR) and sets each seed's means beside the shipped
run of the same row and seed in ``--shipped`` (``make eval``'s folder). The candidate's records carry its own
backbone hash, so nothing here can be mistaken for a shipped result. A preset row is refused, as a front swept on
the shipped prior does not hold for another.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from spasemsr.evaluation.evaluate import seed_folder
from spasemsr.evaluation.suite import METHODS, bundled_sets, run_suite
from spasemsr.evaluation.table import mean_std
from spasemsr.utils.atomic import atomic_write_text
from spasemsr.weights.table import TINY

COMPARED = ("psnr_y", "psnr_rgb", "ssim_y", "niqe", "new_dark_dots")
DEFAULT_ROWS = ("controlnet_sr_raw", "controlnet_sr", "spasemsr_raw", "spasemsr", "spasemsr_x4plus_start_raw",
                "spasemsr_x4plus_start")


def candidate_weights(vae: Path, root: Path, shipped: Path = TINY) -> Path:
    """A copy of the shipped weights whose SR exports read a prior holding ``vae`` (config.json + weights)."""
    if not (vae / "config.json").is_file():
        raise FileNotFoundError(f"{vae}: not a VAE folder (no config.json); pass a run's export/vae")
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(shipped, root)
    shutil.rmtree(root / "prior" / "vae")
    shutil.copytree(vae, root / "prior" / "vae")
    for export in root.iterdir():
        config = export / "config.yaml"
        if (export / "controlnet").is_dir() and config.is_file():
            cfg = OmegaConf.load(config)
            cfg.profile.backbone_path = str((root / "prior").resolve())
            config.write_text(OmegaConf.to_yaml(cfg))
    return root


def compare(candidate: Path, shipped: Path, set_label: str, rows: Sequence[str], seeds: Sequence[int]) -> dict:
    """Per row and metric: shipped and candidate means over ``seeds`` (the seeds both have) and the change; with
    two seeds or more, each side's sample std over seeds beside it (the sampling noise)."""
    out = {}
    for row in rows:
        pairs = []
        for seed in seeds:
            paths = [seed_folder(root / set_label / row, seed) / "metrics.json" for root in (shipped, candidate)]
            if all(path.is_file() for path in paths):
                pairs.append([json.loads(path.read_text())["means"] for path in paths])
        if pairs:
            metrics = [metric for metric in COMPARED if all(metric in p[0] and metric in p[1] for p in pairs)]
            out[f"{set_label}/{row}"] = {"seeds": len(pairs), **{
                metric: _change([p[0][metric] for p in pairs], [p[1][metric] for p in pairs]) for metric in metrics}}
    return out


def _change(shipped: Sequence[float], candidate: Sequence[float]) -> dict:
    if len(shipped) == 1:
        return {"shipped": shipped[0], "candidate": candidate[0], "change": candidate[0] - shipped[0]}
    (s, s_std), (c, c_std) = mean_std(shipped), mean_std(candidate)
    return {"shipped": s, "shipped_std": s_std, "candidate": c, "candidate_std": c_std, "change": c - s}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", type=Path, required=True, help="the candidate VAE folder (a run's export/vae)")
    parser.add_argument("--out", type=Path, required=True, help="working folder: the weights copy and its results")
    parser.add_argument("--shipped", type=Path, default=Path("experiments/results"), help="the shipped results")
    parser.add_argument("--sets", default="kodak5,unseen")
    parser.add_argument("--only", default=",".join(DEFAULT_ROWS),
                        help=f"suite rows (no preset rows): {', '.join(entry.folder for entry in METHODS)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--json", type=Path, help="write the comparison here too")
    args = parser.parse_args(argv)
    rows, seeds = args.only.split(","), [int(seed) for seed in args.seeds.split(",")]
    presets = sorted(entry.folder for entry in METHODS if entry.folder in rows and entry.preset)
    if presets:
        raise ValueError(f"{presets}: a sweep preset is tuned on the shipped prior and does not apply to another")
    root = candidate_weights(args.vae, args.out / "weights")
    sets = bundled_sets(args.sets.split(","), ["realesrgan"])
    run_suite(args.out / "results", weights=root, sets=sets, only=rows, seeds=seeds)
    result = {"vae": str(args.vae), "seeds": seeds, "rows": {}}
    for label in sets:
        result["rows"] |= compare(args.out / "results", args.shipped, label, rows, seeds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
