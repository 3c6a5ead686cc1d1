"""Compose, override and validate run configs (OmegaConf, Hydra-style ``defaults`` without Hydra).

A config file may start with ``defaults: [{profile: tiny}, {data: bundled}, ...]``; each entry
loads ``configs/<group>/<option>.yaml`` into key ``<group>``. The file's own keys come next, then
command-line overrides: ``group=option`` swaps a group, ``a.b=value`` sets a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from spasemsr.config.choices import bad_choices
from spasemsr.config.schema import Config
from spasemsr.registries import TASKS

CONFIGS_ROOT = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(ValueError):
    """A config that cannot be composed or does not match the schema."""


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Load ``path``, apply ``overrides`` and return the validated, fully resolved config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    body = OmegaConf.load(path)
    selections = _defaults(body, path)
    dotted = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        if "." not in key and key in selections:
            selections[key] = value
        else:
            dotted.append(item)
    merged = OmegaConf.create()
    for group, option in selections.items():
        merged = OmegaConf.merge(merged, {group: _load_group(group, option, path.parent)})
    merged = OmegaConf.merge(merged, body, OmegaConf.from_dotlist(dotted))
    return validate(merged)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Check ``cfg`` against the schema and return it typed, with interpolations resolved."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    model = cfg.pop("model", None) if "model" in cfg else None
    typed = typed_merge(Config, cfg, "")
    if model is not None:
        _migrate_drm_path(model)
        name = model.get("name")
        if name not in TASKS:
            raise ConfigError(f"model.name={name!r} is not a task; valid: {list(TASKS)}")
        typed.model = typed_merge(TASKS.get(name).schema, model, "model")
    OmegaConf.resolve(typed)
    problems = bad_choices(typed)
    if problems:
        raise ConfigError("bad config value: " + "; ".join(problems))
    _check_backend_options(typed)
    return typed


def _check_backend_options(cfg: DictConfig) -> None:
    """Each configured grounder / describer option block against its backend's typed options (config/options.py)."""
    from spasemsr import registries
    from spasemsr.config.options import options_schema

    for key, registry in (("grounder_options", registries.GROUNDERS), ("describer_options", registries.DESCRIBERS)):
        blocks = OmegaConf.select(cfg, f"model.text.{key}", default=None) or {}
        for name, options in blocks.items():
            where = f"model.text.{key}.{name}"
            if name not in registry:
                raise ConfigError(f"{where}: {name!r} is not a {registry.family}; valid: {sorted(registry)}")
            typed_merge(options_schema(registry.family, name, registry.get(name)), options or {}, where)


def _migrate_drm_path(model: DictConfig) -> None:
    """``model.drm_path`` (before ``model.drm``: older exports and command lines) as ``model.drm``, which it sets."""
    if "drm_path" in model:
        path = model.pop("drm_path")
        model.drm = path or "none"


HASH_NEUTRAL: dict[str, Any] = {
    "data.latents_dir": "",  # only data.source=sampled_latents reads it
    "model.spectrum_weight": 0.0,  # the VAE task's log-spectrum term, off
}
"""Keys added after results were recorded, at the value that computes what configs without them did. At that
value they are left out of the hashes, so a new option does not turn every record and checkpoint stale."""


def config_hash(cfg: DictConfig) -> str:
    """Short SHA-256 of the resolved config without ``sampler``, recorded with every result and export.

    It names what was trained: the inference knobs are recorded beside it in every result, so a
    changed knob default neither hides behind nor fakes a different model.
    """
    return _digest(_hashed(cfg))


def _hashed(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without ``sampler`` and without the ``HASH_NEUTRAL`` keys at their neutral value."""
    tree = {key: value for key, value in OmegaConf.to_container(cfg, resolve=True).items() if key != "sampler"}
    for dotted, neutral in HASH_NEUTRAL.items():
        section, key = dotted.split(".")
        if isinstance(tree.get(section), dict) and tree[section].get(key, neutral) == neutral:
            tree[section].pop(key, None)
    return tree


def _digest(tree: dict[str, Any]) -> str:
    text = OmegaConf.to_yaml(OmegaConf.create(tree), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


UNTRAINED_KEYS: dict[str, tuple[str, ...]] = {
    "run": ("name", "root"),
    "data": ("num_workers",),
    "trainer": ("accelerator", "devices", "strategy", "precision", "frozen_dtype", "gradient_checkpointing",
                "max_steps", "log_every_n_steps", "val_every_n_steps", "ckpt_every_n_steps", "resume", "trace"),
}
"""Keys that change where, how long or how fast (in what precision) a run trains, not what a step computes."""


def training_hash(cfg: DictConfig) -> str:
    """Short SHA-256 of what a training step depends on: ``config_hash`` minus ``UNTRAINED_KEYS``.

    A checkpoint records it; resuming under a config whose training hash differs is refused, so a run
    cannot silently continue as a different model (extending ``max_steps`` or adding devices is fine).
    """
    trained = _hashed(cfg)
    for section, keys in UNTRAINED_KEYS.items():
        trained[section] = {k: v for k, v in (trained.get(section) or {}).items() if k not in keys}
    return _digest(trained)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Plain-Python copy of a config (safe to put in checkpoints loaded with ``weights_only``)."""
    return OmegaConf.to_container(cfg, resolve=True)


def _defaults(body: DictConfig, path: Path) -> dict[str, str]:
    entries = body.pop("defaults", []) or []
    selections: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, DictConfig) or len(entry) != 1:
            raise ConfigError(f"{path}: each defaults entry must be a single 'group: option' pair, got {entry}")
        (group, option), = entry.items()
        selections[str(group)] = str(option)
    return selections


def _load_group(group: str, option: str, near: Path) -> DictConfig:
    for root in (near, CONFIGS_ROOT):
        candidate = root / group / f"{option}.yaml"
        if candidate.is_file():
            return OmegaConf.load(candidate)
    folder = CONFIGS_ROOT / group
    options = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    raise ConfigError(f"no option {option!r} for config group {group!r}; valid: {options}")


def typed_merge(schema: type, cfg: DictConfig, prefix: str) -> DictConfig:
    """``cfg`` merged onto dataclass ``schema``; an unknown key or bad value is a ConfigError naming the valid keys."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), cfg)
    except ConfigKeyError as err:
        key = str(err.full_key) if err.full_key else str(err.key)
        full = f"{prefix}.{key}" if prefix else key
        parent = _schema_at(schema, key.split(".")[:-1])
        valid = sorted(f.name for f in fields(parent)) if parent else []
        raise ConfigError(f"unknown config key {full!r}; valid keys here: {valid}") from None
    except ValidationError as err:
        where = f"{prefix}.{err.full_key}" if prefix else err.full_key
        raise ConfigError(f"bad value for config key {where}: {err.msg.splitlines()[0]}") from None


def _schema_at(schema: type, parts: list[str]) -> type | None:
    """The dataclass at dotted ``parts`` below ``schema``; a ``dict[str, X]`` field consumes one key and gives X."""
    pending = list(parts)
    while pending:
        hints = get_type_hints(schema)
        kind = hints.get(pending.pop(0))
        if kind is None:
            return None
        if get_origin(kind) is dict:
            if not pending:
                return None
            pending.pop(0)
            kind = get_args(kind)[1]
        if not is_dataclass(kind):
            return None
        schema = kind
    return schema
