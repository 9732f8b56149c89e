"""The FL task models an attacker inverts (notebook 01 introduces LeNet, notebook 02 the others).

- ``lenet``: the DLG network, four layers with sigmoid activations (smooth, so L-BFGS works well) and
  DLG's weight initialisation U(-0.5, 0.5);
- ``convnet``: a small batch-norm ConvNet (five 3×3 convolutions, three max-pools, one linear layer);
- ``resnet18``: ResNet-18 with the CIFAR stem (3×3 convolution, stride 1, no max-pool).

Every model is built from a seed, so "the global model" is the same for the client and the attacker.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import GifdError

__all__ = ["MODEL_NAMES", "build_model", "LeNet", "ConvNet", "ResNet18"]

MODEL_NAMES = ("lenet", "convnet", "resnet18")


class LeNet(nn.Module):
    """DLG's LeNet: 3 × (conv 5×5, 12 channels, sigmoid), then a linear classifier on 12·8·8 features."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 12, 5, padding=2, stride=2), nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=2), nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=1), nn.Sigmoid(),
        )
        self.fc = nn.Linear(12 * 8 * 8, num_classes)
        for p in self.parameters():
            nn.init.uniform_(p, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ConvNet(nn.Module):
    """A small BN ConvNet: widths (w, 2w, 2w, 4w, 4w), max-pool after the 2nd, 4th and 5th block."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            *_conv_bn_relu(3, w), *_conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 2 * w), *_conv_bn_relu(2 * w, 4 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(4 * w, 4 * w), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(4 * w * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut: y = relu(F(x) + s(x))."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32×32 inputs: a 3×3 stem without max-pool, four stages of two blocks, average pool."""

    def __init__(self, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


def build_model(name: str, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """Build a task model with weights drawn from ``seed`` (the global RNG state is left untouched)."""
    builders = {"lenet": LeNet, "convnet": ConvNet, "resnet18": ResNet18}
    if name not in builders:
        raise GifdError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builders[name](num_classes=num_classes)
