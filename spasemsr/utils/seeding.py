"""Independent random streams named by labels and counters, so a random draw is a function of where it happens."""

from __future__ import annotations

import hashlib


def stream_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of labels and counters (independent streams for distinct tuples)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
