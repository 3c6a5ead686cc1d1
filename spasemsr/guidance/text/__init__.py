"""Text conditions: the frozen text encoder and the spatial (tags + boxes) text tokens."""
