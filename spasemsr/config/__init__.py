"""Run configuration: composition, validation and hashing."""

from spasemsr.config.compose import ConfigError, config_hash, load_config, to_container, training_hash, validate

__all__ = ["ConfigError", "config_hash", "load_config", "to_container", "training_hash", "validate"]
