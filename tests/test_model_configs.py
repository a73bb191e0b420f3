"""One reader of ``conf/model/*.yaml``: ``model=<name>`` (Hydra, as training composes it),
``build_model(name)`` (the presets) and the bench (``model_config``) build the same network."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipnet_pl.config import compose, config_dir, model_config
from lipnet_pl.errors import UserError
from lipnet_pl.models import LIPNET_PRESETS, build_model

MODEL_CONFIGS = sorted(p.stem for p in Path(config_dir(), "model").glob("*.yaml"))


def _signature(net) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


@pytest.mark.parametrize("name", sorted(LIPNET_PRESETS))
def test_model_preset_through_hydra_equals_build_model_by_name(name):
    composed = compose("train", [f"model={name}", "paths.output_dir=/tmp/unused"]).model.net
    through_hydra = build_model(**composed)
    by_name = build_model(name)
    assert repr(through_hydra) == repr(by_name)
    assert _signature(through_hydra) == _signature(by_name)
    assert through_hydra.dilations == by_name.dilations


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_model_config_is_what_training_composes(name):
    trained = compose(
        "train", [f"model={name}", "data.num_classes=7", "paths.output_dir=/tmp/unused"]
    )
    assert model_config(name, num_classes=7) == dict(trained.model.net)


def test_a_model_config_that_does_not_exist_names_the_key_and_the_choices():
    with pytest.raises(UserError, match=r"reference_model=nosuch: no such model config; one of "):
        model_config("nosuch", key="reference_model")


def test_a_local_config_sets_this_machines_data_root_over_the_experiment(tmp_path):
    """``conf/local/default.yaml`` (git-ignored) is composed after the experiment, if present."""
    import shutil

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf = shutil.copytree(config_dir(), tmp_path / "conf")
    overrides = ["experiment=lip_base", "paths.output_dir=/tmp/unused"]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        assert hydra_compose("train", overrides).data.root != "/datasets/LIP"  # optional: absent
        (conf / "local" / "default.yaml").write_text(
            "# @package _global_\ndata:\n  root: /datasets/LIP\n"
        )
        assert hydra_compose("train", overrides).data.root == "/datasets/LIP"
        assert hydra_compose("eval", ["paths.output_dir=/tmp/unused"]).data.root == "/datasets/LIP"
