"""Pretrained weights: where each comes from (``table``), how a path resolves (``paths``), loading an exported SR
model (``exports``) and building the shipped tiny ones (``build_tiny``). Nothing here downloads."""

from spasemsr.weights.paths import REPO_ROOT, local_path, require_model_folder, resolve_weights

__all__ = ["REPO_ROOT", "local_path", "require_model_folder", "resolve_weights"]
