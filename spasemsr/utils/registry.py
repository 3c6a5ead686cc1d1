"""One registry pattern for every pluggable family: a name maps to a factory, imported only when chosen.

Built-in members are declared as ``"package.module:attribute"`` strings (``spasemsr/registries.py``), so
heavy backends (detectors, VLMs, diffusers schedulers) are imported only when a config picks them and one
broken optional dependency never breaks the others. New members register an object, usually with the
decorator form ``@FUSIONS.register("mine")``; the config then accepts the name (``config/choices.py``
reads the live registry), so adding a member is one registered class plus a config file.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry:
    """Name -> factory (or value) of one family; errors name the family and list the valid names."""

    def __init__(self, family: str, members: dict[str, Any] | None = None) -> None:
        self.family = family
        self._members: dict[str, Any] = dict(members or {})

    def register(self, name: str, member: Any = None) -> Any:
        """Add ``member`` under ``name``; without ``member``, a decorator that registers what it decorates."""
        if member is None:
            return lambda target: self.register(name, target)
        if name in self._members:
            raise ValueError(f"{self.family} {name!r} is already registered")
        self._members[name] = member
        return member

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests register toy members and take them out again)."""
        self.check(name)
        del self._members[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in declaration order."""
        return tuple(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def check(self, name: str) -> None:
        """Raise ``ValueError`` listing the valid names unless ``name`` is registered."""
        if name not in self._members:
            raise ValueError(f"unknown {self.family} {name!r}; valid: {sorted(self._members)}")

    def get(self, name: str) -> Any:
        """The member itself (a string declaration is imported now and remembered)."""
        self.check(name)
        member = self._members[name]
        if isinstance(member, str):
            member = self._members[name] = import_object(member)
        return member

    def build(self, name: str, *args: Any, device: str | None = None, **options: Any) -> Any:
        """Call member ``name`` with ``args`` and ``options``, checked against its signature first.

        ``device`` goes to members that take one (those running a network) unless ``options`` set it already.
        """
        factory: Callable[..., Any] = self.get(name)
        signature = inspect.signature(factory)
        if device is not None and "device" in signature.parameters:
            options.setdefault("device", device)
        valid = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        forwarded = getattr(factory, "Options", None)  # the dataclass a factory's **options are
        if forwarded is not None:
            valid += [f.name for f in dataclasses.fields(forwarded)]
            unknown = sorted(set(options) - set(valid))
            if unknown:
                raise ValueError(f"{self.family} {name!r} takes options {valid}, got unknown {unknown}")
        try:
            signature.bind(*args, **options)
        except TypeError as err:
            raise ValueError(f"{self.family} {name!r} takes options {valid}, got {sorted(options)}: {err}") from None
        return factory(*args, **options)
