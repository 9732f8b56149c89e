"""A projection discriminator with spectral normalisation (Miyato & Koyama, 2018), notebook 03.

    D(x, y) = w · φ(x) + <e_D(y), φ(x)>,     φ = global sum pooling of residual down-sampling blocks,

every weight spectrally normalised so D stays 1-Lipschitz-ish; trained with the hinge loss. Since issue 17 D
also has an auxiliary classifier on the same features, logits(x) = C φ(x) (AC-GAN, Odena et al., 2017), which is
trained on real images only and which the generator is asked to satisfy: a second, direct push on the class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["Discriminator"]


class DownBlock(nn.Module):
    """h ↦ pool(conv(relu(conv(relu(h))))) + conv1×1(pool(h)) (the first block skips the leading relu)."""

    def __init__(self, cin: int, cout: int, first: bool = False, down: bool = True):
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(cin, cout, 1))
        self.first, self.down = first, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        skip = self.skip(x)
        if self.down:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class Discriminator(nn.Module):
    """32×32 → 16 → 8 → 8 with widths (2c, 2c, 2c), then sum pooling, a linear head, class projection and an
    auxiliary class head."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        c = 2 * width
        self.blocks = nn.Sequential(DownBlock(3, c, first=True), DownBlock(c, c), DownBlock(c, c, down=False))
        self.head = spectral_norm(nn.Linear(c, 1))
        self.project = spectral_norm(nn.Embedding(num_classes, c))
        self.classify = spectral_norm(nn.Linear(c, num_classes))

    def score_and_logits(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D(x, y), auxiliary class logits of x)."""
        phi = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(phi).squeeze(1) + (self.project(y) * phi).sum(1), self.classify(phi)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.score_and_logits(x, y)[0]
