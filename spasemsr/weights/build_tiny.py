"""``make weights-tiny``: train every tiny-profile component in dependency order and ship the exports.

Each stage is an ordinary ``spasemsr train`` run under ``runs/ship/`` (so a killed build resumes),
whose export is then copied to ``weights/tiny/<stage>/``; later stages point at those copies, so the
shipped configs reference only shipped paths. Seeds are fixed, so the build is reproducible.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from spasemsr.config import load_config
from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.training.run import train
from spasemsr.weights.table import TINY

COSINE = ["trainer.lr_schedule=cosine", "trainer.warmup_steps=200"]


def stages(ship: Path = TINY) -> dict[str, tuple[str, int, list[str]]]:
    """stage -> (config file, step budget, overrides); later stages read earlier ones from ``ship``.

    ``ship`` is ``weights/tiny`` for the shipped chain; a retrain of the chain goes to its own folder (``--ship-to``),
    so the shipped models keep the prior they were trained on until the whole new chain replaces them.
    """
    return {
        "vae": ("tiny_vae.yaml", 10000, []),
        "prior": ("tiny_prior.yaml", 20000, [f"model.vae_path={ship}/vae/vae"]),
        "drm": ("tiny_drm.yaml", 800, []),
        "estimator": ("tiny_estimator.yaml", 3000, []),
        # issue #18: 10x the 600 steps of the first shipped ControlNets, cosine-decayed like the prior
        "controlnet_sr": ("controlnet_sr.yaml", 6000, [f"profile.backbone_path={ship}/prior", *COSINE]),
        "spasemsr": ("spasemsr.yaml", 6000, [
            f"profile.backbone_path={ship}/prior", f"model.drm={ship}/drm/drm",
            f"model.text.describer_options.estimator.path={ship}/estimator/estimator", *COSINE,
            # issue #18 item 4: ground as inference does (the auto grounder on DRM(LR) of the whole photo, at most
            # grounding_side); the shipped run's first 1,000 steps grounded each crop's DRM(LR) (drm_lr) instead
            "model.text.train_grounding=drm_lr_photo",
        ]),
    }


STAGES = stages()


def ship_stage(stage: str, root: Path, steps: int | None = None, extra: tuple[str, ...] = (),
               run_name: str | None = None, ship: Path = TINY) -> dict:
    """Train (or resume) one stage and copy its export into the shipped folder; returns its manifest.

    ``extra`` overrides with a ``run_name`` train a candidate (e.g. another ``train_grounding``) beside the
    shipped run; its export lands in ``<ship>/<run_name>/`` so candidates can be compared before one is copied
    to the stage's own folder.
    """
    config, budget, overrides = stages(ship)[stage]
    name = run_name or stage
    cfg = load_config(CONFIGS_ROOT / config, [
        f"run.root={root}", f"run.name={name}", f"trainer.max_steps={steps or budget}", *overrides, *extra,
    ])
    started = time.perf_counter()
    export = train(cfg)
    target = ship / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(export, target)
    manifest = json.loads((target / "manifest.json").read_text())
    print(f"shipped {name} -> {target} ({time.perf_counter() - started:.0f} s)")
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Build the shipped tiny weights (all stages, or those named)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {list(STAGES)}")
    parser.add_argument("--root", default="runs/ship")
    parser.add_argument("--ship-to", default=str(TINY), help="folder the exports are copied to and later stages "
                        "read earlier ones from (a chain retrain: its own folder, e.g. weights/tiny_next)")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for a candidate run (needs --run-name)")
    parser.add_argument("--run-name", help="run and weights folder name of a candidate (one stage only)")
    args = parser.parse_args(argv)
    stages = args.stages.split(",")
    if (args.extra or args.run_name) and (len(stages) != 1 or not args.run_name):
        raise SystemExit("--set needs --run-name, and a candidate run trains exactly one stage")
    for stage in stages:
        if stage not in STAGES:
            raise SystemExit(f"unknown stage {stage!r}; valid: {list(STAGES)}")
        ship_stage(stage, Path(args.root), extra=tuple(args.extra), run_name=args.run_name, ship=Path(args.ship_to))


if __name__ == "__main__":
    main()
