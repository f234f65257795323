"""``cnncalc import`` on the zoos people build from: one model of every timm CNN family, and segmentation_models_pytorch.

Each round-trips as ``tests/round_trip.py`` checks it: params, MACs = FlopCounterMode / 2, the values its operations
allocate, every output's shape, the state_dict loaded by name, bit-identical outputs. Inputs are small where the
family allows (its arithmetic does not depend on the size); the first of each zoo also at its default input, as a
user runs it.
"""

from __future__ import annotations

import warnings

import pytest

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import timm
        import torch
except Exception as exc:  # timm or torch missing (the dev extra pins timm)
    pytest.skip(f"timm is not importable: {exc}", allow_module_level=True)

from round_trip import round_trip

pytestmark = pytest.mark.torch

#: One model of every convolutional family of timm 1.0.31, and the input it runs at; where a family has several
#: forms that compute otherwise (ResNet's stems and blocks, the TensorFlow ports' 'same' padding), one of each.
TIMM: dict[str, tuple[str, int]] = {
    "ResNet-D (deep stem, avg-pool shortcut)": ("resnet18d", 64),
    "ResNet-T (tiered stem)": ("resnet10t", 64),
    "ResNet-RS (SE, no max pool)": ("resnetrs50", 64),
    "ResNetV2 (pre-activation)": ("resnetv2_50", 64),
    "SE-ResNet": ("seresnet18", 64),
    "ECA-ResNet (a 1-D conv across the channels)": ("ecaresnet26t", 64),
    "Res2Net (a module list between others)": ("res2net50_14w_8s", 64),
    "RegNetX": ("regnetx_002", 64),
    "RegNetZ": ("regnetz_b16", 64),
    "DenseNet (BatchNormAct2d)": ("densenet121", 64),
    "DLA": ("dla34", 64),
    "DPN (channel slices)": ("dpn68", 64),
    "CSPNet (split)": ("cspresnet50", 64),
    "CSPDarkNet": ("cspdarknet53", 64),
    "DarkNet": ("darknet17", 64),
    "VoVNet (effective SE)": ("ese_vovnet19b_dw", 64),
    "HRNet (fuse layers)": ("hrnet_w18_small", 64),
    "Xception (aligned)": ("xception41", 64),
    "Xception (legacy)": ("legacy_xception", 96),
    "Inception v3": ("inception_v3", 96),
    "Inception v4": ("inception_v4", 96),
    "Inception-ResNet-v2 (scaled residuals)": ("inception_resnet_v2", 96),
    "NASNet ('same' max pools, shifted paths)": ("nasnetalarge", 64),
    "PNASNet": ("pnasnet5large", 64),
    "EfficientNet": ("efficientnet_b0", 64),
    "EfficientNetV2": ("efficientnetv2_rw_t", 64),
    "EfficientNet, TensorFlow's 'same'": ("tf_efficientnet_b0", 64),
    "EfficientNetV2, TensorFlow's 'same'": ("tf_efficientnetv2_b0", 64),
    "MobileNetV2": ("mobilenetv2_050", 64),
    "MobileNetV3": ("mobilenetv3_small_050", 64),
    "MobileNetV3, TensorFlow's 'same'": ("tf_mobilenetv3_small_075", 64),
    "MobileNetV4": ("mobilenetv4_conv_small", 64),
    "MnasNet": ("mnasnet_small", 64),
    "FBNet": ("fbnetc_100", 64),
    "GhostNet": ("ghostnet_050", 64),
    "LCNet": ("lcnet_050", 64),
    "MixNet (mixed kernels)": ("mixnet_s", 64),
    "MixNet, TensorFlow's 'same'": ("tf_mixnet_s", 64),
    "ReXNet": ("rexnet_100", 64),
    "SelecSLS": ("selecsls42b", 64),
    "VGG (conv head)": ("vgg11", 64),
    "RepVGG (three branches)": ("repvgg_a0", 64),
    "MobileOne": ("mobileone_s0", 64),
    "ConvNeXt (layer scale as a vector)": ("convnext_atto", 64),
    "ConvNeXt (RMS norm)": ("convnext_atto_rms", 64),
    "ConvNeXt-V2 (global response norm)": ("convnextv2_atto", 64),
    "GerNet": ("gernet_s", 64),
    "HardCoReNAS": ("hardcorenas_a", 64),
    "TinyNet": ("tinynet_e", 64),
    "RepGhost": ("repghostnet_050", 64),
    "InceptionNeXt": ("inception_next_atto", 64),
    "StarNet (products of branches)": ("starnet_s1", 64),
    "NFNet (scaled weight standardization, 'same', skipinit gain)": ("dm_nfnet_f0", 64),
    "TResNet (space-to-depth, blur pool)": ("tresnet_m", 64),
}


@pytest.mark.parametrize("family", list(TIMM))
def test_a_timm_family_round_trips(family: str) -> None:
    name, size = TIMM[family]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    round_trip(model, (3, size, size))


def test_a_timm_model_at_its_default_input_as_a_user_imports_it() -> None:
    """The command a user types: the spec on stdout, a block per repeated module, TensorFlow's 'same' padding
    written as such (no padding row)."""
    from typer.testing import CliRunner

    from cnncalc.cli import app

    args = ["import", "timm:create_model", "--arg", "model_name=tf_efficientnet_b0", "--input", "3x224x224"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "  - {kind: conv2d, name: conv_stem, out: 32, kernel: 3, stride: 2, padding: same}\n" in text, text
    assert "zeropad2d" not in text and "use: inverted_residual" in text


SMP = [(arch, encoder) for arch in ("Unet", "FPN", "DeepLabV3Plus") for encoder in ("resnet34", "efficientnet-b0")]


@pytest.mark.parametrize(("arch", "encoder"), SMP, ids=[f"{a}-{e}" for a, e in SMP])
def test_a_segmentation_model_round_trips(arch: str, encoder: str) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None)
    # smp's EfficientNet encoder keeps the classifier's conv and norm, which never run: left out, in a warning each
    round_trip(model, (3, 64, 64))


@pytest.mark.parametrize("scaled", [False, True])
def test_timm_weight_standardized_convs_are_std_conv2d(scaled: bool) -> None:
    """BiT's StdConv2d and NF-ResNet's ScaledStdConv2d (its gain, and gamma / sqrt(fan-in)), also strided and
    grouped, read by running them as std_conv2d rows."""
    from timm.layers import ScaledStdConv2d, StdConv2d

    torch.manual_seed(0)
    conv = ScaledStdConv2d(3, 8, 3, stride=2, gamma=1.7, eps=1e-5) if scaled else StdConv2d(3, 8, 3, groups=1)
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), StdConv2d(8, 4, 1, groups=2, bias=True))
    text = round_trip(model, (3, 16, 16))
    first = (
        "{kind: std_conv2d, name: '0', out: 8, kernel: 3, stride: 2, padding: 1, eps: 1.0e-05, gain: true, gamma: 1.7}"
        if scaled
        else "{kind: std_conv2d, name: '0', out: 8, kernel: 3, padding: 1, bias: false}"
    )
    assert first in text, text
