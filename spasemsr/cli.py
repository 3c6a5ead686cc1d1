"""The ``spasemsr`` command line. Heavy libraries are imported inside each verb, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOT_YET = {"evaluate": 4, "ablate": 5, "sweep": 6, "figures": 8, "doctor": 4}


def _train(args: argparse.Namespace) -> int:
    from spasemsr.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg))
        return 0
    from spasemsr.training.run import train

    train(cfg)
    return 0


def _upscale(args: argparse.Namespace) -> int:
    from spasemsr.upscale import upscale_files

    if args.ckpt is None:
        print("spasemsr upscale: give --ckpt EXPORT_DIR (the export/ folder of a trained controlnet_sr run; "
              "`make demo` trains one into runs/demo/controlnet_sr/export)", file=sys.stderr)
        return 2
    failures = upscale_files(args.inputs, Path(args.out), Path(args.ckpt), steps=args.steps, seed=args.seed,
                             overwrite=args.overwrite)
    return 1 if failures else 0


def _not_yet(verb: str) -> int:
    print(f"spasemsr {verb}: not implemented yet (tracked in issue #{NOT_YET[verb]})", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(prog="spasemsr", description="Spatial-semantic guided diffusion SR.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a task (VAE, prior, ControlNet-SR) from a config")
    train.add_argument("--config", required=True, help="a YAML file under configs/, e.g. configs/controlnet_sr.yaml")
    train.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    train.add_argument("overrides", nargs="*", help="group=option or dotted key=value, e.g. trainer.max_steps=10")
    train.set_defaults(func=_train)

    up = verbs.add_parser("upscale", help="x4 super-resolve images into --out")
    up.add_argument("inputs", nargs="+", help="image files")
    up.add_argument("--out", required=True, help="output folder (PNG)")
    up.add_argument("--ckpt", help="export/ folder of a trained controlnet_sr run")
    up.add_argument("--steps", type=int, help="sampler steps (default: the model's config)")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.set_defaults(func=_upscale)

    helps = {
        "evaluate": "score SR results under the declared protocol",
        "ablate": "run the ablation study",
        "sweep": "Optuna perception-distortion sweep",
        "figures": "render paper figures from results",
        "doctor": "report available backends, weights and metrics",
    }
    for verb, text in helps.items():
        sub = verbs.add_parser(verb, help=f"{text} (not implemented yet)")
        sub.add_argument("rest", nargs=argparse.REMAINDER)
        sub.set_defaults(func=lambda args, verb=verb: _not_yet(verb))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spasemsr`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
