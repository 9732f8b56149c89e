"""Training a task model on CIFAR-10, briefly (notebook 02: attacks on trained vs untrained models).

Plain mini-batch SGD with momentum on cross-entropy, random crops and flips, a cosine learning-rate
schedule; :func:`accuracy` scores a model on a split (:func:`accuracy_per_class` class by class).
Deterministic for a given seed on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet, normalize
from .errors import GifdError
from .runtime import progress

__all__ = ["train_classifier", "accuracy", "accuracy_per_class"]


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel-padded 32×32 crops and horizontal flips, per batch."""
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    i, j = torch.randint(0, 9, (2,), generator=gen).tolist()
    x = padded[:, :, i:i + 32, j:j + 32]
    flip = torch.rand(len(x), generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def train_classifier(model: nn.Module, dataset: ImageSet, steps: int, batch_size: int = 128, lr: float = 0.05,
                     seed: int = 0, augment: bool = True, show_progress: bool = True, defense: str = "none",
                     defense_param: float | None = None, soteria_every: int = 20) -> list[float]:
    """Train ``model`` in place for ``steps`` SGD steps; returns the loss per step.

    ``defense`` (notebook 08: what a defense costs in accuracy) transforms every step's gradient as a client
    would transform its update (:func:`gifd_lite.fl.apply_defense`). Soteria's mask needs one backward pass per
    feature (about 16 s for the ConvNet on one CPU core), so it is computed on the first 2 images of a batch and
    refreshed every ``soteria_every`` steps; in between the last mask is reused.
    """
    from .fl import DEFAULT_DEFENSE_PARAM, _last_linear_weight_index, apply_defense, soteria_mask

    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    model.train()
    losses = []
    if soteria_every < 1:
        raise GifdError("soteria_every must be a positive number of steps")
    for step in progress(range(steps), desc="training", enabled=show_progress):
        idx = torch.randint(0, len(dataset), (batch_size,), generator=gen)
        x, y = dataset.tensors(idx.numpy())
        if augment:
            x = _augment(x, gen)
        loss = F.cross_entropy(model(normalize(x.to(device))), y.to(device))
        opt.zero_grad()
        loss.backward()
        if defense != "none":
            params = [p for p in model.parameters() if p.requires_grad]
            grads = apply_defense([p.grad for p in params], defense, defense_param, gen)
            if defense == "soteria":
                param = DEFAULT_DEFENSE_PARAM["soteria"] if defense_param is None else defense_param
                w = _last_linear_weight_index(model)
                if step % soteria_every == 0:
                    mask = soteria_mask(model, normalize(x[:2].to(device)), param)
                grads[w] = grads[w] * mask[None, :].to(grads[w].dtype)
            for p, g in zip(params, grads):
                p.grad = g
        opt.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def _predictions(model: nn.Module, dataset: ImageSet, limit: int | None, batch_size: int):
    """(predicted, true) labels of ``model`` (in eval mode) on ``limit`` images of ``dataset`` evenly strided
    over it (all of them by default)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    # an image-folder split is sorted by class: take an evenly strided subset so every class is counted
    indices = torch.linspace(0, len(dataset) - 1, n).long().numpy()
    predicted, truth = [], []
    for start in range(0, n, batch_size):
        x, y = dataset.tensors(indices[start:start + batch_size])
        predicted.append(model(normalize(x.to(device))).argmax(1).cpu())
        truth.append(y)
    model.train(was_training)
    return torch.cat(predicted), torch.cat(truth)


def accuracy(model: nn.Module, dataset: ImageSet, limit: int | None = None, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``limit`` images of ``dataset`` (evenly strided; default all)."""
    predicted, truth = _predictions(model, dataset, limit, batch_size)
    return int((predicted == truth).sum()) / len(truth)


def accuracy_per_class(model: nn.Module, dataset: ImageSet, limit: int | None = None,
                       batch_size: int = 500) -> dict[str, float]:
    """Top-1 accuracy of ``model`` on each class of ``dataset`` (the share of its images predicted as it); the
    yardstick for a generator's class fidelity by the same classifier (tools/judge_priors.py, issue 17)."""
    predicted, truth = _predictions(model, dataset, limit, batch_size)
    return {name: int((predicted[truth == k] == k).sum()) / int((truth == k).sum())
            for k, name in enumerate(dataset.classes) if bool((truth == k).any())}
