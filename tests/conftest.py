"""Shared fixtures. Tests run on CPU, seeded, with the smoke preset and no progress bars."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("GIFD_DATA", str((ROOT.parent / "shared" / "data").resolve()))
os.environ["GIFD_PRESET"] = "smoke"       # read by the notebooks' parameters cell (nbval runs them as-is)
os.environ["GIFD_NO_PROGRESS"] = "1"
os.environ["MPLBACKEND"] = "Agg"


@pytest.fixture(scope="session")
def cifar_test():
    from gifd_lite.data import load_cifar10

    return load_cifar10("test", download=False)


@pytest.fixture(scope="session")
def smoke():
    from gifd_lite.config import get_preset

    return get_preset("smoke")


@pytest.fixture(scope="module")
def tiny_prior():
    """An untrained, frozen width-8 generator: the stage API at a size a unit test can afford."""
    import torch

    from gifd_lite.gan import Generator, GeneratorConfig

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(width=8, z_dim=32)).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    return G
