"""The studies the figures are drawn for, each as the files it reads: one description, so every figure module
serves every study instead of being copied per study.

- ``photo``: the kodak5 study (experiments/pd_sweep.yaml, experiments/ablation.yaml), figures under ``--out``;
- ``probe``: the guidance probe (issue #19: experiments/probe_sweep.yaml, experiments/probe.yaml, three seeds),
  figures under ``--out``/probe. Its ablation is scored under its sweep's protocol (the probe set, the same
  metrics and steps, the model's own sampler), so both share one PD plane; it has no photo suite to compare.
"""

from __future__ import annotations

from dataclasses import dataclass

from spasemsr.figures.inputs import ABLATE, EVAL, FIGURE_DATA, FIGURE_DATA_DIR, FRONT, Input


@dataclass(frozen=True)
class KnobImage:
    """The one image a knob grid samples: its evaluation set, its name, the HR box drawn, the scores recorded, and
    the sampler seeds each cell is sampled under (its scores: mean and std over them; its crop: the first's)."""

    data: str
    image: str
    box: tuple[int, int, int, int]
    scores: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Study:
    """Where one study's results lie and what makes them; inputs a study lacks are None and their panels dropped."""

    name: str
    figures: tuple[str, ...]
    front: Input  # the exported sweep (front, presets, study identity)
    trials: Input  # every trial of that sweep (``--collect``)
    ablation: Input  # the ablation table (CSV; mean and ``<metric>_std`` columns when run under several seeds)
    records: Input  # folder of the ablation's records: ``<variant>.json``, or ``<variant>_seed<s>.json``
    knob_grid: Input
    knob: KnobImage
    sweep: str  # the sweep file ``--collect`` samples the knob grid under (its model and evaluation)
    copied: tuple[Input, ...]  # LaTeX tables copied verbatim into ``tables/``
    reference: Input | None = None  # suite methods re-scored under the sweep's protocol
    eval_table: Input | None = None  # the full-image suite table the ablation shares a protocol with
    out: str = ""  # folder under ``--out`` for this study's figures

    def crops(self) -> str:
        """The folder (under figure_data/) of the knob grid's crops: the JSON's stem, so studies never share one."""
        return self.knob_grid.name.removeprefix(f"{FIGURE_DATA_DIR}/").removesuffix(".json")


PROBE_SWEEP = ("spasemsr sweep --experiment experiments/probe_sweep.yaml --study probe_sweep --export "
               "--out experiments/results/probe")
PROBE_DATA = "make figure-data STUDY=probe"

PHOTO = Study(
    name="photo", figures=("pd_plane", "knob_grid", "comparison", "ablation_bars"), front=FRONT,
    trials=Input("pd_sweep_trials.csv", FIGURE_DATA), ablation=Input("ablation.csv", ABLATE),
    records=Input("ablation", ABLATE), knob_grid=Input(f"{FIGURE_DATA_DIR}/knob_grid.json", FIGURE_DATA),
    # kodim08, houses: roof tiles, shutters and window frames show texture and edges side by side; the box is
    # the dormer window and snowy roof (HR pixels x0, y0, x1, y1); the scores are the PD plane's axes
    knob=KnobImage("kodak5", "kodim08", (256, 96, 352, 192), ("psnr_y", "niqe"), seeds=(0, 1, 2)),
    sweep="experiments/pd_sweep.yaml",
    copied=(Input("kodak5_realesrgan.tex", EVAL), Input("kodak5_bicubic.tex", EVAL), Input("ablation.tex", ABLATE)),
    reference=Input(f"{FIGURE_DATA_DIR}/pd_reference.json", FIGURE_DATA),
    eval_table=Input("kodak5_realesrgan.csv", EVAL))

PROBE = Study(
    name="probe", figures=("pd_plane", "knob_grid", "ablation_bars"),
    front=Input("probe/probe_sweep_front.json", PROBE_SWEEP), trials=Input("probe/probe_sweep_trials.csv", PROBE_DATA),
    ablation=Input("probe.csv", "make ablate ABLATE=probe"), records=Input("probe", "make ablate ABLATE=probe"),
    knob_grid=Input(f"{FIGURE_DATA_DIR}/probe_knob_grid.json", PROBE_DATA),
    # the set's first image: all three textures in large boxes beside flat background; drawn whole (96 px)
    knob=KnobImage("probe", "probe-1001000000", (0, 0, 96, 96), ("psnr_y", "niqe", "texture_acc")),
    sweep="experiments/probe_sweep.yaml", copied=(Input("probe.tex", "make ablate ABLATE=probe"),), out="probe")

STUDIES = {study.name: study for study in (PHOTO, PROBE)}


def find_study(name: str | Study) -> Study:
    """The study called ``name`` (a Study passes through); a bad name is refused listing the valid ones."""
    if isinstance(name, Study):
        return name
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; valid: {', '.join(STUDIES)}")
    return STUDIES[name]
