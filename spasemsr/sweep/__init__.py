"""``spasemsr sweep``: the perception-distortion front of one checkpoint, as a plain Optuna study."""

DEFAULT_STORAGE = "sqlite:///runs/sweeps/optuna.db"
"""Where studies go unless ``--storage`` names another URL (relative to the working directory)."""

SHIPPED_FRONT = "experiments/results/pd_sweep_front.json"
"""The shipped model's exported front (``make sweep``): the presets ``upscale --preset`` and the suite read."""
