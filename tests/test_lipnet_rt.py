"""lipnet_rt: the real-time LIP-Net preset (same parameter budget, a quarter of the FLOPs or less)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lipnet_pl.config import compose as compose_config
from lipnet_pl.models import LIPNET_PRESETS, MODEL_NAMES, LIPNet, build_model
from lipnet_pl.models.__main__ import main as cli_main
from lipnet_pl.models.summary import count_gflops, count_parameters

MODEL_CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
PAPER_PARAMS = 3.97e6


@pytest.fixture(scope="module")
def rt() -> LIPNet:
    torch.manual_seed(0)
    return build_model("lipnet_rt").eval()


def test_listed_and_built_as_a_lipnet_preset(rt):
    assert "lipnet_rt" in MODEL_NAMES
    assert isinstance(rt, LIPNet)
    assert rt.stem_stride == 4 and rt.pool_after == (2, 3, 4) and rt.output_stride == 32
    assert rt.dilations == (1, 1, 1, 2, 4, 1) and rt.aspp.rates == (3, 6, 9)


def test_parameter_count_within_3_percent_of_the_paper(rt):
    n = count_parameters(rt)
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS <= 0.03, n


def test_at_most_a_quarter_of_the_paper_networks_flops(rt):
    rt_gflops = count_gflops(rt, 473, 473)
    paper_gflops = count_gflops(build_model("lipnet"), 473, 473)
    assert rt_gflops <= paper_gflops / 4, (rt_gflops, paper_gflops)


def test_atrous_taps_keep_the_paper_spacing_in_input_pixels(rt):
    """stride x dilation of every stage and ASPP rate equals the paper net's."""
    paper = build_model("lipnet")
    rows_rt = {r["name"]: r for r in rt.stage_table(473, 473)}
    rows_paper = {r["name"]: r for r in paper.stage_table(473, 473)}
    for i in (3, 4, 5):
        name = f"S{i}"
        assert (
            rows_rt[name]["stride"] * rows_rt[name]["dilation"]
            == rows_paper[name]["stride"] * rows_paper[name]["dilation"]
        ), name
    assert [r * rt.output_stride for r in rt.aspp.rates] == [
        r * paper.output_stride for r in paper.aspp.rates
    ]


@pytest.mark.parametrize("size", [(97, 131), (65, 67), (33, 47), (64, 64)])
def test_logits_match_any_input_size(rt, size):
    with torch.no_grad():
        out = rt(torch.randn(2, 3, *size))
    assert out.shape == (2, 20, *size)
    assert torch.isfinite(out).all()


def test_backward_gives_finite_nonzero_grads():
    torch.manual_seed(0)
    net = build_model("lipnet_rt").train()
    x = torch.randn(2, 3, 65, 67)
    target = torch.randint(0, 20, (2, 65, 67))
    nn.functional.cross_entropy(net(x), target).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_num_classes_and_overrides_win_over_the_preset():
    net = build_model("lipnet_rt", num_classes=7, decoder_channels=32, stem_stride=1)
    assert net.num_classes == 7 and net.head.out_channels == 7
    assert net.decoder.fuse[1].num_features == 32
    assert net.output_stride == 8  # stride 1 x the preset's three pools
    assert net.aspp.rates == (3, 6, 9)  # untouched preset values stay


def test_bad_override_names_the_model():
    with pytest.raises(ValueError, match="lipnet_rt"):
        build_model("lipnet_rt", no_such_argument=1)


def test_yaml_spells_out_the_preset():
    cfg = OmegaConf.merge(
        {"data": {"num_classes": 20}}, {"model": OmegaConf.load(MODEL_CONF / "lipnet_rt.yaml")}
    )
    net_cfg = OmegaConf.merge(
        cfg.model.net, OmegaConf.load(MODEL_CONF / "dilations" / "shallow.yaml")
    )
    net_cfg = OmegaConf.to_container(net_cfg, resolve=True)
    assert net_cfg["name"] == "lipnet_rt"
    for key, value in LIPNET_PRESETS["lipnet_rt"].items():
        assert net_cfg[key] == (list(value) if isinstance(value, tuple) else value), key
    reference = build_model("lipnet_rt")
    built = build_model(**net_cfg)
    assert count_parameters(built) == count_parameters(reference)
    assert built.dilations == reference.dilations


def test_hydra_composes_model_lipnet_rt():
    cfg = compose_config("train", ["model=lipnet_rt", "paths.output_dir=/tmp/unused"])
    assert cfg.model.net.name == "lipnet_rt"
    assert list(cfg.model.net.dilations) == [1, 1, 1, 2, 4, 1]
    assert cfg.model.net.num_classes == cfg.data.num_classes
    net = build_model(**cfg.model.net)
    assert net.output_stride == 32


def test_cli_prints_the_rt_stage_table(capsys):
    assert cli_main(["lipnet_rt", "--size", "473"]) == 0
    out = capsys.readouterr().out
    assert "lipnet_rt" in out
    assert "output stride  32" in out
    assert "3.965 M" in out
