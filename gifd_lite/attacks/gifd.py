"""GIFD: Gradient Inversion over Feature Domains (Fang et al., ICCV 2023), notebook 05.

Searching only the latent z of a generator (GGL, notebook 04) leaves the attack inside the generator's range,
which rarely contains the client's exact image. GIFD moves *into* the generator, stage by stage:

1. stage 0: optimise z by cosine gradient matching (with small TV and norm terms, z kept on its sphere);
2. stage k = 1, 2, …: take the stage-k features h_0 that the previous stage's optimum produces and optimise
   them, projecting after every step onto the l1 ball ||h - h_0||_1 ≤ r_k (r_k a fraction of ||h_0||_1,
   notebook 06), so each stage can only move so far from an image the generator could make;
3. with R restarts, every stage's result is scored by the *pure* gradient-matching loss, and the output is
   the image of the (stage, restart) with the lowest loss — the attacker never sees the ground truth, and a
   deeper stage that matches worse (or overfits noise into the image) is simply not chosen.

``best_layer`` names the stage chosen; ``history.extra["stages"]`` holds, per stage, every restart's loss and
image (``losses``, ``restart_images``) and the best of them (``best_loss``, ``images``, ``features``).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch
from torch import nn

from ..config import GIFDConfig
from ..errors import GifdError
from ..fl import ThreatModel
from ..gan.generator import Generator
from .core import History, Reconstruction, snapshot_steps
from .generative import optimise_stage, prepare, render, sphere

__all__ = ["gifd", "search_stage_again", "radius_sweep"]


def gifd(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
         G: Generator, config: GIFDConfig, class_code: torch.Tensor | None = None, seed: int = 0,
         learn_code: bool = False) -> Reconstruction:
    """Invert ``update`` through the generator ``G``.

    ``labels`` are the FL labels used in the gradient; ``class_code`` conditions G (hard labels or soft
    class mixtures, default ``labels``, i.e. the FL task and the GAN share classes). ``learn_code`` (the soft
    label mapping, notebook 07) optimises the mixture with the latent at stage 0 and keeps it fixed after.
    """
    n = len(config.stages)
    if not (len(config.iterations) == len(config.lr) == len(config.radius) == n) or n == 0:
        raise GifdError("GIFD config: stages, iterations, lr and radius need one entry per stage")
    if config.stages[0] != 0 or list(config.stages) != sorted(set(config.stages)):
        raise GifdError("GIFD stages must start at 0 (the latent) and increase")
    if config.stages[-1] >= len(G.STAGES):
        raise GifdError(f"the generator has stages 0..{len(G.STAGES) - 1}")
    device = next(model.parameters()).device
    target, labels, code = prepare(model, update, labels, class_code, threat_model,
                                   num_classes=G.config.num_classes if learn_code else None)
    batch = len(labels)

    history = History()
    per_stage = [{"stage": G.STAGES[k], "k": k, "losses": [], "restart_images": [], "best_loss": math.inf,
                  "images": None, "features": None} for k in config.stages]
    best = {"loss": math.inf, "images": None, "stage": None, "restart": None, "code": None}
    iterations = 0
    snap_at = snapshot_steps(sum(config.iterations), config.snapshots)
    t0 = time.perf_counter()
    try:
        for restart in range(config.restarts):
            gen = torch.Generator().manual_seed(seed * 7919 + restart)
            h = sphere(torch.randn((batch, G.config.z_dim), generator=gen)).to(device)
            prev_stage, offset, curve, code_r = 0, 0, [], code
            for i, k in enumerate(config.stages):
                start = G.advance(prev_stage, h, code_r, k).detach()

                def on_step(step, loss, feats, offset=offset, k=k, code_r=code_r):
                    nonlocal iterations
                    iterations += 1
                    if restart == 0 and offset + step in snap_at and not (learn_code and k == 0):
                        with torch.no_grad():
                            history.snapshots.append((offset + step + 1, render(G, k, feats, code_r).clamp(0, 1).cpu()))

                result = optimise_stage(model, target, G, k, start, code_r, labels, config.iterations[i], config.lr[i],
                                        radius=config.radius[i], tv_weight=config.tv_weight,
                                        norm_weight=config.norm_weight if k == 0 else 0.0, warmup=config.warmup,
                                        on_step=on_step, desc=f"GIFD restart {restart + 1} stage {G.STAGES[k]}",
                                        learn_code=learn_code and k == 0)
                code_r = result.code
                curve += result.curve
                offset += config.iterations[i]
                stage = per_stage[i]
                stage["losses"].append(result.loss)
                stage["restart_images"].append(result.images)
                if result.loss < stage["best_loss"]:
                    stage.update(best_loss=result.loss, images=result.images, features=result.features.cpu())
                if result.loss < best["loss"]:
                    best.update(loss=result.loss, images=result.images, stage=G.STAGES[k], restart=restart,
                                code=code_r.detach().cpu())
                    history.loss = curve
                    history.best_restart = restart
                h, prev_stage = result.features, k
            history.restart_losses.append(min(s["losses"][-1] for s in per_stage))
    except KeyboardInterrupt:
        history.interrupted = True
    if best["images"] is None:
        raise GifdError("GIFD produced no finite result (NaN losses in every stage)")
    history.extra["stages"] = per_stage
    history.extra["best_layer"] = best["stage"]
    history.extra["class_code"] = best["code"]
    return Reconstruction(best["images"], labels.cpu(), history, threat_model, "gifd", iterations,
                          time.perf_counter() - t0, best["loss"])


def search_stage_again(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, G: Generator,
                       previous: Reconstruction, k: int, iterations: int, lr: float, radius: float | None,
                       tv_weight: float = 1e-4, class_code: torch.Tensor | None = None):
    """Notebook 06's ablation: search stage ``k`` again from where a GIFD run's earlier stage left off.

    Starts from the best features of the last stage of ``previous`` that lies before ``k`` and advances them to
    stage ``k``; returns that stage's :class:`~gifd_lite.attacks.generative.StageResult` (best features by
    gradient loss, image, curve). Only the radius (``None`` = unconstrained) differs between calls.
    """
    stages = [st for st in previous.history.extra["stages"] if st["k"] < k and st["features"] is not None]
    if not stages:
        raise GifdError(f"the previous GIFD run has no stage before stage {k}")
    device = next(model.parameters()).device
    if class_code is None and previous.history.extra.get("class_code") is not None:
        class_code = previous.history.extra["class_code"]          # e.g. the mixture a soft mapping learned
    target, labels, code = prepare(model, update, labels, class_code, previous.threat_model)
    before = stages[-1]
    start = G.advance(before["k"], before["features"].to(device), code, k).detach()
    return optimise_stage(model, target, G, k, start, code, labels, iterations, lr, radius=radius,
                          tv_weight=tv_weight, desc=f"stage {G.STAGES[k]}, radius {radius}")


def radius_sweep(model: nn.Module, update: list[torch.Tensor], labels: torch.Tensor, threat_model: ThreatModel,
                 G: Generator, config: GIFDConfig, deep_stage: int, radii, seed: int = 0,
                 class_code: torch.Tensor | None = None) -> tuple[Reconstruction, list]:
    """Notebook 06's l1-ball ablation with only the radius varying.

    GIFD runs its stages before ``deep_stage`` once (``config``'s radii, restarts and steps); then ``deep_stage``
    is searched again from that shared start once per radius ρ in ``radii`` (``None``: no ball), with the
    steps and learning rate ``config`` gives it. Returns the shared run and one StageResult per radius.
    """
    if deep_stage not in config.stages or deep_stage == 0:
        raise GifdError(f"deep_stage must be one of the config's feature stages {list(config.stages[1:])}")
    keep = [i for i, k in enumerate(config.stages) if k < deep_stage]
    prefix = replace(config, **{f: tuple(getattr(config, f)[i] for i in keep) for f in ("stages", "iterations", "lr", "radius")})
    first = gifd(model, update, labels, threat_model, G, prefix, class_code=class_code, seed=seed)
    d = config.stages.index(deep_stage)
    return first, [search_stage_again(model, update, first.labels, G, first, deep_stage, config.iterations[d],
                                      config.lr[d], radius=rho, tv_weight=config.tv_weight) for rho in radii]
