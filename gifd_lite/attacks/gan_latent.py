"""Searching a generator's latent space: GGL and GIAS (notebook 04).

**GGL** (Li et al., CVPR 2022) treats the generator as a black box and searches its latent with CMA-ES, a
gradient-free evolution strategy, on

    L(z) = ||∇_θ CE(f_θ(G(z, ŷ)), ŷ) - g||² / ||g||²  +  λ_KL KL(z || N(0, I)),

where KL compares the mean and variance of z's entries with a standard normal. Each evaluation costs one
generator pass and one ordinary gradient (no second-order term), about half a GIFD iteration, so at the same
compute GGL gets twice as many evaluations as GIFD gets iterations (``config.GGL_COST_PER_GIFD_ITERATION``).
Its own choices, which we follow: a population of 50 per generation (the ``paper`` preset: 500 generations,
GGL's budget); where we differ: z starts from N(0, I) and is not squashed (the reference code can bound it with
tanh), and CMA-ES runs with a diagonal covariance once batch × 128 exceeds 200 dimensions.
``optimizer="adam"`` gives the gradient-based variant for comparison.

**GIAS** (Jeon et al., NeurIPS 2021) first searches z with Adam (cosine matching + TV, as GIFD's stage 0), then
fixes z and fine-tunes a *copy of the generator's weights per image*, letting the image leave the generator's
range while the network's structure still acts as a prior.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from ..config import GGLConfig, GIASConfig
from ..data import normalize
from ..errors import GifdError
from ..fl import ThreatModel
from ..gan.generator import Generator, to_unit
from ..runtime import progress
from .core import GradientTarget, History, Reconstruction, total_variation
from .generative import matching_loss, optimise_stage, prepare, sphere

__all__ = ["ggl", "gias", "kl_to_standard_normal"]


def kl_to_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) || N(0, 1)) of the empirical mean and variance of each latent's entries, averaged."""
    mu, var = z.mean(1), z.var(1).clamp_min(1e-8)
    return (0.5 * (var + mu**2 - 1 - var.log())).mean()


def _l2_fitness(model, target: GradientTarget, G: Generator, z: torch.Tensor, code, labels, kl_weight: float,
                create_graph: bool) -> torch.Tensor:
    images = to_unit(G(z, code))
    grads = target.dummy_update(model, normalize(images), labels, create_graph=create_graph)
    return target.l2(grads) / target.norm**2 + kl_weight * kl_to_standard_normal(z)


def ggl(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
        G: Generator, config: GGLConfig, class_code: torch.Tensor | None = None, seed: int = 0,
        optimizer: str = "cma") -> Reconstruction:
    """GGL: the latent searched with CMA-ES (``optimizer="cma"``) or Adam (``"adam"``) under a fixed budget."""
    import cma

    device = next(model.parameters()).device
    target, labels, code = prepare(model, update, labels, class_code, threat_model)
    batch, d = len(labels), G.config.z_dim
    history = History()
    best = {"loss": math.inf, "z": None}
    t0 = time.perf_counter()
    evaluations, generations = 0, 0
    try:
        if optimizer == "cma":
            z0 = torch.randn((batch * d,), generator=torch.Generator().manual_seed(seed)).numpy()
            options = {"seed": seed + 1, "maxfevals": config.evaluations, "verbose": -9, "CMA_diagonal": batch * d > 200}
            if config.popsize:
                options["popsize"] = config.popsize
            es = cma.CMAEvolutionStrategy(z0, config.sigma, options)
            bar = progress(total=config.evaluations, desc="GGL (CMA-ES)")
            # whole generations only, never past the budget (at least one generation)
            while not es.stop() and (evaluations == 0 or evaluations + es.popsize <= config.evaluations):
                candidates = es.ask()
                losses = []
                for c in candidates:
                    z = torch.as_tensor(np.asarray(c), dtype=torch.float32, device=device).view(batch, d)
                    loss = float(_l2_fitness(model, target, G, z, code, labels, config.kl_weight, False).detach())
                    losses.append(loss if math.isfinite(loss) else 1e12)
                    evaluations += 1
                    if loss < best["loss"]:
                        best.update(loss=loss, z=z.detach().clone())
                es.tell(candidates, losses)
                generations += 1
                history.loss.append(min(losses))
                bar.update(len(candidates))
            bar.close()
        elif optimizer == "adam":
            z = torch.randn((batch, d), generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=0.05)
            for _ in progress(range(config.evaluations), desc="GGL (Adam)"):
                loss = _l2_fitness(model, target, G, z, code, labels, config.kl_weight, True)
                (z.grad,) = torch.autograd.grad(loss, [z])
                value = float(loss.detach())
                history.loss.append(value)
                evaluations += 1
                if value < best["loss"]:
                    best.update(loss=value, z=z.detach().clone())
                opt.step()
        else:
            raise GifdError(f"unknown GGL optimizer {optimizer!r}: use cma or adam")
    except KeyboardInterrupt:
        history.interrupted = True
    if best["z"] is None:
        raise GifdError("GGL found no finite result")
    with torch.no_grad():
        images = to_unit(G(best["z"], code)).clamp(0, 1)
    final = float(matching_loss(model, target, images, labels, create_graph=False).detach())
    history.extra.update(fitness=best["loss"], generations=generations,
                         popsize=es.popsize if optimizer == "cma" else None)
    return Reconstruction(images.cpu(), labels.cpu(), history, threat_model, "ggl", evaluations,
                          time.perf_counter() - t0, final)


def gias(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
         G: Generator, config: GIASConfig, class_code: torch.Tensor | None = None, seed: int = 0,
         learn_code: bool = False) -> Reconstruction:
    """GIAS: the best of R latent searches, then per-image fine-tuning of generator copies with z fixed.

    ``learn_code`` (soft label mapping) optimises the class mixture with the latent, then keeps it fixed."""
    device = next(model.parameters()).device
    target, labels, code = prepare(model, update, labels, class_code, threat_model,
                                   num_classes=G.config.num_classes if learn_code else None)
    batch = len(labels)
    history = History()
    t0 = time.perf_counter()
    iterations = 0
    best = None
    try:
        for restart in range(config.restarts):
            z0 = sphere(torch.randn((batch, G.config.z_dim), generator=torch.Generator().manual_seed(seed * 7919 + restart)))
            result = optimise_stage(model, target, G, 0, z0.to(device), code, labels, config.latent_iterations,
                                    config.lr_latent, tv_weight=config.tv_weight, desc=f"GIAS latent {restart + 1}",
                                    learn_code=learn_code)
            iterations += len(result.curve)
            history.restart_losses.append(result.loss)
            if best is None or result.loss < best.loss:
                best, history.best_restart = result, restart
    except KeyboardInterrupt:
        history.interrupted = True
    if best is None:
        raise GifdError("GIAS was interrupted before its first latent search finished")
    history.extra["latent_loss"] = best.loss
    history.extra["latent_images"] = best.images
    history.loss = list(best.curve)
    copies = [copy.deepcopy(G) for _ in range(batch)]
    params = [p for g in copies for p in g.parameters()]
    for p in params:
        p.requires_grad_(True)
    z = best.features.detach()
    code = best.code.detach()
    history.extra["class_code"] = code.cpu()
    opt = torch.optim.Adam(params, lr=config.lr_generator)
    kept = {"loss": best.loss, "images": best.images}

    def images_now():
        return torch.cat([to_unit(g(z[i:i + 1], code[i:i + 1])) for i, g in enumerate(copies)])

    try:
        for _ in progress(range(config.generator_iterations), desc="GIAS generator"):
            images = images_now()
            match = matching_loss(model, target, images, labels)
            loss = match + config.tv_weight * total_variation(images) if config.tv_weight else match
            for p, grad in zip(params, torch.autograd.grad(loss, params)):
                p.grad = grad
            value = float(match.detach())
            history.loss.append(value)
            iterations += 1
            if value < kept["loss"]:
                kept.update(loss=value, images=images.detach().clamp(0, 1).cpu())
            opt.step()
    except KeyboardInterrupt:
        history.interrupted = True
    return Reconstruction(kept["images"], labels.cpu(), history, threat_model, "gias", iterations,
                          time.perf_counter() - t0, kept["loss"])
