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
from ..errors import GifdError
from ..fl import ThreatModel
from ..gan.generator import Generator, to_unit
from ..runtime import progress
from .core import History, Reconstruction, snapshot_steps
from .generative import matching_loss, optimise_stage, prepare, render, sphere
from .oracle import MatchingOracle

__all__ = ["ggl", "gias", "kl_to_standard_normal"]


def kl_to_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) || N(0, 1)) of the empirical mean and variance of each latent's entries, averaged."""
    mu, var = z.mean(1), z.var(1).clamp_min(1e-8)
    return (0.5 * (var + mu**2 - 1 - var.log())).mean()


def ggl(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
        G: Generator, config: GGLConfig, class_code: torch.Tensor | None = None, seed: int = 0,
        optimizer: str = "cma") -> Reconstruction:
    """GGL: the latent searched with CMA-ES (``optimizer="cma"``) or Adam (``"adam"``) under a fixed budget.

    CMA-ES evaluates each generation's population in one batched pass (``MatchingOracle.values``, a ``vmap``
    over candidates) and reads its fitness values back once per generation, as CMA-ES (on the host) needs them.
    """
    import cma

    device = next(model.parameters()).device
    target, labels, code = prepare(model, update, labels, class_code, threat_model)
    oracle = MatchingOracle(model, target, labels, distance="l2", compile=config.compile,
                            calls=config.evaluations if optimizer == "adam" else 0)
    scale = 1.0 / target.norm**2                     # the fitness is relative to the observed update's size
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
            snap_at = snapshot_steps(max(1, config.evaluations // es.popsize), config.snapshots)
            bar = progress(total=config.evaluations, desc="GGL (CMA-ES)")
            # whole generations only, never past the budget (at least one generation)
            while not es.stop() and (evaluations == 0 or evaluations + es.popsize <= config.evaluations):
                candidates = es.ask()
                z = torch.as_tensor(np.stack(candidates), dtype=torch.float32).to(device).view(-1, batch, d)
                with torch.no_grad():
                    images = to_unit(G(z.flatten(0, 1), code.repeat(len(candidates), *[1] * (code.dim() - 1))))
                fitness = oracle.values(images.view(len(candidates), batch, *images.shape[1:])) * scale
                fitness = fitness + config.kl_weight * torch.stack([kl_to_standard_normal(zi) for zi in z])
                raw = fitness.tolist()                                         # once per generation
                losses = [v if math.isfinite(v) else 1e12 for v in raw]         # CMA-ES needs numbers
                evaluations += len(candidates)
                i = int(np.argmin(losses))
                if math.isfinite(raw[i]) and raw[i] < best["loss"]:             # a NaN never becomes the result
                    best.update(loss=raw[i], z=z[i].clone())
                es.tell(candidates, losses)
                if generations in snap_at:                                    # the generation's best candidate
                    history.snapshots.append((evaluations, images.view(len(candidates), batch, *images.shape[1:])[i].clone()))
                generations += 1
                history.loss.append(losses[i])
                bar.update(len(candidates))
            bar.close()
        elif optimizer == "adam":
            z = torch.randn((batch, d), generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=0.05)
            kept = (torch.full((), math.inf, device=device), z.detach().clone())
            curve = []
            snap_at = snapshot_steps(config.evaluations, config.snapshots)
            try:
                for step in progress(range(config.evaluations), desc="GGL (Adam)"):
                    images = to_unit(G(z, code))
                    if step in snap_at:
                        history.snapshots.append((step + 1, images.detach()))
                    grad_x, l2, _ = oracle(images)
                    kl = config.kl_weight * kl_to_standard_normal(z)
                    (z.grad,) = torch.autograd.grad([images, kl], [z], grad_outputs=[grad_x * scale, torch.ones_like(kl)])
                    value = l2 * scale + kl.detach()
                    curve.append(value)
                    evaluations += 1
                    better = value < kept[0]
                    kept = (torch.where(better, value, kept[0]), torch.where(better, z.detach(), kept[1]))
                    opt.step()
            finally:                                   # also on Ctrl-C: keep the best so far
                history.loss = torch.stack(curve).tolist() if curve else []
                if curve and math.isfinite(float(kept[0])):
                    best.update(loss=float(kept[0]), z=kept[1])
        else:
            raise GifdError(f"unknown GGL optimizer {optimizer!r}: use cma or adam")
    except KeyboardInterrupt:
        history.interrupted = True
    if best["z"] is None:
        raise GifdError("GGL found no finite result")
    with torch.no_grad():
        images = to_unit(G(best["z"], code)).clamp(0, 1)
    final = float(matching_loss(model, target, images, labels, create_graph=False).detach())
    history.snapshots = [(step, shot.clamp(0, 1).cpu()) for step, shot in history.snapshots]   # once, at the end
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
    latent_oracle = MatchingOracle(model, target, labels, tv_weight=config.tv_weight, compile=config.compile,
                                   calls=config.latent_iterations * config.restarts + config.generator_iterations)
    # half the snapshots in each phase, so the end of the latent search and of the fine-tuning are both shown
    latent_at = snapshot_steps(config.latent_iterations, config.snapshots - config.snapshots // 2)
    tuning_at = snapshot_steps(config.generator_iterations, config.snapshots // 2)
    shots = []                                          # per restart: its latent search's snapshots (on the device)

    def keep_shot(step, h):
        if step in latent_at and not learn_code:         # (a learned class mixture is not passed to on_step)
            with torch.no_grad():
                shots[-1].append((step + 1, render(G, 0, h, code)))

    try:
        for restart in range(config.restarts):
            z0 = sphere(torch.randn((batch, G.config.z_dim), generator=torch.Generator().manual_seed(seed * 7919 + restart)))
            shots.append([])
            result = optimise_stage(latent_oracle, G, 0, z0.to(device), code, config.latent_iterations,
                                    config.lr_latent, on_step=keep_shot, desc=f"GIAS latent {restart + 1}",
                                    learn_code=learn_code)
            iterations += len(result.curve)
            history.restart_losses.append(result.loss)
            if best is None or result.loss < best.loss:
                best, history.best_restart = result, restart
    except KeyboardInterrupt:
        history.interrupted = True
    if best is None:
        raise GifdError("GIAS was interrupted before its first latent search finished")
    history.snapshots = shots[history.best_restart]
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
    kept = (torch.full((), best.loss, device=device), None)      # the latent's result until a step beats it
    curve = []

    def images_now():
        return torch.cat([to_unit(g(z[i:i + 1], code[i:i + 1])) for i, g in enumerate(copies)])

    try:
        for step in progress(range(config.generator_iterations), desc="GIAS generator"):
            images = images_now()
            if step in tuning_at:
                history.snapshots.append((config.latent_iterations + step + 1, images.detach()))
            grad_x, match, _ = latent_oracle(images)       # the same matching step: same model, shape, target
            for p, grad in zip(params, torch.autograd.grad(images, params, grad_outputs=grad_x)):
                p.grad = grad
            curve.append(match)
            iterations += 1
            better = match < kept[0]
            kept = (torch.where(better, match, kept[0]),
                    torch.where(better, images.detach(), images.detach() if kept[1] is None else kept[1]))
            opt.step()
    except KeyboardInterrupt:
        history.interrupted = True
    history.loss += torch.stack(curve).tolist() if curve else []
    history.snapshots = [(step, shot.clamp(0, 1).cpu()) for step, shot in history.snapshots]   # once, at the end
    loss = float(kept[0])
    images = best.images if kept[1] is None or loss >= best.loss else kept[1].clamp(0, 1).cpu()
    return Reconstruction(images, labels.cpu(), history, threat_model, "gias", iterations,
                          time.perf_counter() - t0, loss)
