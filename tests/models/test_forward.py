"""A forward pass of every registered model at a small input size."""

import pytest
import torch

from edgecnn.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_forward_small_input(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=1).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
