"""Evaluation metrics of the declared protocol (DESIGN.md section 5); start at `spasemsr.metrics.registry`."""
