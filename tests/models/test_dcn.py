"""Deformable networks start as their plain twin, and their deformation is real."""

import pytest
import torch

from edgecnn.models import create_model
from edgecnn.ops import DeformConv2d


@pytest.mark.parametrize(("dcn_name", "plain_name"), [("resnet50_dcn", "resnet50"), ("resnet50_dcnv2", "resnet50")])
def test_dcn_equals_plain_twin_at_initialisation(dcn_name, plain_name):
    torch.manual_seed(0)
    plain = create_model(plain_name, num_classes=10).eval()
    dcn = create_model(dcn_name, num_classes=10).eval()
    result = dcn.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".offset_conv." in key for key in result.missing_keys)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = plain(x)
        torch.testing.assert_close(dcn(x), expected, rtol=1e-4, atol=1e-4)
        # A non-zero offset predictor changes the output: the comparison above can fail.
        for module in dcn.modules():
            if isinstance(module, DeformConv2d):
                torch.nn.init.normal_(module.offset_conv.weight, std=0.1)
        assert (dcn(x) - expected).abs().max() > 1e-3


def test_default_deformable_stages_are_the_last_three():
    model = create_model("resnet101_dcn")
    assert not any(isinstance(m, DeformConv2d) for m in model.layer1.modules())
    for stage, blocks in ((model.layer2, 4), (model.layer3, 23), (model.layer4, 3)):
        assert sum(isinstance(m, DeformConv2d) for m in stage.modules()) == blocks
    only_last = create_model("resnet50_dcn", stages=(4,))
    assert sum(isinstance(m, DeformConv2d) for m in only_last.modules()) == 3


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups", "offset_groups", "modulated"),
    [(1, 1, 1, 1, 1, False), (2, 1, 1, 2, 1, True), (1, 2, 2, 1, 2, False), (2, 0, 1, 4, 4, True)],
)
def test_zero_offset_deform_conv_is_a_plain_conv(stride, padding, dilation, groups, offset_groups, modulated):
    torch.manual_seed(1)
    layer = DeformConv2d(8, 12, 3, stride, padding, dilation, groups, offset_groups, modulated=modulated)
    conv = torch.nn.Conv2d(8, 12, 3, stride, padding, dilation, groups)
    conv.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    x = torch.randn(2, 8, 11, 13)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), conv(x), rtol=1e-5, atol=1e-5)
