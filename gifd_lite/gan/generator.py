"""A class-conditional generator in the BigGAN style, scaled to 32×32, with addressable stages (notebook 03).

    z ∈ R^d, class embedding e(y) = y_soft · E          (y_soft: one-hot, or any convex mixture of classes)
    stage 0  "latent"  z                                   (d,)
    stage 1  "4x4"     h1 = reshape(W z)                   (4c, 4, 4)
    stage 2  "8x8"     h2 = Block(h1, e)                   (4c, 8, 8)
    stage 3  "16x16"   h3 = Block(h2, e)                   (2c, 16, 16)
    stage 4  "32x32"   h4 = Block(h3, e)                   (c, 32, 32)
    image    x = tanh(conv(relu(BN(h4))))  ∈ [-1, 1]

Each Block is a residual up-sampling block whose batch norms are class-conditional. Two ways of conditioning
(``GeneratorConfig.conditioning``):

- ``"strong"`` (the shipped priors since issue 17): the class enters every stage. The first layer sees it,
  h1 = reshape(W [z; e(y)]), and every batch norm, the output one included, has per-class gains and biases,
  CBN(h, y) = γ(y) ⊙ BN(h) + β(y) with γ(y) = y_soft · Γ (Γ starts at 1) and β(y) = y_soft · B (B at 0);
- ``"shared"`` (the priors before issue 17): only the blocks' batch norms see the class, through a shared
  embedding, CBN(h, e) = (1 + γ(e)) · BN(h) + β(e) with γ, β zero-initialised linear maps of e.

Both are linear in y_soft, so soft class codes (label mapping, notebook 07) mean the same in each. The stage API splits the forward pass anywhere:
``forward_from(k, features(z, y, upto=k), y) == G(z, y)``, which is what GIFD's feature search needs.
Images leave the generator in [-1, 1]; :func:`to_unit` maps them to [0, 1], the one place where generator
output meets the FL model's world (whose normalisation lives in :mod:`gifd_lite.data`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GeneratorConfig", "Generator", "to_unit", "class_code"]


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the generator (stored in every checkpoint)."""

    num_classes: int = 10
    z_dim: int = 128
    width: int = 32          # c: channels at 32×32; 2c at 16×16; 4c at 8×8 and 4×4
    embed_dim: int = 128
    conditioning: str = "strong"   # "strong": the class enters every stage; "shared": the pre-issue-17 design

    def __post_init__(self):
        if self.conditioning not in ("strong", "shared"):
            raise ValueError(f"conditioning must be 'strong' or 'shared', not {self.conditioning!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] → images in [0, 1]."""
    return (images + 1) / 2


def class_code(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Hard labels (B,) → one-hot (B, K); a soft (B, K) class distribution passes through unchanged."""
    if y.dim() == 1:
        return F.one_hot(y.long(), num_classes).float()
    if y.shape[-1] != num_classes:
        raise ValueError(f"a soft class code needs {num_classes} entries, got {y.shape[-1]}")
    return y.float()


class ConditionalBatchNorm(nn.Module):
    """CBN(h, e) = (1 + γ(e)) · BN(h) + β(e), with γ, β linear in the class embedding e."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(embed_dim, channels, bias=False)
        self.bias = nn.Linear(embed_dim, channels, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return (1 + self.gain(e))[:, :, None, None] * self.bn(h) + self.bias(e)[:, :, None, None]


class ClassBatchNorm(nn.Module):
    """CBN(h, y) = γ(y) ⊙ BN(h) + β(y), γ(y) = y_soft · Γ, β(y) = y_soft · B: one gain and bias per class,
    gains starting at 1, so every class has its own normalisation from the first step."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Parameter(torch.ones(num_classes, channels))
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))

    def forward(self, h: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return (code @ self.gain)[:, :, None, None] * self.bn(h) + (code @ self.bias)[:, :, None, None]


def _conditional_norm(channels: int, config: "GeneratorConfig") -> nn.Module:
    if config.conditioning == "strong":
        return ClassBatchNorm(channels, config.num_classes)
    return ConditionalBatchNorm(channels, config.embed_dim)


class UpBlock(nn.Module):
    """h ↦ conv(relu(CBN(conv(up(relu(CBN(h))))))) + conv1×1(up(h)): doubles the resolution."""

    def __init__(self, cin: int, cout: int, config: "GeneratorConfig"):
        super().__init__()
        self.bn1 = _conditional_norm(cin, config)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn2 = _conditional_norm(cout, config)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(h, scale_factor=2, mode="nearest")
        out = self.conv1(F.interpolate(F.relu(self.bn1(h, e)), scale_factor=2, mode="nearest"))
        out = self.conv2(F.relu(self.bn2(out, e)))
        return out + self.skip(up)


class Generator(nn.Module):
    """G(z, y): latent and class (hard or soft) → image in [-1, 1], split into addressable stages."""

    STAGES = ("latent", "4x4", "8x8", "16x16", "32x32")

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = config
        c = config.width
        self.strong = config.conditioning == "strong"
        self.embed = nn.Linear(config.num_classes, config.embed_dim, bias=False)   # e(y) = y_soft · E
        self.fc = nn.Linear(config.z_dim + (config.embed_dim if self.strong else 0), 4 * c * 4 * 4)
        self.blocks = nn.ModuleList([UpBlock(4 * c, 4 * c, config), UpBlock(4 * c, 2 * c, config),
                                     UpBlock(2 * c, c, config)])
        self.out_bn = ClassBatchNorm(c, config.num_classes) if self.strong else nn.BatchNorm2d(c)
        self.out_conv = nn.Conv2d(c, 3, 3, padding=1)

    def stages(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, feature shape without batch) of every stage, from the latent to the last block."""
        c, z = self.config.width, self.config.z_dim
        return list(zip(self.STAGES, [(z,), (4 * c, 4, 4), (4 * c, 8, 8), (2 * c, 16, 16), (c, 32, 32)]))

    def embedding(self, y: torch.Tensor) -> torch.Tensor:
        """Class embedding e(y) of hard labels (B,) or soft class distributions (B, K)."""
        return self.embed(self._code(y))

    def _code(self, y: torch.Tensor) -> torch.Tensor:
        return class_code(y, self.config.num_classes).to(self.embed.weight.device)

    def _condition(self, y: torch.Tensor) -> torch.Tensor:
        """What the batch norms take: the class code itself ("strong") or its embedding ("shared")."""
        return self._code(y) if self.strong else self.embedding(y)

    def features(self, z: torch.Tensor, y: torch.Tensor, upto: int) -> torch.Tensor:
        """The output of stage ``upto`` (0 returns z itself)."""
        return self.advance(0, z, y, upto)

    def advance(self, k: int, h: torch.Tensor, y: torch.Tensor, upto: int) -> torch.Tensor:
        """From the features ``h`` of stage ``k`` to the features of a later stage ``upto``."""
        self._check_stage(k)
        self._check_stage(upto)
        if upto < k:
            raise ValueError(f"cannot go back from stage {k} to stage {upto}")
        if k == upto:
            return h
        if k == 0:
            inputs = torch.cat([h, self.embedding(y)], dim=1) if self.strong else h
            h = self.fc(inputs).view(len(h), 4 * self.config.width, 4, 4)
            k = 1
        condition = self._condition(y)
        for block in self.blocks[k - 1: upto - 1]:
            h = block(h, condition)
        return h

    def forward_from(self, k: int, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Finish the forward pass from the features ``h`` of stage ``k``: the image in [-1, 1]."""
        h = self.advance(k, h, y, len(self.STAGES) - 1)
        h = self.out_bn(h, self._code(y)) if self.strong else self.out_bn(h)
        return torch.tanh(self.out_conv(F.relu(h)))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward_from(0, z, y)

    def _check_stage(self, k: int) -> None:
        if not 0 <= k < len(self.STAGES):
            raise ValueError(f"stage {k} does not exist: stages are 0..{len(self.STAGES) - 1} {self.STAGES}")
