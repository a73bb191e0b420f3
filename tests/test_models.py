"""LIP-Net, the smp peers, the model factory, configs, summary and CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lipnet_pl.config import compose
from lipnet_pl.models import MODEL_NAMES, LIPNet, build_model
from lipnet_pl.models.__main__ import main as cli_main
from lipnet_pl.models.summary import count_gflops, count_parameters, gflops_by_module

ROOT = Path(__file__).resolve().parents[1]
MODEL_CONF = ROOT / "conf" / "model"
LIPNET_YAMLS = ("lipnet", "lipnet_rt", "lipnet_rt_s2")
PAPER_PARAMS = 3.97e6
ODD_SIZES = [(97, 131), (65, 67), (33, 47)]
LIPNET_VARIANTS = {
    "input+separable": dict(image_pooling="input", aspp_separable=True),
    "input+plain": dict(image_pooling="input", aspp_separable=False),
    "global+separable": dict(image_pooling="global", aspp_separable=True),
    "global+plain": dict(image_pooling="global", aspp_separable=False),
    "no-pooling": dict(image_pooling="none"),
}


@pytest.fixture(scope="module")
def lipnet() -> LIPNet:
    torch.manual_seed(0)
    return LIPNet().eval()


def _net_config(yaml_name: str, preset: str | None = None):
    """conf/model/<yaml_name>.yaml (+ a dilation preset) as training composes it."""
    overrides = [f"model={yaml_name}", "paths.output_dir=/tmp/unused"]
    if preset is not None:
        overrides.append(f"model/dilations={preset}")
    return compose("train", overrides).model.net


# --------------------------------------------------------------------------- LIP-Net shapes


@pytest.mark.parametrize("variant", list(LIPNET_VARIANTS))
@pytest.mark.parametrize("size", ODD_SIZES)
def test_lipnet_output_matches_any_input_size(variant, size):
    net = LIPNet(**LIPNET_VARIANTS[variant]).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 20, *size)
    assert torch.isfinite(out).all()


def test_lipnet_stem_stride_two_and_other_class_count():
    net = LIPNet(num_classes=7, stem_stride=2).eval()
    assert net.output_stride == 32
    with torch.no_grad():
        out = net(torch.randn(1, 3, 65, 67))
    assert out.shape == (1, 7, 65, 67)


@pytest.mark.parametrize("stem_stride", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(64, 64), (65, 67), (224, 168)])
def test_any_stem_stride_fits_the_input_pooling_branch(stem_stride, size):
    # a stride-4 stem with timm's padding made the ASPP concat fail at sizes divisible by 4
    net = build_model("lipnet_rt", stem_stride=stem_stride, pool_after=[2, 3, 4]).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, *size)).shape == (1, 20, *size)


def test_the_stem_padding_keeps_the_presets_as_they_were():
    for name, stride in (("lipnet", 1), ("lipnet_rt_s2", 2), ("lipnet_rt", 4)):
        conv = build_model(name).stem[0]
        assert conv.stride == (stride, stride) and conv.padding == (
            3,
            3,
        )  # (k - 1) / 2 at any stride


@pytest.mark.parametrize("image_pooling", ["input", "global"])
def test_lipnet_backward_gives_finite_nonzero_grads(image_pooling):
    torch.manual_seed(0)
    net = LIPNet(image_pooling=image_pooling).train()
    x = torch.randn(2, 3, 33, 47)
    target = torch.randint(0, 20, (2, 33, 47))
    loss = nn.functional.cross_entropy(net(x), target)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_default_parameter_count_matches_paper():
    n = count_parameters(LIPNet(num_classes=20))
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS <= 0.03, n


def test_stage_table_matches_real_feature_maps():
    net = LIPNet(stem_stride=2).eval()
    seen = {}
    parts = {"stem": net.stem, "aspp": net.aspp, "decoder": net.decoder, "head": net.head}
    parts.update({f"S{i + 1}": s for i, s in enumerate(net.stages)})
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.shape))
        for name, m in parts.items()
    ]
    with torch.no_grad():
        net(torch.randn(1, 3, 97, 131))
    for h in hooks:
        h.remove()
    rows = {r["name"]: r for r in net.stage_table(97, 131)}
    for name, shape in seen.items():
        assert rows[name]["channels"] == shape[1], name
        assert rows[name]["resolution"] == tuple(shape[-2:]), name
    assert rows["S5"]["dilation"] == 8 and rows["S5"]["stride"] == 32
    assert rows["output"]["resolution"] == (97, 131)
    assert sum(r["params"] for r in rows.values()) == count_parameters(net)


def test_dilations_reach_the_convolutions():
    net = LIPNet(dilations=[1, 2, 3, 4, 5, 6])
    for stage, d in zip(net.stages, [1, 2, 3, 4, 5, 6], strict=True):
        for unit in stage:
            assert unit.conv[0].dilation == (d, d)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_channels_last_matches_default_layout(lipnet, dtype):
    """Same weights, other memory layout -> same logits (float64: 1e-5 absolute; float32: the
    same tolerance relative to the logits' scale, as conv kernels sum in another order)."""
    x = torch.randn(1, 3, 33, 47, dtype=dtype)
    ref_net = LIPNet().eval().to(dtype)
    ref_net.load_state_dict(lipnet.state_dict())
    cl_net = LIPNet().eval().to(dtype)
    cl_net.load_state_dict(lipnet.state_dict())
    cl_net = cl_net.to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = ref_net(x)
        out = cl_net(x.contiguous(memory_format=torch.channels_last))
    scale = 1.0 if dtype == torch.float64 else float(ref.abs().max())
    torch.testing.assert_close(out, ref, atol=1e-5 * scale, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lipnet_on_cuda_matches_cpu(lipnet):
    x = torch.randn(2, 3, 97, 131)
    net = LIPNet().eval()
    net.load_state_dict(lipnet.state_dict())
    prev_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # compare full fp32 convs
    try:
        with torch.no_grad():
            ref = net(x)
            net = net.cuda().to(memory_format=torch.channels_last)
            out = net(x.cuda().contiguous(memory_format=torch.channels_last)).cpu()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                low = net(x.cuda())
    finally:
        torch.backends.cudnn.allow_tf32 = prev_tf32
    torch.testing.assert_close(out, ref, atol=1e-4 * float(ref.abs().max()), rtol=0)
    assert low.shape == (2, 20, 97, 131) and torch.isfinite(low).all()


def test_only_plain_batchnorm_so_syncbn_conversion_keeps_activations():
    net = LIPNet()
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)
    n_act = sum(isinstance(m, nn.ReLU) for m in net.modules())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) == len(norms)
    assert sum(isinstance(m, nn.ReLU) for m in synced.modules()) == n_act


# --------------------------------------------------------------------------- validation

INVALID = [
    (dict(dilations=[1, 1, 2, 4, 8]), "dilations"),
    (dict(dilations=[1, 1, 0, 4, 8, 1]), "dilations"),
    (dict(dilations=3), "dilations"),
    (dict(widths=[16, 32, -64, 128, 256, 256]), "widths"),
    (dict(widths=[]), "widths"),
    (dict(image_pooling="avg"), "image_pooling"),
    (dict(aspp_rates=[]), "aspp_rates"),
    (dict(aspp_rates=[6, -12]), "aspp_rates"),
    (dict(num_classes=0), "num_classes"),
    (dict(units_per_stage=[2, 2, 2]), "units_per_stage"),
    (dict(units_per_stage=0), "units_per_stage"),
    (dict(pool_after=[1, 2, 7]), "pool_after"),
    (dict(skip_stage=9), "skip_stage"),
    (dict(stem_kernel=6), "stem_kernel"),
    (dict(stem_stride=0), "stem_stride"),
    (dict(se_reduction=0), "se_reduction"),
    (dict(decoder_channels=-1), "decoder_channels"),
    (dict(aspp_separable="yes"), "aspp_separable"),
    (dict(act_layer="not_an_activation"), "act_layer"),
]


@pytest.mark.parametrize(("kwargs", "key"), INVALID, ids=[k for _, k in INVALID])
def test_invalid_lipnet_arguments_raise_value_error_naming_key(kwargs, key):
    with pytest.raises(ValueError, match=key) as err:
        build_model("lipnet", **kwargs)
    bad = next(iter(kwargs.values()))
    assert repr(bad) in str(err.value), "the message must show the bad value"


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_model("segformer")
    msg = str(err.value)
    assert "segformer" in msg and all(name in msg for name in MODEL_NAMES)


def test_unknown_encoder_and_argument_raise_value_error():
    with pytest.raises(ValueError, match="encoder_name 'no_such_encoder'"):
        build_model("unet", encoder_name="no_such_encoder")
    with pytest.raises(ValueError, match="lipnet"):
        build_model("lipnet", no_such_argument=1)


# --------------------------------------------------------------------------- configs


def test_lipnet_yaml_builds_the_default_network():
    net_cfg = _net_config("lipnet", "paper")
    net = build_model(**net_cfg)
    assert isinstance(net, LIPNet)
    assert count_parameters(net) == count_parameters(LIPNet())
    assert net.dilations == (1, 1, 2, 4, 8, 1)


@pytest.mark.parametrize(
    "preset", sorted(p.stem for p in (MODEL_CONF / "dilations").glob("*.yaml"))
)
def test_every_dilation_preset_builds(preset):
    raw = OmegaConf.load(MODEL_CONF / "dilations" / f"{preset}.yaml")
    assert "@package model.net" in (MODEL_CONF / "dilations" / f"{preset}.yaml").read_text()
    net = build_model(**_net_config("lipnet", preset)).eval()
    assert list(net.dilations) == list(raw.dilations)
    assert list(net.aspp.rates) == list(raw.get("aspp_rates", [6, 12, 18]))
    with torch.no_grad():
        assert net(torch.randn(1, 3, 33, 47)).shape == (1, 20, 33, 47)


def test_hydra_composes_model_group_with_dilation_override():
    cfg = compose("train", ["model/dilations=wide", "data.num_classes=20", "paths.output_dir=/x"])
    assert list(cfg.model.keys()) == ["net"]
    assert cfg.model.net.num_classes == 20
    net = build_model(**cfg.model.net)
    assert net.dilations == (1, 2, 4, 8, 16, 1)


# --------------------------------------------------------------------------- peers

PEER_YAMLS = sorted(p.stem for p in MODEL_CONF.glob("*.yaml") if p.stem not in LIPNET_YAMLS)


@pytest.mark.parametrize("yaml_name", PEER_YAMLS)
def test_peer_yaml_builds_and_accepts_473(yaml_name):
    net_cfg = _net_config(yaml_name)
    assert net_cfg.encoder_weights is None
    net = build_model(**net_cfg).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 473, 473))
    assert out.shape == (1, 20, 473, 473)


def test_peer_timm_encoder_at_473_and_reflect_padding():
    net = build_model(
        "deeplabv3plus", encoder_name="tu-mobilenetv3_small_100", pad_mode="reflect"
    ).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 473, 473))
    assert out.shape == (1, 20, 473, 473)
    assert net.output_stride == 16


def test_peer_reflect_padding_of_a_too_small_input_is_a_clear_error():
    net = build_model("unet", encoder_name="tu-mobilenetv3_small_100", pad_mode="reflect").eval()
    with pytest.raises(ValueError, match="pad_mode='reflect'"), torch.no_grad():
        net(torch.randn(1, 3, 9, 40))
    with pytest.raises(ValueError, match="pad_mode"):
        build_model("unet", pad_mode="wrap")


def test_peer_padding_crops_back_exactly():
    """The wrapper must return the model's output on the padded input, top-left H x W."""
    net = build_model("fpn", encoder_name="tu-mobilenetv3_small_100").eval()
    x = torch.randn(1, 3, 50, 70)
    padded = nn.functional.pad(x, (0, 26, 0, 14))
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.model(padded)[..., :50, :70])


# --------------------------------------------------------------------------- summary + CLI


def test_count_parameters_and_gflops_exact_on_a_conv():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False).train()
    assert count_parameters(conv) == 8 * 3 * 9
    # flop_counter: 2 FLOPs per multiply-add, per output element: 3*9 MACs
    assert count_gflops(conv, height=10, width=12) == pytest.approx(2 * 8 * 10 * 12 * 3 * 9 / 1e9)
    assert conv.training, "count_gflops must restore training mode"
    frozen = nn.Linear(4, 4)
    frozen.weight.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == 4
    with pytest.raises(ValueError, match="height"):
        count_gflops(conv, height=0)


def test_gflops_scale_with_input_area(lipnet):
    small, big = count_gflops(lipnet, 64, 64), count_gflops(lipnet, 128, 128)
    assert 3.5 < big / small < 4.5


def test_gflops_by_module_adds_up_to_the_total(lipnet):
    per_module = gflops_by_module(lipnet, 65, 67)
    parts = [r["module"] for r in lipnet.stage_table(65, 67) if r["module"]]
    assert sum(per_module[p] for p in parts) == pytest.approx(count_gflops(lipnet, 65, 67))
    assert per_module["decoder"] > per_module["aspp"] > 0


def test_cli_prints_parameters_gflops_and_stage_table(capsys, lipnet):
    assert cli_main(["lipnet", "--size", "97", "131"]) == 0
    out = capsys.readouterr().out
    params = float(re.search(r"parameters\s+([\d.]+) M", out).group(1)) * 1e6
    assert abs(params - PAPER_PARAMS) / PAPER_PARAMS <= 0.03
    gflops = float(re.search(r"GFLOPs\s+([\d.]+) at 1x3x97x131", out).group(1))
    assert gflops == pytest.approx(count_gflops(lipnet, 97, 131), rel=0.01)
    assert "output stride  16" in out
    for part in ("stem", "S1", "S6", "aspp", "decoder"):
        assert part in out
    assert "7x9" in out  # S5/S6/ASPP resolution at 97x131 (ceil-mode pools)
    decoder_row = next(line for line in out.splitlines() if " decoder " in line)
    cells = [c.strip() for c in re.split(r"[│|]", decoder_row) if c.strip()]
    assert cells[4] == "25x33" and cells[5] == "704,096"
    # decoder at 25x33: 1x1 skip conv 64->48 and 3x3 conv (256+48)->256, 2 FLOPs per MAC
    expected = 2 * 25 * 33 * (64 * 48 + 9 * 304 * 256) / 1e9
    assert float(cells[6]) == pytest.approx(expected, abs=0.006)


def test_cli_rejects_bad_size(capsys):
    with pytest.raises(SystemExit, match="2"):
        cli_main(["lipnet", "--size", "0"])
    assert "--size" in capsys.readouterr().err


def test_cli_unknown_name_fails_with_a_message(capsys):
    with pytest.raises(SystemExit, match="2"):
        cli_main(["not_a_model"])
    err = capsys.readouterr().err
    assert "not_a_model" in err and "lipnet" in err and "Traceback" not in err


# --------------------------------------------------------------------------- DDP without unused search

ALL_YAMLS = sorted(p.stem for p in MODEL_CONF.glob("*.yaml"))


@pytest.mark.parametrize("yaml_name", ALL_YAMLS)
def test_one_backward_gives_every_parameter_a_gradient(yaml_name):
    """trainer=ddp runs with find_unused_parameters=False: a parameter without a gradient fails
    the first backward (smp's PSPNet kept ResNet stages its depth 3 never uses)."""
    torch.manual_seed(0)
    net = build_model(**_net_config(yaml_name)).train()
    net(torch.randn(2, 3, 64, 64)).float().mean().backward()
    params = dict(net.named_parameters())
    assert all(p.requires_grad for p in params.values())
    assert [name for name, p in params.items() if p.grad is None] == []


@pytest.mark.parametrize("encoder", ["resnet18", "mobilenet_v2"])
def test_a_shallow_encoder_depth_drops_or_freezes_the_stages_it_never_uses(encoder):
    net = build_model("pspnet", encoder_name=encoder).train()
    assert not hasattr(net.model.encoder, "layer4") or isinstance(
        net.model.encoder.layer4, nn.Identity
    )
    net(torch.randn(2, 3, 64, 64)).mean().backward()
    trained = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trained and all(dict(net.named_parameters())[n].grad is not None for n in trained)
