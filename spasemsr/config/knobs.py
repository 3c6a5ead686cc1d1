"""The inference knobs: ``SamplerConfig`` declares each one once (type, default, neutral or not, range, help).

Everything else derives from ``KNOBS``: the CLI's ``knob=value`` parsing (``parse_knobs``), the sweep space's
checks and its integer / categorical handling, ``evaluate``'s record notes, the benchmarks' neutral points and
the values the guidance context hands the injected attentions (``GUIDANCE_KNOBS``). Categorical knobs take
their choices from ``config/choices.py`` (the live sampler registry for ``name``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any


def knob(default: Any, help: str, low: float | None = None, high: float | None = None, neutral: bool = False,
         guidance: bool = False) -> Any:
    """A ``SamplerConfig`` field that is a knob: ``neutral`` means its default reproduces the un-knobbed model;
    ``low``/``high`` bound its valid values (inclusive); ``guidance`` knobs are read inside the denoiser."""
    return field(default=default, metadata={"knob": {"help": help, "low": low, "high": high, "neutral": neutral,
                                                      "guidance": guidance}})


@dataclass
class SamplerConfig:
    """Inference settings and the inference-time knobs, shared by previews, upscale, evaluate and sweeps.

    Every knob at its neutral default reproduces the un-knobbed model exactly (``tests/test_spasemsr_net.py``).
    """

    name: str = knob("ddim", "sampler (diffusers scheduler): spasemsr.registries.SAMPLERS")
    steps: int = knob(20, "denoising steps", low=1)
    eta: float = knob(0.0, "DDIM stochasticity (0 = deterministic); other samplers ignore it", low=0.0, high=1.0)
    seed: int = 0  # sampler noise; set with --seed, not as a knob
    w_spa: float = knob(1.0, "scale of spatial text: SpaTextAttn in the UNet, e_spa vs the plain prompt in the "
                        "ControlNet's cross-attention (0 = spatial text off everywhere)", low=0.0, neutral=True,
                        guidance=True)
    w_deg: float = knob(1.0, "scale of the degradation-text branch in the ControlNet", low=0.0, neutral=True,
                        guidance=True)
    w_sem: float = knob(1.0, "scale of SemImgAttn in the UNet decoder", low=0.0, neutral=True, guidance=True)
    control_scale: float = knob(1.0, "scale of every ControlNet contribution: its residuals and the "
                                 "SemImgAttn term that reads its features", low=0.0, neutral=True)
    cfg_scale: float = knob(1.0, "classifier-free guidance on the text conditions (1 = off)", low=0.0, neutral=True)
    start_image: str = knob("lr", "what the start latent encodes: lr (the upsampled LR) | drm (model.drm's "
                                  "restoration of it: restore-then-generate, as DiffBIR; SpaSemSR only)")
    start_t: float = knob(1.0, "fraction of the schedule sampling starts at (the LR latent noised to it); < 1 "
                               "keeps more of the LR", low=0.0, high=1.0, neutral=True)
    color_fix: str = knob("none", "colour correction towards the LR after decoding", neutral=True)
    backproject: int = knob(0, "iterations of LR back-projection after decoding (diffusion/consistency.py)", low=0,
                            neutral=True)
    tile_size: int = knob(0, "HR pixels per tile side for tiled sampling and VAE (0 = whole image)", low=0)
    tile_overlap: int = knob(64, "HR pixels neighbouring tiles share (with tile_size > 0)", low=0)


@dataclass(frozen=True)
class Knob:
    """One row of the knob table."""

    name: str
    kind: type  # int, float or str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    neutral: bool = False
    guidance: bool = False

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The valid values of a categorical knob (from ``config/choices.py``), else None."""
        from spasemsr.config.choices import CHOICES

        valid = CHOICES.get(f"sampler.{self.name}")
        return tuple(valid) if valid is not None else None

    def convert(self, value: object) -> Any:
        """``value`` (a string from the CLI allowed) as this knob's type, checked against its range or choices."""
        try:
            converted = self.kind(value)
        except ValueError:
            raise ValueError(f"knob {self.name} expects a {self.kind.__name__}, got {value!r}") from None
        if isinstance(converted, float) and not math.isfinite(converted):
            raise ValueError(f"knob {self.name} must be finite, got {value!r}")
        choices = self.choices
        if choices is not None and converted not in choices:
            raise ValueError(f"knob {self.name}={converted!r} is not one of {list(choices)}")
        if (self.low is not None and converted < self.low) or (self.high is not None and converted > self.high):
            raise ValueError(f"knob {self.name}={converted} is outside its range {self.range_text}")
        return converted

    @property
    def range_text(self) -> str:
        """E.g. ``[0, 1]``, ``>= 1`` or the choices."""
        if self.choices is not None:
            return "|".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"[{self.low:g}, {self.high:g}]"
        return f">= {self.low:g}" if self.low is not None else "any"


KNOBS: dict[str, Knob] = {
    f.name: Knob(f.name, {"int": int, "float": float, "str": str}[str(f.type)], f.default, **f.metadata["knob"])
    for f in fields(SamplerConfig) if "knob" in f.metadata
}
"""Name -> knob, in declaration order: the one table every knob list derives from."""

NEUTRAL_KNOBS = {name: k.default for name, k in KNOBS.items() if k.neutral}
"""Knobs whose default is the un-knobbed model, at that default."""

GUIDANCE_KNOBS = tuple(name for name, k in KNOBS.items() if k.guidance)
"""Knobs the denoiser's injected attentions read through the guidance context."""


def knob_overrides(knobs: Mapping[str, object]) -> dict[str, object]:
    """Knob values checked against the table and converted to their types (strings from the CLI allowed)."""
    converted = {}
    for name, value in knobs.items():
        if name not in KNOBS:
            hint = "; set the seed with --seed" if name == "seed" else ""
            raise ValueError(f"unknown knob {name!r}{hint}; valid knobs: {', '.join(KNOBS)}")
        converted[name] = KNOBS[name].convert(value)
    return converted


def parse_knobs(items: Sequence[str]) -> dict[str, object]:
    """``["w_spa=0.5", "color_fix=wavelet"]`` → checked overrides."""
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected knob=value, got {item!r}; valid knobs: {', '.join(KNOBS)}")
        pairs[name.strip()] = value.strip()
    return knob_overrides(pairs)


def knob_help() -> str:
    """The table as CLI help text: one ``name (type, range, default): help`` line per knob."""
    return "\n".join(f"  {k.name} ({k.kind.__name__}, {k.range_text}, default {k.default}): {k.help}"
                     for k in KNOBS.values())
