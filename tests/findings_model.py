"""A Navon demo model with perturbed weights and its traces, shared by the findings tests (text and numbers)."""

from __future__ import annotations

import pytest
import torch

import crossformer
from navon_fixtures import navon_input


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        m = crossformer.create_model("crossformer_demo").eval()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.2 * torch.randn_like(p))
    return m


def trace_of(model, x=None):
    x = navon_input(model) if x is None else x
    with torch.no_grad():
        return model.forward_trace(x)
