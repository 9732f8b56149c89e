"""DLG and iDLG (notebook 01).

DLG (Zhu et al., 2019) starts from random x̂ and random label logits ŷ and runs L-BFGS on

    min_{x̂, ŷ}  Σ_l || ∇_θ_l CE(f_θ(x̂), softmax(ŷ)) - g_l ||²,

recovering image and label together. iDLG (Zhao et al., 2020) reads the label off the last layer first
(:func:`gifd_lite.labels.infer_labels`) and optimises the image alone, which converges more reliably.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import DLGConfig
from ..fl import ThreatModel
from ..runtime import progress
from .core import GradientTarget, Reconstruction, Tracker, run_restarts, snapshot_steps
from .oracle import MatchingOracle

__all__ = ["dlg"]
LINE_SEARCH = "strong_wolfe"


def dlg(model: nn.Module, update: list[torch.Tensor], threat_model: ThreatModel, config: DLGConfig,
        labels: torch.Tensor | None = None, batch_size: int = 1, num_classes: int = 10,
        image_shape: tuple[int, int, int] | None = None, seed: int = 0) -> Reconstruction:
    """Invert ``update`` with L-BFGS on the L2 gradient distance.

    With ``labels=None`` the labels are optimised jointly (DLG); with labels given or inferred the image is
    the only unknown (iDLG). Restarts run from new random starts until one reaches a distance below
    ``config.good_enough`` · ||g||² (relative to the observed gradient's size). Images have the threat model's
    input shape (``threat_model.input``) unless ``image_shape`` is given.
    """
    device = next(model.parameters()).device
    target = GradientTarget(model, update, threat_model)
    joint = labels is None
    # L-BFGS reads every loss on the host (its line search is host logic), so DLG cannot avoid host reads
    oracle = MatchingOracle(model, target, labels, distance="l2", inputs="model", compile=config.compile,
                            calls=config.iterations * config.inner_steps * config.restarts, soft_labels=joint)
    shape = (batch_size, *(image_shape or target.input.shape))

    def to_image(x: torch.Tensor) -> torch.Tensor:
        return target.input.denormalize(x).clamp(0, 1)

    def run_one(trial: int, tracker: Tracker) -> None:
        gen = torch.Generator().manual_seed(seed * 7919 + trial)
        x = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
        variables = [x]
        if joint:
            label_logits = torch.randn((batch_size, num_classes), generator=gen).to(device).requires_grad_(True)
            variables.append(label_logits)
        opt = torch.optim.LBFGS(variables, lr=config.lr, max_iter=config.inner_steps,
                                max_eval=config.max_evaluations, history_size=100, line_search_fn=LINE_SEARCH)

        evaluated = {}       # the best finite point L-BFGS evaluated during the current step, with its own loss

        def closure() -> torch.Tensor:
            if joint:
                y = torch.softmax(label_logits, -1)
                (x.grad, grad_y), loss, _ = oracle(x, y)
                (label_logits.grad,) = torch.autograd.grad(y, [label_logits], grad_outputs=grad_y)
            else:
                x.grad, loss, _ = oracle(x)
            tracker.iterations += 1
            value = float(loss.detach())
            finite = math.isfinite(value) and bool(torch.isfinite(x).all())
            if (finite and value < evaluated.get("loss", math.inf)) or "loss" not in evaluated:
                # a non-finite first point is kept only until a finite one replaces it (then: divergence)
                evaluated.update(loss=value if finite else math.nan, x=x.detach().clone(),
                                 labels=label_logits.argmax(-1).detach() if joint else labels)
            return loss

        for step in progress(range(config.iterations), desc=f"L-BFGS restart {trial + 1}/{config.restarts}"):
            evaluated.clear()
            opt.step(closure)
            # the loss L-BFGS returns is from before its step; pair each loss with the point it was computed at
            if not tracker.update(step, evaluated["loss"], evaluated["x"], extra=evaluated["labels"]):
                break

    best, history, iterations, seconds = run_restarts(
        run_one, config.restarts, lambda: Tracker(snapshot_steps(config.iterations, config.snapshots), to_image),
        stop_below=config.good_enough * float(target.norm) ** 2)
    return Reconstruction(best.best_images, best.best_extra, history, threat_model,
                          "dlg" if joint else "idlg", iterations, seconds, best.best_loss)
