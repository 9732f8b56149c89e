"""Differentiable augmentation for training a GAN on little data (DiffAugment, Zhao et al., 2020), notebook 03.

The discriminator sees T(x) for real and generated images alike, with T random but differentiable in x, so
the generator's gradient passes through it and D cannot memorise the few thousand real images:

    colour:      x + (b - ½),  (x - x̄_pixel) · 2s + x̄_pixel,  (x - x̄) · (c + ½) + x̄     b, s, c ~ U(0, 1)
    translation: shift by up to ⅛ of the side in each direction, zero fill
    cutout:      zero a square of half the side at a random centre

Images are in the generator's range [-1, 1]. Randomness comes from a ``torch.Generator`` on the CPU, so a
seeded training run (and its resume) draws the same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["diff_augment"]


def _uniform(gen: torch.Generator, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=gen).to(device)


def _colour(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = len(x)
    x = x + (_uniform(gen, (b, 1, 1, 1), x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(gen, (b, 1, 1, 1), x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(gen, (b, 1, 1, 1), x.device) + 0.5) + mean


def _translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), generator=gen).to(x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=gen).to(x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)          # the zero border is what shifts in
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(ch // 2), h - ch // 2 + 1, (b, 1, 1), generator=gen).to(x.device)   # may overhang
    left = torch.randint(-(cw // 2), w - cw // 2 + 1, (b, 1, 1), generator=gen).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    outside = (rows < top) | (rows >= top + ch) | (cols < left) | (cols >= left + cw)
    return x * outside.unsqueeze(1).to(x.dtype)


def diff_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Colour, translation and cutout, each drawn independently per image: T(x), differentiable in x."""
    return _cutout(_translation(_colour(x, gen), gen), gen)
