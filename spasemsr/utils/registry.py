"""Explicit, lazily imported registries: a name maps to a ``"module:factory"`` string.

Heavy backends (detectors, VLMs, diffusers models) are imported only when chosen, so one broken
optional dependency never breaks the others, and options are checked against the factory's
signature before anything is built.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def build(kind: str, registry: dict[str, str], name: str, device: str | None = None, **options: Any) -> Any:
    """Build backend ``name`` of ``registry`` with ``options``; errors list the valid names or options.

    ``device`` goes to backends that take one (those running a network) unless ``options`` set it already.
    """
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid names: {sorted(registry)}")
    factory = import_object(registry[name])
    signature = inspect.signature(factory)
    if device is not None and "device" in signature.parameters:
        options.setdefault("device", device)
    try:
        signature.bind(**options)
    except TypeError as err:
        valid = list(signature.parameters)
        raise ValueError(f"{kind} {name!r} takes options {valid}, got {sorted(options)}: {err}") from None
    return factory(**options)
