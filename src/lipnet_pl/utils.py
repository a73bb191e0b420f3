"""Small shared helpers: composing the project's Hydra configs outside ``@hydra.main``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
"""The repository's ``conf/`` folder (the package is installed editable from the checkout)."""


def compose_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<name>.yaml`` with ``overrides`` (tests, the demo, notebooks).

    ``${hydra:...}`` is not available here: pass ``paths.output_dir=...`` explicitly.
    """
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))
