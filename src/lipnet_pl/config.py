"""The project's Hydra configs: where they live, composing them, turning them into primitives.

The configs are the repository's top-level ``conf/`` folder, shipped inside the wheel as the
package ``lipnet_pl.conf`` (see ``setup.py``), so editable and normal installs find them the same
way, from any working directory.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lipnet_pl.errors import UserError
from lipnet_pl.hydra_runtime import register_resolvers

register_resolvers()  # before any config is composed


@cache
def config_dir() -> str:
    """Absolute path of the ``conf`` folder of the installed package."""
    path = importlib.resources.files("lipnet_pl.conf")
    if not path.joinpath("train.yaml").is_file():
        raise RuntimeError(f"lipnet_pl's configs are missing from {path}: reinstall the package")
    return str(path)


def compose(name: str | None, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<name>.yaml`` with ``overrides`` outside ``@hydra.main`` (tests, the demo,
    notebooks). ``${hydra:...}`` is not available here: pass ``paths.output_dir=...``. ``name=None``
    composes the overrides alone (``+model=lipnet``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a running command (e.g. the demo)
        return hydra_compose(config_name=name, overrides=list(overrides))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=list(overrides))


def model_config(name: str, num_classes: int = 20, key: str = "model") -> dict[str, Any]:
    """``conf/model/<name>.yaml`` as ``model=<name>`` composes it (its defaults, such as the
    ``model/dilations`` preset, applied by Hydra): the network's ``build_model`` arguments. The
    one reader of the model configs: training, ``build_model(name)`` and the bench all use it."""
    from hydra.errors import MissingConfigException

    overrides = [f"+model={name}", f"+data.num_classes={int(num_classes)}"]
    try:
        cfg = compose(None, overrides)
    except MissingConfigException as err:
        options = sorted(err.options or [])
        raise UserError(f"{key}={name}: no such model config; one of {options}") from None
    return plain(cfg.model.net)


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (resolved); anything else unchanged.

    Checkpoint hyper-parameters must be primitives (``weights_only`` loading), and constructors
    should not depend on OmegaConf types.
    """
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


@contextmanager
def config_errors(key: str) -> Iterator[None]:
    """Turn a ValueError/TypeError raised while building an object from ``cfg.<key>`` into a
    :class:`UserError` that names the key (constructors validate their arguments)."""
    from hydra.errors import InstantiationException

    try:
        yield
    except UserError:
        raise
    except InstantiationException as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(_name_key(key, cause)) from err
    except (ValueError, TypeError) as err:
        raise UserError(_name_key(key, err)) from err
    except Exception as err:
        if type(err).__name__ == "MisconfigurationException":  # Lightning's config errors
            raise UserError(_name_key(key, err)) from err
        raise


def _name_key(key: str, err: BaseException) -> str:
    message = str(err)
    return message if key in message else f"{key}: {message}"
