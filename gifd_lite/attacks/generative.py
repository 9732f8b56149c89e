"""The shared piece of the GAN-prior attacks (notebooks 04–06): optimising one generator stage by gradient matching.

With a generator G split at stage k (notebook 03), the attack's unknown is the stage-k feature h, the image is
x(h) = G_{k→}(h, c) for the class code c, and one stage of the search solves

    min_h  1 - cos(∇_θ CE(f_θ(x(h)), ŷ), g)  +  λ_TV TV(x(h))

with Adam, a linear warm-up and cosine decay of the step size (each step one call of the matching oracle,
:mod:`gifd_lite.attacks.oracle`, whose ∂loss/∂x is pushed back through G), and after every step a projection: the latent
back onto its sphere ||z|| = √d (where Gaussian latents live, so no norm penalty is needed: it would be zero),
later stages onto the l1 ball ||h - h_0||_1 ≤ r around the features the stage started from. The best h by the
pure matching loss is kept. With a held-out split of the update (GIFD's stage choice, notebook 05), g above
is the fitting part only, and the step with the lowest held-out loss is kept as a second candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..gan.generator import Generator, to_unit
from ..runtime import progress
from .core import CHECK_EVERY, GradientTarget
from .l1ball import project_l1_ball
from .oracle import MatchingOracle

__all__ = ["StageResult", "optimise_stage", "render", "matching_loss", "matching_losses", "sphere", "prepare"]


@dataclass
class StageResult:
    """The best features found at one stage, their matching loss and the image they give (in [0, 1])."""

    stage: int
    features: torch.Tensor
    loss: float
    images: torch.Tensor
    curve: list[float]
    code: torch.Tensor | None = None      # the class code used (learned by a soft label mapping at stage 0)
    held_loss: float | None = None        # the held-out loss of ``features`` (with a held-out split)
    held_candidate: "StageResult | None" = None   # the step with the lowest held-out loss (with a split)


def prepare(model, update: list[torch.Tensor], labels: torch.Tensor, class_code: torch.Tensor | None,
            threat_model=None, num_classes: int | None = None, holdout: float = 0.0, split_seed: int = 0):
    """The common set-up of a GAN-prior attack: the checked target (adaptive if the threat model says so),
    labels on the model's device, and the class code that conditions G (the FL labels themselves unless a
    label mapping gives another). With ``num_classes`` (a soft mapping that learns the mixture) hard
    classes become one-hot rows; with ``holdout`` the target holds out that fraction of the update
    (:func:`gifd_lite.attacks.core.holdout_split`, drawn from ``split_seed``)."""
    device = next(model.parameters()).device
    labels = labels.to(device)
    code = (labels if class_code is None else class_code).to(device)
    if num_classes is not None and code.dim() == 1:
        code = torch.nn.functional.one_hot(code, num_classes).float()
    return GradientTarget(model, update, threat_model, holdout=holdout, split_seed=split_seed), labels, code


def sphere(z: torch.Tensor) -> torch.Tensor:
    """Rescale each latent to norm √d."""
    return z * math.sqrt(z.shape[1]) / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


def render(G: Generator, k: int, h: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """The image in [0, 1] that stage-k features ``h`` give."""
    return to_unit(G.forward_from(k, h, code))


def matching_loss(model, target: GradientTarget, images01: torch.Tensor, labels: torch.Tensor,
                  create_graph: bool = True) -> torch.Tensor:
    """Cosine gradient distance of images in [0, 1] (normalised for the FL model) to the observed update
    (to its fitting part, if the target has a held-out split)."""
    return matching_losses(model, target, images01, labels, create_graph)[0]


def matching_losses(model, target: GradientTarget, images01: torch.Tensor, labels: torch.Tensor,
                    create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(fitting, held-out) cosine distances from one dummy gradient (held-out None without a split)."""
    grads = target.dummy_update(model, target.input.normalize(images01), labels, create_graph=create_graph)
    return target.cosine_split(grads)


def _score(oracle: MatchingOracle, G: Generator, k: int, h: torch.Tensor,
           code: torch.Tensor) -> tuple[torch.Tensor, float, float | None]:
    """The image of features ``h`` and its (fitting, held-out) losses, scored once more outside the loop."""
    with torch.no_grad():
        images = render(G, k, h, code)
    _, fit, held = oracle(images)
    values = torch.stack([fit, fit if held is None else held]).tolist()
    return images.detach().clamp(0, 1).cpu(), values[0], None if held is None else values[1]


def _schedule(step: int, total: int, warmup: float) -> float:
    w = max(1, int(total * warmup))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def optimise_stage(oracle: MatchingOracle, G: Generator, k: int, start: torch.Tensor, code: torch.Tensor,
                   iterations: int, lr: float, radius: float | None = None, warmup: float = 0.1,
                   on_step=None, desc: str = "", learn_code: bool = False) -> StageResult:
    """Search stage ``k`` from ``start`` (see the module docstring); returns the best features by matching loss.

    ``oracle`` (:class:`~gifd_lite.attacks.oracle.MatchingOracle` on images in [0, 1], with the TV weight) gives
    each step's loss and ∂loss/∂x; the image x = G_{k→}(h, c) is rendered eagerly and the oracle's ∂loss/∂x is
    pushed back through the generator to h. ``radius`` is a fraction of the starting features' l1 norm (per
    sample); ``None`` leaves them unconstrained. ``on_step(step, h)`` is called every step (snapshots).
    ``learn_code`` (soft label mapping, notebook 07): the class code becomes softmax(a), a mixture of class
    embeddings, and a is optimised together with h, starting from ``code`` (e.g. uniform).
    Nothing is read back to the host inside the loop except a divergence check every ``CHECK_EVERY`` steps.
    """
    h0 = start.detach()
    h = h0.clone().requires_grad_(True)
    ball = None if (k == 0 or radius is None) else radius * h0.flatten(1).abs().sum(1)
    variables = [h]
    if learn_code:
        mix = code.float().clamp_min(1e-6).log().detach().requires_grad_(True)
        variables.append(mix)
    opt = torch.optim.Adam(variables, lr=lr)
    inf = torch.full((), math.inf, device=h0.device)
    best = {"fit": (inf, h0.clone(), code.clone()), "held": (inf, h0.clone(), code.clone())}
    curve = []
    for step in progress(range(iterations), desc=desc or f"stage {k}"):
        for group in opt.param_groups:
            group["lr"] = lr * _schedule(step, iterations, warmup)
        code_now = mix.softmax(1) if learn_code else code
        images = render(G, k, h, code_now)
        grad_x, match, held = oracle(images)
        for var, grad in zip(variables, torch.autograd.grad(images, variables, grad_outputs=grad_x)):
            var.grad = grad
        curve.append(match)
        if on_step is not None:
            on_step(step, h)
        for by, value in (("fit", match), ("held", held)):
            if value is not None:
                better = value < best[by][0]            # False for NaN: a NaN never becomes the best
                best[by] = (torch.where(better, value, best[by][0]), torch.where(better, h.detach(), best[by][1]),
                            torch.where(better, code_now.detach(), best[by][2]))
        if (step + 1) % CHECK_EVERY == 0 and not bool(torch.isfinite(match)):     # a host read every 50 steps
            break
        opt.step()
        with torch.no_grad():
            if k == 0:
                h.copy_(sphere(h))
            elif ball is not None:
                # only where the step left the ball: h0 + (h - h0) is not h in floating point, and a ball that
                # never binds must leave the search exactly as an unconstrained one (notebook 06's sweeps)
                moved = h - h0
                outside = moved.flatten(1).abs().sum(1) > ball
                h.copy_(torch.where(outside.view(-1, *[1] * (h.dim() - 1)), h0 + project_l1_ball(moved, ball), h))
    best_loss, best_h, best_code = best["fit"]
    *curve, best_loss = torch.stack(curve + [best_loss]).tolist()        # one host read for the whole stage
    # score the kept features once more, exactly as every other stage is scored
    if not math.isfinite(best_loss):
        with torch.no_grad():
            images = render(G, k, best_h, best_code).clamp(0, 1).cpu()
        return StageResult(k, best_h, math.inf, images, curve, best_code)
    images, final, final_held = _score(oracle, G, k, best_h, best_code)
    alternative = None
    if oracle.has_held:
        _, held_h, held_code = best["held"]
        alt_images, alt_fit, alt_held = _score(oracle, G, k, held_h, held_code)
        alternative = StageResult(k, held_h, alt_fit, alt_images, curve, held_code, held_loss=alt_held)
    return StageResult(k, best_h, final, images, curve, best_code, held_loss=final_held, held_candidate=alternative)
