"""Per-image inference cost of each SpaSemSR component, at the tiny profile and at SD-2 sizes (issue #9).

    python -m benchmarks.component_cost [--profiles tiny sd2] [--tiny-lr 64] [--sd2-lr 64] [--repeats 3] [--owlv2]

Each profile runs in a fresh interpreter (so its peak memory is its own): ``tiny`` is the shipped tiny
SpaSemSR (weights/tiny/spasemsr); ``sd2`` is SpaSemSR on SD-2-base-shaped modules with random weights
(benchmarks/models.py). Every component is timed on its own on one photo at the given LR side (x4), median
of ``--repeats`` after a warm-up, with its peak memory above the level before it. The per-image estimate
adds the once-per-image parts to ``steps`` denoising steps; for ``tiny`` the end-to-end ``pipeline(lr)``
is timed as well, to check that the parts add up.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch

from benchmarks.common import (
    Measurement,
    add_common_args,
    environment,
    fmt,
    measure,
    peak_rss_mib,
    photo_lr,
    print_table,
    progress,
    rss_mib,
    run_child,
    setup,
    write_json,
)
from benchmarks.models import latent_noise, parameter_counts, sd2_pipeline, tiny_pipelines
from spasemsr.pipeline import SRPipeline

TIMESTEP = 500  # mid-schedule; the cost of a step does not depend on t
OWL_QUERIES = 42  # the size of the detectors' default tag vocabulary


def owlv2_forward(device: torch.device) -> Callable[[], object]:
    """One OWLv2-B/16 forward at its 960² input with random weights: the cost of the `owlv2` grounder's model."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection

    model = Owlv2ForObjectDetection(Owlv2Config(vision_config={"image_size": 960})).to(device).eval()
    pixels = torch.rand(1, 3, 960, 960, device=device)
    ids = torch.randint(0, 1000, (OWL_QUERIES, 16), device=device)
    return torch.no_grad()(lambda: model(input_ids=ids, pixel_values=pixels))


def components(pipeline: SRPipeline, lr: torch.Tensor, device: torch.device, repeats: int,
               extra: dict[str, tuple[str, Callable[[], object]]]) -> tuple[dict[str, dict], dict]:
    """Measure each component on ``lr``; returns rows by key and facts about the inputs (tags, sizes)."""
    from spasemsr.diffusion.color_fix import color_fix
    from spasemsr.diffusion.consistency import back_project
    from spasemsr.diffusion.latents import clean_latents, decode

    conditioner, net, vae, knobs = pipeline.conditioner, pipeline.net, pipeline.backbone.vae, pipeline.sampler
    scale = pipeline.scale
    with torch.no_grad():
        cleaned = conditioner.drm(lr)
        grounding = conditioner.grounder(cleaned)[0]
        caption = conditioner.describer(lr, None)[0]
        prepared = pipeline.prepare(lr)
        latents = latent_noise(pipeline, lr, torch.Generator().manual_seed(0))
        start = (prepared.conditions.pixel + 1) / 2
        sr = decode(vae, latents)
    tags = grounding.tags[: net.spatial.max_objects]
    t = torch.full((1,), TIMESTEP, device=device)
    latent_hw = tuple(latents.shape[-2:])

    def text() -> None:
        net.text_encoder([caption])
        if tags:
            net.text_encoder.pooled(tags)  # uncached: a new image's tags (SpatialText caches them by name)

    parts: dict[str, tuple[str, Callable[[], object]]] = {
        "drm": ("DRM (RRDBNet x4) on the LR", lambda: conditioner.drm(lr)),
        "grounder": (f"grounder ({type(conditioner.grounder).__name__}) on DRM(LR)",
                     lambda: conditioner.grounder(cleaned)),
        "describer": (f"describer ({type(conditioner.describer).__name__}) -> caption",
                      lambda: conditioner.describer(lr, None)),
        "text_encoder": (f"text encoder: caption + {len(tags)} tags", text),
        "visual_encoders": ("E_img + E_sem on the LR", lambda: net.visual(lr, latent_hw)),
        "prepare": ("conditions + start latent (SRPipeline.prepare)", lambda: pipeline.prepare(lr)),
        "vae_encode": ("VAE encode of the start latent (part of prepare)", lambda: clean_latents(vae, start)),
        "step": ("one denoising step: ControlNet + UNet + guidance",
                 lambda: net.eps(latents, t, prepared.conditions, knobs)),
        "vae_decode": ("VAE decode", lambda: decode(vae, latents)),
        "post": (f"colour fix ({knobs.color_fix}) + back-projection ({knobs.backproject})",
                 lambda: back_project(color_fix(sr, lr, knobs.color_fix), lr, scale, knobs.backproject)),
        **extra,
    }
    rows = {}
    for key, (what, fn) in parts.items():
        progress(f"  {key}: {what}")
        with torch.no_grad():
            result: Measurement = measure(fn, device, repeats)
        rows[key] = {"what": what, **result.record()}
    facts = {"lr": list(lr.shape[-2:]), "hr": [s * scale for s in lr.shape[-2:]], "latent": list(latent_hw),
             "tags": list(tags), "caption": caption}
    return rows, facts


def per_image_seconds(rows: dict[str, dict], steps: int, cfg_scale: float) -> float:
    """Once-per-image parts plus ``steps`` denoiser calls (two per step under classifier-free guidance)."""
    calls = steps * (2 if cfg_scale != 1.0 else 1)
    once = ("prepare", "vae_decode", "post")  # prepare includes the start latent's VAE encode
    return sum(rows[key]["median_s"] for key in once) + calls * rows["step"]["median_s"]


def profile_record(profile: str, args: argparse.Namespace) -> dict:
    """Build the profile's pipeline in this process and measure it (the child's job)."""
    device = setup(args.device, args.threads)
    tiny, _ = tiny_pipelines(device)
    extra = {}
    if profile == "tiny":
        pipeline, side = tiny, args.tiny_lr
    else:
        pipeline, _ = sd2_pipeline(tiny, device)
        side = args.sd2_lr or (128 if device.type == "cuda" else 64)
        if args.owlv2:
            extra["owlv2"] = ("alternative grounder: OWLv2-B/16 forward, 960², 42 queries (not in prepare)",
                              owlv2_forward(device))
    loaded = rss_mib()
    lr = photo_lr(side, device)
    rows, facts = components(pipeline, lr, device, args.repeats, extra)
    knobs = pipeline.sampler
    record = {"profile": profile, **facts, "steps": knobs.steps, "cfg_scale": knobs.cfg_scale,
              "params_m": parameter_counts(pipeline), "rss_after_load_mib": loaded and round(loaded, 1),
              "components": rows,
              "per_image_estimate_s": round(per_image_seconds(rows, knobs.steps, knobs.cfg_scale), 3)}
    if profile == "tiny":
        def upscale() -> torch.Tensor:
            return pipeline(lr, torch.Generator().manual_seed(0))

        record["end_to_end"] = measure(upscale, device, args.repeats).record()
    record["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if device.type == "cuda":
        record["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    record["environment"] = environment(device)
    return record


def child_argv(args: argparse.Namespace, profile: str) -> list[str]:
    """The options a profile's child process gets."""
    argv = ["--child", profile, "--device", args.device, "--threads", str(args.threads),
            "--repeats", str(args.repeats), "--tiny-lr", str(args.tiny_lr), "--sd2-lr", str(args.sd2_lr)]
    return argv + (["--owlv2"] if args.owlv2 else [])


def print_profile(record: dict) -> None:
    """One table per profile."""
    rows = [[key, row["what"], fmt(row["median_s"], 4), fmt(row["peak_mib"], 1)]
            for key, row in record["components"].items()]
    title = (f"{record['profile']}: LR {record['lr']} -> HR {record['hr']}, latent {record['latent']}, "
             f"{record['environment']['device']}, {record['environment']['torch_threads']} threads")
    print_table(title, ["component", "what", "median s", "peak MiB"], rows)
    line = f"per image at {record['steps']} steps (estimate): {record['per_image_estimate_s']:.2f} s"
    if "end_to_end" in record:
        line += f"; measured end to end: {record['end_to_end']['median_s']:.2f} s"
    print(f"{line}; peak RSS {record['peak_rss_mib']:.0f} MiB; params (M) {record['params_m']}")


def main(argv: list[str] | None = None) -> None:
    """Run each profile in its own process, print its table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "component_cost.json", repeats=3)
    parser.add_argument("--profiles", nargs="+", default=["tiny", "sd2"], choices=["tiny", "sd2"])
    parser.add_argument("--tiny-lr", type=int, default=64, help="LR side for the tiny profile (HR = 4x)")
    parser.add_argument("--sd2-lr", type=int, default=0,
                        help="LR side for SD-2 sizes (0: 64 on CPU, 128 = the paper's 512² HR on CUDA)")
    parser.add_argument("--owlv2", action="store_true", help="also time an OWLv2-B/16 grounder at SD-2 sizes")
    parser.add_argument("--child", choices=["tiny", "sd2"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(profile_record(args.child, args)))
        return
    profiles = []
    for profile in args.profiles:
        progress(f"component_cost: {profile}")
        profiles.append(run_child("benchmarks.component_cost", child_argv(args, profile)))
        print_profile(profiles[-1])
    write_json(args.out, {"benchmark": "component_cost", "repeats": args.repeats, "profiles": profiles})


if __name__ == "__main__":
    main()
