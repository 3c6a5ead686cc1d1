"""LightningModules, one per training task (see ``spasemsr.config.tasks``)."""
