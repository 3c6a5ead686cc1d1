"""The ``spasemsr`` command line. Heavy libraries are imported inside each verb, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spasemsr.sweep import SHIPPED_FRONT
from spasemsr.weights.table import default_path

DEFAULT_MODEL = default_path("tiny_spasemsr")  # the shipped tiny SpaSemSR (weights table)


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
    from spasemsr.upscale import Interrupted, upscale_files
    from spasemsr.weights import local_path

    if args.method and (args.ckpt or args.preset):
        print("spasemsr upscale: --method (a restorer) and --ckpt / --preset (a diffusion model) exclude each other",
              file=sys.stderr)
        return 2
    ckpt = None if args.method else local_path(args.ckpt or DEFAULT_MODEL)
    if ckpt is not None and not ckpt.is_dir():
        print(f"spasemsr upscale: no model at {ckpt}: give --ckpt EXPORT_DIR (the export/ folder of a trained "
              "controlnet_sr or spasemsr run), or build the shipped tiny weights with `make weights-tiny`",
              file=sys.stderr)
        return 2
    knobs = None
    if args.preset:
        from spasemsr.sweep.front import preset_knobs

        knobs = preset_knobs(local_path(args.presets), args.preset, ckpt)
        print(f"preset {args.preset}: {knobs}")
    if args.tile:
        knobs = {**(knobs or {}), "tile_size": args.tile, "tile_overlap": args.tile_overlap}
    try:
        failures = upscale_files(args.inputs, Path(args.out), ckpt, steps=args.steps, seed=args.seed,
                                 overwrite=args.overwrite, knobs=knobs, fmt=args.format, suffix=args.suffix,
                                 device=args.device, progress=not args.quiet, precision=args.precision,
                                 method=args.method)
    except ValueError as err:  # clashing or unwritable outputs, bad knob values: nothing was written
        print(f"spasemsr upscale: {err}", file=sys.stderr)
        return 2
    except Interrupted:  # Ctrl-C: the summary line is printed
        return 130
    return 1 if failures else 0


def _evaluate(args: argparse.Namespace) -> int:
    from spasemsr.config.knobs import parse_knobs
    from spasemsr.evaluation.datasets import load_eval_set
    from spasemsr.evaluation.evaluate import evaluate
    from spasemsr.registries import RESTORERS

    if args.ckpt and args.method:
        print("spasemsr evaluate: give --ckpt EXPORT or --method RESTORER, not both", file=sys.stderr)
        return 2
    if args.method and args.method.partition(":")[0] not in RESTORERS:
        print(f"spasemsr evaluate: --method is a restorer ({', '.join(RESTORERS)}; NAME:PATH for its weights), got "
              f"{args.method!r}; give a diffusion model as --ckpt EXPORT", file=sys.stderr)
        return 2
    knobs = parse_knobs(args.knobs)
    if args.steps is not None:
        knobs["steps"] = args.steps
    dataset = load_eval_set(args.data, args.hr, args.lr, args.degrade)
    metrics = [name.strip() for name in args.metrics.split(",")] if args.metrics else None
    result = evaluate(args.ckpt or args.method or "bicubic", dataset, metrics, Path(args.out), knobs, args.seed,
                      args.device, drm=args.drm)
    means = ", ".join(f"{name}={value:.4g}" for name, value in result["means"].items())
    print(f"{dataset.name} ({dataset.lr}, {len(dataset)} images): {means}; unavailable: "
          f"{', '.join(result['unavailable']) or 'none'}; results in {args.out}/metrics.json")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from spasemsr.doctor import report, sd2_report

    if args.sd2:
        text, ok = sd2_report(args.sd2)
        print(text)
        return 0 if ok else 1
    print(report())
    return 0


def _names(text: str | None) -> list[str]:
    """``"a, b"`` → ``["a", "b"]``; None → []."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _ablate(args: argparse.Namespace) -> int:
    from spasemsr.ablation.runner import run_ablation

    reevaluate = "rescore" if args.rescore else "resample" if args.resample else None
    run_ablation(args.experiment, args.budget, args.out, args.runs, _names(args.only), _names(args.rerun),
                 reevaluate, args.jobs)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from spasemsr.sweep import runner

    if args.export:
        record = runner.export_front(args.storage, args.study, args.out, args.experiment)
        print(f"front of {args.study}: {len(record['front'])} trials; presets "
              + "; ".join(f"{k}: {v['knobs']}" for k, v in record["presets"].items()))
    elif args.compare:
        summary = runner.compare_models(args.experiment, args.storage, args.study, args.n_trials, args.out,
                                        args.device)
        print(f"hypervolumes ({args.n_trials} trials each): {summary['hypervolume']}")
    else:
        done = runner.run_sweep(args.experiment, args.storage, args.study, args.n_trials, args.workers, args.model,
                                args.device, args.tensorboard or f"runs/sweeps/{args.study}/tb", args.worker_index)
        print(f"study {args.study}: {done} complete trials in {args.storage}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from spasemsr.figures.inputs import MissingInputs

    try:
        if args.collect:
            from spasemsr.figures.collect import collect

            written = collect(args.results, args.experiment, device=args.device, study=args.study)
        else:
            from spasemsr.figures.render import render

            written = render(args.results, args.out, _names(args.only), args.skip_missing, args.study)
    except (MissingInputs, ValueError) as err:  # absent or stale result files: say which, and what makes them
        print(f"spasemsr figures: {err}", file=sys.stderr)
        return 2
    print("\n".join(str(path) for path in written))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(prog="spasemsr", description="Spatial-semantic guided diffusion SR.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (by default a user error is one line, exit 2)")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a task (VAE, prior, ControlNet-SR) from a config")
    train.add_argument("--config", required=True, help="a YAML file under configs/, e.g. configs/controlnet_sr.yaml")
    train.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    train.add_argument("overrides", nargs="*", help="group=option or dotted key=value, e.g. trainer.max_steps=10")
    train.set_defaults(func=_train)

    up = verbs.add_parser("upscale", help="x4 super-resolve images into --out")
    up.add_argument("inputs", nargs="+", help="image files, folders of images, or quoted globs ('photos/*.jpg')")
    up.add_argument("--out", required=True, help="output folder")
    up.add_argument("--format", default="png", choices=["png", "jpg", "webp", "tif"], help="output format")
    up.add_argument("--suffix", default="", help="appended to each output's stem, e.g. _x4")
    up.add_argument("--ckpt", help=f"export/ folder of a controlnet_sr or spasemsr run (default: {DEFAULT_MODEL})")
    up.add_argument("--method", help="a restorer instead of a diffusion model: realesrgan_x4plus, realsr_df2k, "
                                     "bicubic or drm:PATH (NAME:PATH gives it other weights, e.g. a .pth)")
    up.add_argument("--steps", type=int, help="sampler steps (default: the model's config)")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument("--preset", choices=["fidelity", "balance", "perception"],
                    help="knobs of a point on the model's swept PD front")
    up.add_argument("--presets", default=SHIPPED_FRONT, help="exported front holding the presets")
    up.add_argument("--device", default="auto", help="auto (CUDA when visible, else CPU), cpu, cuda, cuda:1, ...")
    up.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                    help="auto: fp16 mixed precision on CUDA, fp32 on CPU")
    up.add_argument("--quiet", action="store_true", help="no progress bars")
    up.add_argument("--tile", type=int, default=0,
                    help="HR pixels per tile side (0: whole image); bounds memory on large images")
    up.add_argument("--tile-overlap", type=int, default=64, help="HR pixels shared by neighbouring tiles")
    up.set_defaults(func=_upscale)

    from spasemsr.config.knobs import knob_help

    ev = verbs.add_parser("evaluate", help="score a method on a set under the declared protocol (DESIGN.md §5)",
                          epilog="knobs (name=value):\n" + knob_help(),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    data = ev.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="kodak5 or unseen (bundled) or hr_folder:DIR (HR-only, LR made with --degrade)")
    data.add_argument("--hr", help="HR folder of real pairs (with --lr)")
    ev.add_argument("--lr", help="LR folder paired with --hr by file name (spasemsr.data.datasets.pair_key)")
    ev.add_argument("--degrade", choices=["realesrgan", "bicubic"], default="realesrgan",
                    help="how --data sets make their LR: default Real-ESRGAN with a fixed seed per image, or bicubic")
    ev.add_argument("--out", required=True, help="output folder: sr/, metrics.csv, metrics.json")
    ev.add_argument("--ckpt", help="export/ folder of a trained controlnet_sr or spasemsr run")
    ev.add_argument("--method", help="a restorer: bicubic (default), realesrgan_x4plus, realsr_df2k or drm:PATH (a DRM "
                                     "folder, e.g. weights/tiny/drm/drm); NAME:PATH gives it other weights")
    ev.add_argument("--drm", help="SpaSemSR: replace the export's model.drm (none, tiny, realesrgan_x4plus, "
                                  "realsr_df2k or a DRM folder); recorded with the knobs")
    ev.add_argument("--steps", type=int, help="sampler steps (default: the model's config)")
    ev.add_argument("--seed", type=int, default=0, help="seed of every image's sampler noise")
    ev.add_argument("--metrics", help="comma-separated metric names (default: the protocol's list)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("knobs", nargs="*", help="SamplerConfig knobs as name=value, e.g. w_spa=0.5 color_fix=wavelet")
    ev.set_defaults(func=_evaluate)

    doctor = verbs.add_parser("doctor", help="report available backends, weights and metrics")
    doctor.add_argument("--sd2", metavar="PATH", help="check a local stable-diffusion-2-base folder against the shapes "
                        "the sd2 profile expects (exit 1 if anything is missing or mismatched)")
    doctor.set_defaults(func=_doctor)

    ab = verbs.add_parser("ablate", help="train and evaluate every ablation variant; resumable; writes the tables")
    ab.add_argument("--experiment", default="experiments/ablation.yaml", help="the ablation file")
    ab.add_argument("--budget", default="full", help="a budget preset of the file, e.g. smoke or full")
    ab.add_argument("--out", default="experiments/results", help="folder for the records and tables")
    ab.add_argument("--runs", default="runs/ablation", help="parent folder of the training runs (TensorBoard)")
    ab.add_argument("--only", help="comma-separated variants to run (default: all)")
    ab.add_argument("--rerun", help="comma-separated variants (or all) to retrain afresh, e.g. after a code change")
    ab.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes sharing the CPU cores "
                    "(2 on a 2-core machine halves a CPU study's time; keep 1 on one GPU)")
    again = ab.add_mutually_exclusive_group()
    again.add_argument("--rescore", action="store_true",
                       help="re-score complete variants' saved SR images under the current metrics (no sampling)")
    again.add_argument("--resample", action="store_true",
                       help="sample and score complete variants afresh, keeping their training (after sampler changes)")
    ab.set_defaults(func=_ablate)

    from spasemsr.sweep import DEFAULT_STORAGE

    sw = verbs.add_parser("sweep", help="Optuna perception-distortion sweep over the knobs of one checkpoint")
    sw.add_argument("--experiment", default="experiments/pd_sweep.yaml", help="the sweep file")
    sw.add_argument("--storage", default=DEFAULT_STORAGE,
                    help="sqlite:///FILE, any SQLAlchemy URL (postgresql+psycopg2://...), or journal:FILE")
    sw.add_argument("--study", default="pd_sweep", help="study name in the storage")
    sw.add_argument("--n-trials", type=int, default=24, help="complete trials the study should hold")
    sw.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    sw.add_argument("--worker-index", type=int, default=0,
                    help="first worker's sampler-seed offset; give each machine sharing a study its own range")
    sw.add_argument("--model", help="export folder to sweep (default: the file's model)")
    sw.add_argument("--device", default="cpu")
    sw.add_argument("--tensorboard", help="hparams rows per trial (default: runs/sweeps/STUDY/tb)")
    sw.add_argument("--export", action="store_true", help="write the study's Pareto front and presets to --out")
    sw.add_argument("--compare", action="store_true",
                    help="sweep every `compare` model of the file with --n-trials each; hypervolumes to --out")
    sw.add_argument("--out", default="experiments/results", help="folder for --export and --compare files")
    sw.set_defaults(func=_sweep)

    fig = verbs.add_parser("figures", help="paper figures (PDF + PNG) and LaTeX tables from result files, no model run")
    fig.add_argument("--from", dest="results", default="experiments/results", help="the results folder")
    fig.add_argument("--study", default="photo",
                     help="photo (kodak5 sweep and ablation) or probe (the guidance probe, issue #19: figures "
                          "under OUT/probe)")
    fig.add_argument("--out", default="figures", help="output folder (tables under OUT/tables)")
    fig.add_argument("--only", help="comma-separated: pd_plane, knob_grid, comparison (photo), ablation_bars, "
                                    "tables")
    fig.add_argument("--skip-missing", action="store_true",
                     help="render what the present result files allow, with a note per skipped item (default: "
                          "write nothing and list every missing file)")
    fig.add_argument("--collect", action="store_true",
                     help="instead make the figure data in --from: every sweep trial, and crops and scores sampled "
                          "with the shipped models (minutes on CPU; `make figure-data`)")
    fig.add_argument("--experiment", help="--collect: the sweep file (default: the study's, "
                                          "experiments/pd_sweep.yaml or experiments/probe_sweep.yaml)")
    fig.add_argument("--device", default="cpu", help="--collect: device of the sampling")
    fig.set_defaults(func=_figures)
    return parser


USER_ERRORS = (ValueError, OSError, KeyError, ImportError)
"""What bad input raises: config errors (``ConfigError``), missing or bad files and weights (``ImageError``,
``MissingWeightsError``), bad values and storage URLs, absent optional packages. Anything else is a bug
and keeps its traceback."""


def one_line(err: BaseException) -> str:
    """An exception as one line of text (a KeyError's message without its quotes)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spasemsr`` console script: a user error is one line on stderr and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"spasemsr {args.verb}: {one_line(err)} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
