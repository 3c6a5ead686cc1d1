"""Typed backend options: each grounder's and describer's options are a dataclass derived from its factory.

``model.text.grounder_options.<backend>`` / ``describer_options.<backend>`` are checked when the config is
composed against ``options_schema(factory)``: one typed field per keyword the backend's factory takes (its
annotations and defaults), plus the fields of a dataclass the factory names as ``Options`` when it forwards
``**options``. The backend's signature is the single declaration, so a registered plug-in is typed too; a bad
name or value fails before any model loads, naming the valid options.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

SIMPLE = (int, float, str, bool)
# the device follows the run (a backend's own ``device`` option is allowed); a describer's caption ``fields`` are
# ``model.text.caption_fields``, the same for the training and the inference describer
NOT_OPTIONS = ("self", "device", "fields")


def _config_type(hint: Any) -> Any:
    """The OmegaConf-checkable form of a type hint: simple types (optional allowed), lists of them, else Any."""
    if hint in SIMPLE:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if Path in args:
            return str | None
        if len(args) == 1 and args[0] in SIMPLE:
            return args[0] | None
    if origin in (list, tuple, Sequence) and args and args[0] in SIMPLE:
        return list[args[0]]
    return Any


def _field(name: str, hint: Any, default: Any) -> tuple[str, Any, Any]:
    kind = _config_type(hint)
    if default is inspect.Parameter.empty:  # required by the backend: checked when it is built
        return name, kind if kind is Any else kind | None, None
    if isinstance(default, (list, tuple)):
        return name, kind, dataclasses.field(default_factory=lambda d=default: list(d))
    if isinstance(default, Path):
        return name, kind, str(default)
    return name, kind, default


@cache
def options_schema(family: str, name: str, factory: Callable[..., Any]) -> type:
    """The dataclass of backend ``name``'s options (cached per factory)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):
        hints = {}
    specs = []
    for param in inspect.signature(target).parameters.values():
        if param.name in NOT_OPTIONS or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        specs.append(_field(param.name, hints.get(param.name, Any), param.default))
    forwarded = getattr(factory, "Options", None)
    if forwarded is not None:
        forwarded_hints = typing.get_type_hints(forwarded)
        specs += [_field(f.name, forwarded_hints[f.name], f.default if f.default_factory is dataclasses.MISSING
                         else f.default_factory()) for f in dataclasses.fields(forwarded)]
    specs.append(("device", str | None, None))
    return dataclasses.make_dataclass(f"{family}_{name}_options", specs)
