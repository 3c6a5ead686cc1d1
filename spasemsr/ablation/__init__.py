"""``spasemsr ablate``: the ablation study as one resumable command (spec in experiments/ablation.yaml)."""
