"""Seconds per iteration of each attack next to a plain gradient-matching loop, measured in one run.

The plain loop is the smallest thing every attack here has to do per step: render nothing, take the model's
gradient of a dummy image with ``create_graph=True``, the cosine distance to the observed update, its gradient
with respect to the image, one Adam step. An attack's overhead is its seconds per iteration divided by this.

Batched restarts: R restarts of the plain loop as one step, each restart's own model gradient taken per sample
with ``torch.func`` (``vmap`` over ``grad``), so the R restarts share one forward/backward pass. Reported as the
cost of one batched step of R restarts divided by one step of a single restart (R× would mean no gain).

    python -m gifd_lite bench [--model resnet18] [--iterations 30] [--restarts 4]
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from .config import get_preset
from .data import normalize
from .fl import ThreatModel, fedsgd_gradients
from .models import build_model

__all__ = ["plain_matching_seconds", "batched_restart_gradients", "batched_restarts_seconds", "bench"]


def plain_matching_seconds(model, target, labels, shape, iterations: int, seed: int = 0) -> float:
    """Seconds per step of the bare cosine gradient-matching loop on pixels (the reference)."""
    from .attacks.core import model_gradients

    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(labels.device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    for step in range(iterations + 2):          # two warm-up steps are not timed
        if step == 2:
            t0 = time.perf_counter()
        loss = target.cosine(model_gradients(model, normalize(x), labels, create_graph=True, params=target.params))
        (x.grad,) = torch.autograd.grad(loss, [x])
        opt.step()
    return (time.perf_counter() - t0) / iterations


def batched_restart_gradients(model, target, labels):
    """x (R, B, C, H, W) ↦ ∂/∂x_r [1 - cos(∇_θ CE(f_θ(x_r), y), g)] for every restart r in one batched pass.

    ``torch.func``: ``grad`` gives restart r's model gradient, ``vmap`` maps that over r, and the outer ``grad``
    differentiates the cosine distance back to x_r. Equal to R separate plain steps (tested).
    """
    import torch.nn.functional as F
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def restart_loss(x_r):
        def ce(p):
            return F.cross_entropy(functional_call(model, ({**p, **fixed},), (normalize(x_r),)), labels)
        g = grad(ce)(params)
        return target.cosine([g[n] for n in names])

    return vmap(grad(restart_loss))


def batched_restarts_seconds(model, target, labels, shape, restarts: int, iterations: int, seed: int = 0) -> float:
    """Seconds per step of the plain loop run for ``restarts`` restarts at once (``batched_restart_gradients``)."""
    step_gradients = batched_restart_gradients(model, target, labels)
    x = torch.rand((restarts, *shape), generator=torch.Generator().manual_seed(seed)).to(labels.device)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    for step in range(iterations + 2):          # two warm-up steps are not timed
        if step == 2:
            t0 = time.perf_counter()
        x.grad = step_gradients(x.detach())
        opt.step()
    return (time.perf_counter() - t0) / iterations


def bench(model_name: str = "resnet18", iterations: int = 30, batch_size: int = 1, prior: str = "cifar10",
          device: torch.device | str = "cpu", methods=("ig", "gifd"), seed: int = 0, restarts: int = 4) -> dict:
    """Seconds per iteration for the plain loop and each attack (same model, same update, one process)."""
    from .attacks.core import GradientTarget
    from .pipeline import GENERATIVE_METHODS, run_attack
    from .fl import ClientUpdate

    torch.manual_seed(seed)
    model = build_model(model_name, seed=seed).to(device).eval()
    x = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    y = torch.arange(batch_size, device=device) % 10
    grads = fedsgd_gradients(model, normalize(x), y)
    rows = {"model": model_name, "batch_size": batch_size, "iterations": iterations,
            "threads": torch.get_num_threads(), "device": str(device)}
    target = GradientTarget(model, grads)
    plain = plain_matching_seconds(model, target, y, tuple(x.shape), iterations, seed)
    rows["plain"] = plain
    if restarts > 1:
        one = batched_restarts_seconds(model, target, y, tuple(x.shape), 1, iterations, seed)
        many = batched_restarts_seconds(model, target, y, tuple(x.shape), restarts, iterations, seed)
        rows.update({"restarts": restarts, "batched_1": one, f"batched_{restarts}": many,
                     "batched_cost_vs_one_restart": many / plain, "batched_speedup_vs_sequential": restarts * plain / many})
    preset = get_preset("laptop")
    per_stage = max(2, iterations // len(preset.gifd.stages))
    preset = preset.override(ig=replace(preset.ig, iterations=iterations, restarts=1),
                             gifd=replace(preset.gifd, iterations=(per_stage,) * len(preset.gifd.stages), restarts=1),
                             ggl=replace(preset.ggl, evaluations=iterations),
                             gias=replace(preset.gias, latent_iterations=iterations // 2,
                                          generator_iterations=iterations // 2, restarts=1))
    G = None
    for method in methods:
        if method in GENERATIVE_METHODS and G is None:
            from .gan import load_generator

            G = load_generator(prior, device=device)
        update = ClientUpdate([g.clone() for g in grads], ThreatModel(model=model_name, batch_size=batch_size))
        rec = run_attack(method, model, update, preset, batch_size, seed=seed, labels=y, generator=G)
        rows[method] = rec.seconds_per_iteration
        rows[f"{method}_ratio"] = rec.seconds_per_iteration / plain
    return rows
