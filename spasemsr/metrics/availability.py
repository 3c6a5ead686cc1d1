"""Where each metric's weight files live on disk, so availability is decided by looking, never by downloading.

pyiqa fetches weights on first use into caches it shares with torchvision, OpenAI CLIP and the Hugging
Face hub. Each needed file is named here by its store and file name (pinned to pyiqa 0.1.16,
torchvision 0.29.1 and timm 1.0.31, see tests/test_metrics.py) and located the way its loader would
locate it, honouring TORCH_HOME, XDG_CACHE_HOME and HF_HUB_CACHE.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

VENDORED_DIR = Path(__file__).resolve().parent / "data"
"""Files spasemsr ships itself (with provenance in data/README.md)."""

Store = Literal["vendored", "pyiqa", "torchvision", "clip", "hf"]


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (backend or weights missing); the message says what and how to fix it."""


def pyiqa_cache_dir() -> Path:
    """pyiqa's weight folder: the value its loader uses if pyiqa is imported, else torch.hub's dir + /pyiqa."""
    loaded = sys.modules.get("pyiqa.utils.download_util")
    if loaded is not None:  # pyiqa binds the folder at import time; an imported pyiqa keeps using that one
        return Path(loaded.DEFAULT_CACHE_DIR)
    import torch.hub

    return Path(torch.hub.get_dir()) / "pyiqa"


@lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """Digest of a file, remembered per (path, size, mtime) so a 250 MB checkpoint is hashed once."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightFile:
    """One file a metric loads. `sha256` is set where the loader re-downloads a file whose digest differs."""

    store: Store
    name: str
    repo: str = ""
    sha256: str = ""

    def location(self) -> Path:
        """The path the loader reads; for the HF hub, the cached snapshot file or the pattern it would be found at."""
        if self.store == "vendored":
            return VENDORED_DIR / self.name
        if self.store == "pyiqa":
            return pyiqa_cache_dir() / self.name
        import torch.hub

        if self.store == "torchvision":
            return Path(torch.hub.get_dir()) / "checkpoints" / self.name
        if self.store == "clip":
            return Path(torch.hub.get_dir()) / "clip" / self.name
        from huggingface_hub import constants, try_to_load_from_cache

        found = try_to_load_from_cache(self.repo, self.name)
        if isinstance(found, str):
            return Path(found)
        return Path(constants.HF_HUB_CACHE) / f"models--{self.repo.replace('/', '--')}" / "snapshots" / "*" / self.name

    def present(self) -> bool:
        """True when the file is there (and, where a digest is pinned, has it), so loading it will not download."""
        path = self.location()
        if not path.is_file():
            return False
        if not self.sha256:
            return True
        stat = path.stat()
        return _sha256(path, stat.st_size, stat.st_mtime_ns) == self.sha256

    def __str__(self) -> str:
        what = f"{self.repo}/{self.name}" if self.repo else self.name
        digest = f" with sha256 {self.sha256}" if self.sha256 else ""
        return f"{what} at {self.location()}{digest}"
