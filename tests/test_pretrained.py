"""save_pretrained / from_pretrained folders: safetensors + config.json with the ModelSpec, local
folders only (nothing is downloaded; the hub download function is made to fail)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lipnet_pl.core.pretrained import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    PretrainedParser,
    load_pretrained,
    save_pretrained,
)
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.models import build_model
from tiny import TINY_LIPNET_KWARGS


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any hub download in these tests is a bug: local folders must never reach the network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"hf_hub_download called with {args} {kwargs}")

    import huggingface_hub.hub_mixin

    import lipnet_pl.core.pretrained as pretrained

    monkeypatch.setattr(huggingface_hub.hub_mixin, "hf_hub_download", refuse)
    monkeypatch.setattr(pretrained, "hf_hub_download", refuse)


def _spec() -> ModelSpec:
    classes = ClassInfo.from_config(
        {"names": ["bg", "left", "right", "head"], "flip_pairs": [[1, 2]]}
    )
    net = {"name": "lipnet", "num_classes": classes.num_classes, **TINY_LIPNET_KWARGS}
    return ModelSpec(
        net=net, classes=classes, input_size=(96, 64), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)
    )


def _trained(spec: ModelSpec) -> torch.nn.Module:
    """A network whose weights and BN statistics differ from a fresh build."""
    torch.manual_seed(0)
    net = build_model(**spec.net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.1)
    return net.eval()


@pytest.fixture
def saved(tmp_path):
    spec = _spec()
    net = _trained(spec)
    folder = save_pretrained(net, spec, tmp_path / "parser")
    return folder, net, spec


def test_round_trip_gives_identical_outputs_and_spec(saved):
    folder, net, spec = saved
    loaded, loaded_spec = load_pretrained(folder)
    assert loaded_spec == spec
    assert not loaded.training
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    parser = PretrainedParser.from_pretrained(str(folder))
    assert parser.spec == spec
    with torch.no_grad():
        torch.testing.assert_close(parser(x), net(x), rtol=0, atol=0)


def test_folder_holds_safetensors_and_the_spec(saved):
    folder, net, spec = saved
    assert (folder / WEIGHTS_NAME).is_file()
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config == {"spec": spec.to_dict()}
    assert ModelSpec.from_dict(config["spec"]) == spec
    assert config["spec"]["net"]["name"] == "lipnet"
    assert config["spec"]["input_size"] == [96, 64]


def test_weights_load_into_a_plain_network_without_this_package(saved):
    folder, net, spec = saved
    state = load_file(str(folder / WEIGHTS_NAME))
    assert set(state) == set(net.state_dict())  # same keys: no "net." wrapper prefix
    plain = build_model(**json.loads((folder / CONFIG_NAME).read_text())["spec"]["net"])
    plain.load_state_dict(state, strict=True)
    plain.eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), net(x), rtol=0, atol=0)


def test_compiled_wrapper_prefix_is_not_saved(tmp_path):
    spec = _spec()
    net = _trained(spec)
    wrapper = torch.nn.Module()
    wrapper._orig_mod = net  # what torch.compile's OptimizedModule holds
    folder = save_pretrained(wrapper, spec, tmp_path / "compiled")
    assert set(load_file(str(folder / WEIGHTS_NAME))) == set(net.state_dict())


def test_network_that_does_not_match_the_spec_is_refused(tmp_path):
    spec = _spec()
    other = build_model("lipnet", num_classes=spec.num_classes + 1, **TINY_LIPNET_KWARGS)
    with pytest.raises(ValueError, match="does not match spec.net"):
        save_pretrained(other, spec, tmp_path / "bad")
    assert not (tmp_path / "bad" / WEIGHTS_NAME).exists()


def test_missing_folder_is_a_clear_error_not_a_download(tmp_path):
    missing = tmp_path / "nope"
    for arg in (missing, str(missing), "./definitely/not/here"):
        with pytest.raises(FileNotFoundError, match="does not exist") as info:
            load_pretrained(arg)
        assert len(str(info.value).splitlines()) == 1


def test_incomplete_folder_and_file_name_what_is_wrong(saved, tmp_path):
    folder, _, _ = saved
    with pytest.raises(NotADirectoryError, match=WEIGHTS_NAME):
        load_pretrained(folder / WEIGHTS_NAME)
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=f"{WEIGHTS_NAME} is missing"):
        load_pretrained(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"{CONFIG_NAME} is missing"):
        load_pretrained(empty)


@pytest.mark.parametrize("config", [{}, {"spec": {"input_size": [8, 8]}}, {"spec": {"net": {}}}])
def test_config_without_a_usable_spec_names_the_file(saved, config):
    folder, _, _ = saved
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=CONFIG_NAME):
        load_pretrained(folder)


def test_weights_that_do_not_fit_the_config_name_the_file(saved):
    folder, _, spec = saved
    config = {"spec": {**spec.to_dict(), "net": {**spec.net, "skip_channels": 16}}}
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"{WEIGHTS_NAME} does not fit"):
        load_pretrained(folder)
