"""Inverting Gradients (Geiping et al., 2020), notebook 02.

    x̂ = argmin_{x ∈ [0,1]^n}  1 - <∇_θ L(f_θ(x), y), g> / (||∇_θ L(f_θ(x), y)|| ||g||)  +  λ_TV TV(x)

The cosine distance ignores the gradient's scale (which depends on the loss value and learning rate) and
matches its direction; total variation favours piecewise-smooth images. Adam runs on the *sign* of the
gradient (signed gradient descent), the step size drops ×0.1 at 3/8, 5/8 and 7/8 of the run, every step
is projected back into the valid pixel box, and of R restarts the one with the lowest cosine distance wins.
``IGConfig(distance="l2")`` swaps in DLG's squared distance for the comparison in notebook 02. Each step is one
call of the matching oracle (:mod:`gifd_lite.attacks.oracle`, compiled where it pays).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import IGConfig
from ..errors import GifdError
from ..fl import ThreatModel
from ..runtime import progress
from .core import GradientTarget, Reconstruction, Tracker, run_restarts, snapshot_steps
from .oracle import MatchingOracle

__all__ = ["inverting_gradients"]


def inverting_gradients(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor,
                        threat_model: ThreatModel, config: IGConfig,
                        image_shape: tuple[int, int, int] | None = None, seed: int = 0) -> Reconstruction:
    """Invert ``update`` for images with the given (or inferred) ``labels``, of the threat model's input shape
    (``threat_model.input``, CIFAR-10's 3×32×32 for the built-in models) unless ``image_shape`` says otherwise."""
    if config.distance not in ("cosine", "l2"):
        raise GifdError(f"unknown gradient distance {config.distance!r}: use cosine or l2")
    device = next(model.parameters()).device
    target = GradientTarget(model, update, threat_model)
    labels = labels.to(device)
    oracle = MatchingOracle(model, target, labels, distance=config.distance, tv_weight=config.tv_weight,
                            inputs="model", compile=config.compile, calls=config.iterations * config.restarts)
    spec = target.input
    shape = (len(labels), *(image_shape or spec.shape))
    lower = spec.normalize(torch.zeros(1, shape[1], 1, 1, device=device))
    upper = spec.normalize(torch.ones(1, shape[1], 1, 1, device=device))
    n = config.iterations
    milestones = [int(n * f) for f in (3 / 8, 5 / 8, 7 / 8)]

    def to_image(x: torch.Tensor) -> torch.Tensor:
        return spec.denormalize(x).clamp(0, 1)

    def run_one(trial: int, tracker: Tracker) -> None:
        gen = torch.Generator().manual_seed(seed * 7919 + trial)
        x = torch.randn(shape, generator=gen).to(device)
        if config.boxed:
            x = torch.max(torch.min(x, upper), lower)
        x.requires_grad_(True)
        opt = torch.optim.Adam([x], lr=config.lr)
        schedule = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
        for step in progress(range(n), desc=f"IG restart {trial + 1}/{config.restarts}"):
            x.grad, matching, _ = oracle(x)
            if not tracker.update(step, matching, x):
                break
            if config.signed:
                x.grad.sign_()
            opt.step()
            schedule.step()
            if config.boxed:
                with torch.no_grad():
                    x.copy_(torch.max(torch.min(x, upper), lower))

    best, history, iterations, seconds = run_restarts(
        run_one, config.restarts, lambda: Tracker(snapshot_steps(n, config.snapshots), to_image))
    return Reconstruction(best.best_images, labels.cpu(), history, threat_model, "ig", iterations, seconds,
                          best.best_loss)
