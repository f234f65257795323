"""The shipped specs are torchvision's models: same parameters, same FLOPs, the same outputs.

Needs torchvision, which does not import beside every torch build (PyPI's torchvision fails beside
the small CPU-only torch 2.13.0); the file is skipped where it does not. CI installs torch 2.14.1
with torchvision 0.29.1, which import together (the README's test command), and .ci/run fails
when they do not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from conftest import SPECS

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        import torchvision.models as tvm
except Exception as exc:  # a missing or broken torchvision (it can fail to load its ops)
    pytest.skip(f"torchvision is not importable: {exc}", allow_module_level=True)

from torch.utils.flop_counter import FlopCounterMode

from cnncalc import analyze, load_spec
from cnncalc import torch_backend as tb

pytestmark = pytest.mark.torch

MODELS: dict[str, Callable[[], Any]] = {
    "resnet18": tvm.resnet18,
    "resnet34": tvm.resnet34,
    "resnet50": tvm.resnet50,
    "resnet101": tvm.resnet101,
    "resnet152": tvm.resnet152,
    "googlenet": lambda: tvm.googlenet(aux_logits=False, init_weights=True),
    "mobilenet_v2": tvm.mobilenet_v2,
    "vgg11": tvm.vgg11,
    "vgg13": tvm.vgg13,
    "vgg16": tvm.vgg16,
    "vgg19": tvm.vgg19,
    "vgg16_bn": tvm.vgg16_bn,
    "squeezenet1_0": tvm.squeezenet1_0,
    "mnasnet1_0": tvm.mnasnet1_0,
    "densenet121": tvm.densenet121,
    "resnext50_32x4d": tvm.resnext50_32x4d,
    "wide_resnet50_2": tvm.wide_resnet50_2,
    "mobilenet_v3_small": tvm.mobilenet_v3_small,
    "mobilenet_v3_large": tvm.mobilenet_v3_large,
    "regnet_y_400mf": tvm.regnet_y_400mf,
    "shufflenet_v2_x1_0": tvm.shufflenet_v2_x1_0,
    "convnext_tiny": tvm.convnext_tiny,
    "efficientnet_b0": tvm.efficientnet_b0,
    # without the auxiliary classifier, which only a training step runs (its published weights have it)
    "inception_v3": lambda: tvm.inception_v3(aux_logits=False, init_weights=False),
}
#: Specs whose rows carry torchvision's own module names: its state_dict loads by name.
SAME_NAMES = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "convnext_tiny",
    "efficientnet_b0",
}


#: Specs computing over channels-last positions (ConvNeXt), where an op on another layout rounds otherwise.
CHANNELS_LAST = {"convnext_tiny"}


def _flops(model: Any, x: Any) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_is_torchvisions_model(name: str) -> None:
    torch.manual_seed(0)
    reference = MODELS[name]().eval()
    report = analyze(load_spec(SPECS / f"{name}.yaml"))
    ours = tb.build(report).eval()
    theirs = list(reference.state_dict().items())
    mine = list(ours.state_dict().items())
    if name in SAME_NAMES:
        # the same tensors under torchvision's names (RegNet registers a block's projection before its body)
        assert {k: v.shape for k, v in theirs} == {k: v.shape for k, v in mine}
        weights = dict(theirs)
    else:
        assert [v.shape for _, v in theirs] == [v.shape for _, v in mine]  # the same tensors, in the same order
        weights = {k: v for (k, _), (_, v) in zip(mine, theirs, strict=True)}
    assert report.totals.params_trainable == sum(p.numel() for p in reference.parameters())
    x = torch.randn(2, *report.input_shape)  # 3x224x224, Inception v3's 3x299x299
    assert report.totals.flops * 2 == _flops(reference, x)  # batch 2
    ours.load_state_dict(weights)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
        if name in CHANNELS_LAST:  # where the last bits depend on the layout each op sees, more than one input
            for batch in (1, 3):
                x = torch.randn(batch, 3, 224, 224)
                assert torch.equal(ours(x), reference(x))
