"""What the ``sd2`` profile expects of a local Stable Diffusion 2 (base, 512) folder, and the check of one.

The shapes are stable-diffusion-2-base's own (diffusers layout). ``benchmarks`` builds random modules of
these shapes; ``spasemsr doctor --sd2 PATH`` compares a folder against them by reading only config files
and safetensors headers (nothing is loaded, nothing is downloaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SD2_UNET: dict[str, Any] = dict(
    sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, norm_num_groups=32,
)
SD2_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=512, scaling_factor=0.18215,
)
SD2_TEXT: dict[str, Any] = dict(  # OpenCLIP ViT-H/14 text tower, as in stable-diffusion-2-base/text_encoder
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
)
SD2_SCHEDULE: dict[str, Any] = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                                    beta_end=0.012, prediction_type="epsilon", clip_sample=False)

# component -> (config file, config keys that must match, weight file stems, {tensor: shape} read from the header)
SD2_COMPONENTS: dict[str, tuple[str, dict[str, Any], tuple[str, ...], dict[str, tuple[int, ...]]]] = {
    "unet": ("config.json", {k: SD2_UNET[k] for k in ("in_channels", "out_channels", "block_out_channels",
                                                      "cross_attention_dim", "layers_per_block", "sample_size")},
             ("diffusion_pytorch_model",), {"conv_in.weight": (320, 4, 3, 3),
                                           "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight":
                                               (640, 1024)}),
    "vae": ("config.json", {k: SD2_VAE[k] for k in ("latent_channels", "block_out_channels")},
            ("diffusion_pytorch_model",), {"encoder.conv_in.weight": (128, 3, 3, 3),
                                          "quant_conv.weight": (8, 8, 1, 1)}),
    "text_encoder": ("config.json", {k: SD2_TEXT[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")},
                     ("model",), {"text_model.final_layer_norm.weight": (1024,)}),
    "scheduler": ("scheduler_config.json", {k: SD2_SCHEDULE[k] for k in ("num_train_timesteps", "prediction_type")},
                  (), {}),
    "tokenizer": ("tokenizer_config.json", {}, (), {}),
}
TOKENIZER_FILES = ("vocab.json", "merges.txt")

Check = tuple[str, bool, str]
"""(component, ok, what was found or what is wrong)."""


def _listed(value: Any) -> Any:
    """JSON configs hold lists where the expectations hold tuples."""
    return list(value) if isinstance(value, tuple | list) else value


def _weights_file(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for name in (f"{stem}.safetensors", f"{stem}.fp16.safetensors", f"{stem}.bin", f"{stem}.fp16.bin"):
            if (folder / name).is_file():
                return folder / name
    return None


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from a safetensors header (8-byte length, then JSON), without reading the data."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    return {key: tuple(entry["shape"]) for key, entry in header.items() if key != "__metadata__"}


def _check_component(root: Path, name: str) -> Check:
    config_name, expected, stems, tensors = SD2_COMPONENTS[name]
    folder = root / name
    config_path = folder / config_name
    if not config_path.is_file():
        return name, False, f"missing {config_path}"
    config = json.loads(config_path.read_text())
    wrong = [f"{key}={_listed(config.get(key))!r} (expected {_listed(value)!r})" for key, value in expected.items()
             if _listed(config.get(key)) != _listed(value)]
    if name == "tokenizer":
        wrong += [f"missing {folder / file}" for file in TOKENIZER_FILES if not (folder / file).is_file()]
    if name == "scheduler" and config.get("prediction_type") == "v_prediction":
        wrong.append("this is the 768-v model (v-prediction); the sd2 profile is stable-diffusion-2-base (epsilon)")
    if not stems:
        return name, not wrong, "; ".join(wrong) or f"{config_path.name} matches"
    weights = _weights_file(folder, stems)
    if weights is None:
        return name, False, "; ".join([*wrong, f"no weights in {folder} (expected {stems[0]}.safetensors)"])
    if weights.suffix == ".safetensors":
        shapes = _tensor_shapes(weights)
        for key, shape in tensors.items():
            if key not in shapes:
                wrong.append(f"{weights.name} has no tensor {key}")
            elif shapes[key] != shape:
                wrong.append(f"{weights.name}: {key} is {list(shapes[key])}, expected {list(shape)}")
    return name, not wrong, "; ".join(wrong) or f"{weights.name}: config and tensor shapes match SD-2 base"


def check_sd2_folder(path: str | Path) -> list[Check]:
    """One check per component of a local SD-2 base folder; each names what is missing or mismatched."""
    root = Path(path).expanduser()
    if not root.is_dir():
        return [("folder", False, f"{root} is not a folder; expected a local copy of stable-diffusion-2-base "
                                  "(diffusers layout)")]
    checks: list[Check] = []
    index = root / "model_index.json"
    if index.is_file():
        listed = json.loads(index.read_text())
        absent = [name for name in SD2_COMPONENTS if name not in listed]
        checks.append(("model_index.json", not absent, f"does not list {absent}" if absent else "lists every part"))
    else:
        checks.append(("model_index.json", False, f"missing {index} (a diffusers pipeline folder has one)"))
    return checks + [_check_component(root, name) for name in SD2_COMPONENTS]
