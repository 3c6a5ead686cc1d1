"""Tiny random stand-ins for the sd2 profile's pretrained parts, written with save_pretrained.

They exercise exactly the loading code a user's real weights go through (SD-2 layout, CLIP text,
SAM, OWLv2), at a size that runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch


def clip_tokenizer(max_length: int):
    """A byte-level CLIP tokenizer with no merges (every byte is a token), built offline."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length, pad_token="!"), len(vocab)


def write_clip_text(root: Path, width: int = 32) -> Path:
    """``root/tokenizer`` + ``root/text_encoder``: SD-2's text-tower layout."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer, size = clip_tokenizer(77)
    tokenizer.save_pretrained(root / "tokenizer")
    config = CLIPTextConfig(vocab_size=size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=77)
    CLIPTextModel(config).save_pretrained(root / "text_encoder")
    return root


def write_sd2_shaped(root: Path, width: int = 32) -> Path:
    """An SD-2-base-shaped prior (x8 VAE, 4-level UNet with linear-projection transformers) plus CLIP text."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=32, layers_per_block=1,
    ).save_pretrained(root / "vae")
    UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 32, 64, 64), layers_per_block=1, cross_attention_dim=width,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=(2, 4, 8, 8), use_linear_projection=True, norm_num_groups=32,
    ).save_pretrained(root / "unet")
    DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                  prediction_type="epsilon").save_pretrained(root / "scheduler")
    return write_clip_text(root, width)


def write_sam(root: Path, image_size: int = 64) -> Path:
    """A random SAM vision encoder (256-channel SAM layout shrunk to 16 channels)."""
    from transformers import SamVisionConfig, SamVisionModel

    torch.manual_seed(0)
    SamVisionModel(SamVisionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, image_size=image_size, patch_size=16,
        window_size=2, global_attn_indexes=[1], output_channels=16,
    )).save_pretrained(root)
    return root


def write_owlv2(root: Path) -> Path:
    """A random 64-pixel OWLv2 and its processor."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tokenizer, size = clip_tokenizer(16)
    text = dict(vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, bos_token_id=size - 2, eos_token_id=size - 1, pad_token_id=0)
    vision = dict(image_size=64, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2)
    torch.manual_seed(0)
    config = Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
    Owlv2ForObjectDetection(config).save_pretrained(root)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
                   ).save_pretrained(root)
    return root
