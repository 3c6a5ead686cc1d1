"""Spatial-semantic fusion: the guided ControlNet and the attentions injected into the frozen UNet."""
